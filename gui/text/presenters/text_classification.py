"""Text classification (sentiment...) in the Text tab: every label as a bar, best first; inside the
model, the tokens the encoder read and the logits the classifier made of the final [CLS] state."""
from __future__ import annotations

import html

from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QLabel

from engine.types.text import TextClassificationOptions, TextClassificationResult
from gui.common.bars import BarsView
from gui.text.presenters.base import NO_ATTENTION, TextPresenter
from gui.text.widgets.inside_panel import InsidePart
from gui.text.widgets.token_strip import cells_for

MAX_BARS = 10

FUNCTIONS = {"softmax": "softmax over the labels (they sum to 100%)",
             "sigmoid": "a sigmoid per label (each on its own, 0–100%)",
             "none": "none: raw logits"}


class Presenter(TextPresenter):
    task = "text-classification"
    placeholder = "Type or paste a text to classify, e.g. “A wonderful little film.”"

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(settings, parent)
        self.bars = BarsView(rows=2)
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.view_layout.addWidget(self.bars)
        self.view_layout.addWidget(self.caption)
        self.view_layout.addStretch(1)

    def options(self, internals: bool, attention: bool) -> TextClassificationOptions:
        return TextClassificationOptions(top_k=None, internals=internals, attention=internals and attention)

    def show_result(self) -> None:
        r: TextClassificationResult = self.result
        rows = min(MAX_BARS, len(r))
        if rows != self.bars.rows:
            self.bars.rows = rows
            self.bars.setMinimumHeight(26 * rows + 10)
            self.bars.updateGeometry()
        self.bars.set_results(r.labels, [float(s) for s in r.scores])
        more = f" {len(r) - rows} more labels are in the copied result." if len(r) > rows else ""
        cut = " The text was longer than the model reads: its first 512 tokens were classified." if r.truncated else ""
        self.caption.setText(f"Scores: {FUNCTIONS.get(r.function, r.function)}.{cut}{more}")

    def clear(self) -> None:
        super().clear()
        self.bars.clear()
        self.caption.setText("")

    def summary(self) -> str:
        r = self.result
        return f"{r.labels[0]} {100 * float(r.scores[0]):.1f}%" if r is not None and len(r) else ""

    def inside(self):
        r: TextClassificationResult = self.result
        if r is None or r.internals is None:
            return [], 0, ""
        inside = r.internals
        logits = ", ".join(f"{html.escape(name)} <b>{float(v):.3f}</b>"
                           for name, v in zip(inside.label_names, inside.logits))
        description = ("The encoder reads every token; the classifier reads only the final state of <b>[CLS]</b> "
                       f"(the first token) and gives one logit per label: {logits}. The bars are "
                       f"{FUNCTIONS.get(r.function, r.function)}.")
        part = InsidePart("the text", inside.tokens, tuple(cells_for(inside.tokens, (self.text,))),
                          attention_note=NO_ATTENTION)
        return [part], 0, description

    def result_text(self) -> str:
        r = self.result
        if r is None:
            return ""
        return "\n".join(f"{label}\t{float(score):.4f}" for label, score in zip(r.labels, r.scores))
