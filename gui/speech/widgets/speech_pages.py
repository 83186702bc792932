"""The Speech tab's result pages: the transcript (with the file job row) or the live top-5 classes."""
from __future__ import annotations

from PySide6.QtWidgets import QGroupBox, QStackedWidget, QVBoxLayout, QWidget

from gui.common.bars import BarsView
from gui.speech.widgets.file_job_bar import FileJobBar
from gui.speech.widgets.transcript_view import TranscriptView


class SpeechPages(QStackedWidget):
    """Page 0: ``transcript_view`` above ``file_bar``; page 1: ``bars`` (live classification)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        tpage = QWidget()
        tl = QVBoxLayout(tpage)
        tl.setContentsMargins(0, 0, 0, 0)
        self.transcript_view = TranscriptView()
        tl.addWidget(self.transcript_view, 1)
        self.file_bar = FileJobBar()
        tl.addWidget(self.file_bar)
        self.addWidget(tpage)
        cpage = QGroupBox("Live audio classification — last 1 s, updated every 250 ms")
        cl = QVBoxLayout(cpage)
        self.bars = BarsView(rows=5)
        self.bars.placeholder = "Press Start: the top-5 classes of the last second appear here."
        cl.addWidget(self.bars)
        cl.addStretch(1)
        self.addWidget(cpage)

    def show_classification(self, on: bool) -> None:
        self.setCurrentIndex(1 if on else 0)
