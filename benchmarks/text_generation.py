"""`python main.py bench text-generation`: our GPT-2 + engine.generation vs transformers' generate on the
same checkpoint, the same prompt ids and settings (greedy by default, ``--num-beams K`` for beam
search), KV cache in both, batch 1, one process, interleaved runs; medians over ``--repeats`` after a
warm-up. The new tokens are compared (exact precision: they must be identical).

Decoding one token at batch 1 reads every weight once, so its floor is memory bandwidth, not FLOPs:
this machine's read bandwidth is measured now (a sum over a large float32 tensor) and the per-token
floor is the bytes of weights read per step over it; "× floor" is the measured time per token over
that. The FLOP floor (benchmarks.floor) of the same step is printed beside it.

Without ``--model``: openai-community/gpt2 when it is in the cache, else a random-weight checkpoint of
its shape (12 layers, 768 wide, 50,257 tokens; built once under ~/.cache/taskscope/bench).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

RANDOM_ROOT = Path(os.path.expanduser("~/.cache/taskscope/bench"))
DEFAULT = "openai-community/gpt2"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", metavar="ID|DIR", help="hub id or GPT-2 checkpoint folder")
    p.add_argument("--device", default="cpu", help="cpu (default), auto, cuda, cuda:N")
    p.add_argument("--precision", choices=("exact", "fast"), default="exact")
    p.add_argument("--new-tokens", type=int, default=32, help="new tokens per run (default 32)")
    p.add_argument("--prompt-tokens", type=int, default=16, help="prompt length in tokens (default 16)")
    p.add_argument("--num-beams", type=int, default=1, help="1: greedy (default); K > 1: beam search")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per implementation (after 1 warm-up)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for both")


def build_random() -> Path:
    """A random-weight GPT-2 small (transformers 5's layout) with a small made-up BPE tokenizer."""
    folder = RANDOM_ROOT / "gpt2-random"
    if (folder / "config.json").is_file():
        return folder
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    from tokenizers import ByteLevelBPETokenizer
    folder.mkdir(parents=True, exist_ok=True)
    tok = ByteLevelBPETokenizer()  # a small made-up vocabulary: the timings do not depend on it
    tok.train_from_iterator(["The quick brown fox jumps over the lazy dog. Once upon a time."] * 20,
                            vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"], show_progress=False)
    tok.save_model(str(folder))
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(bos_token_id=0, eos_token_id=0)).eval()
    with torch.no_grad():  # sharper next-token distributions than the default init
        model.transformer.wte.weight.mul_(10.0)
    model.save_pretrained(folder)
    return folder


def _checkpoint(model: str | None) -> tuple[str, Path]:
    from engine import hub
    if model:
        return model, hub.resolve(model)
    if hub.is_cached(DEFAULT):
        return DEFAULT, hub.resolve(DEFAULT)
    return f"{DEFAULT} shape (RANDOM weights)", build_random()


def read_bandwidth_gbs(device: str = "cpu", mb: int = 512) -> float:
    """Best of a few full reads (a sum) of an ``mb`` MB float32 tensor: GB/s."""
    import torch
    x = torch.ones(mb * 2 ** 20 // 4, device=device)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    x.sum()
    sync()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        x.sum()
        sync()
        best = min(best, time.perf_counter() - t0)
    return x.numel() * 4 / best / 1e9


def run(args) -> int:
    import torch

    from benchmarks.floor import count_flops, gemm_gflops, peak_rss_mb
    from engine.device import resolve
    from engine.generation import DecodeSettings, decode
    from engine.models import gpt2
    from transformers import GPT2LMHeadModel

    if args.threads:
        torch.set_num_threads(args.threads)
    ref, folder = _checkpoint(args.model)
    placement = resolve(args.device, args.precision)
    device = placement.device
    ours = gpt2.from_checkpoint(folder, placement)
    theirs = GPT2LMHeadModel.from_pretrained(folder).eval().to(device)
    cfg = ours.config
    eos = cfg.eos_token_id
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(1, cfg.vocab_size, (args.prompt_tokens,), generator=g).tolist()
    n = args.new_tokens
    settings = DecodeSettings(max_new_tokens=n, num_beams=args.num_beams, eos_token_ids=(),
                              pad_token_id=eos)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def run_ours() -> list[int]:
        step, reorder = gpt2.stepper(ours)
        return decode(step, prompt, settings, reorder=reorder, device=device).new_tokens

    def run_theirs() -> list[int]:
        ids = torch.tensor([prompt], device=device)
        with torch.inference_mode():  # no eos: always n new tokens, as ours
            out = theirs.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                  do_sample=False, num_beams=args.num_beams, pad_token_id=eos)
        return out[0, len(prompt):].tolist()

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
    # ours with the eos-free settings generate n tokens; transformers with min_new_tokens too
    same = outputs["ours"] == outputs["transformers"]
    differ = sum(a != b for a, b in zip(outputs["ours"], outputs["transformers"]))
    weight_bytes = sum(p.numel() * p.element_size() for p in ours.parameters())
    weight_bytes -= ours.wpe.weight.numel() * ours.wpe.weight.element_size()  # one row a step
    bw = read_bandwidth_gbs(str(device))
    floor_ms = weight_bytes / (bw * 1e9) * 1e3 * args.num_beams ** 0  # weights read once a step, any beams
    step, _ = gpt2.stepper(ours)
    step(torch.tensor([prompt], device=device))
    flops = count_flops(lambda: step(torch.tensor([[prompt[0]]], device=device)))
    rate = gemm_gflops("float32", str(device))
    flop_floor_ms = flops / (rate * 1e9) * 1e3
    mode = "greedy" if args.num_beams == 1 else f"beam search, {args.num_beams} beams"
    print(f"text-generation: {ref} on {placement.describe()}, {mode}, prompt {len(prompt)} tokens, {n} new tokens, "
          f"medians of {args.repeats}")
    for name in ("ours", "transformers"):
        per_token = med[name] / n * 1e3
        print(f"  {name:<13} {med[name] * 1e3:8.1f} ms  {n / med[name]:7.1f} tokens/s  {per_token:6.2f} ms/token"
              f" = {per_token / floor_ms:5.2f}x bandwidth floor, {per_token / flop_floor_ms:6.1f}x FLOP floor")
    print(f"  speed-up: {med['transformers'] / med['ours']:.2f}x transformers")
    print(f"bandwidth floor: {weight_bytes / 1e6:.0f} MB of weights a step at {bw:.1f} GB/s (read, measured now) "
          f"= {floor_ms:.2f} ms/token")
    print(f"FLOP floor: {flops / 1e9:.3f} GFLOP a step at {rate:.0f} GFLOP/s = {flop_floor_ms:.3f} ms/token")
    print(f"tokens: {'identical' if same else f'{differ} of {n} differ'}")
    print(f"peak resident memory of this process: {peak_rss_mb():.0f} MB")
    return 0 if (same or args.precision == "fast") else 1
