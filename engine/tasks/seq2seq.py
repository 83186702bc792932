"""What summarization and translation share (not a task itself, so not in the registry): an
encoder-decoder (BART or T5) whose encoder reads the source once and whose decoder writes the output
one token per step with beam search (engine.generation), with the checkpoint's generation settings.

    preprocess   the task prefix (T5: "summarize: ", "translate English to German: ") and the text
                 tokenized as the checkpoint's tokenizer does it (BART ``<s> text </s>``, T5
                 ``text </s>``), cut at the model's max length
    model        engine.models.bart / engine.models.t5: the encoder once, then the decoder one token
                 per step with its KV cache (cross-attention keys / values computed once)
    decoding     the settings transformers' pipeline would use: generation_config.json (else the same
                 keys at config.json's top level), T5's task_specific_params over them, the options
                 over both; token-identical to generate
    postprocess  the output decoded without special tokens; with ``internals``, every step's
                 candidates and beams and, once at the end, the decoder's cross-attention over the
                 final output (one teacher-forced pass)
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ..cancel import CancelToken
from ..lazy import lazy
from ..types.text import GenerationStep, TextGenerationInternals
from .base import Progress, StageClock, Task, expect_architecture
from .text_common import TextTask

if TYPE_CHECKING:
    from ..device import Placement

torch = lazy("torch")
generation = lazy("engine.generation")

log = logging.getLogger(__name__)

#: generate's defaults for what neither the options nor the checkpoint set
DEFAULTS = {"max_length": 20, "min_length": 0, "num_beams": 1, "length_penalty": 1.0, "no_repeat_ngram_size": 0,
            "early_stopping": False}
TOKEN_KEYS = ("forced_bos_token_id", "forced_eos_token_id", "decoder_start_token_id")
#: the heads these tasks run (T5WithLMHeadModel: t5-small's older config.json)
ARCHITECTURES = ("ForConditionalGeneration", "WithLMHeadModel")


def _over(settings: dict, source: dict) -> dict:
    out = dict(settings)
    for key in list(DEFAULTS) + list(TOKEN_KEYS):
        if source.get(key) is not None:
            out[key] = source[key]
    return out


def checkpoint_settings(folder: Path, task_params: dict | None = None) -> dict:
    """The checkpoint's generation settings: generation_config.json (newer checkpoints), else the
    same keys at config.json's top level (older ones); then ``task_params`` (a config's
    task_specific_params entry) over them, as transformers' pipeline applies them."""
    from ..hub import read_json
    config = read_json(folder, "config.json")
    out = _over(DEFAULTS, config)
    if config.get("force_bos_token_to_be_generated") and config.get("forced_bos_token_id") is None:
        # the older key (sshleifer/distilbart-cnn-12-6): transformers forces bos_token_id first
        out["forced_bos_token_id"] = config.get("bos_token_id", 0)
    out = _over(out, read_json(folder, "generation_config.json", required=False))
    return _over(out, task_params or {})


def task_specific_params(folder: Path) -> dict:
    """config.json's ``task_specific_params`` ({} when it has none)."""
    from ..hub import read_json
    params = read_json(folder, "config.json").get("task_specific_params")
    return {k: v for k, v in params.items() if isinstance(v, dict)} if isinstance(params, dict) else {}


