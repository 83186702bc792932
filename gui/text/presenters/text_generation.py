"""Text generation (GPT-2) in the Text tab: the prompt in the editor, Generate (Ctrl+Enter) writes its
continuation token by token into the view, Stop (Esc) ends it within one token; tokens/s shown.
The sampling controls sit below the editor (remembered): max new tokens, beams, repetition
penalty, and with Sample on, temperature, top-k, top-p and a seed. Hover a written token for its
probability and the top-10 alternatives at that step; inside the model, the alternatives of the
token clicked and, for beam search, the beam tree."""
from __future__ import annotations

from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QCheckBox, QDoubleSpinBox, QLabel, QSpinBox

from engine.types.text import MAX_BEAMS, MAX_NEW_TOKENS, TextGenerationOptions, TextGenerationResult
from gui.core.settings import as_bool
from gui.text.presenters.base import setting_int
from gui.text.presenters.decoding import DecodingPresenter, setting_float

DEFAULTS = TextGenerationOptions()
SEED_RANDOM = -1

WHY = {"eos": "the model ended the text", "length": "max new tokens reached"}


def _double(low: float, high: float, step: float, value: float, tip: str) -> QDoubleSpinBox:
    box = QDoubleSpinBox()
    box.setRange(low, high)
    box.setSingleStep(step)
    box.setDecimals(2)
    box.setValue(value)
    box.setToolTip(tip)
    return box


