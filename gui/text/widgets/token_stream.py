"""Text as a decoder writes it, one token at a time: an optional prompt (dimmed) and the output,
each output token tinted by the probability the model gave it (green: sure, red: unlikely; pale
bands alternate so that neighbouring tokens stay apart). Hovering a token shows its tooltip (its
probability and the alternatives at that step); a click emits ``spanClicked(token index)``.

The tokens' characters come from :func:`token_spans`, which lines each token's decoded piece up
with the decoded text: byte-level BPE splits some characters over several tokens (each piece then
decodes to U+FFFD), SentencePiece pieces lose their leading space when decoded alone, and special
tokens (end of text) decode to nothing in the text.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from PySide6.QtGui import QColor, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import QWidget

from gui.text.widgets.highlighted_text import HighlightedText, Span

REPLACEMENT = "\ufffd"  # what a piece of a character decodes to alone


def _clean(piece: str | None) -> bool:
    return bool(piece) and REPLACEMENT not in piece


def _match(text: str, piece: str, pos: int) -> int:
    """Where ``piece`` starts in ``text`` at ``pos`` or after some whitespace there (-1: not there)."""
    q = pos
    while True:
        if text.startswith(piece, q):
            return q
        if q < len(text) and text[q].isspace():
            q += 1
            continue
        return -1


def token_spans(text: str, pieces: Sequence[str | None]) -> list[tuple[int, int]]:
    """The [start, end) characters of ``text`` each token covers, given each token decoded alone
    (None: not known). Whitespace a piece lost is given to it; tokens that cannot be placed alone
    (pieces of one character, special tokens, unknown pieces) share the characters up to where the
    next placeable token starts (an empty span when there are none)."""
    spans: list[tuple[int, int]] = []
    pos, i, n = 0, 0, len(pieces)
    while i < n:
        piece = pieces[i]
        if _clean(piece):
            at = _match(text, piece, pos)
            if at >= 0:
                spans.append((pos, at + len(piece)))
                pos = at + len(piece)
                i += 1
                continue
        # a run of tokens that do not place alone: up to the next one that does
        j, end = i + 1, len(text)
        while j < n:
            if _clean(pieces[j]):
                at = text.find(pieces[j], pos)
                if at >= 0:
                    end = at
                    break
            j += 1
        if all(_clean(p) for p in pieces[i:j]):
            end = pos  # special tokens (end of text): they write nothing; the next keeps its space
        spans.extend([(pos, end)] * (j - i))
        pos, i = end, j
    return spans


def probability_colour(prob: float, band: int) -> QColor:
    """The tint of a token the model gave probability ``prob``: red (0) through amber to green (1);
    ``band`` 0 / 1 alternates the lightness a little so that neighbours stay apart."""
    p = max(0.0, min(1.0, float(prob)))
    colour = QColor.fromHsvF(0.33 * p, 0.75 if band == 0 else 0.9, 0.95 if band == 0 else 0.72)
    colour.setAlpha(80 if band == 0 else 130)
    return colour


#: tokens with no probability known (a beam that was not the leader when it was chosen)
UNKNOWN_TINT = (QColor(128, 128, 128, 45), QColor(128, 128, 128, 75))


@dataclass(frozen=True)
class StreamToken:
    start: int  # characters of the shown text (prompt included)
    end: int
    prob: float | None  # the probability the model gave it (None: not known)
    tooltip: str = ""


class TokenStream(HighlightedText):
    """``set_stream(prompt, output, tokens)``: the prompt dimmed, then the output with its tokens."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.prompt_length = 0
        self.tokens: tuple[StreamToken, ...] = ()
        self.setPlaceholderText("")

    def set_stream(self, prompt: str, output: str, tokens: Sequence[StreamToken] = (), follow: bool = True) -> None:
        """Show ``prompt + output``; ``tokens``' characters index that text. ``follow``: keep the end
        in view while it grows (unless the reader scrolled up)."""
        bar = self.verticalScrollBar()
        at_end = bar.value() >= bar.maximum() - 4
        self.tokens = tuple(tokens)
        self.prompt_length = len(prompt)
        spans = []
        for i, t in enumerate(self.tokens):
            colour = UNKNOWN_TINT[i % 2] if t.prob is None else probability_colour(t.prob, i % 2)
            spans.append(Span(t.start, t.end, colour, t.tooltip, key=i))
        self.set_content(prompt + output, spans)
        if prompt:
            cursor = QTextCursor(self.document())
            cursor.setPosition(0)
            cursor.setPosition(self._positions.to_qt(len(prompt)), QTextCursor.MoveMode.KeepAnchor)
            fmt = QTextCharFormat()
            fmt.setForeground(self.palette().placeholderText().color())
            cursor.mergeCharFormat(fmt)
        if follow and at_end:
            bar.setValue(bar.maximum())

    def token_at_index(self, index: int) -> int:
        """The token covering character ``index`` (-1: none, e.g. in the prompt)."""
        for i, t in enumerate(self.tokens):
            if t.start <= index < t.end:
                return i
        return -1

    def token_point(self, i: int):
        """A viewport point inside token ``i`` (tests, and tooltips shown by hand)."""
        cursor = QTextCursor(self.document())
        t = self.tokens[i]
        cursor.setPosition(self._positions.to_qt(t.start))
        rect = self.cursorRect(cursor)
        rect.translate(2, 0)
        return rect.center()
