"""Summarization (BART; T5 with "summarize: ") and translation (T5) in the Text tab: the source in the
editor, Summarize / Translate (Ctrl+Enter) runs the encoder once and the decoder one token per step
with beam search, the best live beam shown as it grows, with the step reached out of the most it
may take; Stop (Esc) keeps it. The checkpoint's beam settings unless overridden (remembered);
translation asks for a target language from the task's choices. Inside the model: each output
token's alternatives, the beam tree, and the decoder's cross-attention from every output token
onto the source tokens."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QSettings
from PySide6.QtWidgets import QComboBox, QLabel, QSpinBox

import engine
from engine.types.text import MAX_BEAMS, MAX_NEW_TOKENS, SummarizationOptions
from gui.text.presenters.base import setting_int
from gui.text.presenters.decoding import DecodingPresenter

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"  # the special value of the spins: the checkpoint's own setting
WHY = {"eos": "the model ended the text", "length": "max length reached"}
#: targets when the translation task declares none (t5-small's task_specific_params)
FALLBACK_TARGETS = ("de", "fr", "ro")
LANGUAGES = {"de": "German", "fr": "French", "ro": "Romanian", "en": "English", "es": "Spanish", "it": "Italian",
             "nl": "Dutch", "pt": "Portuguese", "ru": "Russian", "zh": "Chinese", "ja": "Japanese"}

ENCODER_DECODER = ("An <b>encoder-decoder</b>: the encoder reads the whole source once (self-attention in both "
                   "directions); the decoder then writes one token per step, with masked self-attention over what "
                   "it wrote (kept in its KV cache) and <b>cross-attention</b> onto the encoder's states of the "
                   "source (their keys and values computed once). <b>Beam search</b> keeps the K best sequences; "
                   "finished ones are scored by their log-probability over length<sup>length penalty</sup>.")


def task_class(name: str):
    return next((c for c in engine.tasks_for_domain("text") if c.name == name), None)


def checkpoint_folder(ref: str | None) -> Path | None:
    """The local folder of model ``ref`` (a folder, or a hub id already downloaded); None when it
    is not on this machine (nothing is downloaded here)."""
    if not ref:
        return None
    path = Path(os.path.expanduser(ref))
    if path.is_dir():
        return path
    try:
        from engine import hub
        return hub.resolve(ref, offline=True) if hub.is_cached(ref) else None
    except Exception:  # noqa: BLE001 - not on this machine, or not a model: the fallback choices
        return None


def target_choices(cls, folder: Path | None = None) -> list[tuple[str, str]]:
    """(code, name) of the target languages the translation task offers: the checkpoint's own when
    its folder is known (the task module's torch-free ``targets_of(folder)``), else what the task
    class declares (a mapping code -> name, or codes), else de / fr / ro."""
    found: Any = None
    reader = getattr(sys.modules.get(getattr(cls, "__module__", "")), "targets_of", None) if cls is not None else None
    if folder is not None and callable(reader):
        try:
            found = {code: entry[0] if isinstance(entry, tuple) else entry for code, entry in reader(folder).items()}
        except Exception:  # noqa: BLE001 - a broken config: the load will say what is wrong with it
            log.debug("reading the translation targets of %s", folder, exc_info=True)
            found = None
    for attr in ("targets", "target_languages"):
        if found or cls is None:
            break
        found = getattr(cls, attr, None)
        if isinstance(found, property) or callable(found):  # per checkpoint, known once loaded
            found = None
    if isinstance(found, dict):
        items = [(str(k), str(v)) for k, v in found.items()]
    elif found:
        items = []
        for item in found:
            if isinstance(item, (tuple, list)) and len(item) == 2:
                items.append((str(item[0]), str(item[1])))
            else:
                items.append((str(item), LANGUAGES.get(str(item), str(item))))
    else:
        items = [(code, LANGUAGES[code]) for code in FALLBACK_TARGETS]
    return items


def output_text(r: Any) -> str:
    """The output of a summarization or translation result (``.text``, else its pipeline key)."""
    for attr in ("text", "summary_text", "translation_text"):
        value = getattr(r, attr, None)
        if isinstance(value, str):
            return value
    return ""


class Seq2SeqPresenter(DecodingPresenter):
    has_source = True
    description = ENCODER_DECODER

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(settings, parent)
        s = settings
        self.beams_spin = QSpinBox()
        self.beams_spin.setRange(0, MAX_BEAMS)
        self.beams_spin.setSpecialValueText(CHECKPOINT)
        self.beams_spin.setValue(setting_int(s, self.key("num_beams"), 0))
        self.beams_spin.setToolTip("Beams of the beam search (checkpoint: as the checkpoint says; 1: greedy)")
        self.max_spin = QSpinBox()
        self.max_spin.setRange(1, MAX_NEW_TOKENS)  # 1 is "checkpoint": an output is at least 2 tokens
        self.max_spin.setSpecialValueText(CHECKPOINT)
        self.max_spin.setValue(setting_int(s, self.key("max_length"), 1))
        self.max_spin.setToolTip("The longest output in tokens, the decoder start included (checkpoint: its own)")
        self.min_spin = QSpinBox()
        self.min_spin.setRange(-1, MAX_NEW_TOKENS)
        self.min_spin.setSpecialValueText(CHECKPOINT)
        self.min_spin.setValue(setting_int(s, self.key("min_length"), -1))
        self.min_spin.setToolTip("No end of text before this many tokens (checkpoint: its own)")
        self.add_options()
        for label, widget in (("Beams", self.beams_spin), ("Max length", self.max_spin),
                              ("Min length", self.min_spin)):
            self.first_row.addWidget(QLabel(label))
            self.first_row.addWidget(widget)
        self.first_row.addStretch(1)
        self.inputs.show()
        for spin in (self.beams_spin, self.max_spin, self.min_spin):
            spin.valueChanged.connect(self._remember)

    def add_options(self) -> None:
        """The task's own controls, before the beam settings."""

    def _remember(self, *_args) -> None:
        self.settings.setValue(self.key("num_beams"), self.beams_spin.value())
        self.settings.setValue(self.key("max_length"), self.max_spin.value())
        self.settings.setValue(self.key("min_length"), self.min_spin.value())

    def save_settings(self) -> None:
        self._remember()

    def beam_options(self) -> dict:
        """The beam settings chosen (None: the checkpoint's)."""
        beams, most, least = self.beams_spin.value(), self.max_spin.value(), self.min_spin.value()
        return {"num_beams": beams or None, "max_length": most if most >= 2 else None,
                "min_length": least if least >= 0 else None, "internals": True}

    # ------------------------------------------------------------------ results

    def output_text(self, r: Any) -> str:
        return output_text(r)

    def new_ids(self, r: Any) -> list[int]:
        return [int(i) for i in r.output_ids[1:]]  # after the decoder start token

    def progress_text(self, r: Any, fraction: float) -> str:
        asked = (self.asked.num_beams if self.asked is not None else None)
        kind = "Beam step" if asked is None or asked > 1 else "Step"
        return f"{self.verb}… {kind} {r.step} / {r.max_steps} (max length) · Esc stops"

    def final_text(self, r: Any) -> str:
        n = len(r.output_ids)
        cut = " · the source was cut at the model's max length" if getattr(r, "truncated", False) else ""
        took = f" · {r.timings.total_ms / 1000:.1f} s" if getattr(r, "timings", None) is not None else ""
        return f"{n} tokens in {r.step} steps · {WHY.get(r.stopped_by, r.stopped_by)}{took}{cut}"

    def summary(self) -> str:
        r = self.result
        if r is None:
            return ""
        state = WHY.get(r.stopped_by, "stopped" if not self.running else "running")
        return f"{len(r.output_ids)} tokens · step {r.step} / {r.max_steps} · {state}"


class SummarizationPresenter(Seq2SeqPresenter):
    task = "summarization"
    text_label = "Text to summarize"
    placeholder = "Paste an article or drop a .txt file, then Summarize (Ctrl+Enter)."
    run_label = "Summarize"
    run_tip = "Summarize the text (Ctrl+Enter)"
    verb = "Summarizing"
    ready_hint = "Press Summarize (Ctrl+Enter)."
    empty_hint = "Paste a text above (or drop a .txt file on the window), then press Summarize (Ctrl+Enter)."
    empty_problem = "There is no text to summarize: paste one above (or drop a .txt file on the window)."

    def options(self, internals: bool, attention: bool) -> SummarizationOptions:
        self.asked = SummarizationOptions(**self.beam_options())
        return self.asked


class TranslationPresenter(Seq2SeqPresenter):
    task = "translation"
    text_label = "English text"
    placeholder = "Type or paste English text, then Translate (Ctrl+Enter)."
    run_label = "Translate"
    run_tip = "Translate the text (Ctrl+Enter)"
    verb = "Translating"
    ready_hint = "Press Translate (Ctrl+Enter)."
    empty_hint = "Type an English text above (or drop a .txt file on the window), then press Translate (Ctrl+Enter)."
    empty_problem = "There is no text to translate: type or paste one above (or drop a .txt file on the window)."

    def add_options(self) -> None:
        self.target_combo = QComboBox()
        self.target_combo.setToolTip("The language to translate into (those the checkpoint names)")
        self._fill_targets(None)
        self.target_combo.activated.connect(lambda _i: self.settings.setValue(self.key("target"), self.target()))
        self.first_row.addWidget(QLabel("Into"))
        self.first_row.addWidget(self.target_combo)

    def set_model(self, ref: str | None) -> None:
        """The model chosen for this task: its own target languages are offered."""
        self._fill_targets(checkpoint_folder(ref))

    def _fill_targets(self, folder: Path | None) -> None:
        choices = target_choices(task_class(self.task), folder)
        current = self.target_combo.currentData() if self.target_combo.count() else None
        self.target_combo.blockSignals(True)
        self.target_combo.clear()
        for code, name in choices:
            self.target_combo.addItem(f"{name} ({code})", code)
        wanted = [current, str(self.settings.value(self.key("target"), ""))]
        found = [i for i in (self.target_combo.findData(w) for w in wanted if w) if i >= 0]
        self.target_combo.setCurrentIndex(found[0] if found else 0)
        self.target_combo.blockSignals(False)

    def target(self) -> str:
        return str(self.target_combo.currentData())

    def _remember(self, *_args) -> None:
        super()._remember()
        self.settings.setValue(self.key("target"), self.target())

    def options(self, internals: bool, attention: bool):
        cls = task_class(self.task)
        options_type = getattr(cls, "options_type", None)
        if options_type is None:
            raise RuntimeError("the engine has no translation task")
        self.asked = options_type(target=self.target(), **self.beam_options())
        return self.asked