class Presenter(DecodingPresenter):
    task = "text-generation"
    text_label = "Prompt"
    placeholder = "Type the beginning of a text, e.g. “Once upon a time,” — then Generate (Ctrl+Enter)."
    run_label = "Generate"
    run_tip = "Continue the prompt (Ctrl+Enter)"
    ready_hint = "Press Generate (Ctrl+Enter) to continue the prompt."
    empty_hint = ("Type a prompt above (or paste one, or drop a .txt file on the window), then press Generate "
                  "(Ctrl+Enter).")
    empty_problem = ("The prompt is empty: type one above (or paste it, or drop a .txt file on the window), then "
                     "press Generate (Ctrl+Enter).")
    description = ("GPT-2 is a <b>decoder</b>: masked self-attention lets each position see only the tokens before "
                   "it. After the prompt is read once (its keys and values kept in the <b>KV cache</b>), each step "
                   "runs one new token through the blocks; the LM head (the token embeddings, tied) scores every "
                   "token of the vocabulary for the next position. <b>Greedy</b> takes the best, <b>sampling</b> "
                   "draws from the scores reshaped by temperature, top-k and top-p, <b>beam search</b> keeps the "
                   "K best sequences.")

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(settings, parent)
        s = settings
        self.max_new_spin = QSpinBox()
        self.max_new_spin.setRange(1, MAX_NEW_TOKENS)
        self.max_new_spin.setValue(setting_int(s, self.key("max_new_tokens"), DEFAULTS.max_new_tokens))
        self.max_new_spin.setToolTip("Stop after this many new tokens (the model may end the text before)")
        self.beams_spin = QSpinBox()
        self.beams_spin.setRange(1, MAX_BEAMS)
        self.beams_spin.setValue(setting_int(s, self.key("num_beams"), DEFAULTS.num_beams))
        self.beams_spin.setToolTip("1: one sequence (greedy or sampled); more: beam search keeps that many "
                                   "best sequences (the beam tree, inside the model)")
        self.repetition_spin = _double(0.5, 5.0, 0.05, setting_float(s, self.key("repetition_penalty"),
                                                                     DEFAULTS.repetition_penalty),
                                       "Above 1 discourages tokens already in the text (1: off)")
        self.sample_check = QCheckBox("Sample")
        self.sample_check.setChecked(as_bool(s.value(self.key("do_sample"), DEFAULTS.do_sample)))
        self.sample_check.setToolTip("Draw each token from the model's distribution instead of taking the most "
                                     "likely one")
        self.temperature_spin = _double(0.05, 5.0, 0.05, setting_float(s, self.key("temperature"),
                                                                       DEFAULTS.temperature),
                                        "Sampling: below 1 sharper (safer), above 1 flatter (more surprising)")
        self.top_k_spin = QSpinBox()
        self.top_k_spin.setRange(0, 1000)
        self.top_k_spin.setSpecialValueText("all")
        self.top_k_spin.setValue(setting_int(s, self.key("top_k"), DEFAULTS.top_k))
        self.top_k_spin.setToolTip("Sampling: only the k most likely tokens (all: no limit)")
        self.top_p_spin = _double(0.05, 1.0, 0.05, setting_float(s, self.key("top_p"), DEFAULTS.top_p),
                                  "Sampling: only the most likely tokens whose probabilities add up to p (1: all)")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(SEED_RANDOM, 2 ** 31 - 1)
        self.seed_spin.setSpecialValueText("random")
        self.seed_spin.setValue(setting_int(s, self.key("seed"), SEED_RANDOM))
        self.seed_spin.setToolTip("Sampling: the same seed gives the same text (random: a new draw each time)")

        row = self.first_row
        for label, widget in (("Max new tokens", self.max_new_spin), ("Beams", self.beams_spin),
                              ("Repetition penalty", self.repetition_spin)):
            row.addWidget(QLabel(label))
            row.addWidget(widget)
        row.addStretch(1)
        row = self.second_row
        row.addWidget(self.sample_check)
        self.sampling_labels = []
        for label, widget in (("Temperature", self.temperature_spin), ("Top-k", self.top_k_spin),
                              ("Top-p", self.top_p_spin), ("Seed", self.seed_spin)):
            caption = QLabel(label)
            self.sampling_labels.append(caption)
            row.addWidget(caption)
            row.addWidget(widget)
        row.addStretch(1)
        self.inputs.show()

        for spin in (self.max_new_spin, self.beams_spin, self.top_k_spin, self.seed_spin):
            spin.valueChanged.connect(self._remember)
        for spin in (self.repetition_spin, self.temperature_spin, self.top_p_spin):
            spin.valueChanged.connect(self._remember)
        self.sample_check.toggled.connect(self._on_sample)
        self._on_sample(self.sample_check.isChecked())

    def _on_sample(self, on: bool) -> None:
        for w in (self.temperature_spin, self.top_k_spin, self.top_p_spin, self.seed_spin, *self.sampling_labels):
            w.setEnabled(on)
        self._remember()

    def _remember(self, *_args) -> None:
        s = self.settings
        s.setValue(self.key("max_new_tokens"), self.max_new_spin.value())
        s.setValue(self.key("num_beams"), self.beams_spin.value())
        s.setValue(self.key("repetition_penalty"), self.repetition_spin.value())
        s.setValue(self.key("do_sample"), self.sample_check.isChecked())
        s.setValue(self.key("temperature"), self.temperature_spin.value())
        s.setValue(self.key("top_k"), self.top_k_spin.value())
        s.setValue(self.key("top_p"), self.top_p_spin.value())
        s.setValue(self.key("seed"), self.seed_spin.value())

    def save_settings(self) -> None:
        self._remember()

    def options(self, internals: bool, attention: bool) -> TextGenerationOptions:
        """The options from the controls; the internals (every step's candidates, the beams) always:
        hovering a token needs them."""
        sample = self.sample_check.isChecked()
        seed = self.seed_spin.value()
        self.asked = TextGenerationOptions(
            max_new_tokens=self.max_new_spin.value(), do_sample=sample, num_beams=self.beams_spin.value(),
            temperature=self.temperature_spin.value() if sample else DEFAULTS.temperature,
            top_k=self.top_k_spin.value() if sample else DEFAULTS.top_k,
            top_p=self.top_p_spin.value() if sample else DEFAULTS.top_p,
            repetition_penalty=self.repetition_spin.value(),
            seed=seed if sample and seed != SEED_RANDOM else None, internals=True)
        return self.asked

    # ------------------------------------------------------------------ results

    def prompt_shown(self, r: TextGenerationResult) -> str:
        return r.prompt

    def output_text(self, r: TextGenerationResult) -> str:
        return r.text

    def new_ids(self, r: TextGenerationResult) -> list[int]:
        return [int(i) for i in r.generated_ids]

    def progress_text(self, r: TextGenerationResult, fraction: float) -> str:
        total = self.asked.max_new_tokens if self.asked is not None else None
        of = f" / {total}" if total else ""
        beams = f" · beam search, {self.asked.num_beams} beams" if self.asked is not None and \
            self.asked.num_beams > 1 else ""
        return f"Generating… {len(r)}{of} tokens · {r.tokens_per_s:.1f} tokens/s{beams} · Esc stops"

    def final_text(self, r: TextGenerationResult) -> str:
        cut = " · the prompt's first tokens were cut" if r.prompt_truncated else ""
        score = f" · score {r.score:.3f}" if r.score is not None else ""
        return (f"{len(r)} new tokens · {r.tokens_per_s:.1f} tokens/s · {WHY.get(r.stopped_by, r.stopped_by)}"
                f"{score}{cut}")

    def stopped_detail(self, r: TextGenerationResult) -> str:
        return f" {r.tokens_per_s:.1f} tokens/s."

    def summary(self) -> str:
        r = self.result
        if r is None:
            return ""
        state = WHY.get(r.stopped_by, "stopped" if not self.running else "generating")
        return f"{len(r)} tokens · {r.tokens_per_s:.1f} tokens/s · {state}"

    def result_text(self) -> str:
        """The prompt and its continuation, as the text-generation pipeline's generated_text."""
        r = self.result
        return r.generated_text if r is not None else ""
