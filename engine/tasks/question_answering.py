"""Extractive question answering: BERT's span head, as in the seed's walk-through: a linear layer on
every token's final state gives two logits, how likely the answer *starts* there and how likely it
*ends* there; the answer is the best span of the context.

    task = load_task("question-answering")             # distilbert-base-cased-distilled-squad
    r = task(context, QuestionAnsweringOptions(question="Where does John live?", top_k=3))
    r.answers[0].answer, r.answers[0].start, r.answers[0].end   # a span of the context, with its score

The algorithm is transformers 4.x's QuestionAnsweringPipeline (transformers 5 dropped it), as read
from its source (4.57, ``question_answering.py``):

1. *Windows*: ``[CLS] question [SEP] context [SEP]``, the context cut so that a window holds at most
   ``max_seq_len`` = min(384, the tokenizer's max length) tokens; the rest follows in more windows
   that overlap by ``doc_stride`` = min(max_seq_len // 2, 128) tokens (``truncation="only_second"``,
   ``return_overflowing_tokens``). Each window is one model input.
2. Per window, only the context's tokens (and ``[CLS]``) may take part: every other token's start
   and end logits are set to -10000, then each is softmax-normalised over the window's tokens, and
   the first token's (``[CLS]``) probabilities are set to 0 afterwards.
3. Every span (s, e) with s <= e < s + max_answer_len (15) scores ``start[s] * end[e]``; the best
   ``2 * top_k + 10`` spans of the window are kept (only those whose start and end are context
   tokens), best first.
4. Each span is widened to whole words (``align_to_words``: the characters of the words its first
   and last tokens belong to) and becomes ``context[start:end]``; a span whose text equals (ignoring
   case) an answer found before adds its score to that answer instead (spans of the same words, the
   same text in overlapping windows).
5. The answers, over all windows, sorted by score; the first ``top_k``.

Here the windows of one length (all but the last are full) run in batches, unpadded, so each
window's scores are what it alone gives. Spans scoring exactly 0 (impossible ones, which
4.x could list after the possible ones in contexts of a few tokens) are never answers.
"""
from __future__ import annotations

import numpy as np

from ..cancel import CancelToken, check
from ..catalog import ModelEntry
from ..types.text import (Answer, QAWindow, QuestionAnsweringInternals, QuestionAnsweringOptions,
                          QuestionAnsweringResult)
from .base import Progress, StageClock
from .text_common import TextTask

#: windows per forward pass (of one length, so never padded): on a CPU a 384-token window is GEMMs
#: big enough on its own (batching measured no faster); a GPU wants more work per call
BATCH = {"cpu": 1}
GPU_BATCH = 8


