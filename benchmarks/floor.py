"""The physical floor a benchmark is measured against: the model's FLOPs (torch's FlopCounterMode)
over this machine's measured GEMM throughput. "× floor" = measured time / floor time; it travels
between machines where milliseconds do not (the CPUs of this project's machines differ)."""
from __future__ import annotations

import functools
import math
import platform
import resource
import time


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@functools.cache
def gemm_gflops(dtype_name: str = "float32", device: str = "cpu") -> float:
    """Best of a few 2048^3 matrix products on ``device`` in ``dtype_name``: GFLOP/s."""
    import torch
    dtype = getattr(torch, dtype_name)
    n = 2048
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    for _ in range(2):
        a @ b
    sync()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        a @ b
        sync()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def _linear_flops(x_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of any linear op: 2 x rows x in x out."""
    return 2 * math.prod(out_shape) * x_shape[-1]


@functools.cache
def _count_packed_linears() -> None:
    """FlopCounterMode knows aten's matmuls, not the packed oneDNN / MKL linear ops our models use at
    load time (engine/models/optimize.py): teach it, or our floor would leave most FLOPs out."""
    import torch
    from torch.utils.flop_counter import register_flop_formula
    for name in ("mkldnn._linear_pointwise", "mkl._mkl_linear"):
        namespace, op = name.split(".")
        packet = getattr(getattr(torch.ops, namespace), op, None)
        if packet is not None:
            try:
                register_flop_formula(packet)(_linear_flops)
            except (RuntimeError, ValueError):  # already registered
                pass


def count_flops(fn) -> int:
    """FLOPs of one call of ``fn()`` (matrix products, packed linears and convolutions)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    _count_packed_linears()
    counter = FlopCounterMode(display=False)
    with torch.inference_mode(), counter:
        fn()
    return int(counter.get_total_flops())


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def print_floor(flops: int, timings_ms: dict[str, float], dtype_name: str = "float32", device: str = "cpu") -> None:
    """One block: FLOPs, GEMM rate, floor time, then each implementation's × floor."""
    rate = gemm_gflops(dtype_name, device)
    floor_ms = flops / (rate * 1e9) * 1e3
    print(f"floor: {flops / 1e9:.2f} GFLOP at {rate:.0f} GFLOP/s ({dtype_name} GEMM measured now on "
          f"{cpu_name() if device == 'cpu' else device}) = {floor_ms:.1f} ms")
    for name, ms in timings_ms.items():
        print(f"  {name:<24} {ms:8.1f} ms = {ms / floor_ms:5.2f}x floor")
    print(f"peak resident memory of this process: {peak_rss_mb():.0f} MB")
