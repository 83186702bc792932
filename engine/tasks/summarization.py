"""Summarization: an encoder-decoder reads the text and writes its summary with beam search, as in the
seed's walk-through (sequence to sequence): BART (its encoder reads the text, its decoder writes the
summary) or T5 (text-to-text: the text after "summarize: ").

    task = load_task("summarization")                  # sshleifer/distilbart-cnn-12-6
    result = task(article)                              # result.summary_text, result.output_ids

    preprocess   BART: ``<s> text </s>`` with the checkpoint's byte-level BPE; T5: its
                 task_specific_params["summarization"] prefix ("summarize: ") then the text and
                 ``</s>`` with its Unigram tokenizer; cut at the model's max length
    model        engine.models.bart / engine.models.t5: the encoder once, then the decoder one token
                 per step with its KV cache (cross-attention keys / values computed once)
    decoding     engine.generation with the checkpoint's settings (generation_config.json, else
                 config.json: beams, length penalty, min / max length, no-repeat n-grams, early
                 stopping, forced BOS / EOS; T5: task_specific_params["summarization"] over them, as
                 transformers' pipeline), each overridable; token-identical to generate
    postprocess  the output decoded without special tokens

The shared machinery (streaming, settings, internals, CLI) is engine.tasks.seq2seq's.
"""
from __future__ import annotations

import logging
from typing import Any

from ..catalog import ModelEntry
from ..types.text import SummarizationOptions, SummarizationResult
from .seq2seq import Seq2SeqTask

log = logging.getLogger(__name__)


class Summarization(Seq2SeqTask):
    name = "summarization"
    title = "Summarization"
    summary = "Summarize a text with BART or T5 (beam search, the checkpoint's settings)."
    options_type = SummarizationOptions
    result_type = SummarizationResult
    models = (
        ModelEntry("sshleifer/distilbart-cnn-12-6", 1222, "apache-2.0", "DistilBART fine-tuned on CNN / DailyMail"),
        ModelEntry("facebook/bart-large-cnn", 1625, "mit", "BART large fine-tuned on CNN / DailyMail"),
        ModelEntry("google-t5/t5-small", 242, "apache-2.0", "T5 small (60M): \"summarize: \" text-to-text"),
    )
    command = "summarization"
    command_help = "summarize a text (BART, T5)"
    bench = "benchmarks.summarization"

    def _plan(self, opts: SummarizationOptions) -> tuple[str, dict]:
        if self.kind != "t5":  # BART: no prefix, the settings of generation_config.json / config.json
            return "", {}
        params = self.params.get("summarization", {})
        prefix = params.get("prefix")
        if not isinstance(prefix, str):
            from ..hub import read_json
            prefix = read_json(self.folder, "config.json").get("prefix") or ""
        return prefix, params

    def _result(self, opts, text, output_ids, source_ids, cut, stopped_by, step, max_steps, done, timings,
                internals=None) -> SummarizationResult:
        return SummarizationResult(text, output_ids, source_ids, cut, stopped_by, step, max_steps, done, timings,
                                   internals)

    # ------------------------------------------------------------------ CLI

    @classmethod
    def cli_options(cls, args) -> SummarizationOptions:
        return SummarizationOptions(**cls.beam_options(args))

    @classmethod
    def cli_print(cls, name: str, result: SummarizationResult, args) -> str:
        cut = " (source cut at the model's max length)" if result.truncated else ""
        return f"{result.summary_text}\n[{len(result.output_ids)} tokens, {result.timings.total_ms:.0f} ms{cut}]"

    @classmethod
    def cli_json(cls, name: str, result: Any, task) -> Any:
        return result.to_json()

