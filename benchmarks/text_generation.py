"""`python main.py bench text-generation`: our GPT-2 + engine.generation vs transformers' generate on the
same checkpoint, the same prompt ids and settings, greedy and beam search (``--num-beams 1 4``, the
default), KV cache in both, batch 1, one process; each round times ours and theirs (in alternating
order) and measures the memory read bandwidth beside them; medians over ``--repeats`` after a
warm-up. The new tokens are compared (exact precision: they must be identical; fast: how many differ).

Decoding one token at batch 1 reads every weight once, so its floor is memory bandwidth, not FLOPs:
this machine's read bandwidth is measured in every round (benchmarks.floor.read_bandwidth_gbs, at the
bench's thread count; the best of all rounds is the floor) and the per-token floor is the bytes a step
reads — every weight once (the tied embeddings / LM head once, one row of the positions) and the KV
cache — over it; "× floor" is the measured time per token over that. The FLOP floor of the same step
(benchmarks.floor) is printed beside it. Peak memory: the process's peak resident memory during each
implementation's runs above what it held before (Linux; on CUDA the peak allocated), the warm-up
left out, and each model's weights.

On a machine other work shares, two torch threads wait for each other at every operation while the
other work holds a core: the ratio ours / transformers is the figure, and ``--threads 1`` and
``--clock cpu`` (this process's CPU time) measure more steadily.

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
    p.add_argument("--precision", choices=("exact", "fast"), default="exact",
                   help="fast: bf16/fp16 where the device runs it natively; elsewhere exact, with a notice")
    p.add_argument("--new-tokens", type=int, default=32, help="new tokens per run (default 32)")
    p.add_argument("--prompt-tokens", type=int, default=16, help="prompt length in tokens (default 16)")
    p.add_argument("--num-beams", type=int, nargs="+", default=[1, 4],
                   help="1: greedy; K > 1: beam search; several: one block each (default: 1 4)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per implementation (after 1 warm-up)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads for both (default: torch's)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall time (default), or this process's CPU time (steadier on a shared machine; "
                        "use it with --threads 1, where it is the time the work took while it ran)")


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


def _checkpoint(model: str | None) -> tuple[str, Path]:
    from engine import hub
    if model:
        return model, hub.resolve(model)
    if hub.is_cached(DEFAULT):
        return DEFAULT, hub.resolve(DEFAULT)
    return f"{DEFAULT} shape (RANDOM weights)", build_random()


def _placement(device: str, precision: str):
    """(placement, notice): the placement asked for; ``fast`` on a device without native reduced-
    precision matrix products (a CPU without AMX / AVX512-BF16) runs ``exact`` instead, with a notice
    saying so, as the app does."""
    from engine.device import resolve
    from engine.errors import EngineError
    try:
        return resolve(device, precision), None
    except EngineError:
        if precision != "fast":
            raise
        placement = resolve(device, "exact")
        return placement, (f"'fast' is not offered on {placement.device} here (no native bf16 / fp16 matrix "
                           "products: it would be slower, not faster), so fast = exact (float32) on this machine: "
                           "the figures below are exact.")


def kv_cache_bytes(config, beams: int, prompt: int, new: int, element_size: int = 4) -> float:
    """The KV cache a decoding step reads, averaged over the ``new`` steps after a ``prompt``-token
    prompt: keys and values of every layer for every cached token, ``beams`` rows."""
    mean_tokens = prompt + (new - 1) / 2
    return 2 * config.n_layer * beams * mean_tokens * config.n_embd * element_size


def run(args) -> int:
    import torch

    from benchmarks import floor
    from engine.generation import DecodeSettings, decode
    from engine.models import gpt2
    from transformers import GPT2LMHeadModel

    if args.threads:
        torch.set_num_threads(args.threads)
    ref, folder = _checkpoint(args.model)
    placement, notice = _placement(args.device, args.precision)
    device = placement.device
    ours = gpt2.from_checkpoint(folder, placement)
    theirs = GPT2LMHeadModel.from_pretrained(folder).eval().to(device)
    cfg = ours.config
    eos = cfg.eos_token_id
    g = torch.Generator().manual_seed(0)
    prompt = torch.randint(1, cfg.vocab_size, (args.prompt_tokens,), generator=g).tolist()
    n = args.new_tokens
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    cuda = device.type == "cuda"
    print(f"text-generation: {ref} on {placement.describe()}; CPU {floor.cpu_name()} ({os.cpu_count()} cores), "
          f"torch threads {torch.get_num_threads()}; prompt {len(prompt)} tokens, {n} new tokens, batch 1, "
          f"medians of {args.repeats} ({args.clock} time)")
    if notice:
        print(f"  notice: {notice}")
    rate = floor.gemm_gflops("float32" if placement.dtype == torch.float32 else str(placement.dtype)[6:],
                             str(device), again=True)
    status = 0
    for beams in args.num_beams:
        settings = DecodeSettings(max_new_tokens=n, num_beams=beams, eos_token_ids=(), pad_token_id=eos)

        def run_ours() -> list[int]:
            step, reorder = gpt2.stepper(ours)
            return decode(step, prompt, settings, reorder=reorder, device=device).new_tokens

        def run_theirs() -> list[int]:
            ids = torch.tensor([prompt], device=device)
            with torch.inference_mode():  # no eos: always n new tokens, as ours
                out = theirs.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=n, min_new_tokens=n,
                                      do_sample=False, num_beams=beams, pad_token_id=eos)
            return out[0, len(prompt):].tolist()

        times: dict[str, list[float]] = {"ours": [], "transformers": []}
        peaks: dict[str, float] = {"ours": 0.0, "transformers": 0.0}
        outputs: dict[str, list[int]] = {}
        bandwidths: list[float] = []
        fns = {"ours": run_ours, "transformers": run_theirs}
        for i in range(args.repeats + 1):
            bandwidths.append(floor.read_bandwidth_gbs(str(device), tries=3, clock=clock))
            order = ("ours", "transformers") if i % 2 == 0 else ("transformers", "ours")
            for name in order:
                before = floor.rss_mb()
                floor.reset_peak_rss()
                if cuda:
                    torch.cuda.reset_peak_memory_stats(device)
                    before = torch.cuda.memory_allocated(device) / 2 ** 20
                sync()
                t0 = clock()
                outputs[name] = fns[name]()
                sync()
                if i:
                    times[name].append(clock() - t0)
                peak = (torch.cuda.max_memory_allocated(device) / 2 ** 20 if cuda else floor.peak_rss_since_reset_mb())
                if i and peak is not None and before is not None:  # the warm-up run (first touches) left out
                    peaks[name] = max(peaks[name], peak - before)
        med = {k: statistics.median(v) for k, v in times.items()}
        differ = sum(a != b for a, b in zip(outputs["ours"], outputs["transformers"]))
        differ += abs(len(outputs["ours"]) - len(outputs["transformers"]))
        # bytes a decoding step reads: the weights (one row of the positions) and the KV cache
        partial = {"wpe.weight": 1}
        if ours.packed_head is not None:  # the head is its packed copy: the embeddings are only looked up
            partial["wte.weight"] = beams
        weights = floor.weight_bytes(ours, partial=partial)
        cache = kv_cache_bytes(cfg, beams, len(prompt), n, ours.wpe.weight.element_size())
        bw = max(bandwidths)
        floor_ms = floor.memory_floor_ms(weights + cache, bw)
        step, _ = gpt2.stepper(ours)
        step(torch.tensor([prompt] * beams, device=device))
        flops = floor.count_flops(lambda: step(torch.tensor([[prompt[0]]] * beams, device=device)))
        flop_ms = floor.flop_floor_ms(flops, rate)
        mode = "greedy" if beams == 1 else f"beam search, {beams} beams"
        print(f"== {mode}")
        for name in ("ours", "transformers"):
            per_token = med[name] / n * 1e3
            best = min(times[name]) / n * 1e3
            print(f"  {name:<13} {med[name] * 1e3:8.1f} ms  {n / med[name]:7.2f} tokens/s  {per_token:7.2f} ms/token"
                  f" = {per_token / floor_ms:5.2f}x memory floor (best run {best / floor_ms:4.2f}x),"
                  f" {per_token / flop_ms:5.1f}x FLOP floor; peak +{peaks[name]:.0f} MB")
        print(f"  tokens/s ours / transformers: {med['transformers'] / med['ours']:.2f}x")
        print(f"  memory floor: {(weights + cache) / 1e6:.0f} MB a step ({weights / 1e6:.0f} MB weights, "
              f"{cache / 1e6:.1f} MB KV cache) at {bw:.1f} GB/s (read bandwidth, best of {len(bandwidths)} "
              f"measured between the runs; median {statistics.median(bandwidths):.1f}) = {floor_ms:.2f} ms/token")
        print(f"  FLOP floor: {flops / 1e9:.3f} GFLOP a step at {rate:.0f} GFLOP/s = {flop_ms:.3f} ms/token")
        same = differ == 0
        print(f"  tokens: {'identical' if same else f'{differ} of {n} differ'}")
        if not same and placement.precision == "exact":
            status = 1
    print(f"weights: ours {floor.weight_bytes(ours) / 1e6:.0f} MB, transformers {floor.weight_bytes(theirs) / 1e6:.0f} "
          f"MB; peak resident memory of this process (both models): {floor.peak_rss_mb():.0f} MB")
    return status