class Seq2SeqTask(TextTask):
    """Base of summarization and translation: ``task(text, options)`` with the options' beam settings
    (None: the checkpoint's). A subclass declares ``model_types`` and implements ``_plan`` (the
    prefix and the task_specific_params entry for the options) and ``_result``."""

    model_types: ClassVar[tuple[str, ...]] = ("bart", "t5")

    def __init__(self, model_ref: str, folder: Path, placement: Placement, model, tokenizer, kind: str) -> None:
        Task.__init__(self, model_ref, folder, placement)  # not TextTask's: that one reads BERT's labels
        import importlib

        from ..hub import read_json
        self.model = model
        self.tokenizer = tokenizer
        self.kind = kind  # "bart" | "t5"
        self.arch = importlib.import_module(f"engine.models.{kind}")  # its stepper
        self.params = task_specific_params(folder)
        self.settings = checkpoint_settings(folder)
        c = model.config
        self.eos_id = c.eos_token_id if c.eos_token_id is not None else tokenizer.token_to_id("</s>")
        if kind == "bart":
            self.bos_id = tokenizer.token_to_id("<s>")
            self.max_source = c.max_position_embeddings - 2  # <s> and </s> too
            names = ("<s>", "</s>", "<pad>", "<unk>", "<mask>")
        else:  # T5: no <s>; relative positions have no hard limit, the checkpoint's n_positions is what it was trained on
            self.bos_id = None
            self.max_source = c.n_positions - 1  # </s> too
            names = ("</s>", "<pad>", "<unk>")
        #: special tokens left out of the text (a vocab.json tokenizer does not mark BART's special)
        self.special_ids = {i for i in (tokenizer.token_to_id(t) for t in names) if i is not None} | \
            {self.eos_id, c.pad_token_id}
        # transformers' decode: the checkpoint's clean_up_tokenization_spaces (never for byte-level BPE)
        self.clean_up = kind == "t5" and read_json(folder, "tokenizer_config.json", required=False).get(
            "clean_up_tokenization_spaces") is True

    @classmethod
    def load(cls, model_ref: str, folder: Path, placement: Placement) -> Seq2SeqTask:
        import importlib

        from ..device import unmeasured
        from ..processors.tokenizer import load_tokenizer
        config = expect_architecture(folder, model_ref, cls.name, cls.model_types, ARCHITECTURES)
        kind = config["model_type"]
        notice = None
        if kind == "t5":  # T5's reduced-precision answers are not measured yet (float16 is known to overflow)
            placement, notice = unmeasured(placement, "T5")
        model = importlib.import_module(f"engine.models.{kind}").from_checkpoint(folder, placement)
        task = cls(model_ref, folder, placement, model, load_tokenizer(folder), kind)
        task.precision_notice = notice
        log.info("Loaded %s %s on %s", cls.name, model_ref, placement.describe())
        return task

    # ------------------------------------------------------------------ steps

    def _plan(self, opts) -> tuple[str, dict]:
        """(the prefix put before the text, the task_specific_params entry used) for these options."""
        raise NotImplementedError

    def _result(self, opts, text: str, output_ids: np.ndarray, source_ids: np.ndarray, cut: bool, stopped_by: str,
                step: int, max_steps: int, done: bool, timings, internals=None):
        raise NotImplementedError

    def _text(self, ids: list[int]) -> str:
        text = self.tokenizer.decode([i for i in ids if i not in self.special_ids], skip_special_tokens=True)
        if self.clean_up:
            for a, b in ((" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                         (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")):
                text = text.replace(a, b)
        return text

    def _source(self, text: str, prefix: str = "") -> tuple[list[int], bool]:
        ids = self.tokenizer.encode(prefix + text, add_special_tokens=False).ids
        cut = len(ids) > self.max_source
        ids = ids[:self.max_source]
        return ([self.bos_id] if self.bos_id is not None else []) + ids + [self.eos_id], cut

    def _decode_settings(self, opts, task_params: dict | None = None):
        s = _over(self.settings, task_params or {})
        for key in DEFAULTS:
            if getattr(opts, key) is not None:
                s[key] = getattr(opts, key)
        c = self.model.config
        return generation.DecodeSettings(
            max_new_tokens=int(s["max_length"]) - 1, min_length=int(s["min_length"]), num_beams=int(s["num_beams"]),
            length_penalty=float(s["length_penalty"]), no_repeat_ngram_size=int(s["no_repeat_ngram_size"]),
            early_stopping=s["early_stopping"], eos_token_ids=(self.eos_id,), pad_token_id=c.pad_token_id,
            forced_bos_token_id=s.get("forced_bos_token_id", getattr(c, "forced_bos_token_id", None)),
            forced_eos_token_id=s.get("forced_eos_token_id", getattr(c, "forced_eos_token_id", None))), \
            int(s.get("decoder_start_token_id", c.decoder_start_token_id))

    def _internals(self, infos, src: list[int], sequence: list[int]) -> TextGenerationInternals:
        dec = self.tokenizer.decode
        steps = tuple(GenerationStep(
            int(s.token), dec([s.token], skip_special_tokens=False), float(s.prob), np.asarray(s.top_ids, np.int64),
            tuple(dec([i], skip_special_tokens=False) for i in s.top_ids), np.asarray(s.top_probs, np.float32),
            s.beams) for s in infos)
        device = self.placement.device
        cross = self.model.cross_attention(torch.tensor([src], device=device), torch.tensor([sequence], device=device))
        return TextGenerationInternals(steps, tuple(self.tokenizer.id_to_token(i) or "" for i in src),
                                       cross.float().cpu().numpy())

    def stream(self, inputs: str, options: Any = None, *, cancel: CancelToken | None = None):
        """A partial result after every decoding step (the best live beam so far), then the final one."""
        opts = self._options(options)
        text = self.check_text(inputs)
        clock = StageClock(self._sync())
        with clock.stage("preprocess"):
            prefix, params = self._plan(opts)
            src, cut = self._source(text, prefix)
            settings, start = self._decode_settings(opts, params)
        device = self.placement.device
        with clock.stage("model"):
            step, reorder = self.arch.stepper(self.model, torch.tensor([src], device=device))
        steps = generation.iterate(step, [start], settings, reorder=reorder, device=device, cancel=cancel)
        infos = []
        src_np = np.asarray(src, dtype=np.int64)
        while True:
            try:
                with clock.stage("model"):
                    info = next(steps)
            except StopIteration as stop:
                out = stop.value
                break
            infos.append(info)
            best = [start, *(info.beams[0][0] if info.beams else [s.token for s in infos])]
            yield self._result(opts, self._text(best).rstrip("\ufffd"), np.asarray(best, np.int64), src_np, cut, "",
                               len(infos), settings.max_new_tokens, False, clock.timings())
        with clock.stage("postprocess"):
            output = self._text(out.sequence)
            internals = self._internals(infos, src, out.sequence) if opts.internals else None
        yield self._result(opts, output, np.asarray(out.sequence, np.int64), src_np, cut,
                           "eos" if out.finished else "length", len(infos), settings.max_new_tokens, True,
                           clock.timings(), internals)

    def steps(self, inputs: str, options: Any = None, *, cancel: CancelToken | None = None):
        last = None
        for last in self.stream(inputs, options, cancel=cancel):
            yield (1.0 if last.done else min(last.step / max(last.max_steps, 1), 0.99)), last
        yield 1.0, last

    def run(self, inputs: str, options: Any = None, *, cancel: CancelToken | None = None,
            progress: Progress | None = None):
        for fraction, last in self.steps(inputs, options, cancel=cancel):
            if progress is not None:
                progress(fraction, None if last.done else last)
        return last

    # ------------------------------------------------------------------ CLI

    @classmethod
    def add_task_arguments(cls, parser) -> None:
        parser.add_argument("--max-length", type=int, default=None, metavar="N", help="default: the checkpoint's")
        parser.add_argument("--min-length", type=int, default=None, metavar="N", help="default: the checkpoint's")
        parser.add_argument("--num-beams", type=int, default=None, metavar="K", help="default: the checkpoint's")
        parser.add_argument("--length-penalty", type=float, default=None, metavar="L")
        parser.add_argument("--no-repeat-ngram-size", type=int, default=None, metavar="N")

    @staticmethod
    def beam_options(args) -> dict:
        return dict(max_length=args.max_length, min_length=args.min_length, num_beams=args.num_beams,
                    length_penalty=args.length_penalty, no_repeat_ngram_size=args.no_repeat_ngram_size)

    @classmethod
    def cli_json(cls, name: str, result: Any, task) -> Any:
        return result.to_json()
