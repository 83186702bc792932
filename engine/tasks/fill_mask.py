"""Fill-mask: BERT's pretraining task, *masked language modelling*, as in the seed's walk-through: a
token of the text is replaced by ``[MASK]`` and the model predicts it from the words on both sides;
the MLM head's decoder (tied to the token embeddings) scores every word of the vocabulary there.

    task = load_task("fill-mask")                              # google-bert/bert-base-uncased
    r = task("Paris is the [MASK] of France.")
    [(c.token_str, c.score) for c in r.masks[0]]                # ("capital", 0.99), ...

    preprocess   ``[CLS] text [SEP]`` (the mask token, as the tokenizer config names it, matched in the
                 raw text); at least one [MASK] and at least one other word; not longer than the model
    model        engine.models.bert with the masked-LM head, computed at the [MASK] rows only
    postprocess  as transformers' FillMaskPipeline: softmax over the vocabulary at each [MASK], the
                 top k; each candidate's sequence is the input with that [MASK] filled, decoded (special
                 tokens skipped when there is one [MASK]; with several the others stay, as in the pipeline)
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..cancel import CancelToken, check
from ..catalog import ModelEntry
from ..errors import InputError
from ..types.text import FillMaskCandidate, FillMaskInternals, FillMaskOptions, FillMaskResult
from .base import Progress, StageClock
from .text_common import TextTask


#: how mask tokens are written in the texts a user gives (BERT / DistilBERT; RoBERTa-style)
MASK_SPELLINGS = ("[MASK]", "<mask>")


class FillMask(TextTask):
    name = "fill-mask"
    title = "Fill-mask"
    summary = "Predict the words hidden behind [MASK] with BERT's masked-language-model head."
    options_type = FillMaskOptions
    result_type = FillMaskResult
    head = "masked-lm"
    models = (
        ModelEntry("google-bert/bert-base-uncased", 440, "apache-2.0", "BERT-base, uncased (English), pretrained"),
        ModelEntry("distilbert/distilbert-base-uncased", 268, "apache-2.0", "DistilBERT-base, uncased, pretrained"),
    )
    command = "fill-mask"
    command_help = "predict the words behind [MASK] (BERT, DistilBERT)"
    bench = "benchmarks.text:fill_mask"
    text_help = "a text with one or more [MASK] (or - to read standard input)"

    @classmethod
    def cli_inputs(cls, args) -> list[tuple[str, Any]]:
        """The texts, and before any model is looked up: each has a mask token as BERT (``[MASK]``)
        or RoBERTa-style tokenizers (``<mask>``) spell it; the exact token is checked again at run."""
        checked = []
        for name, text in super().cli_inputs(args):
            if isinstance(text, str) and not any(m in text for m in MASK_SPELLINGS):
                text = InputError("The text has no [MASK]: put [MASK] where a word should be predicted, "
                                  "e.g. \"Paris is the [MASK] of France.\"")
            checked.append((name, text))
        return checked

    def run(self, inputs: str, options: FillMaskOptions | None = None, *,
            cancel: CancelToken | None = None, progress: Progress | None = None) -> FillMaskResult:
        """One text with [MASK] tokens -> per [MASK], the top-k tokens with their probabilities."""
        opts = self._options(options)
        text = self.check_text(inputs)
        enc_ = self.encoder
        mask = enc_.mask_token
        if mask is None or enc_.mask_id is None:
            raise InputError(f"{self.model_ref} has no mask token in its tokenizer: it cannot fill masks.")
        clock = StageClock(self._sync())
        with clock.stage("preprocess"):
            enc, _ = enc_.encode_one(text, truncate=False)
            ids = np.asarray(enc.ids, np.int64)
            positions = np.flatnonzero(ids == enc_.mask_id)
            if len(positions) == 0:
                raise InputError(f"The text has no {mask}: put {mask} where a word should be predicted, "
                                 f"e.g. \"Paris is the {mask} of France.\"")
            words = int(sum(1 for i, special in zip(ids, enc.special_tokens_mask) if not special and i != enc_.mask_id))
            if words == 0:
                raise InputError(f"The text is only {mask} tokens: give some words around them to predict from.")
            if len(ids) > enc_.max_length:
                raise InputError(f"The text is {len(ids)} tokens long; this model reads at most "
                                 f"{enc_.max_length}. Shorten the text around the {mask}.")
        check(cancel)
        with clock.stage("model"):
            out = self.forward([enc], rows=positions, want_attention=opts.internals and opts.attention)
            probs = out.logits[0].softmax(dim=-1)  # (M, vocab) at the [MASK] rows
            values, predictions = probs.topk(min(opts.top_k, probs.shape[-1]))
            values, predictions = values.cpu().tolist(), predictions.cpu().tolist()
        with clock.stage("postprocess"):
            single = len(positions) == 1
            keep = ids != enc_.pad_id
            masks = []
            for pos, row_values, row_ids in zip(positions, values, predictions):
                row = []
                for v, p in zip(row_values, row_ids):
                    filled = ids.copy()
                    filled[pos] = p
                    row.append(FillMaskCandidate(float(v), int(p), enc_.decode([p]),
                                                 enc_.decode(filled[keep], skip_special_tokens=single)))
                masks.append(tuple(row))
            spans = tuple((int(enc.offsets[p][0]), int(enc.offsets[p][1])) for p in positions)
            internals = None
            if opts.internals:
                internals = FillMaskInternals(enc_.model_tokens(enc, self.attention_maps(out.attentions)),
                                              positions.astype(np.int64))
        if progress is not None:
            progress(1.0, None)
        return FillMaskResult(tuple(masks), spans, clock.timings(), internals)

    # ------------------------------------------------------------------ CLI

    @classmethod
    def add_task_arguments(cls, parser) -> None:
        from ..cliargs import bounded_int
        parser.add_argument("--top-k", type=bounded_int(1, 1000), default=5, metavar="K",
                            help="candidates per [MASK] (default 5)")

    @classmethod
    def cli_options(cls, args) -> FillMaskOptions:
        return FillMaskOptions(top_k=args.top_k)

    @classmethod
    def cli_print(cls, name: str, result: FillMaskResult, args) -> str:
        lines = [f"{name}: {len(result)} [MASK], {result.timings.total_ms:.0f} ms"]
        for n, row in enumerate(result.masks):
            if len(result) > 1:
                lines.append(f"  [MASK] {n + 1}:")
            lines += [f"  {c.score:6.3f}  {c.token_str:<16} {c.sequence}" for c in row]
        return "\n".join(lines)

