"""The Text tab's editor: a plain-text editor whose dropped or pasted *files* are opened by the tab
(``filesDropped``) instead of being inserted as their paths; dropped or pasted text goes in as text."""
from __future__ import annotations

from PySide6.QtCore import QMimeData, Signal
from PySide6.QtGui import QFontDatabase, QTextCursor
from PySide6.QtWidgets import QPlainTextEdit, QWidget

from gui.text.widgets.highlighted_text import Positions


def local_files(mime: QMimeData) -> list[str]:
    return [u.toLocalFile() for u in mime.urls() if u.isLocalFile()] if mime.hasUrls() else []


class TextEditor(QPlainTextEdit):
    filesDropped = Signal(list)  # local file paths, as dropped or pasted

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setTabChangesFocus(True)  # Tab moves on to the next input, as in a form
        font = QFontDatabase.systemFont(QFontDatabase.SystemFont.GeneralFont)
        font.setPointSizeF(font.pointSizeF() * 1.1)
        self.setFont(font)

    def canInsertFromMimeData(self, source: QMimeData) -> bool:  # noqa: N802 - Qt override
        return bool(local_files(source)) or super().canInsertFromMimeData(source)

    def insertFromMimeData(self, source: QMimeData) -> None:  # noqa: N802 - Qt override
        files = local_files(source)
        if files:
            self.filesDropped.emit(files)
            return
        super().insertFromMimeData(source)

    def replace_all(self, text: str) -> None:
        """Replace the whole text as one undoable edit (Ctrl+Z brings the previous text back)."""
        cursor = QTextCursor(self.document())
        cursor.beginEditBlock()
        cursor.select(QTextCursor.SelectionType.Document)
        cursor.insertText(text)
        cursor.endEditBlock()
        self.moveCursor(QTextCursor.MoveOperation.Start)

    def replace_range(self, start: int, end: int, text: str) -> None:
        """Replace characters [start, end) of the text (Python indices) as one undoable edit, and put
        the cursor after the new text."""
        positions = Positions(self.toPlainText())
        cursor = QTextCursor(self.document())
        cursor.setPosition(positions.to_qt(start))
        cursor.setPosition(positions.to_qt(end), QTextCursor.MoveMode.KeepAnchor)
        cursor.insertText(text)
        self.setTextCursor(cursor)
