"""The tokens as the model sees them: one box per token ([CLS], WordPiece pieces with their ``##``,
[SEP]), wrapped like a paragraph, each with small lines under it (segment id, NER tag...) and
optional rows of per-token values drawn as bars (question answering's start / end logits).
Hover shows a token's details; a click selects it (``tokenClicked(index)``)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPalette, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from engine.types.text import ModelTokens
from gui.text.widgets.tooltip import tooltip_event

#: the tint of the second segment's tokens (question answering: the context)
SEGMENT_TINTS = (None, QColor(240, 160, 60, 45))


@dataclass(frozen=True)
class TokenCell:
    text: str  # the piece as the model reads it
    lines: tuple[str, ...] = ()  # small lines under it
    colour: QColor | None = None  # background (None: the segment's tint)
    special: bool = False  # [CLS], [SEP], [PAD]: added by the tokenizer
    segment: int = 0
    tooltip: str = ""


@dataclass(frozen=True)
class ValueRow:
    """One value per token, drawn as a bar under each token (scaled from the row's lowest to its highest)."""

    name: str
    values: np.ndarray  # (T,) float
    colour: QColor
    mask: np.ndarray | None = None  # (T,) bool: the tokens the row is about; the others get no bar


def cells_for(tokens: ModelTokens, texts: Sequence[str], lines: Sequence[Sequence[str]] | None = None,
              colours: Sequence[QColor | None] | None = None, notes: Sequence[str] | None = None) -> list[TokenCell]:
    """Cells for every token of ``tokens``: the piece, its segment id (and ``lines[i]``), a tooltip
    with its index, vocabulary id, segment and the characters it covers in ``texts[sequence id]``."""
    out = []
    for i, piece in enumerate(tokens.tokens):
        seq = int(tokens.sequence_ids[i])
        seg = int(tokens.segment_ids[i])
        a, b = (int(x) for x in tokens.offsets[i])
        special = seq < 0
        tip = [f"token {i}: {piece!r}  (id {int(tokens.ids[i])})", f"segment {seg}"]
        if special:
            tip.append("special token added by the tokenizer")
        elif 0 <= seq < len(texts):
            tip.append(f"characters {a}–{b}: {texts[seq][a:b]!r}")
        if piece.startswith("##"):
            tip.append("continues the word before it (a WordPiece sub-word)")
        if notes is not None and notes[i]:
            tip.append(notes[i])
        extra = tuple(lines[i]) if lines is not None else ()
        out.append(TokenCell(piece, (f"seg {seg}",) + extra, colours[i] if colours is not None else None,
                             special, seg, "\n".join(tip)))
    return out


class TokenStrip(QWidget):
    tokenClicked = Signal(int)  # the selected token (-1: none)
    heightChanged = Signal(int)  # the height the cells take at the current width

    BAR_H = 18
    GAP = 4

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.cells: tuple[TokenCell, ...] = ()
        self.rows: tuple[ValueRow, ...] = ()
        self.selected = -1
        self.placeholder = ""
        self._rects: list[QRectF] = []
        self._laid_out_for = -1
        self._small = QFont(self.font())
        self._small.setPointSizeF(max(6.5, self.font().pointSizeF() * 0.78))
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Minimum)
        self.setMouseTracking(True)

    def set_cells(self, cells: Sequence[TokenCell], rows: Sequence[ValueRow] = ()) -> None:
        self.cells = tuple(cells)
        self.rows = tuple(rows)
        self.selected = -1 if self.selected >= len(self.cells) else self.selected
        self._laid_out_for = -1
        self._relayout()
        self.update()

    def clear(self) -> None:
        self.set_cells(())

    def select(self, index: int) -> None:
        self.selected = index
        self.update()

    # ------------------------------------------------------------------ layout

    def _cell_height(self) -> float:
        fm, sm = QFontMetricsF(self.font()), QFontMetricsF(self._small)
        lines = max((len(c.lines) for c in self.cells), default=0)
        return 6 + fm.height() + lines * sm.height() + len(self.rows) * (self.BAR_H + 2)

    def _layout(self, width: float) -> float:
        """Place the cells in rows ``width`` wide; returns the height they take."""
        fm, sm = QFontMetricsF(self.font()), QFontMetricsF(self._small)
        h = self._cell_height()
        x = y = float(self.GAP)
        self._rects = []
        for cell in self.cells:
            w = max([fm.horizontalAdvance(cell.text)] + [sm.horizontalAdvance(t) for t in cell.lines] + [14.0]) + 10
            if x + w > width - self.GAP and x > self.GAP:
                x, y = float(self.GAP), y + h + self.GAP
            self._rects.append(QRectF(x, y, w, h))
            x += w + self.GAP
        self._laid_out_for = int(width)
        return (y + h + self.GAP) if self.cells else 40.0

    def _relayout(self) -> None:
        height = int(self._layout(max(100, self.width())))
        if self.minimumHeight() != height:
            self.setMinimumHeight(height)
            self.heightChanged.emit(height)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().resizeEvent(event)
        if int(self.width()) != self._laid_out_for:
            self._relayout()

    def sizeHint(self) -> QSize:
        return QSize(400, self.minimumHeight())

    def cell_rect(self, i: int) -> QRectF:
        if self._laid_out_for != int(max(100, self.width())):
            self._relayout()
        return self._rects[i]

    def cell_at(self, pos: QPointF) -> int:
        if self._laid_out_for != int(max(100, self.width())):
            self._relayout()
        for i, r in enumerate(self._rects):
            if r.contains(pos):
                return i
        return -1

    # ------------------------------------------------------------------ painting

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        if self._laid_out_for != int(max(100, self.width())):
            self._relayout()
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        if not self.cells:
            p.setPen(pal.placeholderText().color())
            p.drawText(self.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, self.placeholder)
            p.end()
            return
        fm, sm = QFontMetricsF(self.font()), QFontMetricsF(self._small)
        scales = [self._scale(row) for row in self.rows]
        clip = QRectF(event.rect())
        text_colour = pal.text().color()
        dim = pal.placeholderText().color()
        for i, (cell, r) in enumerate(zip(self.cells, self._rects)):
            if not r.intersects(clip):
                continue
            fill = cell.colour or (SEGMENT_TINTS[cell.segment] if 0 <= cell.segment < len(SEGMENT_TINTS) else None)
            if fill is not None:
                p.setBrush(fill)
            else:
                p.setBrush(Qt.BrushStyle.NoBrush)
            if i == self.selected:
                p.setPen(QPen(pal.color(QPalette.ColorRole.Highlight), 2))
            else:
                p.setPen(QPen(QColor(128, 128, 128, 110), 1))
            p.drawRoundedRect(r.adjusted(0.5, 0.5, -0.5, -0.5), 4, 4)
            y = r.top() + 3
            font = QFont(self.font())
            font.setItalic(cell.special)
            p.setFont(font)
            p.setPen(dim if cell.special else text_colour)
            p.drawText(QRectF(r.left(), y, r.width(), fm.height()), Qt.AlignmentFlag.AlignCenter, cell.text)
            y += fm.height()
            p.setFont(self._small)
            for n, line in enumerate(cell.lines):
                p.setPen(dim if n == 0 else text_colour)
                p.drawText(QRectF(r.left(), y, r.width(), sm.height()), Qt.AlignmentFlag.AlignCenter, line)
                y += sm.height()
            for row, (lo, hi) in zip(self.rows, scales):
                if row.mask is None or bool(row.mask[i]):
                    v = float(row.values[i])
                    t = 0.0 if hi <= lo else (v - lo) / (hi - lo)
                    bar_h = max(1.0, t * self.BAR_H)
                    p.fillRect(QRectF(r.left() + 4, y + self.BAR_H - bar_h, r.width() - 8, bar_h), row.colour)
                y += self.BAR_H + 2
        p.end()

    @staticmethod
    def _scale(row: ValueRow) -> tuple[float, float]:
        values = np.asarray(row.values, np.float64)
        if row.mask is not None:
            values = values[np.asarray(row.mask, bool)]
        values = values[np.isfinite(values)]
        return (float(values.min()), float(values.max())) if len(values) else (0.0, 0.0)

    # ------------------------------------------------------------------ pointer

    def hover_text(self, i: int) -> str:
        if not 0 <= i < len(self.cells):
            return ""
        lines = [self.cells[i].tooltip] if self.cells[i].tooltip else []
        for row in self.rows:
            if row.mask is None or bool(row.mask[i]):
                lines.append(f"{row.name}: {float(row.values[i]):.3f}")
        return "\n".join(lines)

    def event(self, event) -> bool:
        return tooltip_event(event, lambda pos: self.hover_text(self.cell_at(QPointF(pos))), self) or super().event(event)

    def mousePressEvent(self, event) -> None:  # noqa: N802 - Qt override
        i = self.cell_at(event.position())
        if event.button() == Qt.MouseButton.LeftButton:
            self.selected = -1 if i == self.selected else i
            self.update()
            self.tokenClicked.emit(self.selected)
