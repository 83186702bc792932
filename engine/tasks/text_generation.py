"""Text generation: GPT-2 continues a prompt one token at a time, as in the seed's walk-through
(a decoder with masked self-attention predicting the next token).

    task = load_task("text-generation")                    # openai-community/gpt2
    result = task("Once upon a time", TextGenerationOptions(max_new_tokens=30))
    for partial in task.stream("Once upon a time"):        # a result after every token, then the final one
        print(partial.text)

    preprocess   the checkpoint's byte-level BPE (engine.processors.tokenizer), no special tokens added;
                 a prompt that leaves no room for max_new_tokens in the context window is refused, or
                 its first tokens cut (``truncate_prompt``)
    model        engine.models.gpt2 with its KV cache: the prompt once, then one token per step
    decoding     engine.generation: greedy, sampling (temperature, top-k, top-p, seed) or beam search,
                 token-identical to transformers' generate with the same settings
    postprocess  the new tokens decoded (special tokens left out); per step the chosen token's
                 probability and the top alternatives (internals)
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cancel import CancelToken
from ..catalog import ModelEntry
from ..errors import InputError
from ..lazy import lazy
from ..types.text import GenerationStep, TextGenerationInternals, TextGenerationOptions, TextGenerationResult
from .base import Progress, StageClock, Task, expect_architecture
from .text_common import TextTask

if TYPE_CHECKING:
    from ..device import Placement

torch = lazy("torch")
generation = lazy("engine.generation")
gpt2 = lazy("engine.models.gpt2")

log = logging.getLogger(__name__)


class TextGeneration(TextTask):
    name = "text-generation"
    title = "Text generation"
    summary = "Continue a prompt with GPT-2, one token at a time: greedy, sampling or beam search."
    options_type = TextGenerationOptions
    result_type = TextGenerationResult
    models = (
        ModelEntry("openai-community/gpt2", 548, "mit", "GPT-2 small (124M): English text continuation"),
        ModelEntry("distilbert/distilgpt2", 353, "apache-2.0", "DistilGPT2 (82M): GPT-2 distilled to 6 layers"),
    )
    command = "text-generation"
    command_help = "continue a prompt, streamed token by token (GPT-2)"
    bench = "benchmarks.text_generation"
    text_help = "the prompt (or - to read standard input)"

    def __init__(self, model_ref: str, folder: Path, placement: Placement, model, tokenizer) -> None:
        Task.__init__(self, model_ref, folder, placement)  # not TextTask's: that one reads BERT's labels
        self.model = model
        self.tokenizer = tokenizer
        cfg = model.config
        self.eos_ids = tuple(i for i in (cfg.eos_token_id,) if i is not None)
        self.pad_id = cfg.pad_token_id if cfg.pad_token_id is not None else (self.eos_ids[0] if self.eos_ids else None)
        self.context = cfg.n_positions

    @classmethod
    def load(cls, model_ref: str, folder: Path, placement: Placement) -> TextGeneration:
        from ..models import gpt2 as gpt2_model
        from ..processors.tokenizer import load_tokenizer

        expect_architecture(folder, model_ref, cls.name, ("gpt2",), ("LMHeadModel",))
        model = gpt2_model.from_checkpoint(folder, placement)
        task = cls(model_ref, folder, placement, model, load_tokenizer(folder))
        log.info("Loaded %s %s on %s", cls.name, model_ref, placement.describe())
        return task

    # ------------------------------------------------------------------ running

    def _prompt(self, text: Any, opts: TextGenerationOptions) -> tuple[list[int], bool]:
        text = self.check_text(text, "The prompt")
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        room = self.context - opts.max_new_tokens
        if room < 1:
            raise InputError(f"max-new-tokens is {opts.max_new_tokens}; this model reads {self.context} tokens "
                             f"in all, prompt included: ask for at most {self.context - 1}.")
        if len(ids) > room:
            if not opts.truncate_prompt:
                raise InputError(f"The prompt is {len(ids)} tokens long; with {opts.max_new_tokens} new tokens "
                                 f"this model reads at most {room} prompt tokens ({self.context} in all). "
                                 "Shorten it, ask for fewer new tokens, or let the prompt be cut.")
            return ids[len(ids) - room:], True
        return ids, False

    def _settings(self, opts: TextGenerationOptions):
        return generation.DecodeSettings(
            max_new_tokens=opts.max_new_tokens, do_sample=opts.do_sample, num_beams=opts.num_beams,
            temperature=float(opts.temperature), top_k=opts.top_k, top_p=float(opts.top_p),
            repetition_penalty=float(opts.repetition_penalty), no_repeat_ngram_size=opts.no_repeat_ngram_size,
            min_new_tokens=opts.min_new_tokens, length_penalty=float(opts.length_penalty),
            early_stopping=opts.early_stopping, seed=opts.seed, eos_token_ids=self.eos_ids,
            pad_token_id=self.pad_id, top_candidates=opts.top_candidates)

    def _text(self, ids: list[int], partial: bool) -> str:
        text = self.tokenizer.decode(ids, skip_special_tokens=True)
        if partial:  # a character whose bytes have not all come yet
            text = text.rstrip("\ufffd")
        return text

    def _step(self, s) -> GenerationStep:
        """One decoding step's internals, its texts decoded once (partial results reuse them)."""
        return GenerationStep(
            int(s.token), self.tokenizer.decode([s.token], skip_special_tokens=False), float(s.prob),
            np.asarray(s.top_ids, dtype=np.int64),
            tuple(self.tokenizer.decode([i], skip_special_tokens=False) for i in s.top_ids),
            np.asarray(s.top_probs, dtype=np.float32), s.beams)

    def _result(self, prompt: str, prompt_ids: list[int], new: list[int], steps: list | None, clock: StageClock,
                started: float, stopped_by: str, truncated: bool, score=None) -> TextGenerationResult:
        """``steps``: the GenerationSteps so far when internals are asked for, else None."""
        elapsed = max(time.perf_counter() - started, 1e-9)
        internals = None
        if steps is not None:
            internals = TextGenerationInternals(tuple(steps),
                                                tuple(self.tokenizer.id_to_token(i) or "" for i in prompt_ids))
        return TextGenerationResult(prompt, self._text(new, not stopped_by), np.asarray(prompt_ids, dtype=np.int64),
                                    np.asarray(new, dtype=np.int64), stopped_by, len(new) / elapsed,
                                    bool(stopped_by), truncated, score, clock.timings(), internals)

    def stream(self, inputs: str, options: TextGenerationOptions | None = None, *,
               cancel: CancelToken | None = None):
        """A partial result (``done`` False) after every new token, then the final one."""
        opts = self._options(options)
        clock = StageClock(self._sync())
        with clock.stage("preprocess"):
            prompt_ids, truncated = self._prompt(inputs, opts)
        model = self.model
        step, reorder = gpt2.stepper(model)
        steps = generation.iterate(step, prompt_ids, self._settings(opts), reorder=reorder,
                                   device=self.placement.device, cancel=cancel)
        built: list | None = [] if opts.internals else None  # each step's internals, built once
        new: list[int] = []
        started = time.perf_counter()
        while True:
            try:
                with clock.stage("model"):
                    info = next(steps)
            except StopIteration as stop:
                out = stop.value
                break
            if built is not None:
                built.append(self._step(info))
            if opts.num_beams > 1:
                best = info.beams[0][0] if info.beams else ()
                new = list(best)
            else:
                new.append(info.token)
            with clock.stage("postprocess"):
                partial = self._result(inputs, prompt_ids, new, built, clock, started, "", truncated)
            yield partial
        with clock.stage("postprocess"):
            stopped = "eos" if out.finished else "length"
            final = self._result(inputs, prompt_ids, out.new_tokens, built, clock, started, stopped, truncated,
                                 out.score)
        yield final

    def steps(self, inputs: str, options: TextGenerationOptions | None = None, *,
              cancel: CancelToken | None = None):
        total = self._options(options).max_new_tokens
        last = None
        for last in self.stream(inputs, options, cancel=cancel):
            yield (1.0 if last.done else min(len(last) / total, 0.99)), last
        yield 1.0, last

    def run(self, inputs: str, options: TextGenerationOptions | None = None, *,
            cancel: CancelToken | None = None, progress: Progress | None = None) -> TextGenerationResult:
        total = self._options(options).max_new_tokens
        last = None
        for last in self.stream(inputs, options, cancel=cancel):
            if progress is not None:
                progress(1.0 if last.done else min(len(last) / total, 0.99), None if last.done else last)
        return last

    # ------------------------------------------------------------------ CLI

    @classmethod
    def add_task_arguments(cls, parser) -> None:
        from ..cliargs import positive_int
        parser.add_argument("--max-new-tokens", type=int, default=50, metavar="N", help="new tokens at most (50)")
        parser.add_argument("--num-beams", type=positive_int, default=1, metavar="K", help="beam search with K beams")
        parser.add_argument("--do-sample", action="store_true", help="sample instead of taking the best token")
        parser.add_argument("--temperature", type=float, default=1.0, metavar="T")
        parser.add_argument("--top-k", type=int, default=50, metavar="K", help="sampling: the K best tokens (0: all)")
        parser.add_argument("--top-p", type=float, default=1.0, metavar="P", help="sampling: nucleus of mass P")
        parser.add_argument("--seed", type=int, default=None, metavar="S", help="sampling: a fixed seed")
        parser.add_argument("--repetition-penalty", type=float, default=1.0, metavar="R")
        parser.add_argument("--no-repeat-ngram-size", type=int, default=0, metavar="N")
        parser.add_argument("--length-penalty", type=float, default=1.0, metavar="L", help="beam search")
        parser.add_argument("--truncate-prompt", action="store_true",
                            help="cut a prompt too long for the context window (default: refuse it)")

    @classmethod
    def cli_options(cls, args) -> TextGenerationOptions:
        return TextGenerationOptions(
            max_new_tokens=args.max_new_tokens, do_sample=args.do_sample, num_beams=args.num_beams,
            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, seed=args.seed,
            repetition_penalty=args.repetition_penalty, no_repeat_ngram_size=args.no_repeat_ngram_size,
            length_penalty=args.length_penalty, truncate_prompt=args.truncate_prompt)

    def cli_results(self, inputs: list[Any], options: Any, args) -> list[Any]:
        """Streams each continuation to stdout as it is written (unless --json)."""
        out: list[Any] = []
        stream_out = not getattr(args, "json", False) and options.num_beams == 1
        for text in inputs:
            try:
                if not stream_out:
                    out.append(self(text, options))
                    continue
                sys.stdout.write(text)
                shown = ""
                last = None
                for last in self.stream(text, options):
                    if last.text.startswith(shown):
                        sys.stdout.write(last.text[len(shown):])
                        shown = last.text
                    sys.stdout.flush()
                sys.stdout.write("\n")
                out.append(last)
            except InputError as exc:
                out.append(exc)
        return out

    @classmethod
    def cli_print(cls, name: str, result: TextGenerationResult, args) -> str:
        head = "" if args.num_beams == 1 else result.generated_text + "\n"
        why = "end of text" if result.stopped_by == "eos" else "max new tokens"
        return (f"{head}[{len(result)} tokens, {result.tokens_per_s:.1f} tokens/s, {why}"
                + (", prompt cut" if result.prompt_truncated else "") + "]")
