"""Fill-mask in the Text tab: for every [MASK] in the text its top-k candidates with their
probabilities, and the text with each mask filled by its best candidate; clicking a candidate
fills it into the text. Inside the model: the tokens, the [MASK] positions marked — BERT's
masked-language-model head (the pretraining task) scores the whole vocabulary at each of them."""
from __future__ import annotations

import html

from PySide6.QtCore import QObject, QSettings, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QPushButton, QScrollArea, QSpinBox, QVBoxLayout, QWidget

from engine.types.text import FillMaskOptions, FillMaskResult
from gui.text.presenters.base import NO_ATTENTION, TextPresenter, setting_int
from gui.text.widgets.highlighted_text import HighlightedText, Span
from gui.text.widgets.inside_panel import InsidePart
from gui.text.widgets.score_list import Row, ScoreList
from gui.text.widgets.token_strip import cells_for

MASK = "[MASK]"  # BERT's and DistilBERT's mask token
DEFAULT_TOP_K = 5
FILLED = QColor(120, 90, 220, 90)


def fill_for(text: str, start: int, end: int, token: str) -> tuple[int, int, str]:
    """How to put candidate ``token`` in place of text[start:end]: (start, end, replacement). A
    WordPiece continuation ("##ing") joins the word before the mask (the spaces between go)."""
    if token.startswith("##") and len(token) > 2:
        while start > 0 and text[start - 1] in " \t":
            start -= 1
        return start, end, token[2:]
    return start, end, token


