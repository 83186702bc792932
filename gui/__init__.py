"""Taskscope desktop app (PySide6). Never imports torch: it talks to engine/ only."""
