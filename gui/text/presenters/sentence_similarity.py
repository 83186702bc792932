"""Sentence similarity in the Text tab: the sentence in the editor against the sentences below it
(one per line), ranked by the cosine of their sentence embeddings. Inside the model: the tokens of
each sentence; the encoder's final states, pooled as the checkpoint was trained to (mean pooling
for sentence-transformers), are the embedding."""
from __future__ import annotations

import html

from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QLabel, QPlainTextEdit, QScrollArea

from engine.io.text import MAX_CANDIDATES
from engine.types.text import SentenceSimilarityOptions, SentenceSimilarityResult
from gui.text.presenters.base import TextPresenter
from gui.text.widgets.inside_panel import InsidePart
from gui.text.widgets.score_list import Row, ScoreList
from gui.text.widgets.token_strip import cells_for


class Presenter(TextPresenter):
    task = "sentence-similarity"
    text_label = "Sentence"
    placeholder = "Type a sentence, e.g. “A man is eating food.”, and the sentences to compare it with below."

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(settings, parent)
        self.candidates_edit = QPlainTextEdit(str(settings.value(self.key("candidates"), "") or ""))
        self.candidates_edit.setPlaceholderText("One sentence per line, e.g.\nA man eats a meal.\nIt is raining.")
        self.candidates_edit.setTabChangesFocus(True)
        self.candidates_edit.setMinimumHeight(70)
        self.candidates_edit.textChanged.connect(self._on_candidates)
        self.inputs_layout.addWidget(QLabel("Compare with — one sentence per line"))
        self.inputs_layout.addWidget(self.candidates_edit)
        self.inputs.show()

        self.caption = QLabel()
        self.caption.setWordWrap(True)
        self.list = ScoreList()
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.list)
        self.view_layout.addWidget(self.caption)
        self.view_layout.addWidget(scroll, 1)

    def candidates(self) -> tuple[str, ...]:
        return tuple(line.strip() for line in self.candidates_edit.toPlainText().splitlines() if line.strip())

    def _on_candidates(self) -> None:
        self.settings.setValue(self.key("candidates"), self.candidates_edit.toPlainText())
        self.inputsChanged.emit()

    def save_settings(self) -> None:
        self.settings.setValue(self.key("candidates"), self.candidates_edit.toPlainText())

    def missing(self, text: str) -> str:
        n = len(self.candidates())
        if n == 0:
            return "Type the sentences to compare with below, one per line."
        if n > MAX_CANDIDATES:
            return f"{n} sentences to compare with; at most {MAX_CANDIDATES}."
        return ""

    def options(self, internals: bool, attention: bool) -> SentenceSimilarityOptions:
        return SentenceSimilarityOptions(candidates=self.candidates(), internals=internals)

    # ------------------------------------------------------------------ results

    def show_result(self) -> None:
        r: SentenceSimilarityResult = self.result
        cut = sum(r.truncated)
        self.caption.setText("Most similar first: the cosine of the sentence embeddings (1 = same meaning, "
                             "around 0 = unrelated)." + (f" {cut} sentence(s) were cut at the model's max length."
                                                        if cut else ""))
        self.list.set_rows([Row(r.candidates[i], float(r.scores[i]), f"{float(r.scores[i]):+.3f}",
                                f"cosine similarity {float(r.scores[i]):+.4f}\n{r.candidates[i]}")
                            for i in r.ranking])

    def clear(self) -> None:
        super().clear()
        self.list.clear()
        self.caption.setText("")

    def summary(self) -> str:
        r = self.result
        if r is None or not len(r):
            return ""
        best = int(r.ranking[0])
        s = r.candidates[best]
        return f"most similar {float(r.scores[best]):+.3f}: “{s if len(s) <= 36 else s[:35] + '…'}”"

    def inside(self):
        r: SentenceSimilarityResult = self.result
        if r is None or r.internals is None:
            return [], 0, ""
        sentences = (r.sentence, *r.candidates)
        parts = []
        for i, (tokens, sentence) in enumerate(zip(r.internals.tokens, sentences)):
            name = "the sentence" if i == 0 else f"sentence {i}: {sentence[:40]}" + ("…" if len(sentence) > 40 else "")
            cut = " It was cut at the model's max length." if i < len(r.truncated) and r.truncated[i] else ""
            parts.append(InsidePart(name, tokens, tuple(cells_for(tokens, (sentence,))),
                                    note=f"{len(tokens)} tokens.{cut}",
                                    attention_note="Sentence similarity keeps no attention maps: the embedding is "
                                                   "the pooled final states of all tokens."))
        dim = r.embeddings.shape[1]
        description = (f"Each sentence is encoded on its own; its tokens' final states are pooled into one "
                       f"<b>{dim}-dimensional embedding</b> (pooling: <b>{html.escape(r.pooling)}</b>) and the "
                       "sentences compared by the cosine of their embeddings.")
        return parts, 0, description

    def result_text(self) -> str:
        r = self.result
        if r is None:
            return ""
        return "\n".join([f"Sentence: {r.sentence}"] + [f"{float(r.scores[i]):+.4f}\t{r.candidates[i]}"
                                                        for i in r.ranking])
