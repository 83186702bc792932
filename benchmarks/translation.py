"""`python main.py bench translation`: our translation task (T5 + engine.generation, end to end: the
prefix, tokenizing, the encoder once, beam search with the KV cache, decoding the text) vs transformers'
T5 tokenizer + ``generate`` + decode on the same checkpoint, the same text and the same settings (the
checkpoint's task_specific_params entry, as its translation pipeline used them; ``--num-beams`` /
``--max-length`` override both), batch 1, one process, interleaved runs; medians over ``--repeats``
after a warm-up. The output ids are compared (exact precision: they must be identical).

A decoding step at batch 1 (one row per beam) reads every decoder weight and the LM head once, so its
floor is memory bandwidth: the bytes of those weights over this machine's read bandwidth measured now
(benchmarks.floor); "× floor" is our time per step over that. The FLOP floor of one step is beside it.

Without ``--model``: google-t5/t5-small when it is in the cache, else a random-weight checkpoint of
its shape (6 + 6 layers, 512 wide, 32,128 embedding rows, t5-small's task_specific_params; built once
under ~/.cache/taskscope/bench with a small made-up Unigram tokenizer).
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

from benchmarks.text_generation import RANDOM_ROOT

DEFAULT = "google-t5/t5-small"
TEXT = ("The house is wonderful. My friend lives in the north of the country and works for a company in the old "
        "city, near the river that flows past the tower people built many years ago.")
#: google-t5/t5-small's config.json task_specific_params
T5_SMALL_PARAMS = {
    "summarization": {"early_stopping": True, "length_penalty": 2.0, "max_length": 200, "min_length": 30,
                      "no_repeat_ngram_size": 3, "num_beams": 4, "prefix": "summarize: "},
    "translation_en_to_de": {"early_stopping": True, "max_length": 300, "num_beams": 4,
                             "prefix": "translate English to German: "},
    "translation_en_to_fr": {"early_stopping": True, "max_length": 300, "num_beams": 4,
                             "prefix": "translate English to French: "},
    "translation_en_to_ro": {"early_stopping": True, "max_length": 300, "num_beams": 4,
                             "prefix": "translate English to Romanian: "},
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="ID|DIR", help="hub id or T5 checkpoint folder")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N")
    p.add_argument("--precision", choices=("exact", "fast"), default="exact")
    p.add_argument("--target", dest="language", default="de", help="de (default), fr, ro: a task_specific_params translation")
    p.add_argument("--text", default=TEXT, help="the English text to translate")
    p.add_argument("--num-beams", type=int, default=None, metavar="K", help="default: the checkpoint's (t5-small: 4)")
    p.add_argument("--max-length", type=int, default=None, metavar="N",
                   help="default: the checkpoint's (t5-small: 300)")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per implementation (after 1 warm-up)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for both")


def _tokenizer_json(folder: Path) -> None:
    """A small made-up Unigram in T5's tokenizer.json layout (the timings do not depend on it)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.train_from_iterator([TEXT, "translate English to German: ", "translate English to French: "] * 20,
                            trainers.UnigramTrainer(vocab_size=200, special_tokens=["<pad>", "</s>", "<unk>"],
                                                    unk_token="<unk>", show_progress=False))
    doc = json.loads(tok.to_str())
    n = len(doc["model"]["vocab"])
    sentinels = [f"<extra_id_{i}>" for i in range(99, -1, -1)]
    doc["model"]["vocab"] += [[s, 0.0] for s in sentinels]
    doc["model"]["unk_id"] = 2
    doc["added_tokens"] = [{"id": i, "content": c, "special": True, "single_word": False, "lstrip": False,
                            "rstrip": False, "normalized": False}
                           for i, c in [(0, "<pad>"), (1, "</s>"), (2, "<unk>")] + list(enumerate(sentinels, n))]
    doc["decoder"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": True}
    doc["post_processor"] = {"type": "TemplateProcessing",
                             "single": [{"Sequence": {"id": "A", "type_id": 0}},
                                        {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                             "pair": [{"Sequence": {"id": "A", "type_id": 0}},
                                      {"SpecialToken": {"id": "</s>", "type_id": 0}},
                                      {"Sequence": {"id": "B", "type_id": 0}},
                                      {"SpecialToken": {"id": "</s>", "type_id": 0}}],
                             "special_tokens": {"</s>": {"id": "</s>", "ids": [1], "tokens": ["</s>"]}}}
    (folder / "tokenizer.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")


def build_random() -> Path:
    """A random-weight T5 of t5-small's shape in its hub layout (tied embeddings, no lm_head)."""
    folder = RANDOM_ROOT / "t5-small-random"
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import T5Config, T5ForConditionalGeneration
    folder.mkdir(parents=True, exist_ok=True)
    _tokenizer_json(folder)
    torch.manual_seed(0)
    model = T5ForConditionalGeneration(T5Config(vocab_size=32128, decoder_start_token_id=0)).eval()
    model.save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(architectures=["T5WithLMHeadModel"], n_positions=512, task_specific_params=T5_SMALL_PARAMS)
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    return folder


def _checkpoint(model: str | None) -> tuple[str, Path]:
    from engine import hub
    if model:
        return model, hub.resolve(model)
    if hub.is_cached(DEFAULT):
        return DEFAULT, hub.resolve(DEFAULT)
    return f"{DEFAULT} shape (RANDOM weights)", build_random()


def run(args) -> int:
    import torch
    from transformers import AutoTokenizer, T5ForConditionalGeneration

    from benchmarks.floor import (
        count_flops, cpu_name, flop_floor_ms, gemm_gflops, memory_floor_ms, peak_rss_mb, read_bandwidth_gbs)
    from benchmarks.summarization import step_bytes as decoding_step_bytes
    from engine import TranslationOptions, load_task
    from engine.models import t5

    if args.threads:
        torch.set_num_threads(args.threads)
    ref, folder = _checkpoint(args.model)
    task = load_task("translation", str(folder), device=args.device, precision=args.precision)
    if task.precision_notice:
        print(f"note: {task.precision_notice}")
    device = task.placement.device
    theirs = T5ForConditionalGeneration.from_pretrained(folder).eval().to(device)
    tok = AutoTokenizer.from_pretrained(folder)
    params = dict(task.languages[task._target(TranslationOptions(target=args.language))][1])
    prefix = params.pop("prefix", "")
    if args.num_beams is not None:
        params["num_beams"] = args.num_beams
    if args.max_length is not None:
        params["max_length"] = args.max_length
    opts = TranslationOptions(target=args.language, num_beams=args.num_beams, max_length=args.max_length)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run_ours():
        r = task(args.text, opts)
        return r.output_ids.tolist(), r.translation_text, r.step

    def run_theirs():
        ids = tok(prefix + args.text, return_tensors="pt")["input_ids"].to(device)
        with torch.inference_mode():
            out = theirs.generate(ids, attention_mask=torch.ones_like(ids), decoder_start_token_id=0,
                                  eos_token_id=1, pad_token_id=0, **params)
        out = out[0].tolist()
        return out, tok.decode(out, skip_special_tokens=True), None

    times: dict[str, list[float]] = {"ours": [], "transformers": []}
    outputs = {}
    for i in range(args.repeats + 1):
        for name, fn in (("ours", run_ours), ("transformers", run_theirs)):
            sync()
            t0 = time.perf_counter()
            outputs[name] = fn()
            sync()
            if i:
                times[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    ours_ids, ours_text, steps = outputs["ours"]
    their_ids, their_text, _ = outputs["transformers"]
    same = ours_ids == their_ids and ours_text == their_text
    differ = sum(a != b for a, b in zip(ours_ids, their_ids)) + abs(len(ours_ids) - len(their_ids))

    model = task.model
    beams = int(params.get("num_beams", 1))
    step_bytes = decoding_step_bytes(model, "t5", rows=beams)
    bw = read_bandwidth_gbs(str(device))
    floor_ms = memory_floor_ms(step_bytes, bw)
    src = torch.tensor([tok(prefix + args.text)["input_ids"]], device=device)
    step, _ = t5.stepper(model, src.expand(beams, -1) if beams > 1 else src)
    step(torch.zeros(beams, 1, dtype=torch.long, device=device))
    flops = count_flops(lambda: step(torch.zeros(beams, 1, dtype=torch.long, device=device)))
    rate = gemm_gflops("float32", str(device), again=True)
    flop_ms = flop_floor_ms(flops, rate)
    mode = "greedy" if beams == 1 else f"beam search, {beams} beams"
    print(f"translation: {ref} on {task.placement.describe()} ({cpu_name() if device.type == 'cpu' else device}), "
          f"en->{args.language}, {mode}, source {src.shape[1]} tokens, {len(ours_ids)} output tokens, {steps} decoding "
          f"steps, medians of {args.repeats}")
    for name in ("ours", "transformers"):
        per_step = med[name] / max(steps, 1) * 1e3
        print(f"  {name:<13} {med[name] * 1e3:8.1f} ms end to end  {per_step:6.2f} ms/step"
              f" = {per_step / floor_ms:5.2f}x bandwidth floor, {per_step / flop_ms:6.1f}x FLOP floor")
    print(f"  speed-up: {med['transformers'] / med['ours']:.2f}x transformers (end to end)")
    print(f"bandwidth floor: {step_bytes / 1e6:.0f} MB of decoder and LM-head weights a step at {bw:.1f} GB/s "
          f"(read, measured now) = {floor_ms:.2f} ms/step")
    print(f"FLOP floor: {flops / 1e9:.3f} GFLOP a step ({beams} rows) at {rate:.0f} GFLOP/s = {flop_ms:.3f} ms/step")
    print(f"tokens: {'identical' if same else f'{differ} of {len(their_ids)} differ'}; text: {ours_text[:60]!r}")
    print(f"peak resident memory of this process: {peak_rss_mb():.0f} MB")
    return 0 if (same or args.precision == "fast") else 1
