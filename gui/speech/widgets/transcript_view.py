"""The transcript panel of the Speech tab: rich text | segments table, with the CTC strip.

Left: the transcript (final text, then the partial text of the utterance in progress in grey
italics) above the CTC emission strip. Right: one row per final utterance (live) or per word
(a file), with start / end times. The panel only draws; the tab decides what to show.
"""
from __future__ import annotations

from collections.abc import Iterable

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (QAbstractItemView, QHeaderView, QSplitter, QTableWidget, QTableWidgetItem,
                               QTextBrowser, QVBoxLayout, QWidget)

from gui.speech.widgets.ctc_strip import CTCStrip


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
        self.splitter = split = QSplitter(Qt.Orientation.Horizontal)
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
        # live transcript, drawn incrementally: the finals, then one trailing partial span
        self._live = False  # the document holds the live transcript (not a note / a file result)
        self._finals_end = 0  # document position after the last final text (where the partial starts)
        self._final_fmt = QTextCharFormat()
        self._final_fmt.setFontPointSize(15)
        self._partial_fmt = QTextCharFormat(self._final_fmt)
        self._partial_fmt.setForeground(QColor("#888888"))
        self._partial_fmt.setFontItalic(True)

    # ------------------------------------------------------------------ live transcript

    def show_live(self, finals: Iterable[str], partial: str = "", in_speech: bool = False) -> None:
        """The final texts, then ``partial`` in grey italics (or a grey "…" while speech goes on).
        Rebuilds the whole document; :meth:`append_final` / :meth:`set_partial` update it in place."""
        self.transcript.setHtml("<p style='font-size:15pt'></p>")
        self._live, self._finals_end = True, 0
        for t in finals:
            self.append_final(t)
        self.set_partial(partial, in_speech)

    def is_live(self) -> bool:
        """True while the document shows the live transcript (False after a note or a file result)."""
        return self._live

    def append_final(self, text: str) -> None:
        """Add one final text after the others (the trailing partial is removed); O(len(text))."""
        if not self._live:
            self.show_live(())
        cur = self._cut_partial()
        if text:
            cur.insertText((" " if self._finals_end else "") + text, self._final_fmt)
            self._finals_end = cur.position()

    def set_partial(self, partial: str = "", in_speech: bool = False) -> None:
        """Replace only the trailing grey span: ``partial``, a "…" while speech goes on, or nothing."""
        if not self._live:
            self.show_live(())
        cur = self._cut_partial()
        tail = partial or ("…" if in_speech else "")
        if tail:
            cur.insertText((" " if self._finals_end else "") + tail, self._partial_fmt)
        self.transcript.moveCursor(QTextCursor.MoveOperation.End)

    def _cut_partial(self) -> QTextCursor:
        """A cursor at the end of the finals, with everything after them removed."""
        cur = QTextCursor(self.transcript.document())
        cur.setPosition(self._finals_end)
        cur.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cur.removeSelectedText()
        return cur

    def show_note(self, text: str) -> None:
        """``text`` alone in grey italics (work in progress, e.g. a file being transcribed)."""
        self._live = False
        self.transcript.setHtml(f"<p style='color:gray'><i>{esc(text)}</i></p>")

    def add_row(self, start: float, end: float, text: str, row: int | None = None) -> None:
        """A row (Start, End, Text) at the end, or inserted at ``row``."""
        at_end = row is None or row >= self.table.rowCount()
        row = self.table.rowCount() if at_end else row
        self.table.insertRow(row)
        for col, value in enumerate((fmt_t(start), fmt_t(end), text)):
            item = QTableWidgetItem(value)
            if col < 2:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, col, item)
        if at_end:
            self.table.scrollToBottom()

    def show_file_result(self, r, name: str = "") -> None:
        """A file's TranscriptionResult: one table row per word; hover a word for its time."""
        self._live = False
        self.table.setRowCount(0)
        for w in r.words:
            self.add_row(w.start, w.end, w.text)
        words = " ".join(f"<span title='{w.start:.2f}–{w.end:.2f} s'>{esc(w.text)}</span>" for w in r.words)
        body = words or esc(r.text) or "<span style='color:gray'><i>(no speech recognised)</i></span>"
        self.transcript.setHtml(f"<p style='color:gray'>{esc(name)} · "
                                f"{r.duration_s:.1f} s · {len(r.words)} words (hover a word for its time)</p>"
                                f"<p style='font-size:15pt'>{body}</p>")