class Presenter(TextPresenter):
    task = "fill-mask"
    placeholder = f"Type a text with {MASK} where a word is missing, e.g. “Paris is the {MASK} of France.” " \
                  f"(Ctrl+M inserts {MASK})"

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(settings, parent)
        self.insert_button = QPushButton(f"Insert {MASK}")
        self.insert_button.setToolTip(f"Insert {MASK} at the cursor (Ctrl+M)")
        self.insert_button.setShortcut("Ctrl+M")
        self.insert_button.clicked.connect(lambda: self.insertText.emit(MASK))
        self.top_k_spin = QSpinBox()
        self.top_k_spin.setRange(1, 20)
        self.top_k_spin.setValue(setting_int(settings, self.key("top_k"), DEFAULT_TOP_K))
        self.top_k_spin.setToolTip(f"Candidates per {MASK}")
        self.top_k_spin.valueChanged.connect(self._on_top_k)
        self.toolbar_layout.addWidget(self.insert_button)
        self.toolbar_layout.addWidget(QLabel("Candidates"))
        self.toolbar_layout.addWidget(self.top_k_spin)
        self.toolbar.show()

        self.best_view = HighlightedText()
        self.best_view.setMaximumHeight(110)
        self.best_view.setToolTip("The text with every mask filled by its most likely candidate")
        self.groups = QWidget()
        self.groups_layout = QVBoxLayout(self.groups)
        self.groups_layout.setContentsMargins(0, 0, 0, 0)
        self.groups_layout.addStretch(1)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.groups)
        self.view_layout.addWidget(QLabel("Best guess"))
        self.view_layout.addWidget(self.best_view)
        self.view_layout.addWidget(scroll, 1)
        self.lists: list[ScoreList] = []  # one per [MASK]
        self.captions: list[QLabel] = []

    def _on_top_k(self, value: int) -> None:
        self.settings.setValue(self.key("top_k"), value)
        self.inputsChanged.emit()

    def save_settings(self) -> None:
        self.settings.setValue(self.key("top_k"), self.top_k_spin.value())

    def missing(self, text: str) -> str:
        if MASK not in text:
            return (f"Put {MASK} where a word should be predicted, e.g. “Paris is the {MASK} of France.” "
                    f"(Ctrl+M inserts one at the cursor).")
        return ""

    def options(self, internals: bool, attention: bool) -> FillMaskOptions:
        return FillMaskOptions(top_k=self.top_k_spin.value(), internals=internals, attention=internals and attention)

    # ------------------------------------------------------------------ results

    def _ensure_groups(self, n: int) -> None:
        while len(self.lists) < n:
            caption = QLabel()
            caption.setTextFormat(Qt.TextFormat.RichText)
            scores = ScoreList(clickable=True)
            i = len(self.lists)
            scores.rowClicked.connect(lambda row, i=i: self.fill(i, row))
            at = self.groups_layout.count() - 1  # before the stretch
            self.groups_layout.insertWidget(at, caption)
            self.groups_layout.insertWidget(at + 1, scores)
            self.captions.append(caption)
            self.lists.append(scores)
        for i, (caption, scores) in enumerate(zip(self.captions, self.lists)):
            caption.setVisible(i < n)
            scores.setVisible(i < n)

    def show_result(self) -> None:
        r: FillMaskResult = self.result
        self._ensure_groups(len(r))
        for i, (row, (start, end)) in enumerate(zip(r.masks, r.mask_spans)):
            left = self.text[max(0, start - 30):start].split("\n")[-1]
            right = self.text[end:end + 30].split("\n")[0]
            self.captions[i].setText(f"<b>{MASK} {i + 1}</b> of {len(r)}: …{html.escape(left)}<b>___</b>"
                                     f"{html.escape(right)}…  <i>(click a candidate to fill it in)</i>")
            self.lists[i].selected = -1
            self.lists[i].set_rows([Row(c.token_str, c.score, "", f"{100 * c.score:.2f}% · token id {c.token}\n"
                                        f"{c.sequence}") for c in row])
        self.best_view.set_content(*self._best_guess())

    def _best_guess(self) -> tuple[str, list[Span]]:
        """The text with every mask filled by its best candidate, the fills highlighted."""
        r: FillMaskResult = self.result
        out, spans, at = [], [], 0
        length = 0
        for i, (row, (start, end)) in enumerate(zip(r.masks, r.mask_spans)):
            if not row:
                continue
            a, b, fill = fill_for(self.text, start, end, row[0].token_str)
            piece = self.text[at:a]
            out.append(piece)
            length += len(piece)
            spans.append(Span(length, length + len(fill), FILLED, f"{MASK} {i + 1}: {row[0].token_str!r} "
                              f"{100 * row[0].score:.1f}%", bold=True))
            out.append(fill)
            length += len(fill)
            at = b
        out.append(self.text[at:])
        return "".join(out), spans

    def fill(self, mask: int, candidate: int) -> None:
        """Put candidate ``candidate`` of [MASK] ``mask`` into the text, in place of that mask."""
        r: FillMaskResult = self.result
        if r is None or not 0 <= mask < len(r) or not 0 <= candidate < len(r.masks[mask]):
            return
        start, end = r.mask_spans[mask]
        self.replaceText.emit(*fill_for(self.text, start, end, r.masks[mask][candidate].token_str))

    def clear(self) -> None:
        super().clear()
        self._ensure_groups(0)
        self.best_view.clear_content()

    def summary(self) -> str:
        r = self.result
        if r is None or not len(r) or not r.masks[0]:
            return ""
        c = r.masks[0][0]
        return f"{len(r)} {MASK}: “{c.token_str}” {100 * c.score:.1f}%" + ("…" if len(r) > 1 else "")

    def inside(self):
        r: FillMaskResult = self.result
        if r is None or r.internals is None:
            return [], 0, ""
        tokens = r.internals.tokens
        masks = {int(p): i for i, p in enumerate(r.internals.mask_positions)}
        lines = [(f"→ {r.masks[masks[i]][0].token_str}",) if i in masks and r.masks[masks[i]] else ()
                 for i in range(len(tokens))]
        colours = [FILLED if i in masks else None for i in range(len(tokens))]
        notes = [f"{MASK} {masks[i] + 1}: " + ", ".join(f"{c.token_str} {100 * c.score:.1f}%"
                                                        for c in r.masks[masks[i]])
                 if i in masks else "" for i in range(len(tokens))]
        description = (f"BERT's <b>masked-language-model head</b> — its pretraining task — scores every token of the "
                       f"vocabulary at each {MASK} position (its decoder shares the word embeddings); a softmax gives "
                       f"the probabilities. Only the {len(masks)} {MASK} row(s) go through the head.")
        cells = cells_for(tokens, (self.text,), lines, colours, notes)
        return [InsidePart("the text", tokens, tuple(cells), attention_note=NO_ATTENTION)], 0, description

    def result_text(self) -> str:
        r = self.result
        if r is None:
            return ""
        lines = []
        for i, row in enumerate(r.masks):
            lines.append(f"{MASK} {i + 1}:")
            lines += [f"  {c.token_str}\t{c.score:.4f}\t{c.sequence}" for c in row]
        return "\n".join(lines)
