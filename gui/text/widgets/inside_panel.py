""""Inside the model": what the model read and how it attended, for the newest result.

A presenter describes its result as :class:`InsidePart` s — one per model input (question answering:
one per window of the context; sentence similarity: one per sentence) — with the token cells to
draw (pieces, segment ids, the task's per-token lines such as NER tags) and rows of per-token
values (start / end logits). The panel shows one part at a time (a picker when there are several),
its tokens, and its attention as a token × token matrix for the chosen layer and head.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QScrollArea, QSplitter, QVBoxLayout, QWidget

from engine.types.text import ModelTokens
from gui.text.widgets.attention_matrix import AttentionMatrix
from gui.text.widgets.token_strip import TokenCell, TokenStrip, ValueRow

MEAN = -1  # the head picker's "mean of the heads"


@dataclass(frozen=True)
class InsidePart:
    name: str  # "Window 2 of 3 · characters 812–1630" (shown in the picker when there are several)
    tokens: ModelTokens
    cells: tuple[TokenCell, ...]
    rows: tuple[ValueRow, ...] = ()
    note: str = ""  # rich text about this part, above its tokens
    attention_note: str = ""  # why it has no attention maps (shown instead of the matrix)


def _label(text: str) -> QLabel:
    label = QLabel(text)
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    return label


class InsidePanel(QWidget):
    choiceChanged = Signal()  # layer or head picked (the tab remembers them)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.parts: tuple[InsidePart, ...] = ()
        self._wanted = (0, MEAN)  # (layer, head) the user chose; kept across results
        title = QLabel("<b>Inside the model</b>")
        self.description = _label("")
        self.part_label = QLabel("Input")
        self.part_combo = QComboBox()
        self.part_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.part_combo.setMinimumContentsLength(18)
        self.part_combo.setToolTip("Each model input of this result (a window of the context, or a sentence)")
        part_row = QHBoxLayout()
        part_row.setContentsMargins(0, 0, 0, 0)
        part_row.addWidget(self.part_label)
        part_row.addWidget(self.part_combo, 1)
        self.part_row = QWidget()
        self.part_row.setLayout(part_row)
        self.part_note = _label("")
        self.strip = TokenStrip()
        self.strip.placeholder = "No tokens yet."
        strip_scroll = QScrollArea()
        strip_scroll.setWidgetResizable(True)
        strip_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        strip_scroll.setWidget(self.strip)
        self.strip_scroll = strip_scroll

        self.layer_combo = QComboBox()
        self.layer_combo.setToolTip("The encoder layer whose self-attention is shown")
        self.head_combo = QComboBox()
        self.head_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.head_combo.setToolTip("One attention head, or the mean of the layer's heads")
        self.matrix = AttentionMatrix()
        self.attention_label = _label("")
        pick = QHBoxLayout()
        pick.setContentsMargins(0, 0, 0, 0)
        pick.addWidget(QLabel("Attention"))
        pick.addStretch(1)
        pick.addWidget(self.layer_combo)
        pick.addWidget(self.head_combo)
        attention = QWidget()
        lay = QVBoxLayout(attention)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addLayout(pick)
        lay.addWidget(self.attention_label)
        lay.addWidget(self.matrix, 1)
        self._attention_stretch = QWidget()  # takes the space when there is no matrix to show
        lay.addWidget(self._attention_stretch, 1)

        top = QWidget()
        top_lay = QVBoxLayout(top)
        top_lay.setContentsMargins(0, 0, 0, 0)
        top_lay.addWidget(self.part_row)
        top_lay.addWidget(self.part_note)
        top_lay.addWidget(strip_scroll, 1)
        top_lay.addStretch(0)  # a short strip (its height is capped to its tokens') stays at the top
        self.strip.heightChanged.connect(lambda h: strip_scroll.setMaximumHeight(h + 2 * strip_scroll.frameWidth()))
        self.splitter = QSplitter(Qt.Orientation.Vertical)
        self.splitter.addWidget(top)
        self.splitter.addWidget(attention)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setChildrenCollapsible(False)
        self.splitter.setSizes([220, 440])

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(title)
        layout.addWidget(self.description)
        layout.addWidget(self.splitter, 1)

        self.part_combo.currentIndexChanged.connect(self._show_part)
        self.layer_combo.activated.connect(self._on_pick)
        self.head_combo.activated.connect(self._on_pick)
        self.strip.tokenClicked.connect(self.matrix.select)
        self.clear("")

    # ------------------------------------------------------------------ content

    def set_parts(self, parts: Sequence[InsidePart], current: int = 0, description: str = "") -> None:
        self.parts = tuple(parts)
        self.description.setText(description)
        self.description.setVisible(bool(description))
        self.part_combo.blockSignals(True)
        self.part_combo.clear()
        for part in self.parts:
            self.part_combo.addItem(part.name)
        self.part_combo.setCurrentIndex(max(0, min(current, len(self.parts) - 1)) if self.parts else -1)
        self.part_combo.blockSignals(False)
        self.part_row.setVisible(len(self.parts) > 1)
        self._show_part()

    def clear(self, message: str) -> None:
        self.set_parts((), 0, message)
        self.strip.placeholder = ""
        self.matrix.placeholder = ""

    def current_part(self) -> InsidePart | None:
        i = self.part_combo.currentIndex()
        return self.parts[i] if 0 <= i < len(self.parts) else None

    def _show_part(self, *_args) -> None:
        part = self.current_part()
        if part is None:
            self.part_note.setText("")
            self.part_note.hide()
            self.strip.clear()
            self._show_attention(None)
            return
        self.part_note.setText(part.note)
        self.part_note.setVisible(bool(part.note))
        self.strip.set_cells(part.cells, part.rows)
        self.strip_scroll.verticalScrollBar().setValue(0)
        self._show_attention(part)

    # ------------------------------------------------------------------ attention

    def choice(self) -> tuple[int, int]:
        """(layer index, head index or MEAN) wanted."""
        return self._wanted

    def set_choice(self, layer: int, head: int) -> None:
        self._wanted = (max(0, int(layer)), int(head) if int(head) >= 0 else MEAN)
        self._show_attention(self.current_part())

    def _on_pick(self, *_args) -> None:
        self._wanted = (max(0, self.layer_combo.currentIndex()), self.head_combo.currentData())
        self._draw_matrix(self.current_part())
        self.choiceChanged.emit()

    def _show_attention(self, part: InsidePart | None) -> None:
        maps = part.tokens.attentions if part is not None else None
        has = bool(maps)
        for w in (self.layer_combo, self.head_combo):
            w.setVisible(has)
        self.matrix.setVisible(has)
        self._attention_stretch.setVisible(not has)
        note = "" if has else (part.attention_note if part is not None else "")
        self.attention_label.setText(note)
        self.attention_label.setVisible(bool(note))
        if not has:
            self.matrix.clear()
            return
        layers, heads = len(maps), int(maps[0].shape[0])
        if self.layer_combo.count() != layers:
            self.layer_combo.clear()
            self.layer_combo.addItems([f"layer {i + 1}" for i in range(layers)])
        if self.head_combo.count() != heads + 1:
            self.head_combo.clear()
            self.head_combo.addItem("mean of heads", MEAN)
            for h in range(heads):
                self.head_combo.addItem(f"head {h + 1}", h)
        layer, head = self._wanted
        self.layer_combo.setCurrentIndex(min(layer, layers - 1))
        self.head_combo.setCurrentIndex(0 if head == MEAN or head >= heads else head + 1)
        self._draw_matrix(part)

    def _draw_matrix(self, part: InsidePart | None) -> None:
        maps = part.tokens.attentions if part is not None else None
        if not maps:
            self.matrix.clear()
            return
        layer = max(0, self.layer_combo.currentIndex())
        head = self.head_combo.currentData()
        per_head = maps[layer]  # (heads, T, T)
        if head is None or head == MEAN:
            matrix, what = per_head.mean(axis=0), f"layer {layer + 1}, mean of {per_head.shape[0]} heads"
        else:
            matrix, what = per_head[head], f"layer {layer + 1}, head {head + 1}"
        self.matrix.set_matrix(np.asarray(matrix), part.tokens.tokens, what)
        self.matrix.select(self.strip.selected)
