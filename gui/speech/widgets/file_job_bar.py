"""The row under the Speech tab's transcript: a file job's progress and Cancel, and Export buttons."""
from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QPushButton, QWidget

EXPORT_FORMATS = ("txt", "srt", "vtt")


class FileJobBar(QWidget):
    """``progress`` and ``cancel_btn`` show only while a file runs; ``export_btns`` by format."""

    exportRequested = Signal(str)  # "txt" / "srt" / "vtt"

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setVisible(False)
        row.addWidget(self.progress, 1)
        row.addWidget(self.cancel_btn)
        row.addStretch(0)
        self.export_btns: dict[str, QPushButton] = {}
        for fmt in EXPORT_FORMATS:
            b = QPushButton(f"Export {fmt.upper()}")
            b.setEnabled(False)
            b.clicked.connect(lambda _=False, f=fmt: self.exportRequested.emit(f))
            self.export_btns[fmt] = b
            row.addWidget(b)

    def begin(self, name: str) -> None:
        """Show the progress (at 0) of the file ``name`` and the Cancel button."""
        self.progress.setValue(0)
        self.progress.setFormat(f"{name}: %p%")
        self.progress.setVisible(True)
        self.cancel_btn.setVisible(True)

    def end(self) -> None:
        """Hide the progress and the Cancel button (done, failed or cancelled)."""
        self.progress.setVisible(False)
        self.cancel_btn.setVisible(False)

    def set_fraction(self, fraction: float) -> None:
        self.progress.setValue(int(1000 * max(0.0, min(1.0, fraction))))

    def set_exportable(self, on: bool) -> None:
        for b in self.export_btns.values():
            b.setEnabled(on)
