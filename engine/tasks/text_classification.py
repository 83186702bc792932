"""Text classification (sentiment and the like): BERT's sequence-classification head, as in the seed's
walk-through: the final state of the ``[CLS]`` token goes through the pooler and a linear layer, one
score per label.

    task = load_task("text-classification")     # distilbert-base-uncased-finetuned-sst-2-english
    result = task("A wonderful little film.")    # every label with its score, best first

    preprocess   ``[CLS] text [SEP]`` with the checkpoint's WordPiece tokenizer, cut at the model's
                 max length (512 tokens) as transformers' pipeline would need to (it fails instead)
    model        engine.models.bert (BERT or DistilBERT), the last layer computed for [CLS] only
    postprocess  as transformers' TextClassificationPipeline with ``top_k=None``: softmax (or sigmoid
                 for one label / multi-label, none for regression), every label sorted by score
"""
from __future__ import annotations

import numpy as np

from ..cancel import CancelToken, check
from ..catalog import ModelEntry
from ..types.text import TextClassificationInternals, TextClassificationOptions, TextClassificationResult
from .base import Progress, StageClock
from .text_common import TextTask


def scores_of(logits: np.ndarray, function: str) -> np.ndarray:
    """(num_labels,) float32 logits -> scores, as the pipeline computes them (numpy, float32)."""
    if function == "sigmoid":
        return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
    if function == "softmax":
        shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
        return (shifted / shifted.sum(axis=-1, keepdims=True)).astype(np.float32)
    return logits.astype(np.float32)


class TextClassification(TextTask):
    name = "text-classification"
    title = "Text classification"
    summary = "Classify a text (sentiment, topic...) with BERT or DistilBERT: every label with its score."
    options_type = TextClassificationOptions
    result_type = TextClassificationResult
    head = "sequence-classification"
    models = (
        ModelEntry("distilbert/distilbert-base-uncased-finetuned-sst-2-english", 268, "apache-2.0",
                   "DistilBERT fine-tuned on SST-2: POSITIVE / NEGATIVE sentiment (English)"),
    )
    command = "text-classification"
    command_help = "classify a text: sentiment and other labels (BERT, DistilBERT)"
    bench = "benchmarks.text:text_classification"

    def default_function(self) -> str:
        """What the pipeline applies when not told: by the config's problem_type and label count."""
        problem = self.model.config.problem_type
        if problem == "regression":
            return "none"
        if problem == "multi_label_classification" or len(self.label_names) == 1:
            return "sigmoid"
        return "softmax"

    def run(self, inputs: str, options: TextClassificationOptions | None = None, *,
            cancel: CancelToken | None = None, progress: Progress | None = None) -> TextClassificationResult:
        """One text -> every label (or the top k) with its score, best first."""
        opts = self._options(options)
        text = self.check_text(inputs)
        clock = StageClock(self._sync())
        with clock.stage("preprocess"):
            enc, truncated = self.encoder.encode_one(text)
        check(cancel)
        with clock.stage("model"):
            out = self.forward([enc], want_attention=opts.internals and opts.attention)
            logits = out.logits[0].cpu().numpy()  # (num_labels,)
        with clock.stage("postprocess"):
            function = opts.function_to_apply or self.default_function()
            scores = scores_of(logits, function)
            order = np.argsort(-scores, kind="stable")[: opts.top_k]  # the pipeline's sort is stable too
            internals = None
            if opts.internals:
                internals = TextClassificationInternals(
                    self.encoder.model_tokens(enc, self.attention_maps(out.attentions)), logits.astype(np.float32),
                    self.label_names)
        if progress is not None:
            progress(1.0, None)
        return TextClassificationResult(tuple(self.label_names[i] for i in order), order.astype(np.int64),
                                        scores[order], function, truncated, clock.timings(), internals)

    # ------------------------------------------------------------------ CLI

    @classmethod
    def add_task_arguments(cls, parser) -> None:
        from ..cliargs import positive_int
        parser.add_argument("--top-k", type=positive_int, default=None, metavar="K",
                            help="how many labels, best first (default: all)")

    @classmethod
    def cli_options(cls, args) -> TextClassificationOptions:
        return TextClassificationOptions(top_k=args.top_k)

    @classmethod
    def cli_print(cls, name: str, result: TextClassificationResult, args) -> str:
        lines = [f"{name}: {result.timings.total_ms:.0f} ms" + (" (cut at the model's max length)"
                                                                  if result.truncated else "")]
        lines += [f"  {score:6.3f}  {label}" for label, score in zip(result.labels, result.scores)]
        return "\n".join(lines)

