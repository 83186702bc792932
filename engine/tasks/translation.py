"""Translation: T5 reads "translate English to German: <text>" and writes the German, as in the seed's
walk-through (text-to-text: one model, the task named in the input).

    task = load_task("translation")                                 # google-t5/t5-small
    result = task("The house is wonderful.", TranslationOptions(target="de"))
    result.translation_text, result.output_ids

    preprocess   the prefix of the checkpoint's task_specific_params["translation_en_to_<target>"]
                 ("translate English to German: ") then the text and ``</s>``, with T5's Unigram
                 tokenizer; cut at the model's max length (n_positions)
    model        engine.models.t5: the encoder once, then the decoder one token per step with its KV
                 cache (cross-attention keys / values computed once)
    decoding     engine.generation with the settings transformers' translation pipeline used: that
                 task_specific_params entry (t5-small: 4 beams, early stopping, max length 300) over
                 generation_config.json; each overridable; token-identical to generate
    postprocess  the output decoded without special tokens

The targets offered are those the checkpoint's task_specific_params name (t5-small: de, fr, ro).
The shared machinery (streaming, settings, internals, CLI) is engine.tasks.seq2seq's.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from ..catalog import ModelEntry
from ..errors import CheckpointError, InputError
from ..types.text import TranslationOptions, TranslationResult
from .seq2seq import Seq2SeqTask, task_specific_params

log = logging.getLogger(__name__)

KEY = re.compile(r"translation_([A-Za-z_-]+?)_to_([A-Za-z_-]+)$")
#: names for the codes a prefix does not spell out
LANGUAGES = {"de": "German", "fr": "French", "ro": "Romanian", "en": "English"}


def targets_of(folder: Path) -> dict[str, tuple[str, dict]]:
    """The languages a checkpoint translates English into, in config order: code -> (its name,
    its task_specific_params entry). Torch-free: the app may ask before loading the model."""
    out: dict[str, tuple[str, dict]] = {}
    for key, params in task_specific_params(folder).items():
        m = KEY.match(key)
        if not m or m.group(1) != "en" or m.group(2) in out:
            continue
        code = m.group(2)
        prefix = params.get("prefix")
        named = re.match(r"translate \w+ to (.+?):\s*$", prefix) if isinstance(prefix, str) else None
        out[code] = (named.group(1) if named else LANGUAGES.get(code, code), params)
    return out


class Translation(Seq2SeqTask):
    name = "translation"
    title = "Translation"
    summary = "Translate English to German, French or Romanian with T5 (beam search, the checkpoint's settings)."
    options_type = TranslationOptions
    result_type = TranslationResult
    model_types = ("t5",)
    models = (
        ModelEntry("google-t5/t5-small", 242, "apache-2.0", "T5 small (60M): English to German, French, Romanian"),
    )
    command = "translation"
    command_help = "translate English text (T5)"
    bench = "benchmarks.translation"

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.languages = targets_of(self.folder)
        if not self.languages:
            raise CheckpointError(f"{self.model_ref} names no translation in its config.json (task_specific_params "
                                  "translation_en_to_<language> with a prefix), so Taskscope cannot tell it which "
                                  "language to write.")

    @property
    def targets(self) -> tuple[str, ...]:
        """The target language codes this checkpoint offers, the default first ("de", "fr", "ro")."""
        return tuple(self.languages)

    def _target(self, opts: TranslationOptions) -> str:
        target = opts.target or self.targets[0]
        if target not in self.languages:
            offered = ", ".join(f"{c} ({n})" for c, (n, _) in self.languages.items())
            raise InputError(f"{self.model_ref} translates English to {offered}; not to {target!r}. "
                             f"Choose --target {'|'.join(self.targets)}.")
        return target

    def _plan(self, opts: TranslationOptions) -> tuple[str, dict]:
        params = self.languages[self._target(opts)][1]
        prefix = params.get("prefix")
        return (prefix if isinstance(prefix, str) else ""), params

    def _result(self, opts, text, output_ids, source_ids, cut, stopped_by, step, max_steps, done, timings,
                internals=None) -> TranslationResult:
        target = self._target(opts)
        return TranslationResult(text, output_ids, source_ids, cut, stopped_by, step, max_steps, done, timings,
                                 internals, target, self.languages[target][0])

    # ------------------------------------------------------------------ CLI

    @classmethod
    def add_task_arguments(cls, parser) -> None:
        parser.add_argument("--target", default=None, metavar="de|fr|ro",
                            help="the language to translate into, one the checkpoint's task_specific_params name "
                                 "(google-t5/t5-small: de, fr, ro); default: its first")
        super().add_task_arguments(parser)

    @classmethod
    def cli_options(cls, args) -> TranslationOptions:
        return TranslationOptions(target=args.target, **cls.beam_options(args))

    @classmethod
    def cli_print(cls, name: str, result: TranslationResult, args) -> str:
        cut = " (source cut at the model's max length)" if result.truncated else ""
        return (f"{result.translation_text}\n[{result.target_name}, {len(result.output_ids)} tokens, "
                f"{result.timings.total_ms:.0f} ms{cut}]")

    @classmethod
    def cli_json(cls, name: str, result: Any, task) -> Any:
        return result.to_json()
