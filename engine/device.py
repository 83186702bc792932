"""Device choice (cuda > mps > cpu) and the precision policy.

Precision is a user choice:

* ``exact`` — float32 everywhere; outputs match the reference implementation.
* ``fast``  — bfloat16 on CPUs with AMX / AVX512-BF16, float16 or bfloat16 on GPUs.
  Offered only where the hardware runs it natively (elsewhere it would be slower).

``fast`` must keep the answers, so each model says how it runs fast (its ``FAST_PLAN``,
engine.models.optimize.FastPlan): which of its parts stay float32, and in which reduced dtypes
its answers were measured to stay the same. :func:`for_model` turns the device's placement into
the model's: the device's fast dtype when the plan allows it, else float16 on a GPU when the plan
allows that, else ``exact`` — the task then runs in float32 and logs why (a notice, not an error,
because the app's precision picker offers ``fast`` per device, before a model is chosen).
"""
from __future__ import annotations

import functools
import os
import platform
from dataclasses import dataclass

import torch

from .errors import EngineError

PRECISIONS = ("exact", "fast")


@dataclass(frozen=True)
class DeviceInfo:
    """One device the engine can run on, as the device picker shows it."""

    name: str  # "cpu", "cuda:0", "mps"
    label: str  # human readable
    fast_supported: bool
    fast_dtype: str | None  # "bfloat16" / "float16" / None


@dataclass(frozen=True)
class Placement:
    """Where a task runs and in which dtype."""

    device: torch.device
    dtype: torch.dtype
    precision: str

    def describe(self) -> str:
        return f"{self.device} · {self.precision} ({str(self.dtype).replace('torch.', '')})"


@functools.lru_cache(maxsize=1)
def _cpu_flags() -> frozenset[str]:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_has_fast_bf16() -> bool:
    """True when the CPU computes bfloat16 matmuls natively (AMX or AVX512-BF16)."""
    flags = _cpu_flags()
    if {"amx_bf16", "avx512_bf16"} & flags:
        return True
    # Apple silicon and other ARM CPUs with BF16 instructions
    return platform.machine() in ("arm64", "aarch64") and "bf16" in flags


def _cpu_label() -> str:
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"CPU · {name} · {os.cpu_count()} cores"


def available_devices() -> list[DeviceInfo]:
    """Devices in preference order (the first is what ``auto`` picks)."""
    out: list[DeviceInfo] = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            bf16 = torch.cuda.is_bf16_supported()
            out.append(DeviceInfo(f"cuda:{i}", f"GPU {i} · {torch.cuda.get_device_name(i)}", True,
                                  "bfloat16" if bf16 else "float16"))
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        out.append(DeviceInfo("mps", "Apple GPU (MPS)", True, "float16"))
    fast = cpu_has_fast_bf16()
    out.append(DeviceInfo("cpu", _cpu_label(), fast, "bfloat16" if fast else None))
    return out


def resolve(device: str | None = None, precision: str = "exact") -> Placement:
    """Turn a device name ("auto", "cpu", "cuda", "cuda:1", "mps") and a precision into a Placement."""
    if precision not in PRECISIONS:
        raise EngineError(f"Unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}.")
    devices = available_devices()
    name = (device or "auto").strip().lower()
    if name == "auto":
        info = devices[0]
    else:
        if name == "cuda":
            name = "cuda:0"
        elif name in ("cpu:0", "cpu0"):  # torch's own spelling of the one CPU device
            name = "cpu"
        matches = [d for d in devices if d.name == name]
        if not matches:
            have = ", ".join(d.name for d in devices)
            raise EngineError(f"Device {device!r} is not available here (available: {have}).")
        info = matches[0]
    dtype = torch.float32
    if precision == "fast":
        if not info.fast_supported:
            raise EngineError(f"'fast' precision is not supported on {info.label}; use 'exact'.")
        dtype = torch.bfloat16 if info.fast_dtype == "bfloat16" else torch.float16
    return Placement(torch.device(info.name), dtype, precision)


def for_model(placement: Placement, dtypes: tuple[torch.dtype, ...], model: str,
              why: str = "") -> tuple[Placement, str | None]:
    """The placement a model runs on when ``placement`` (from :func:`resolve`) was asked for and its
    FastPlan keeps its answers in ``dtypes`` only -> (placement, notice). ``exact`` placements pass
    unchanged. ``fast``: the device's dtype if allowed; else float16 on CUDA / MPS if allowed (every
    GPU computes float16 natively); else ``exact`` (float32), with a notice saying so and why."""
    if placement.precision != "fast" or placement.dtype in dtypes:
        return placement, None
    if placement.device.type in ("cuda", "mps") and torch.float16 in dtypes:
        return Placement(placement.device, torch.float16, "fast"), None
    dtype = str(placement.dtype).replace("torch.", "")
    if not dtypes:  # no reduced precision was shown to keep this model's answers
        notice = (f"'fast' precision is not offered for {model} ({why or 'not measured'}); running it 'exact' "
                  "(float32) instead.")
    else:
        notice = (f"'fast' precision is not offered for {model} in {dtype} on {placement.device} (it would change the "
                  f"answers{': ' + why if why else ''}); running it 'exact' (float32) instead.")
    return Placement(placement.device, torch.float32, "exact"), notice


def unmeasured(placement: Placement, model: str) -> tuple[Placement, str | None]:
    """For a model whose reduced-precision answers were not measured against float32 (no FastPlan):
    ``fast`` runs ``exact``, with a notice saying so (see :func:`for_model`)."""
    return for_model(placement, (), model, "its answers in reduced precision have not been measured against "
                                           "float32 yet")


def free_memory_bytes(device: torch.device) -> int | None:
    """Memory a new allocation on ``device`` can still get (CUDA: free device memory; CPU on
    Linux: MemAvailable), or None where it cannot be told."""
    if device.type == "cuda":
        try:
            return int(torch.cuda.mem_get_info(device)[0])
        except RuntimeError:
            return None
    if device.type == "cpu":
        try:
            with open("/proc/meminfo", encoding="ascii") as f:
                for line in f:
                    if line.startswith("MemAvailable:"):
                        return int(line.split()[1]) * 1024
        except (OSError, ValueError, IndexError):
            return None
    return None


def check_fits(need_bytes: float, device: torch.device, what: str, advice: str) -> None:
    """Refuse work whose estimated memory would not fit (with headroom), before it starts."""
    free = free_memory_bytes(device)
    if free is not None and need_bytes > 0.8 * free:
        from .errors import InputError
        raise InputError(f"{what} would need about {need_bytes / 2**30:.1f} GB of memory and only "
                         f"{free / 2**30:.1f} GB is free on {device}; {advice}")
