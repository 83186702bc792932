"""Named entities (token classification) in the Text tab: the entities highlighted in the text, one
colour per type, with a legend and a list; the grouping of tagged tokens into entities is the
pipeline's aggregation (none / simple / first / average / max). Inside the model: every token's
raw tag (B- begins an entity, I- continues one) with its probability, beside the entities."""
from __future__ import annotations

import html
from collections import Counter

import numpy as np
from PySide6.QtCore import QObject, QSettings, Qt
from PySide6.QtWidgets import QComboBox, QLabel, QScrollArea

from engine.types.text import AGGREGATIONS, TokenClassificationOptions, TokenClassificationResult
from gui.text.presenters.base import NO_ATTENTION, TextPresenter
from gui.text.widgets.highlighted_text import HighlightedText, Span
from gui.text.widgets.inside_panel import InsidePart
from gui.text.widgets.legend import Legend, entity_colour, entity_type
from gui.text.widgets.score_list import Row, ScoreList
from gui.text.widgets.token_strip import cells_for

DEFAULT_AGGREGATION = "simple"
AGGREGATION_HELP = {
    "none": "every token on its own, with its raw tag (B-PER, I-PER...)",
    "simple": "adjacent tokens with the same type grouped; a B- tag starts a new entity",
    "first": "whole words: a word takes its first token's tag, then grouped as simple",
    "average": "whole words: a word takes the tag of its tokens' averaged scores, then grouped",
    "max": "whole words: a word takes its most confident token's tag, then grouped",
}


class Presenter(TextPresenter):
    task = "token-classification"
    placeholder = "Type or paste a text to find people, places and organisations in, e.g. “John Smith works for " \
                  "Microsoft in Paris.”"

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(settings, parent)
        self.aggregation_combo = QComboBox()
        for name in AGGREGATIONS:
            self.aggregation_combo.addItem(name, name)
            self.aggregation_combo.setItemData(self.aggregation_combo.count() - 1, AGGREGATION_HELP[name],
                                               Qt.ItemDataRole.ToolTipRole)
        self.aggregation_combo.setToolTip("How tagged tokens become entities (transformers' aggregation strategy)")
        wanted = str(settings.value(self.key("aggregation"), DEFAULT_AGGREGATION))
        self.aggregation_combo.setCurrentIndex(max(0, self.aggregation_combo.findData(wanted)))
        self.aggregation_combo.currentIndexChanged.connect(self._on_aggregation)
        self.toolbar_layout.addWidget(QLabel("Grouping"))
        self.toolbar_layout.addWidget(self.aggregation_combo)
        self.toolbar.show()

        self.text_view = HighlightedText()
        self.text_view.spanClicked.connect(self._select)
        self.legend = Legend()
        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.list = ScoreList(clickable=True)
        self.list.rowClicked.connect(self._on_row)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.list)
        self.view_layout.addWidget(self.text_view, 3)
        self.view_layout.addWidget(self.legend)
        self.view_layout.addWidget(self.caption)
        self.view_layout.addWidget(scroll, 2)

    @property
    def aggregation(self) -> str:
        return self.aggregation_combo.currentData() or DEFAULT_AGGREGATION

    def set_aggregation(self, name: str) -> None:
        self.aggregation_combo.setCurrentIndex(self.aggregation_combo.findData(name))

    def _on_aggregation(self, *_args) -> None:
        self.settings.setValue(self.key("aggregation"), self.aggregation)
        self.inputsChanged.emit()

    def save_settings(self) -> None:
        self.settings.setValue(self.key("aggregation"), self.aggregation)

    def options(self, internals: bool, attention: bool) -> TokenClassificationOptions:
        return TokenClassificationOptions(aggregation=self.aggregation, internals=internals,
                                          attention=internals and attention)

    # ------------------------------------------------------------------ results

    def show_result(self) -> None:
        r: TokenClassificationResult = self.result
        spans = [Span(e.start, e.end, entity_colour(e.label), f"{e.label} · {100 * e.score:.1f}%"
                      + (f" · token {e.index}" if e.index is not None else ""), key=i)
                 for i, e in enumerate(r.entities)]
        self.text_view.set_content(self.text, spans)
        counts = Counter(entity_type(e.label) if r.aggregation != "none" else e.label for e in r.entities)
        self.legend.set_items(sorted(counts.items()), empty="No entities found.")
        self.caption.setText("The text is longer than the model reads (512 tokens): entities are found in its "
                             "first part only." if r.truncated else "")
        self.caption.setVisible(r.truncated)
        self.list.set_rows([Row(f"{e.label}   {self.text[e.start:e.end]}", e.score, "",
                                f"{e.label} {100 * e.score:.1f}% · characters {e.start}–{e.end}"
                                + (f"\nas decoded: {e.word!r}" if e.word != self.text[e.start:e.end] else ""),
                                entity_colour(e.label, 230))
                            for e in r.entities])

    def clear(self) -> None:
        super().clear()
        self.text_view.clear_content()
        self.legend.set_items(())
        self.caption.setText("")
        self.list.clear()

    def _select(self, i: int) -> None:
        self.list.selected = i
        self.list.update()

    def _on_row(self, i: int) -> None:
        e = self.result.entities[i]
        self.text_view.reveal(e.start, e.end)

    def summary(self) -> str:
        r = self.result
        if r is None:
            return ""
        n = len(r)
        if r.aggregation == "none":
            return f"{n} tagged token{'s' if n != 1 else ''}"
        return f"{n} entit{'ies' if n != 1 else 'y'}"

    def inside(self):
        r: TokenClassificationResult = self.result
        if r is None or r.internals is None:
            return [], 0, ""
        inside = r.internals
        tokens = inside.tokens
        top = np.argsort(-inside.probs, axis=1)[:, :3]
        notes = ["top tags: " + ", ".join(f"{inside.label_names[j]} {100 * float(inside.probs[i, j]):.1f}%"
                                          for j in top[i]) + ("\nsub-word: grouped with the word before it"
                                                              if inside.is_subword[i] else "")
                 for i in range(len(tokens))]
        lines = [(tag, f"{100 * float(score):.0f}%") for tag, score in zip(inside.tags, inside.tag_scores)]
        colours = [entity_colour(tag, 90) if tag != "O" and seq >= 0 else None
                   for tag, seq in zip(inside.tags, tokens.sequence_ids)]
        cells = cells_for(tokens, (self.text,), lines, colours, notes)
        description = (f"The classifier tags <b>every token</b> with one of {len(inside.label_names)} tags "
                       "(<b>B-</b> begins an entity, <b>I-</b> continues one, <b>O</b> is outside any); below each "
                       "token its tag and probability. Grouping <b>"
                       f"{html.escape(r.aggregation)}</b> — {AGGREGATION_HELP[r.aggregation]} — turns them into "
                       "the entities in the text. [CLS] and [SEP] get tags too; they are never entities.")
        return [InsidePart("the text", tokens, tuple(cells), attention_note=NO_ATTENTION)], 0, description

    def result_text(self) -> str:
        r = self.result
        if r is None:
            return ""
        return "\n".join(f"{e.label}\t{self.text[e.start:e.end]}\t{e.score:.4f}\t{e.start}-{e.end}"
                         for e in r.entities)
