"""What the Text tab's decoding tasks share (text generation, summarization, translation): they run
on an explicit action (Generate / Summarize / Translate, Ctrl+Enter), not as you type, as a long
engine job whose partial results stream into the view token by token; Stop (Esc) ends it within
one token and keeps what was written. Not a task itself (no ``Presenter`` here).

The view: a line saying how far it got (tokens, tokens/s, beam step / max length), a thin progress
bar, and the output as a :class:`TokenStream` — every token tinted by its probability, its
alternatives on hover. "Inside the model" is the presenter's own panel (``inside_view``): the
alternatives of the token clicked, the beam tree (beam search) and the decoder's cross-attention
onto the source (encoder-decoders).
"""
from __future__ import annotations

import html
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, QSettings, Qt, Signal
from PySide6.QtWidgets import (QHBoxLayout, QLabel, QProgressBar, QPushButton, QScrollArea, QTabWidget, QVBoxLayout,
                               QWidget)

from gui.text.presenters.base import TextPresenter
from gui.text.widgets.beam_tree import BeamTree
from gui.text.widgets.cross_attention import CrossAttentionView
from gui.text.widgets.score_list import Row, ScoreList
from gui.text.widgets.token_stream import StreamToken, TokenStream, token_spans

ERROR_STYLE = "color: #c03b3b;"


def setting_float(settings: QSettings, key: str, default: float) -> float:
    try:
        value = float(settings.value(key, default))
    except (TypeError, ValueError):
        return default
    return value if value == value else default


def shown_piece(text: str) -> str:
    """A token's text for a label: spaces and line breaks made visible."""
    return text.replace("\n", "⏎").replace("\t", "⇥") if text.strip() else repr(text)[1:-1] or "∅"


def step_tooltip(index: int, count: int, token_id: int, piece: str | None, step: Any, note: str = "") -> str:
    """Token ``index`` (0-based) of ``count``: its probability and the alternatives at its step."""
    name = repr(piece) if piece is not None else f"#{token_id}"
    if step is None:
        head = f"token {index + 1} of {count}: {name} (id {token_id})"
        return head + ("\n" + note if note else "\nits probabilities were not recorded")
    lines = [f"token {index + 1} of {count}: {name} (id {token_id}) — {100 * float(step.prob):.2f}%"]
    if note:
        lines.append(note)
    lines.append(f"the {len(step.top_ids)} most likely tokens at this step:")
    for tid, text, prob in zip(step.top_ids, step.top_texts, step.top_probs):
        mark = "▶" if int(tid) == int(step.token_id) else "  "
        lines.append(f"{mark} {100 * float(prob):6.2f}%  {text!r}  · id {int(tid)}")
    if int(step.token_id) not in {int(t) for t in step.top_ids}:
        lines.append(f"(the token written was not among them: {100 * float(step.prob):.2f}%)")
    return "\n".join(lines)


