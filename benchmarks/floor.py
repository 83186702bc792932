"""The physical floor a benchmark is measured against. Two limits, whichever is larger:

* compute: the model's FLOPs (torch's FlopCounterMode) over this machine's measured GEMM throughput;
* memory: the bytes a call must read (every weight once; a decoding step at batch 1 reads each
  matrix for one row, so this is its floor) over this machine's measured memory READ bandwidth.

"× floor" = measured time / floor time; it travels between machines where milliseconds do not (the
CPUs of this project's machines differ). The measurements run at torch's current thread count (the
bench's), take the best of a few tries and are as good as the machine is quiet: on a machine other
work shares, a floor measured now is slower than the machine's own, and a ratio to it flatters.
"""
from __future__ import annotations

import functools
import math
import os
import platform
import resource
import time
from collections.abc import Mapping


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


#: the best GEMM rate measured so far in this process, per (dtype name, device)
_best_rate: dict[tuple[str, str], float] = {}


def gemm_gflops(dtype_name: str = "float32", device: str = "cpu", again: bool = False) -> float:
    """The machine's GEMM rate in GFLOP/s (:func:`measure_gemm_gflops`): measured on the first call,
    then the best so far; ``again`` measures once more first. A shared machine's rate dips now and
    then; the bench measures it when it starts and again when it prints the floor, and the floor
    takes the better of the two, so that a dip cannot make the floor look closer than it is."""
    key = (dtype_name, device)
    if again or key not in _best_rate:
        _best_rate[key] = max(_best_rate.get(key, 0.0), measure_gemm_gflops(dtype_name, device))
    return _best_rate[key]


def measure_gemm_gflops(dtype_name: str = "float32", device: str = "cpu") -> float:
    """Best of a few 2048^3 matrix products on ``device`` in ``dtype_name``: GFLOP/s. On the CPU the
    faster of torch's own product (MKL) and oneDNN's GEMM on a packed weight, the one our packed layers
    use: on AMD CPUs MKL keeps to its AVX2 kernels and oneDNN reached twice its rate (Zen 4), so MKL's
    rate alone would put the floor too low."""
    import torch
    dtype = getattr(torch, dtype_name)
    n = 2048
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    products = [lambda: a @ b]
    if torch.device(device).type == "cpu":
        from engine.models.optimize import packed_copy
        try:
            packed = packed_copy(b.t().contiguous(), rows=n)  # (out, in) as nn.Linear's weight: a @ b
        except (RuntimeError, TypeError):  # a torch build without these oneDNN ops
            packed = None
        if packed is not None:
            products.append(lambda: packed(a))
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    best = float("inf")
    for product in products:
        for _ in range(2):
            product()
        sync()
        for _ in range(5):
            t0 = time.perf_counter()
            product()
            sync()
            best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def cache_bytes(level: int = 3) -> int | None:
    """The size of CPU 0's level-``level`` cache (Linux sysfs), or None where it cannot be told."""
    root = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in sorted(os.listdir(root)):
            folder = os.path.join(root, entry)
            with open(os.path.join(folder, "level"), encoding="ascii") as f:
                if int(f.read()) != level:
                    continue
            with open(os.path.join(folder, "size"), encoding="ascii") as f:
                text = f.read().strip().upper()
            scale = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}.get(text[-1:], 1)
            return int(text.rstrip("KMG")) * scale
    except (OSError, ValueError):
        pass
    return None


def bandwidth_array_bytes(device: str = "cpu") -> int:
    """How large the array that :func:`read_bandwidth_gbs` reads is: 512 MiB, and at least 16x the L3
    cache on a CPU (so no part of it is read from a cache), 1 GiB on a GPU (its L2 is tens of MB)."""
    if device.startswith("cuda") or device == "mps":
        return 2 ** 30
    return max(512 * 2 ** 20, 16 * (cache_bytes(3) or 0))


