"""Saving a file's transcript: the Save dialog and the file write (engine.export formats it)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QFileDialog, QWidget


def write_transcript(result, path, fmt: str | None = None) -> Path:
    """Write the TranscriptionResult ``result`` as txt / srt / vtt / json (from the suffix by default)."""
    from engine.io import export as ex

    path = Path(path)
    fmt = (fmt or path.suffix.lstrip(".") or "txt").lower()
    text = getattr(ex, f"to_{fmt}")(result)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path


def ask_export_path(parent: QWidget, fmt: str, source: Path | None) -> str:
    """Where to save a ``fmt`` transcript of ``source`` (next to it by default); "" if cancelled."""
    base = source.with_suffix(f".{fmt}") if source else Path(f"transcript.{fmt}")
    path, _ = QFileDialog.getSaveFileName(parent, f"Export {fmt.upper()}", str(base), f"{fmt.upper()} (*.{fmt})")
    return path
