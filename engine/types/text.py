"""Text options and results: text classification, token classification (NER), question answering,
fill-mask, sentence similarity (torch-free).

Every result's ``to_json()`` is what transformers' pipeline returns for the same task (the 4.x
question-answering pipeline for answers), so ``--json`` output can be compared with it as is.
Results carry ``internals`` (None unless the options ask ``internals=True``): the tokens as the
model saw them (:class:`ModelTokens`) and what the head computed from them; attention maps only
when ``attention=True`` as well (they are larger: layers x heads x T x T floats).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import Timings

__all__ = [
    "ModelTokens", "TextClassificationOptions", "TextClassificationInternals", "TextClassificationResult",
    "AGGREGATIONS", "TokenClassificationOptions", "Entity", "TokenClassificationInternals",
    "TokenClassificationResult", "QuestionAnsweringOptions", "Answer", "QAWindow", "QuestionAnsweringInternals",
    "QuestionAnsweringResult", "FillMaskOptions", "FillMaskCandidate", "FillMaskInternals", "FillMaskResult",
    "SentenceSimilarityOptions", "SentenceSimilarityInternals", "SentenceSimilarityResult",
    "TextGenerationOptions", "GenerationStep", "TextGenerationInternals", "TextGenerationResult",
    "SummarizationOptions", "SummarizationResult", "TranslationOptions", "TranslationResult",
]


def _input_error(message: str):
    from ..errors import InputError
    return InputError(message)


def _check_flag(value, name: str) -> None:
    if not isinstance(value, bool):
        raise _input_error(f"{name} must be True or False, got {value!r}.")


def _check_count(value, name: str, low: int = 1, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        span = f"at least {low}" if high is None else f"between {low} and {high}"
        raise _input_error(f"{name} must be a whole number {span}, got {value!r}.")


@dataclass(frozen=True)
class ModelTokens:
    """One model input exactly as the model read it: T tokens, special ones included.

    ``tokens``: the vocabulary pieces, e.g. ``("[CLS]", "play", "##ing", "[SEP]")``.
    ``ids``: (T,) int64 their vocabulary ids.
    ``segment_ids``: (T,) int64 the segment (``token_type_ids``) each token was embedded with: 0 for
    the first text and its ``[CLS]``/``[SEP]``, 1 for the second (question answering: the context).
    DistilBERT has no segment embeddings; the ids are still shown.
    ``sequence_ids``: (T,) int8 which input text a token comes from: 0 the first, 1 the second, -1 a
    special token added by the tokenizer.
    ``offsets``: (T, 2) int64 the [start, end) characters of each token in the text it comes from
    (that text's own indices; (0, 0) for special tokens).
    ``attentions``: when asked, per layer (heads, T, T) float32 self-attention probabilities: row i
    is where token i looks, over the T tokens (each row sums to 1); None otherwise.
    """

    tokens: tuple[str, ...]
    ids: np.ndarray
    segment_ids: np.ndarray
    sequence_ids: np.ndarray
    offsets: np.ndarray
    attentions: tuple[np.ndarray, ...] | None = None

    def __len__(self) -> int:
        return len(self.tokens)


# ------------------------------------------------------------------------------ text classification

@dataclass(frozen=True)
class TextClassificationOptions:
    top_k: int | None = None  # how many labels, best first; None: all of them
    #: "softmax", "sigmoid" or "none" (raw logits); None: as the pipeline decides from the config
    #: (regression: none; one label or multi-label: sigmoid; else softmax)
    function_to_apply: str | None = None
    internals: bool = False  # also return the tokens and the logits
    attention: bool = False  # with internals: every layer's attention maps

    def check(self) -> None:
        if self.top_k is not None:
            _check_count(self.top_k, "top-k")
        if self.function_to_apply not in (None, "softmax", "sigmoid", "none"):
            raise _input_error(f"function_to_apply must be softmax, sigmoid or none, got {self.function_to_apply!r}.")
        _check_flag(self.internals, "internals")
        _check_flag(self.attention, "attention")


@dataclass(frozen=True)
class TextClassificationInternals:
    tokens: ModelTokens  # what the model read ([CLS] text [SEP]); the head reads the final [CLS] state
    logits: np.ndarray  # (num_labels,) float32, in label-id order (the config's id2label)
    label_names: tuple[str, ...]  # all labels in id order


@dataclass(frozen=True)
class TextClassificationResult:
    labels: tuple[str, ...]  # best first
    label_ids: np.ndarray  # (k,) int64
    scores: np.ndarray  # (k,) float32, after ``function`` (probabilities unless "none")
    function: str  # "softmax" | "sigmoid" | "none": what turned logits into scores
    truncated: bool  # the text was longer than the model reads; its first tokens were classified
    timings: Timings = Timings()
    internals: TextClassificationInternals | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def to_json(self) -> list[dict]:
        """The pipeline's ``top_k=None`` answer: ``[{"label", "score"}, ...]`` best first."""
        return [{"label": l, "score": float(s)} for l, s in zip(self.labels, self.scores)]


# ------------------------------------------------------------------------------ token classification

#: the pipeline's aggregation strategies (transformers' AggregationStrategy)
AGGREGATIONS = ("none", "simple", "first", "average", "max")


@dataclass(frozen=True)
class TokenClassificationOptions:
    #: how per-token tags become entities, exactly as the pipeline: "none" (every token on its own),
    #: "simple" (adjacent tokens with the same tag grouped, B- starts a new entity), "first" /
    #: "average" / "max" (words never split: a word's tag from its first token / its tokens'
    #: averaged scores / its most confident token, then grouped as "simple")
    aggregation: str = "simple"
    ignore_labels: tuple[str, ...] = ("O",)  # tags that are not entities
    internals: bool = False  # also return every token's raw tag and probabilities
    attention: bool = False

    def check(self) -> None:
        if self.aggregation not in AGGREGATIONS:
            raise _input_error(f"aggregation must be one of {', '.join(AGGREGATIONS)}, got {self.aggregation!r}.")
        if not isinstance(self.ignore_labels, tuple) or not all(isinstance(l, str) for l in self.ignore_labels):
            raise _input_error("ignore_labels must be a tuple of label names.")
        _check_flag(self.internals, "internals")
        _check_flag(self.attention, "attention")


@dataclass(frozen=True)
class Entity:
    """An entity (or, with aggregation "none", one token) with its place in the original text."""

    label: str  # "PER", "LOC"... (grouped: the tag without B-/I-) or "B-PER"... (aggregation "none")
    score: float  # probability of the label (grouped: the mean over the entity's tokens / words)
    word: str  # the tokens decoded ("New York", "##soft" for a lone piece); the text itself is text[start:end]
    start: int  # character offsets into the original text, [start, end)
    end: int
    index: int | None = None  # aggregation "none": the token's index in the model input ([CLS] is 0)

    def to_json(self) -> dict:
        if self.index is not None:
            return {"entity": self.label, "score": float(self.score), "index": int(self.index), "word": self.word,
                    "start": int(self.start), "end": int(self.end)}
        return {"entity_group": self.label, "score": float(self.score), "word": self.word,
                "start": int(self.start), "end": int(self.end)}


@dataclass(frozen=True)
class TokenClassificationInternals:
    """Every token's raw tag beside the aggregated entities."""

    tokens: ModelTokens
    label_names: tuple[str, ...]  # all tags in id order ("O", "B-MISC", "I-MISC", "B-PER", ...)
    tags: tuple[str, ...]  # (T,) the argmax tag of every token (special tokens too; the pipeline skips them)
    tag_scores: np.ndarray  # (T,) float32 its probability
    probs: np.ndarray  # (T, num_labels) float32 softmax over the tags, per token
    is_subword: np.ndarray  # (T,) bool: the token continues the word before it (how first/average/max group)


@dataclass(frozen=True)
class TokenClassificationResult:
    entities: tuple[Entity, ...]  # in text order
    aggregation: str
    truncated: bool  # the text was longer than the model reads; entities cover its first tokens only
    timings: Timings = Timings()
    internals: TokenClassificationInternals | None = None

    def __len__(self) -> int:
        return len(self.entities)

    def to_json(self) -> list[dict]:
        """The pipeline's list: ``{"entity_group", "score", "word", "start", "end"}`` per entity, or
        ``{"entity", "score", "index", "word", "start", "end"}`` per token for aggregation "none"."""
        return [e.to_json() for e in self.entities]


# ------------------------------------------------------------------------------ question answering

@dataclass(frozen=True)
class QuestionAnsweringOptions:
    """The question for the context the task is called with, and the 4.x pipeline's settings."""

    question: str = ""
    top_k: int = 1  # answers, best first (fewer when the context has fewer possible spans)
    max_answer_len: int = 15  # tokens
    max_seq_len: int = 384  # tokens per window (question + context + special tokens); at most the model's
    doc_stride: int | None = None  # tokens of context shared by consecutive windows; None: min(max_seq_len // 2, 128)
    align_to_words: bool = True  # widen an answer to whole words (pieces of a word never cut)
    internals: bool = False  # also return every window's tokens and start / end logits
    attention: bool = False  # with internals: attention maps of the best answer's window

    def check(self) -> None:
        from ..io.text import MAX_QUESTION_CHARS, check_text
        if not isinstance(self.question, str) or not self.question.strip():
            raise _input_error("Question answering needs a question (--question): what should be found in the text?")
        check_text(self.question, "The question", MAX_QUESTION_CHARS)
        _check_count(self.top_k, "top-k", 1, 100)
        _check_count(self.max_answer_len, "max answer length", 1, 512)
        _check_count(self.max_seq_len, "max_seq_len", 16, 512)
        if self.doc_stride is not None:
            _check_count(self.doc_stride, "doc_stride", 0, self.max_seq_len - 1)
        _check_flag(self.align_to_words, "align_to_words")
        _check_flag(self.internals, "internals")
        _check_flag(self.attention, "attention")


@dataclass(frozen=True)
class Answer:
    score: float  # start probability x end probability (summed over windows / spans giving the same text)
    start: int  # character offsets into the context, [start, end)
    end: int
    answer: str  # context[start:end]

    def to_json(self) -> dict:
        return {"score": float(self.score), "start": int(self.start), "end": int(self.end), "answer": self.answer}


@dataclass(frozen=True)
class QAWindow:
    """One model input: ``[CLS] question [SEP] a window of the context [SEP]``."""

    tokens: ModelTokens  # offsets of context tokens index the context, of question tokens the question
    start_logits: np.ndarray  # (T,) float32: how likely each token starts the answer (before softmax)
    end_logits: np.ndarray  # (T,) float32: how likely it ends it
    answerable: np.ndarray  # (T,) bool: the tokens an answer may use (the context's; not the question or [SEP])
    context_span: tuple[int, int]  # the [start, end) characters of the context this window covers


@dataclass(frozen=True)
class QuestionAnsweringInternals:
    windows: tuple[QAWindow, ...]  # in context order; attentions only in the best answer's window
    best_window: int  # index of the window the best answer came from (-1: no answer)


@dataclass(frozen=True)
class QuestionAnsweringResult:
    answers: tuple[Answer, ...]  # best first
    question: str
    num_windows: int  # how many windows the context was split into
    timings: Timings = Timings()
    internals: QuestionAnsweringInternals | None = None

    def __len__(self) -> int:
        return len(self.answers)

    def to_json(self) -> dict | list[dict]:
        """As the pipeline: one ``{"score", "start", "end", "answer"}`` for a single answer, else a list."""
        items = [a.to_json() for a in self.answers]
        return items[0] if len(items) == 1 else items


# ------------------------------------------------------------------------------ fill-mask

@dataclass(frozen=True)
class FillMaskOptions:
    top_k: int = 5  # candidates per [MASK]
    internals: bool = False  # also return the tokens and where the masks are
    attention: bool = False

    def check(self) -> None:
        _check_count(self.top_k, "top-k", 1, 1000)
        _check_flag(self.internals, "internals")
        _check_flag(self.attention, "attention")


@dataclass(frozen=True)
class FillMaskCandidate:
    score: float  # probability of the token at this [MASK]
    token: int  # its vocabulary id
    token_str: str  # the token decoded ("paris", "##ing")
    sequence: str  # the text with this [MASK] filled (as the pipeline: decoded tokens; with several
    #: masks the other [MASK]s, [CLS] and [SEP] stay in it)

    def to_json(self) -> dict:
        return {"score": float(self.score), "token": int(self.token), "token_str": self.token_str,
                "sequence": self.sequence}


@dataclass(frozen=True)
class FillMaskInternals:
    tokens: ModelTokens
    mask_positions: np.ndarray  # (M,) int64 token index of each [MASK] in the model input


@dataclass(frozen=True)
class FillMaskResult:
    masks: tuple[tuple[FillMaskCandidate, ...], ...]  # per [MASK] in text order, its candidates best first
    mask_spans: tuple[tuple[int, int], ...]  # per [MASK], its [start, end) characters in the text
    timings: Timings = Timings()
    internals: FillMaskInternals | None = None

    def __len__(self) -> int:
        return len(self.masks)

    def to_json(self) -> list:
        """As the pipeline: the candidates' list for one [MASK], a list of such lists for several."""
        rows = [[c.to_json() for c in row] for row in self.masks]
        return rows[0] if len(rows) == 1 else rows


# ------------------------------------------------------------------------------ sentence similarity

@dataclass(frozen=True)
class SentenceSimilarityOptions:
    """The sentences to compare the one the task is called with against."""

    candidates: tuple[str, ...] = ()
    internals: bool = False  # also return every sentence's tokens

    def check(self) -> None:
        from ..io.text import MAX_CANDIDATES, check_text
        if not isinstance(self.candidates, tuple) or not self.candidates:
            raise _input_error("Sentence similarity needs sentences to compare with (--candidates A B ...).")
        if len(self.candidates) > MAX_CANDIDATES:
            raise _input_error(f"{len(self.candidates)} sentences to compare with; at most {MAX_CANDIDATES}.")
        for i, c in enumerate(self.candidates):
            check_text(c, f"Sentence {i + 1} to compare with")
        _check_flag(self.internals, "internals")


@dataclass(frozen=True)
class SentenceSimilarityInternals:
    tokens: tuple[ModelTokens, ...]  # the source sentence first, then each candidate


@dataclass(frozen=True)
class SentenceSimilarityResult:
    sentence: str  # the source sentence
    candidates: tuple[str, ...]
    scores: np.ndarray  # (N,) float32 cosine similarity of each candidate to the sentence, in candidate order
    ranking: np.ndarray  # (N,) int64 candidate indices, most similar first
    embeddings: np.ndarray  # (1 + N, D) float32 sentence embeddings (source first), as the checkpoint pools them
    pooling: str  # "mean" | "cls" | "max" (+ ", normalized" when the checkpoint normalises)
    timings: Timings = Timings()
    internals: SentenceSimilarityInternals | None = None
    truncated: tuple[bool, ...] = field(default=())  # per sentence (source first): cut at the model's max length

    def __len__(self) -> int:
        return len(self.candidates)

    def to_json(self) -> list[float]:
        """As the Hub's sentence-similarity task: one score per candidate, in candidate order."""
        return [float(s) for s in self.scores]


# ------------------------------------------------------------------------------ text generation

#: the most new tokens one generation asks for (GPT-2 reads 1,024 tokens in all)
MAX_NEW_TOKENS = 1024
MAX_BEAMS = 16


def _check_number(value, name: str, low: float, high: float, low_open: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high
    if not ok:
        span = f"{'above' if low_open else 'at least'} {low:g} and at most {high:g}"
        raise _input_error(f"{name} must be a number {span}, got {value!r}.")


@dataclass(frozen=True)
class TextGenerationOptions:
    """How to continue the prompt (the defaults: greedy, as transformers' generate without settings)."""

    max_new_tokens: int = 50
    do_sample: bool = False  # sample from the (warped) distribution instead of taking the best token
    num_beams: int = 1  # > 1: beam search
    temperature: float = 1.0  # sampling: < 1 sharper, > 1 flatter
    top_k: int = 50  # sampling: only the k most likely tokens (0: all)
    top_p: float = 1.0  # sampling: only the most likely tokens whose probabilities add up to p
    repetition_penalty: float = 1.0  # > 1 discourages tokens already in the text
    no_repeat_ngram_size: int = 0  # > 0: never repeat an n-gram of this size
    length_penalty: float = 1.0  # beam search: > 1 favours longer continuations
    early_stopping: bool | str = False  # beam search: True, False or "never", as transformers'
    min_new_tokens: int = 0  # no end-of-text before this many new tokens
    seed: int | None = None  # sampling: the same seed, the same text
    #: a prompt that leaves no room for max_new_tokens: keep its last tokens (True) or refuse (False)
    truncate_prompt: bool = False
    top_candidates: int = 10  # per step, the alternatives kept in the internals
    internals: bool = False  # also return every step's probabilities and candidates (and the beams)

    def check(self) -> None:
        _check_count(self.max_new_tokens, "max-new-tokens", 1, MAX_NEW_TOKENS)
        _check_flag(self.do_sample, "do-sample")
        _check_count(self.num_beams, "num-beams", 1, MAX_BEAMS)
        _check_number(self.temperature, "temperature", 0.0, 100.0, low_open=True)
        _check_count(self.top_k, "top-k", 0)
        _check_number(self.top_p, "top-p", 0.0, 1.0, low_open=True)
        _check_number(self.repetition_penalty, "repetition-penalty", 0.0, 100.0, low_open=True)
        _check_count(self.no_repeat_ngram_size, "no-repeat-ngram-size", 0, 64)
        _check_number(self.length_penalty, "length-penalty", -10.0, 10.0)
        if self.early_stopping not in (True, False, "never"):
            raise _input_error(f"early-stopping must be True, False or 'never', got {self.early_stopping!r}.")
        _check_count(self.min_new_tokens, "min-new-tokens", 0, MAX_NEW_TOKENS)
        if self.seed is not None:
            _check_count(self.seed, "seed", 0, 2 ** 63 - 1)
        _check_flag(self.truncate_prompt, "truncate-prompt")
        _check_count(self.top_candidates, "top-candidates", 1, 100)
        _check_flag(self.internals, "internals")


@dataclass(frozen=True)
class GenerationStep:
    """One new token and why: its probability and the alternatives at that step (softmax of the
    model's raw logits, before any penalty or warping)."""

    token_id: int
    token_text: str  # the token decoded alone (may be part of a character: byte-level BPE)
    prob: float
    top_ids: np.ndarray  # (K,) int64 the most likely tokens at this step, best first
    top_texts: tuple[str, ...]
    top_probs: np.ndarray  # (K,) float32
    #: beam search: the live beams after this step, best first: (their new token ids, score)
    beams: tuple[tuple[tuple[int, ...], float], ...] = ()


@dataclass(frozen=True)
class TextGenerationInternals:
    steps: tuple[GenerationStep, ...]  # one per step (beam search: the best live beam's token)
    prompt_tokens: tuple[str, ...]  # the prompt (encoder-decoders: the source) as the model read it
    #: encoder-decoders (BART, T5), final results only: (layers, N, S) float32, the decoder's
    #: cross-attention averaged over heads, from each of the N tokens of the final output after the
    #: decoder start (row i: output_ids[i + 1], the step that chose it, whose decoder input was
    #: output_ids[i]) onto the S source tokens (``prompt_tokens``); each row sums to 1. Computed once
    #: at the end by one teacher-forced decoder pass over the final output ids (exact for beam search
    #: too). None for GPT-2 and for partial results.
    cross_attention: np.ndarray | None = None


@dataclass(frozen=True)
class TextGenerationResult:
    prompt: str
    text: str  # the continuation (special tokens left out)
    prompt_ids: np.ndarray  # (P,) int64 the prompt's token ids as the model read them
    generated_ids: np.ndarray  # (N,) int64 the new tokens (end-of-text included when produced)
    stopped_by: str  # "eos" (the model ended the text), "length" (max-new-tokens) or "" (partial result)
    tokens_per_s: float
    done: bool = True  # False for the partial results Task.stream yields
    prompt_truncated: bool = False  # the prompt's first tokens were cut (truncate_prompt)
    score: float | None = None  # beam search: the sequence's score
    timings: Timings = Timings()
    internals: TextGenerationInternals | None = None

    @property
    def generated_text(self) -> str:
        """The prompt and its continuation, as transformers' text-generation pipeline returns it."""
        return self.prompt + self.text

    def __len__(self) -> int:
        return int(self.generated_ids.shape[0])

    def to_json(self) -> dict:
        return {"generated_ids": [int(i) for i in self.generated_ids], "text": self.text}


# ------------------------------------------------------------------------------ summarization

def _check_seq2seq(self) -> None:
    """The checks SummarizationOptions and TranslationOptions share."""
    if self.max_length is not None:
        _check_count(self.max_length, "max-length", 2, MAX_NEW_TOKENS)
    if self.min_length is not None:
        _check_count(self.min_length, "min-length", 0, MAX_NEW_TOKENS)
    if self.max_length is not None and self.min_length is not None and self.min_length > self.max_length:
        raise _input_error(f"min-length ({self.min_length}) is more than max-length ({self.max_length}).")
    if self.num_beams is not None:
        _check_count(self.num_beams, "num-beams", 1, MAX_BEAMS)
    if self.length_penalty is not None:
        _check_number(self.length_penalty, "length-penalty", -10.0, 10.0)
    if self.no_repeat_ngram_size is not None:
        _check_count(self.no_repeat_ngram_size, "no-repeat-ngram-size", 0, 64)
    if self.early_stopping not in (None, True, False, "never"):
        raise _input_error(f"early-stopping must be True, False or 'never', got {self.early_stopping!r}.")
    _check_flag(self.internals, "internals")


@dataclass(frozen=True)
class BeamSearchOptions:
    """The beam-search settings of an encoder-decoder task; None: the checkpoint's own."""

    max_length: int | None = None  # of the output in tokens, the decoder start included (as generate's)
    min_length: int | None = None
    num_beams: int | None = None
    length_penalty: float | None = None
    no_repeat_ngram_size: int | None = None
    early_stopping: bool | str | None = None
    internals: bool = False  # every step's candidates and the beams; the final result's cross-attention

    def check(self) -> None:
        _check_seq2seq(self)


@dataclass(frozen=True)
class SummarizationOptions(BeamSearchOptions):
    """Beam-search settings; None: the checkpoint's own (generation_config.json, else config.json;
    T5: its task_specific_params["summarization"] over them, as transformers' pipeline)."""


@dataclass(frozen=True)
class SummarizationResult:
    summary_text: str
    output_ids: np.ndarray  # (N,) int64 as generate returns them: the decoder start token first
    input_ids: np.ndarray  # (S,) int64 the source as the encoder read it
    truncated: bool  # the source was cut at the model's max length
    stopped_by: str  # "eos" | "length" | "" (a partial result)
    step: int = 0  # decoding steps done
    max_steps: int = 0  # at most this many (max_length - 1)
    done: bool = True
    timings: Timings = Timings()
    internals: TextGenerationInternals | None = None

    @property
    def text(self) -> str:
        """The output text (what the app shows and copies)."""
        return self.summary_text

    def to_json(self) -> dict:
        return {"output_ids": [int(i) for i in self.output_ids], "summary_text": self.summary_text}


# ------------------------------------------------------------------------------ translation

@dataclass(frozen=True)
class TranslationOptions(BeamSearchOptions):
    """The target language and beam-search settings; None: the checkpoint's own (its
    task_specific_params["translation_en_to_<target>"] over generation_config.json, as transformers'
    translation pipeline)."""

    target: str | None = None  # "de", "fr", "ro" (t5-small's); None: the checkpoint's first

    def check(self) -> None:
        if self.target is not None and (not isinstance(self.target, str) or not self.target
                                        or len(self.target) > 16 or not self.target.replace("_", "").isalnum()):
            raise _input_error(f"target must be a language code such as de, fr or ro, got {self.target!r}.")
        super().check()


@dataclass(frozen=True)
class TranslationResult:
    translation_text: str
    output_ids: np.ndarray  # (N,) int64 as generate returns them: the decoder start token first
    input_ids: np.ndarray  # (S,) int64 the source as the encoder read it (the task prefix included)
    truncated: bool  # the source was cut at the model's max length
    stopped_by: str  # "eos" | "length" | "" (a partial result)
    step: int = 0  # decoding steps done
    max_steps: int = 0  # at most this many (max_length - 1)
    done: bool = True
    timings: Timings = Timings()
    internals: TextGenerationInternals | None = None
    target: str = ""  # the language code translated into ("de")
    target_name: str = ""  # its name as the prefix says it ("German")

    @property
    def text(self) -> str:
        """The output text (what the app shows and copies)."""
        return self.translation_text

    def to_json(self) -> dict:
        return {"output_ids": [int(i) for i in self.output_ids], "translation_text": self.translation_text}