def read_bandwidth_gbs(device: str = "cpu", nbytes: int | None = None, tries: int = 5, clock=time.perf_counter
                       ) -> float:
    """This machine's memory READ bandwidth now, GB/s: the best of ``tries`` full reads (a sum, which
    reads each element once and writes nothing) of an ``nbytes`` float32 tensor well above the
    caches (:func:`bandwidth_array_bytes`), at torch's current thread count, timed with ``clock``
    (the bench's: wall time, or the process's CPU time with one thread)."""
    import torch
    nbytes = nbytes or bandwidth_array_bytes(device)
    x = torch.ones(nbytes // 4, device=device)  # float32; written once here, so its pages exist
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    x.sum()
    sync()
    best = float("inf")
    for _ in range(max(1, tries)):
        t0 = clock()
        x.sum()
        sync()
        best = min(best, clock() - t0)
    return x.numel() * 4 / max(best, 1e-9) / 1e9


def weight_names(model) -> list[str]:
    """The names :func:`weight_bytes` counts: every parameter's, and ``<module>.weight`` /
    ``<module>.bias`` for each PackedLinear (whose packed weight is no parameter)."""
    from engine.models.optimize import PackedLinear
    names = [name for name, _ in model.named_parameters()]
    for name, module in model.named_modules():
        if isinstance(module, PackedLinear):
            names.append(f"{name}.weight")
            if module.bias is not None:
                names.append(f"{name}.bias")
    return names


def weight_bytes(model, partial: Mapping[str, int] | None = None) -> int:
    """The bytes of ``model``'s weights a call reads once each: every parameter (and each
    PackedLinear's packed weight and bias, which are no parameters, named ``<module>.weight`` /
    ``<module>.bias``), a tensor shared by two modules (tied embeddings and LM head) counted once.
    ``partial``: weight name -> rows a call reads of it (an embedding table of which only the input
    tokens' rows are looked up; 0: a weight the call does not read), counted as that many rows (at
    most the table's)."""
    from engine.models.optimize import PackedLinear
    partial = dict(partial or {})
    seen: set[tuple[int, int]] = set()
    total = 0

    def add(t, rows: int | None = None) -> None:
        nonlocal total
        key = (t.data_ptr(), t.numel())
        if key in seen or t.numel() == 0:
            return
        seen.add(key)
        size = t.numel() * t.element_size()
        if rows is not None and t.dim() >= 1:
            size = min(rows, t.shape[0]) * (size // t.shape[0])
        total += size

    for name, p in model.named_parameters():
        add(p, partial.pop(name, None))
    for name, module in model.named_modules():
        if isinstance(module, PackedLinear):
            rows = partial.pop(f"{name}.weight", None)
            total += min(module.out_features, module.out_features if rows is None else rows) \
                * module.in_features * _itemsize(module.dtype)
            if module.bias is not None:
                add(module.bias, partial.pop(f"{name}.bias", None))
    if partial:
        raise KeyError(f"weight_bytes: the model has no weights named {sorted(partial)}")
    return total


def _itemsize(dtype) -> int:
    import torch
    return torch.empty((), dtype=dtype).element_size()


def memory_floor_ms(nbytes: float, bandwidth_gbs: float) -> float:
    """The time reading ``nbytes`` takes at ``bandwidth_gbs`` GB/s, in ms."""
    return nbytes / (bandwidth_gbs * 1e9) * 1e3


def flop_floor_ms(flops: float, gflops: float) -> float:
    """The time ``flops`` take at ``gflops`` GFLOP/s, in ms."""
    return flops / (gflops * 1e9) * 1e3


def floor_ms(flops: float, gflops: float, nbytes: float | None = None, bandwidth_gbs: float | None = None
             ) -> tuple[float, str]:
    """The binding floor: (the larger of the FLOP floor and the memory floor in ms, "compute" or
    "memory"); the FLOP floor alone when no bytes are given."""
    compute = flop_floor_ms(flops, gflops)
    if nbytes is None or not bandwidth_gbs:
        return compute, "compute"
    memory = memory_floor_ms(nbytes, bandwidth_gbs)
    return (memory, "memory") if memory > compute else (compute, "compute")


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


def linear_layers_ms(model, rows: int, repeats: int = 9) -> tuple[float, int]:
    """(ms, FLOPs) of the model's linear layers alone (nn.Linear and our packed ones), each run once a
    pass on a random (rows, in) input, the median pass: what the GEMM library itself reaches on the
    model's shapes at this row count, apart from everything else a forward pass does. Short inputs
    (a sentence: ~20 rows) run far below the 2048^3 rate the FLOP floor uses."""
    import torch
    from torch import nn

    from engine.models.optimize import PackedLinear
    layers = [m for m in model.modules() if isinstance(m, (nn.Linear, PackedLinear))]
    inputs = [torch.randn(rows, m.in_features).to(m.dtype if isinstance(m, PackedLinear) else m.weight.dtype)
              for m in layers]
    flops = sum(2 * rows * m.in_features * m.out_features for m in layers)
    times = []
    with torch.inference_mode():
        for i in range(repeats + 2):
            t0 = time.perf_counter()
            for m, x in zip(layers, inputs):
                m(x)
            if i >= 2:
                times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2] * 1e3, flops


def peak_rss_mb() -> float:
    """The process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_peak_rss() -> bool:
    """Start a new peak-resident-memory window for :func:`peak_rss_since_reset_mb` (Linux: writing 5
    to /proc/self/clear_refs resets VmHWM). False where that cannot be done."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_kb(field: str) -> float | None:
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def rss_mb() -> float | None:
    """The process's resident memory now, MB (Linux)."""
    kb = _status_kb("VmRSS")
    return None if kb is None else kb / 1024.0


def peak_rss_since_reset_mb() -> float | None:
    """The process's peak resident memory since the last :func:`reset_peak_rss`, MB (Linux)."""
    kb = _status_kb("VmHWM")
    return None if kb is None else kb / 1024.0


def print_floor(flops: int, timings_ms: dict[str, float], dtype_name: str = "float32", device: str = "cpu", *,
                nbytes: int | None = None, bandwidth_gbs: float | None = None) -> None:
    """One block: FLOPs, GEMM rate, floor time, then each implementation's × floor. With ``nbytes``
    (the weights a call reads, :func:`weight_bytes`) and the measured read bandwidth, the memory
    floor is printed too and × floor is against the larger of the two (short inputs are bound by
    reading the weights, long ones by the arithmetic)."""
    rate = gemm_gflops(dtype_name, device, again=True)
    compute = flop_floor_ms(flops, rate)
    print(f"floor: {flops / 1e9:.2f} GFLOP at {rate:.0f} GFLOP/s ({dtype_name} GEMM, the best measured in this run on "
          f"{cpu_name() if device == 'cpu' else device}) = {compute:.1f} ms")
    floor, kind = compute, None
    if nbytes is not None and bandwidth_gbs:
        memory = memory_floor_ms(nbytes, bandwidth_gbs)
        floor, kind = floor_ms(flops, rate, nbytes, bandwidth_gbs)
        print(f"memory floor: {nbytes / 1e6:.0f} MB of weights read at {bandwidth_gbs:.1f} GB/s (read bandwidth "
              f"measured now, {_threads()} threads) = {memory:.1f} ms; the {kind} floor binds")
    for name, ms in timings_ms.items():
        suffix = f" ({kind} floor {floor:.1f} ms)" if kind else ""
        print(f"  {name:<24} {ms:8.1f} ms = {ms / floor:5.2f}x floor{suffix}")
    print(f"peak resident memory of this process: {peak_rss_mb():.0f} MB")


def _threads() -> int:
    import torch
    return torch.get_num_threads()
