"""Question answering in the Text tab: a question above the context; the best answer highlighted in
the context, the top-k answers in a list (click one to see it in the context). Inside the model: a
long context is read in overlapping windows ([CLS] question [SEP] part of the context [SEP]); for
each window the start and end logits the span head gives every token."""
from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import QObject, QSettings
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QLabel, QLineEdit, QScrollArea, QSpinBox

from engine.io.text import MAX_QUESTION_CHARS
from engine.types.text import QuestionAnsweringOptions, QuestionAnsweringResult
from gui.text.presenters.base import NO_ATTENTION, TextPresenter, setting_int
from gui.text.widgets.highlighted_text import HighlightedText, Span
from gui.text.widgets.inside_panel import InsidePart
from gui.text.widgets.score_list import Row, ScoreList
from gui.text.widgets.token_strip import ValueRow, cells_for

DEFAULT_TOP_K = 3
BEST = QColor(40, 170, 110, 120)
OTHER = QColor(230, 180, 40, 80)
START, END = QColor(40, 170, 110), QColor(230, 120, 40)


class Presenter(TextPresenter):
    task = "question-answering"
    text_label = "Context"
    placeholder = "Type or paste the text to find the answer in, or drop a .txt file."
    inputs_above = True

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(settings, parent)
        self.question_edit = QLineEdit(str(settings.value(self.key("question"), "") or ""))
        self.question_edit.setPlaceholderText("Ask a question about the context below, "
                                              "e.g. “Where does the river flow?”")
        self.question_edit.setClearButtonEnabled(True)
        self.question_edit.setMaxLength(MAX_QUESTION_CHARS)
        self.question_edit.textChanged.connect(self._on_question)
        self.inputs_layout.addWidget(QLabel("Question"))
        self.inputs_layout.addWidget(self.question_edit)
        self.inputs.show()

        self.top_k_spin = QSpinBox()
        self.top_k_spin.setRange(1, 20)
        self.top_k_spin.setValue(setting_int(settings, self.key("top_k"), DEFAULT_TOP_K))
        self.top_k_spin.setToolTip("How many answers, best first")
        self.top_k_spin.valueChanged.connect(self._on_top_k)
        self.toolbar_layout.addWidget(QLabel("Answers"))
        self.toolbar_layout.addWidget(self.top_k_spin)
        self.toolbar.show()

        self.text_view = HighlightedText()
        self.text_view.spanClicked.connect(self.select_answer)
        self.answers_label = QLabel()
        self.answers_label.setWordWrap(True)
        self.list = ScoreList(clickable=True)
        self.list.rowClicked.connect(self.select_answer)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.list)
        self.view_layout.addWidget(self.text_view, 3)
        self.view_layout.addWidget(self.answers_label)
        self.view_layout.addWidget(scroll, 2)
        self.selected = 0

    @property
    def question(self) -> str:
        return self.question_edit.text()

    def _on_question(self, text: str) -> None:
        self.settings.setValue(self.key("question"), text)
        self.inputsChanged.emit()

    def _on_top_k(self, value: int) -> None:
        self.settings.setValue(self.key("top_k"), value)
        self.inputsChanged.emit()

    def save_settings(self) -> None:
        self.settings.setValue(self.key("question"), self.question)
        self.settings.setValue(self.key("top_k"), self.top_k_spin.value())

    def missing(self, text: str) -> str:
        if not self.question.strip():
            return "Type a question above: its answer is looked for in the context."
        return ""

    def options(self, internals: bool, attention: bool) -> QuestionAnsweringOptions:
        return QuestionAnsweringOptions(question=self.question, top_k=self.top_k_spin.value(), internals=internals,
                                        attention=internals and attention)

    # ------------------------------------------------------------------ results

    def show_result(self) -> None:
        self.selected = 0
        r: QuestionAnsweringResult = self.result
        windows = f" The context was read in {r.num_windows} overlapping windows." if r.num_windows > 1 else ""
        self.answers_label.setText(("Answers, best first (click one to see it in the context)." if r.answers else
                                    "No answer found: no span of the context fits.") + windows)
        self.list.set_rows([Row(a.answer, a.score, "", f"{100 * a.score:.2f}% · characters {a.start}–{a.end}")
                            for a in r.answers])
        self.list.selected = 0 if r.answers else -1
        self._highlight()

    def _highlight(self) -> None:
        r: QuestionAnsweringResult = self.result
        order = [i for i in range(len(r.answers)) if i != self.selected] + \
                ([self.selected] if 0 <= self.selected < len(r.answers) else [])
        spans = [Span(r.answers[i].start, r.answers[i].end, BEST if i == self.selected else OTHER,
                      f"answer {i + 1}: {100 * r.answers[i].score:.2f}%", bold=i == self.selected,
                      underline=i != self.selected, key=i)
                 for i in order]  # the selected one last: drawn over the others
        self.text_view.set_content(self.text, spans)

    def select_answer(self, i: int) -> None:
        r = self.result
        if r is None or not 0 <= i < len(r.answers):
            return
        self.selected = i
        self.list.selected = i
        self.list.update()
        self._highlight()
        self.text_view.reveal(r.answers[i].start, r.answers[i].end)

    def clear(self) -> None:
        super().clear()
        self.text_view.clear_content()
        self.list.clear()
        self.answers_label.setText("")

    def summary(self) -> str:
        r = self.result
        if r is None:
            return ""
        if not r.answers:
            return "no answer found"
        a = r.answers[0]
        short = a.answer if len(a.answer) <= 40 else a.answer[:39] + "…"
        return f"“{short}” {100 * a.score:.1f}%"

    def inside(self):
        r: QuestionAnsweringResult = self.result
        if r is None or r.internals is None:
            return [], 0, ""
        windows = r.internals.windows
        best = r.internals.best_window
        answer = r.answers[0] if r.answers else None
        parts = []
        for w, win in enumerate(windows):
            tokens = win.tokens
            seq = tokens.sequence_ids
            colours = None
            if answer is not None and w == best:
                inside = (seq == 1) & (tokens.offsets[:, 0] < answer.end) & (tokens.offsets[:, 1] > answer.start)
                colours = [QColor(BEST) if bool(x) else None for x in inside]
            s, e = _argmax(win.start_logits, win.answerable), _argmax(win.end_logits, win.answerable)
            note = ""
            if s >= 0 and e >= 0:
                note = (f"Highest start logit: <b>{html.escape(tokens.tokens[s])}</b> (token {s}, "
                        f"{float(win.start_logits[s]):.2f}); highest end logit: <b>{html.escape(tokens.tokens[e])}</b> "
                        f"(token {e}, {float(win.end_logits[e]):.2f}).")
            a, b = win.context_span
            name = f"Window {w + 1} of {len(windows)} · characters {a}–{b}" + (" · best answer" if w == best else "")
            why = NO_ATTENTION if w == best else f"Attention is kept for the best answer's window (window {best + 1})."
            parts.append(InsidePart(
                name, tokens, tuple(cells_for(tokens, (r.question, self.text), colours=colours)),
                (ValueRow("start logit", win.start_logits, START, win.answerable),
                 ValueRow("end logit", win.end_logits, END, win.answerable)), note, why))
        description = (f"Each window is <b>[CLS] question [SEP] context [SEP]</b> (segment 0 the question, segment 1 "
                       "the context); the span head gives every context token a <span style='color:#28aa6e'>"
                       "<b>start</b></span> and an <span style='color:#e67828'><b>end</b></span> logit (bars). The "
                       "answer is the span with the highest start × end probability, at most 15 tokens long.")
        return parts, max(best, 0), description

    def result_text(self) -> str:
        r = self.result
        if r is None:
            return ""
        lines = [f"Q: {r.question}"]
        lines += [f"{i + 1}. {a.answer}\t{a.score:.4f}\t{a.start}-{a.end}" for i, a in enumerate(r.answers)]
        return "\n".join(lines if r.answers else lines + ["(no answer found)"])


def _argmax(values: np.ndarray, mask: np.ndarray) -> int:
    if not mask.any():
        return -1
    v = np.where(mask, values, -np.inf)
    return int(np.argmax(v))

