"""The transcript panel of the Speech tab: rich text | segments table, with the CTC strip.

Left: the transcript (final text, then the partial text of the utterance in progress in grey
italics) above the CTC emission strip. Right: one row per final utterance (live) or per word
(a file), with start / end times. The panel only draws; the tab decides what to show.
"""
from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QSplitter, QTableWidget, QTableWidgetItem,
                               QTextBrowser, QVBoxLayout, QWidget)

from .ctc_strip import CTCStrip


def fmt_t(t: float) -> str:
    """Seconds as m:ss.ss (negative times show as 0:00.00)."""
    m, s = divmod(max(0.0, t), 60.0)
    return f"{int(m)}:{s:05.2f}"


def esc(text: str) -> str:
    """``text`` made safe for Qt rich text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class TranscriptView(QWidget):
    """``transcript`` (QTextBrowser) and ``ctc`` (CTCStrip) beside ``table`` (Start, End, Text)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.transcript = QTextBrowser()
        self.transcript.setPlaceholderText("Press Start (Space) and speak, or open / drop an audio file.")
        self.transcript.setOpenLinks(False)
        self.ctc = CTCStrip()
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Start", "End", "Text"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        split = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.transcript, 1)
        ll.addWidget(self.ctc)
        split.addWidget(left)
        split.addWidget(self.table)
        split.setSizes([600, 380])
        root = QVBoxLayout(self)
        root.setContentsMargins(0, 0, 0, 0)
        root.addWidget(split, 1)

    def show_live(self, finals: Iterable[str], partial: str = "", in_speech: bool = False) -> None:
        """The final texts, then ``partial`` in grey italics (or a grey "…" while speech goes on)."""
        html = " ".join(esc(t) for t in finals if t)
        if partial:
            html += f" <span style='color:#888888'><i>{esc(partial)}</i></span>"
        elif in_speech:
            html += " <span style='color:#888888'><i>…</i></span>"
        self.transcript.setHtml(f"<p style='font-size:15pt'>{html}</p>")
        self.transcript.moveCursor(QTextCursor.MoveOperation.End)

    def show_note(self, text: str) -> None:
        """``text`` alone in grey italics (work in progress, e.g. a file being transcribed)."""
        self.transcript.setHtml(f"<p style='color:gray'><i>{esc(text)}</i></p>")

    def add_row(self, start: float, end: float, text: str) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        for col, value in enumerate((fmt_t(start), fmt_t(end), text)):
            item = QTableWidgetItem(value)
            if col < 2:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, col, item)
        self.table.scrollToBottom()

    def show_file_result(self, r, name: str = "") -> None:
        """A file's TranscriptionResult: one table row per word; hover a word for its time."""
        self.table.setRowCount(0)
        for w in r.words:
            self.add_row(w.start, w.end, w.text)
        words = " ".join(f"<span title='{w.start:.2f}–{w.end:.2f} s'>{esc(w.text)}</span>" for w in r.words)
        body = words or esc(r.text) or "<span style='color:gray'><i>(no speech recognised)</i></span>"
        self.transcript.setHtml(f"<p style='color:gray'>{esc(name)} · "
                                f"{r.duration_s:.1f} s · {len(r.words)} words (hover a word for its time)</p>"
                                f"<p style='font-size:15pt'>{body}</p>")
