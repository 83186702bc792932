"""Summarization: BART's encoder reads the text, its decoder writes the summary with beam search, as in
the seed's walk-through (sequence to sequence).

    task = load_task("summarization")                  # sshleifer/distilbart-cnn-12-6
    result = task(article)                              # result.summary_text, result.output_ids

    preprocess   ``<s> text </s>`` with the checkpoint's byte-level BPE, cut at the model's max length
    model        engine.models.bart: the encoder once, then the decoder one token per step with its
                 KV cache (cross-attention keys / values computed once)
    decoding     engine.generation with the checkpoint's settings (generation_config.json, else
                 config.json: beams, length penalty, min / max length, no-repeat n-grams, early
                 stopping, forced BOS / EOS), each overridable; token-identical to generate
    postprocess  the output decoded without special tokens
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cancel import CancelToken
from ..catalog import ModelEntry
from ..lazy import lazy
from ..types.text import GenerationStep, SummarizationOptions, SummarizationResult, TextGenerationInternals
from .base import Progress, StageClock, Task, expect_architecture
from .text_common import TextTask

if TYPE_CHECKING:
    from ..device import Placement

torch = lazy("torch")
generation = lazy("engine.generation")
bart = lazy("engine.models.bart")

log = logging.getLogger(__name__)

#: generate's defaults for what neither the options nor the checkpoint set
DEFAULTS = {"max_length": 20, "min_length": 0, "num_beams": 1, "length_penalty": 1.0, "no_repeat_ngram_size": 0,
            "early_stopping": False}


def checkpoint_settings(folder: Path) -> dict:
    """The checkpoint's generation settings: generation_config.json (newer checkpoints), else the
    same keys at config.json's top level (older ones)."""
    from ..hub import read_json
    config = read_json(folder, "config.json")
    gen = read_json(folder, "generation_config.json", required=False)
    out = dict(DEFAULTS)
    for source in (config, gen):
        for key in list(DEFAULTS) + ["forced_bos_token_id", "forced_eos_token_id", "decoder_start_token_id"]:
            if source.get(key) is not None:
                out[key] = source[key]
    return out