class DecodingPresenter(TextPresenter):
    runRequested = Signal()  # the run button (the tab sends the request)
    stopRequested = Signal()  # the Stop button

    explicit = True  # runs on an action, not as you type
    long = True  # a long engine job: partial results, Stop
    run_label = "Generate"
    run_tip = "Run the model on the text (Ctrl+Enter)"
    has_source = False  # an encoder-decoder: cross-attention onto the source
    #: the hint in place of a result: with a text / without one
    ready_hint = "Press Generate (Ctrl+Enter)."
    empty_hint = "Type or paste a text above (or drop a .txt file on the window), then press Generate (Ctrl+Enter)."
    #: said when the run button is pressed with no text
    empty_problem = "There is no text: type or paste one above (or drop a .txt file on the window)."
    description = ""  # "inside the model": what the model does (rich text)

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(settings, parent)
        self.running = False
        self.asked: Any = None  # the options of the request running (or last sent)
        self.selected_token = -1  # the token whose alternatives "inside the model" lists (-1: the last)
        self._names: dict[int, str] = {}  # token id -> its text, from every step's candidates

        # inputs, below the editor: the run and stop buttons, then the task's own options
        self.run_button = QPushButton(self.run_label)
        self.run_button.setToolTip(self.run_tip)
        self.run_button.setDefault(True)
        self.stop_button = QPushButton("Stop")
        self.stop_button.setToolTip("Stop now (Esc): what was written so far stays")
        self.stop_button.setEnabled(False)
        self.run_button.clicked.connect(self.runRequested.emit)
        self.stop_button.clicked.connect(self.stopRequested.emit)
        self.first_row = QHBoxLayout()
        self.first_row.setContentsMargins(0, 0, 0, 0)
        self.first_row.addWidget(self.run_button)
        self.first_row.addWidget(self.stop_button)
        self.first_row.addSpacing(12)
        self.second_row = QHBoxLayout()
        self.second_row.setContentsMargins(0, 0, 0, 0)
        self.inputs_layout.addLayout(self.first_row)
        self.inputs_layout.addLayout(self.second_row)

        # the view
        self.state_label = QLabel("")
        self.state_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setTextVisible(False)
        self.progress.setMaximumHeight(6)
        self.progress.setVisible(False)
        self.stream = TokenStream()
        self.stream.setToolTip("")
        self.stream.spanClicked.connect(self.select_token)
        self.view_layout.addWidget(self.state_label)
        self.view_layout.addWidget(self.progress)
        self.view_layout.addWidget(self.stream, 1)

        # inside the model: the presenter's own panel
        self.inside_view = QWidget()
        self.inside_description = QLabel(self.description)
        self.inside_description.setWordWrap(True)
        self.inside_description.setTextFormat(Qt.TextFormat.RichText)
        self.inside_tabs = QTabWidget()
        self.inside_tabs.setDocumentMode(True)
        choices = QWidget()
        lay = QVBoxLayout(choices)
        lay.setContentsMargins(0, 4, 0, 0)
        self.choice_caption = QLabel("")
        self.choice_caption.setWordWrap(True)
        self.choice_caption.setTextFormat(Qt.TextFormat.RichText)
        self.choices = ScoreList()
        self.choices.placeholder = "Click a written token to see what else the model considered at that step."
        lay.addWidget(self.choice_caption)
        lay.addWidget(self.choices)
        lay.addStretch(1)
        self.inside_tabs.addTab(choices, "Token choices")
        beams = QWidget()
        lay = QVBoxLayout(beams)
        lay.setContentsMargins(0, 4, 0, 0)
        self.beam_caption = QLabel("")
        self.beam_caption.setWordWrap(True)
        self.beam_caption.setTextFormat(Qt.TextFormat.RichText)
        self.beam_tree = BeamTree()
        self.beam_tree.placeholder = "Beam search (Beams above 1) shows its beams here, step by step."
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.beam_tree)
        self.beam_scroll = scroll
        lay.addWidget(self.beam_caption)
        lay.addWidget(scroll, 1)
        self.inside_tabs.addTab(beams, "Beam tree")
        self.cross = CrossAttentionView()
        self.cross.matrix.placeholder = "The decoder's cross-attention comes with the finished result."
        self.cross.layerChanged.connect(lambda layer: self.settings.setValue(self.key("cross_layer"), layer))
        try:
            self.cross.set_layer(int(self.settings.value(self.key("cross_layer"), -1)))
        except (TypeError, ValueError):
            pass
        if self.has_source:
            self.inside_tabs.addTab(self.cross, "Cross-attention")
        layout = QVBoxLayout(self.inside_view)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(QLabel("<b>Inside the model</b>"))
        layout.addWidget(self.inside_description)
        layout.addWidget(self.inside_tabs, 1)

    # ------------------------------------------------------------------ what subclasses say

    def hint(self, has_text: bool) -> str:
        return self.ready_hint if has_text else self.empty_hint

    def prompt_shown(self, r: Any) -> str:
        """The text shown before the output, dimmed (generation: the prompt)."""
        return ""

    def output_text(self, r: Any) -> str:
        raise NotImplementedError

    def new_ids(self, r: Any) -> list[int]:
        """The output's token ids, one per decoding step (no decoder start)."""
        raise NotImplementedError

    def progress_text(self, r: Any, fraction: float) -> str:
        return ""

    def final_text(self, r: Any) -> str:
        return ""

    # ------------------------------------------------------------------ running

    def set_running(self, running: bool) -> None:
        self.running = running
        self.stop_button.setEnabled(running)
        self.progress.setVisible(running)
        if running:
            self.progress.setValue(0)
            self.state_label.setStyleSheet("")
            self.state_label.setText("Waiting for the model…")

    def set_progress(self, fraction: float, partial: Any, text: str) -> None:
        """A partial result (or None) and how far the job got (0..1, or negative: unknown)."""
        if fraction >= 0:
            self.progress.setValue(int(1000 * min(1.0, fraction)))
        if partial is None:
            return
        self.result, self.text = partial, text
        self.show_result()
        self.state_label.setStyleSheet("")
        self.state_label.setText(self.progress_text(partial, fraction))

    def set_result(self, result: Any, text: str) -> None:
        super().set_result(result, text)
        self.state_label.setStyleSheet("")
        self.state_label.setText(self.final_text(result))

    def stopped(self) -> None:
        """The job was stopped (Stop, or the task switched): what was written stays."""
        r = self.result
        if r is not None and not getattr(r, "done", True):
            n = len(self.new_ids(r))
            self.state_label.setText(f"Stopped after {n} token{'s' if n != 1 else ''}." + self.stopped_detail(r))
        elif r is None:
            self.state_label.setText("Stopped before the first token.")

    def stopped_detail(self, r: Any) -> str:
        return ""

    def show_problem(self, message: str) -> None:
        """A request failed or was refused: said above what is shown (which stays)."""
        self.state_label.setStyleSheet(ERROR_STYLE)
        self.state_label.setText(message)

    def clear(self) -> None:
        super().clear()
        self.selected_token = -1
        self.stream.set_stream("", "", ())
        self.state_label.setText("")
        self.choices.clear()
        self.choice_caption.setText("")
        self.beam_tree.clear()
        self.beam_caption.setText("")
        self.cross.set_attention(None)

    # ------------------------------------------------------------------ showing

    def steps(self, r: Any = None) -> tuple:
        r = self.result if r is None else r
        internals = getattr(r, "internals", None)
        return tuple(getattr(internals, "steps", ()) or ())

    def token_label(self, token: int) -> str:
        return self._names.get(int(token), f"#{int(token)}")

    def _learn_names(self, steps) -> None:
        for s in steps:
            self._names.setdefault(int(s.token_id), s.token_text)
            for tid, text in zip(s.top_ids, s.top_texts):
                self._names.setdefault(int(tid), text)

    def token_steps(self, r: Any = None) -> list:
        """Per output token, its step (probability and candidates) when it is the token that step
        wrote, else None (beam search: a beam that was not the leader then)."""
        r = self.result if r is None else r
        steps = self.steps(r)
        ids = self.new_ids(r)
        return [steps[i] if i < len(steps) and int(steps[i].token_id) == int(t) else None for i, t in enumerate(ids)]

    def show_result(self) -> None:
        r = self.result
        steps = self.steps(r)
        self._learn_names(steps)
        ids = self.new_ids(r)
        per_token = self.token_steps(r)
        pieces = [s.token_text if s is not None else self._names.get(int(t)) for t, s in zip(ids, per_token)]
        prompt, output = self.prompt_shown(r), self.output_text(r)
        tokens = []
        if any(p for p in pieces):
            beam = self.is_beam_search(r)
            for i, ((a, b), t, s, piece) in enumerate(zip(token_spans(output, pieces), ids, per_token, pieces)):
                note = ("beam search: the leading live beam's choice at this step" if beam and s is not None else
                        "beam search: this token's beam was not the leader when it was written, so its "
                        "alternatives were not recorded" if beam else "")
                tokens.append(StreamToken(len(prompt) + a, len(prompt) + b, None if s is None else float(s.prob),
                                          step_tooltip(i, len(ids), int(t), piece, s, note)))
        self.stream.set_stream(prompt, output, tokens)
        self._show_inside()

    def is_beam_search(self, r: Any = None) -> bool:
        return any(len(getattr(s, "beams", ()) or ()) > 1 for s in self.steps(r))

    def select_token(self, index: int) -> None:
        """Show the alternatives of output token ``index`` inside the model (a click on it)."""
        self.selected_token = int(index)
        self._show_choices()
        self.cross.matrix.select(index)

    def _show_inside(self) -> None:
        self._show_choices()
        self._show_beams()
        self._show_cross()

    def _show_choices(self) -> None:
        r = self.result
        ids = self.new_ids(r) if r is not None else []
        per_token = self.token_steps(r) if r is not None else []
        if not ids:
            self.choices.clear()
            self.choice_caption.setText("")
            return
        i = self.selected_token if 0 <= self.selected_token < len(ids) else len(ids) - 1
        s = per_token[i]
        name = html.escape(repr(s.token_text if s is not None else self.token_label(ids[i])))
        if s is None:
            self.choice_caption.setText(f"<b>Token {i + 1}</b> of {len(ids)}: {name} — its probabilities were not "
                                        "recorded (beam search: its beam was not the leader at that step).")
            self.choices.clear()
            return
        self.choice_caption.setText(
            f"<b>Token {i + 1}</b> of {len(ids)}: {name} — {100 * float(s.prob):.2f}%. The model's most likely "
            "tokens at that step (softmax of its logits, before penalties, temperature, top-k or top-p):")
        self.choices.set_rows([Row(shown_piece(text) + ("" if text.strip() else f"   (id {int(tid)})"), float(p), "",
                                   f"{text!r} · id {int(tid)} · {100 * float(p):.3f}%")
                               for tid, text, p in zip(s.top_ids, s.top_texts, s.top_probs)])
        chosen = [int(t) for t in s.top_ids]
        self.choices.selected = chosen.index(int(s.token_id)) if int(s.token_id) in chosen else -1
        self.choices.update()

    def _show_beams(self) -> None:
        r = self.result
        steps = self.steps(r) if r is not None else ()
        beams = [tuple(getattr(s, "beams", ()) or ()) for s in steps]
        if not any(len(b) > 1 for b in beams):
            self.beam_tree.clear()
            self.beam_caption.setText("")
            self.inside_tabs.setTabEnabled(1, False)
            return
        self.inside_tabs.setTabEnabled(1, True)
        final = self.new_ids(r) if getattr(r, "done", True) else None
        self.beam_tree.set_beams(beams, final, self.token_label)
        counts = self.beam_tree.counts()
        self.beam_caption.setText(
            f"{max(len(b) for b in beams)} beams over {len(beams)} steps: at every step each beam is extended by "
            "every token and only the best-scoring sequences (the sum of their log-probabilities) stay live. "
            f"<span style='color:#28aa6e'>■</span> the chosen output ({counts['chosen']}), "
            f"<span style='color:#468ce6'>■</span> live at the last step ({counts['live']}), "
            f"<span style='color:#969696'>■</span> pruned ({counts['pruned']}).")

    def _show_cross(self) -> None:
        if not self.has_source:
            return
        r = self.result
        internals = getattr(r, "internals", None) if r is not None else None
        maps = getattr(internals, "cross_attention", None)
        if maps is None:
            self.cross.set_attention(None)
            return
        maps = np.asarray(maps)
        n = maps.shape[1] if maps.ndim == 3 else 0
        ids = self.new_ids(r)
        rows = [shown_piece(self.token_label(t)) for t in ids]
        if n == len(ids) + 1:
            rows = ["<start>"] + rows
        rows = (rows + [f"#{i}" for i in range(len(rows), n)])[:n]
        source = [shown_piece(t) for t in (getattr(internals, "prompt_tokens", ()) or ())]
        s = maps.shape[2] if maps.ndim == 3 else 0
        source = (source + ["?"] * s)[:s]
        self.cross.set_attention(maps, rows, source,
                                 f"Row: an output token; column: a source token. {n} × {s}, heads averaged.")
        self.cross.matrix.select(self.selected_token)

    # ------------------------------------------------------------------ copy

    def result_text(self) -> str:
        return self.output_text(self.result) if self.result is not None else ""
