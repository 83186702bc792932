"""The physical floor a benchmark is measured against: the model's FLOPs (torch's FlopCounterMode)
over this machine's measured GEMM throughput. "× floor" = measured time / floor time; it travels
between machines where milliseconds do not (the CPUs of this project's machines differ)."""
from __future__ import annotations

import functools
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


def count_flops(fn) -> int:
    """FLOPs of one call of ``fn()`` (matrix products and convolutions, as FlopCounterMode counts)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
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