def window_spans(start_logits: np.ndarray, end_logits: np.ndarray, answerable: np.ndarray, top_k: int,
                 max_answer_len: int) -> list[tuple[int, int, float]]:
    """One window's candidate spans (steps 2-3 of the module docstring): (T,) float32 start and end
    logits, (T,) bool the tokens an answer may use ([CLS] excluded) -> up to ``top_k`` (start token,
    end token, score), best first, every score > 0."""
    allowed = answerable.copy()
    allowed[0] = True  # [CLS] takes part in the softmax (then gets probability 0), as in the pipeline
    start = np.where(allowed, start_logits, np.float32(-10000.0)).astype(np.float32)
    end = np.where(allowed, end_logits, np.float32(-10000.0)).astype(np.float32)
    start = np.exp(start - start.max())
    start = start / start.sum()
    end = np.exp(end - end.max())
    end = end / end.sum()
    start[0] = end[0] = 0.0
    scores = np.tril(np.triu(start[:, None] * end[None, :]), max_answer_len - 1)  # (T, T): s <= e < s + max
    scores[~answerable, :] = 0.0
    scores[:, ~answerable] = 0.0
    flat = scores.ravel()
    k = min(top_k, int((flat > 0).sum()))
    if k == 0:
        return []
    best = np.argpartition(-flat, k - 1)[:k] if k < flat.size else np.arange(flat.size)
    best = best[np.argsort(-flat[best], kind="stable")]
    t = scores.shape[1]
    return [(int(i // t), int(i % t), float(flat[i])) for i in best]


class QuestionAnswering(TextTask):
    name = "question-answering"
    title = "Question answering"
    summary = "Answer a question with a span of a text (BERT / DistilBERT span start and end logits)."
    options_type = QuestionAnsweringOptions
    result_type = QuestionAnsweringResult
    head = "question-answering"
    models = (
        ModelEntry("distilbert/distilbert-base-cased-distilled-squad", 261, "apache-2.0",
                   "DistilBERT distilled on SQuAD v1.1 (English)"),
    )
    command = "question-answering"
    command_help = "answer a question from a text (DistilBERT SQuAD)"
    bench = "benchmarks.text:question_answering"
    text_help = "the context to find the answer in (or - to read standard input)"
    pack_rows = 384  # a full window

    def windows(self, question: str, context: str, opts: QuestionAnsweringOptions) -> list:
        """The model inputs (tokenizers Encodings), in context order (step 1)."""
        max_len = min(opts.max_seq_len, self.encoder.max_length)
        stride = opts.doc_stride if opts.doc_stride is not None else min(max_len // 2, 128)
        return self.encoder.encode(question, context, max_length=max_len, stride=stride, strategy="only_second")

    def run(self, inputs: str, options: QuestionAnsweringOptions | None = None, *,
            cancel: CancelToken | None = None, progress: Progress | None = None) -> QuestionAnsweringResult:
        """``inputs``: the context; the question is in the options -> the top-k answers, best first."""
        opts = self._options(options)
        context = self.check_text(inputs, "The context")
        clock = StageClock(self._sync())
        with clock.stage("preprocess"):
            encodings = self.windows(opts.question, context, opts)
        logits: list[tuple[np.ndarray, np.ndarray] | None] = [None] * len(encodings)
        done = 0
        for batch in self._batches(encodings):
            check(cancel)
            with clock.stage("model"):
                out = self.forward([encodings[i] for i in batch]).logits.cpu().numpy()  # (b, T, 2)
            for row, i in enumerate(batch):
                logits[i] = (out[row, :, 0], out[row, :, 1])
            done += len(batch)
            if progress is not None:
                progress(done / len(encodings), None)
        with clock.stage("postprocess"):
            answers, best_window = self._answers(context, encodings, logits, opts)
            internals = self._internals(encodings, logits, best_window, opts) if opts.internals else None
        return QuestionAnsweringResult(tuple(answers), opts.question, len(encodings), clock.timings(), internals)

    def _batches(self, encodings) -> list[list[int]]:
        """Window indices in batches of up to BATCH windows of one length (all but the last window are
        full), so that no compute goes to padding."""
        size = BATCH.get(self.placement.device.type, GPU_BATCH)
        by_length: dict[int, list[int]] = {}
        for i, enc in enumerate(encodings):
            by_length.setdefault(len(enc.ids), []).append(i)
        return [group[j:j + size] for group in by_length.values() for j in range(0, len(group), size)]

    def _answers(self, context: str, encodings, logits, opts) -> tuple[list[Answer], int]:
        """Steps 2-5: the answers best first, and the window the best came from (-1: none)."""
        found: list[dict] = []  # {"score", "start", "end", "answer", "window"}, in the order first found
        pre_k = opts.top_k * 2 + 10 if opts.align_to_words else opts.top_k
        for w, (enc, (start_logits, end_logits)) in enumerate(zip(encodings, logits)):
            answerable = np.array([s == 1 for s in enc.sequence_ids], bool)  # the context's tokens
            for s, e, score in window_spans(start_logits, end_logits, answerable, pre_k, opts.max_answer_len):
                a, b = self._chars(enc, s, e, opts.align_to_words)
                text = context[a:b]
                same = next((x for x in found if x["answer"].lower() == text.lower()), None)
                if same is not None:
                    same["score"] += score
                else:
                    found.append({"score": score, "start": a, "end": b, "answer": text, "window": w})
        found.sort(key=lambda x: x["score"], reverse=True)
        best = found[0]["window"] if found else -1
        return [Answer(x["score"], x["start"], x["end"], x["answer"]) for x in found[:opts.top_k]], best

    @staticmethod
    def _chars(enc, s: int, e: int, align_to_words: bool) -> tuple[int, int]:
        """A span of tokens -> its characters in the context (widened to whole words when asked)."""
        if align_to_words:
            first, last = enc.token_to_word(s), enc.token_to_word(e)
            if first is not None and last is not None:
                a = enc.word_to_chars(first, sequence_index=1)
                b = enc.word_to_chars(last, sequence_index=1)
                if a is not None and b is not None:
                    return int(a[0]), int(b[1])
        return int(enc.offsets[s][0]), int(enc.offsets[e][1])

    def _internals(self, encodings, logits, best_window: int, opts) -> QuestionAnsweringInternals:
        windows = []
        for w, (enc, (start_logits, end_logits)) in enumerate(zip(encodings, logits)):
            attentions = None
            if opts.attention and w == best_window:
                attentions = self.attention_maps(self.forward([enc], want_attention=True).attentions)
            answerable = np.array([s == 1 for s in enc.sequence_ids], bool)
            spans = np.asarray(enc.offsets, np.int64).reshape(-1, 2)[answerable]
            span = (int(spans[:, 0].min()), int(spans[:, 1].max())) if len(spans) else (0, 0)
            windows.append(QAWindow(self.encoder.model_tokens(enc, attentions), start_logits.astype(np.float32),
                                    end_logits.astype(np.float32), answerable, span))
        return QuestionAnsweringInternals(tuple(windows), best_window)

    # ------------------------------------------------------------------ CLI

    @classmethod
    def add_task_arguments(cls, parser) -> None:
        from ..cliargs import bounded_int
        parser.add_argument("--question", metavar="Q", default="", help="the question to answer (required)")
        parser.add_argument("--top-k", type=bounded_int(1, 100), default=1, metavar="K",
                            help="how many answers, best first (default 1)")

    @classmethod
    def cli_options(cls, args) -> QuestionAnsweringOptions:
        return QuestionAnsweringOptions(question=args.question, top_k=args.top_k)

    @classmethod
    def cli_print(cls, name: str, result: QuestionAnsweringResult, args) -> str:
        lines = [f"{name}: {result.question!r}: {len(result)} answer(s), {result.num_windows} window(s), "
                 f"{result.timings.total_ms:.0f} ms"]
        if not result.answers:
            lines.append("  (no answer found)")
        lines += [f"  {a.score:6.3f}  {a.answer!r} [{a.start}:{a.end}]" for a in result.answers]
        return "\n".join(lines)