class Summarization(TextTask):
    name = "summarization"
    title = "Summarization"
    summary = "Summarize a text with BART (beam search, the checkpoint's settings)."
    options_type = SummarizationOptions
    result_type = SummarizationResult
    models = (
        ModelEntry("sshleifer/distilbart-cnn-12-6", 1222, "apache-2.0", "DistilBART fine-tuned on CNN / DailyMail"),
        ModelEntry("facebook/bart-large-cnn", 1625, "mit", "BART large fine-tuned on CNN / DailyMail"),
    )
    command = "summarization"
    command_help = "summarize a text (BART)"
    bench = None

    def __init__(self, model_ref: str, folder: Path, placement: Placement, model, tokenizer) -> None:
        Task.__init__(self, model_ref, folder, placement)  # not TextTask's: that one reads BERT's labels
        self.model = model
        self.tokenizer = tokenizer
        self.settings = checkpoint_settings(folder)
        c = model.config
        self.bos_id = tokenizer.token_to_id("<s>")
        self.eos_id = c.eos_token_id if c.eos_token_id is not None else tokenizer.token_to_id("</s>")
        #: BART's special tokens, left out of the text (a vocab.json tokenizer does not mark them special)
        self.special_ids = {i for i in (tokenizer.token_to_id(t) for t in ("<s>", "</s>", "<pad>", "<unk>", "<mask>"))
                            if i is not None} | {self.eos_id, c.pad_token_id}

    def _text(self, ids: list[int]) -> str:
        return self.tokenizer.decode([i for i in ids if i not in self.special_ids], skip_special_tokens=True)

    @classmethod
    def load(cls, model_ref: str, folder: Path, placement: Placement) -> Summarization:
        from ..models import bart as bart_model
        from ..processors.tokenizer import load_tokenizer
        expect_architecture(folder, model_ref, cls.name, ("bart",), ("ForConditionalGeneration",))
        model = bart_model.from_checkpoint(folder, placement)
        return cls(model_ref, folder, placement, model, load_tokenizer(folder))

    def _source(self, text: str) -> tuple[list[int], bool]:
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        room = self.model.config.max_position_embeddings - 2
        cut = len(ids) > room
        ids = ids[:room]
        return ([self.bos_id] if self.bos_id is not None else []) + ids + [self.eos_id], cut

    def _decode_settings(self, opts: SummarizationOptions):
        s = dict(self.settings)
        for key in DEFAULTS:
            if getattr(opts, key) is not None:
                s[key] = getattr(opts, key)
        c = self.model.config
        return generation.DecodeSettings(
            max_new_tokens=int(s["max_length"]) - 1, min_length=int(s["min_length"]), num_beams=int(s["num_beams"]),
            length_penalty=float(s["length_penalty"]), no_repeat_ngram_size=int(s["no_repeat_ngram_size"]),
            early_stopping=s["early_stopping"], eos_token_ids=(self.eos_id,), pad_token_id=c.pad_token_id,
            forced_bos_token_id=s.get("forced_bos_token_id", c.forced_bos_token_id),
            forced_eos_token_id=s.get("forced_eos_token_id", c.forced_eos_token_id)), \
            int(s.get("decoder_start_token_id", c.decoder_start_token_id))

    def _internals(self, infos) -> TextGenerationInternals:
        dec = self.tokenizer.decode
        return TextGenerationInternals(tuple(GenerationStep(
            int(s.token), dec([s.token], skip_special_tokens=False), float(s.prob), np.asarray(s.top_ids, np.int64),
            tuple(dec([i], skip_special_tokens=False) for i in s.top_ids), np.asarray(s.top_probs, np.float32),
            s.beams) for s in infos), ())

    def stream(self, inputs: str, options: SummarizationOptions | None = None, *, cancel: CancelToken | None = None):
        """A partial result after every decoding step (the best live beam so far), then the final one."""
        opts = self._options(options)
        text = self.check_text(inputs)
        clock = StageClock(self._sync())
        with clock.stage("preprocess"):
            src, cut = self._source(text)
            settings, start = self._decode_settings(opts)
        device = self.placement.device
        with clock.stage("model"):
            step, reorder = bart.stepper(self.model, torch.tensor([src], device=device))
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
            yield SummarizationResult(self._text(best).rstrip("\ufffd"),
                                      np.asarray(best, np.int64), src_np, cut, "", len(infos),
                                      settings.max_new_tokens, False, clock.timings())
        with clock.stage("postprocess"):
            summary = self._text(out.sequence)
            internals = self._internals(infos) if opts.internals else None
        yield SummarizationResult(summary, np.asarray(out.sequence, np.int64), src_np, cut,
                                  "eos" if out.finished else "length", len(infos), settings.max_new_tokens, True,
                                  clock.timings(), internals)

    def steps(self, inputs: str, options: SummarizationOptions | None = None, *, cancel: CancelToken | None = None):
        last = None
        for last in self.stream(inputs, options, cancel=cancel):
            yield (1.0 if last.done else min(last.step / max(last.max_steps, 1), 0.99)), last
        yield 1.0, last

    def run(self, inputs: str, options: SummarizationOptions | None = None, *,
            cancel: CancelToken | None = None, progress: Progress | None = None) -> SummarizationResult:
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

    @classmethod
    def cli_options(cls, args) -> SummarizationOptions:
        return SummarizationOptions(max_length=args.max_length, min_length=args.min_length, num_beams=args.num_beams,
                                    length_penalty=args.length_penalty, no_repeat_ngram_size=args.no_repeat_ngram_size)

    @classmethod
    def cli_print(cls, name: str, result: SummarizationResult, args) -> str:
        cut = " (source cut at the model's max length)" if result.truncated else ""
        return f"{result.summary_text}\n[{len(result.output_ids)} tokens, {result.timings.total_ms:.0f} ms{cut}]"

    @classmethod
    def cli_json(cls, name: str, result: Any, task) -> Any:
        return result.to_json()
