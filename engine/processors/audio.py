"""Audio -> model input: the one resampler (files and the microphone) and the feature extractor.

No torch here: the GUI's microphone uses :class:`Resampler` block by block.

Resampling is polyphase, with the FIR low-pass scipy's ``resample_poly`` designs by default
(``firwin(2 * half_len + 1, 1 / max(up, down), window=("kaiser", 5.0))``, ``half_len = 10 * max(up,
down)``, gain ``up``), so a whole array resampled here equals ``scipy.signal.resample_poly(x, up, down)``
(float rounding aside) — without scipy at run time.

    r = Resampler(48_000, 16_000)          # streaming: state kept across blocks, no seams
    y = r.process(block)                   # the outputs this block completes (~len(block) / 3)
    tail = r.flush()                       # the end of the stream (the input followed by zeros)
    y16 = resample(x, 44_100, 16_000)      # whole arrays: the same filter, delay removed
"""
from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import InputError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000  # what every speech model here takes
KAISER_BETA = 5.0  # resample_poly's default window, ("kaiser", 5.0)
_PIECE = 8192  # input samples per step inside process(): bounds the memory of one call


def _rate(rate) -> int:
    r = float(rate)
    if not math.isfinite(r) or r <= 0 or r != round(r):
        raise InputError(f"Invalid sample rate {rate!r} Hz (a positive whole number is needed).")
    return int(round(r))


def ratio(from_rate, to_rate) -> tuple[int, int]:
    """(up, down): ``to_rate / from_rate`` in lowest terms."""
    f, t = _rate(from_rate), _rate(to_rate)
    g = math.gcd(f, t)
    return t // g, f // g


def lowpass_filter(up: int, down: int) -> np.ndarray:
    """resample_poly's default anti-aliasing filter for ``up``/``down`` (float64, gain ``up``):
    scipy's ``firwin(2 * half_len + 1, 1 / max_rate, window=("kaiser", 5.0)) * up`` with
    ``half_len = 10 * max_rate``: a Kaiser-windowed sinc with cutoff at the lower Nyquist frequency,
    scaled to unit gain at DC before the ``up`` that makes up for the inserted zeros."""
    max_rate = max(up, down)
    half_len = 10 * max_rate
    cutoff = 1.0 / max_rate  # relative to the upsampled signal's Nyquist frequency
    m = np.arange(2 * half_len + 1, dtype=np.float64) - half_len
    h = cutoff * np.sinc(cutoff * m) * np.kaiser(2 * half_len + 1, KAISER_BETA)
    return h / h.sum() * up


class Resampler:
    """Streaming polyphase resampler from ``from_rate`` to ``to_rate`` along the first axis of
    (N,) or (N, channels) blocks; state is kept across blocks, so block edges leave no seams and the
    output does not depend on how the input was cut.

    The stream is causal: :meth:`process` returns every output sample that the input so far
    determines (about ``len(block) * to_rate / from_rate``; nothing is held back), and the stream
    is ``delay`` output samples late: its first ``delay`` samples are the filter's start-up, and
    sample ``delay + k`` is ``resample_poly``'s sample ``k``. :meth:`flush` ends the stream (the
    input followed by zeros) with the last outputs, for ``delay + ceil(n_in * up / down)`` in
    all, and resets the resampler for a new stream. Equal rates: the identity, ``delay`` 0.

    ``delay`` is ``ceil(10 * max(up, down) / down)`` output samples: 10 (0.6 ms at 16 kHz) when
    downsampling, 20 for 8 -> 16 kHz.
    """

    def __init__(self, from_rate, to_rate=SAMPLE_RATE) -> None:
        self.from_rate, self.to_rate = _rate(from_rate), _rate(to_rate)
        self.up, self.down = ratio(self.from_rate, self.to_rate)
        self.identity = self.up == self.down
        if self.identity:
            self.half_len = self.delay = self.taps = 0
        else:
            h = lowpass_filter(self.up, self.down)
            self.half_len = (len(h) - 1) // 2
            self.delay = -(-self.half_len // self.down)  # output samples before resample_poly's first
            self.taps = -(-len(h) // self.up)  # input samples under the filter per output (one phase)
            padded = np.zeros(self.taps * self.up)
            padded[:len(h)] = h
            # bank[p, i] = h[p + i * up]: the taps of phase p, applied to x[n_hi - i]
            bank = padded.reshape(self.taps, self.up).T  # (up, taps)
            self._bank_rev = np.ascontiguousarray(bank[:, ::-1], dtype=np.float64)  # oldest input first
            self._offset = self.delay * self.down - self.half_len  # 0 <= offset < down
        self._reset()

    def _reset(self) -> None:
        self._n_in = 0  # input samples received
        self._m = 0  # next output sample (stream index)
        self._shape: tuple[int, ...] | None = None  # trailing (channels,) of the first block
        self._buf = None
        if not self.identity:
            self._buf_start = self._n_hi(0) - (self.taps - 1)  # input index of _buf[0] (<= 0: zeros before)

    def _n_hi(self, m):
        """Newest input sample under the filter for stream output ``m`` (int or array)."""
        return (m * self.down - self._offset) // self.up

    def _outputs_ready(self) -> int:
        """Stream outputs [0, this) that the input so far determines."""
        return max(0, (self._n_in * self.up - 1 + self._offset) // self.down + 1)

    def _empty(self) -> np.ndarray:
        return np.zeros((0,) + (self._shape or ()), np.float32)

    def _append(self, x: np.ndarray) -> None:
        if self._shape is None:
            self._shape = x.shape[1:]
            self._buf = np.zeros((-self._buf_start,) + self._shape, np.float32)  # zeros before the input
        elif x.shape[1:] != self._shape:
            raise InputError(f"Audio blocks changed shape from (N, {self._shape}) to {x.shape}.")
        self._buf = np.concatenate([self._buf, x]) if len(self._buf) else x.copy()
        self._n_in += len(x)

    def _compute(self, m_end: int) -> np.ndarray:
        """Stream outputs [self._m, m_end) from the buffer, then drop the input no later output needs.

        Output ``m`` sits at ``t = m * down - offset`` in the upsampled signal: phase ``t % up``,
        newest input ``t // up``. Phases repeat every ``up`` outputs, so the outputs are laid out
        as (rows, up) (or one row of fewer): each column has one phase (one row of the bank) and
        its inputs advance by ``down`` per row.
        """
        m0, n = self._m, m_end - self._m
        cols = min(self.up, n)  # fewer outputs than phases: only the phases they use
        rows = -(-n // cols)
        t0 = (m0 + np.arange(cols, dtype=np.int64)) * self.down - self._offset  # (cols,) the first row
        first = t0 // self.up - (self.taps - 1) - self._buf_start  # (cols,) window starts in the buffer
        starts = first[None, :] + (np.arange(rows, dtype=np.int64) * self.down)[:, None]  # (rows, cols)
        np.minimum(starts, len(self._buf) - self.taps, out=starts)  # past m_end: computed, then dropped
        windows = sliding_window_view(self._buf, self.taps, axis=0)[starts]  # (rows, cols[, C], taps)
        y = np.einsum("ru...k,uk->ru...", windows, self._bank_rev[t0 % self.up])  # (rows, cols[, C])
        y = y.reshape((rows * cols,) + y.shape[2:])[:n]
        self._m = m_end
        keep_from = self._n_hi(m_end) - (self.taps - 1)  # oldest input the next output needs
        if keep_from > self._buf_start:
            self._buf = self._buf[keep_from - self._buf_start:]
            self._buf_start = keep_from
        return np.ascontiguousarray(y, dtype=np.float32)

    def process(self, block) -> np.ndarray:
        """One block (N,) or (N, channels) at ``from_rate`` -> the output samples it completes,
        float32 at ``to_rate``."""
        x = np.asarray(block, dtype=np.float32)
        if x.ndim not in (1, 2):
            raise InputError(f"Audio blocks must be (samples,) or (samples, channels), not shape {x.shape}.")
        if self.identity:
            return x.copy()
        if len(x) == 0:
            return self._empty() if self._shape is not None else np.zeros((0,) + x.shape[1:], np.float32)
        out = []
        for i in range(0, len(x), _PIECE):
            self._append(x[i:i + _PIECE])
            m_end = self._outputs_ready()
            if m_end > self._m:
                out.append(self._compute(m_end))
        if not out:
            return self._empty()
        return out[0] if len(out) == 1 else np.concatenate(out)

    def flush(self) -> np.ndarray:
        """End the stream: the remaining outputs (the input continued by zeros), float32; then the
        resampler starts a new stream."""
        if self.identity or self._n_in == 0:
            out = self._empty()
            self._reset()
            return out
        total = self.delay - (-(self._n_in * self.up) // self.down)  # delay + ceil(n_in * up / down)
        need = self._n_hi(total - 1) + 1 - self._buf_start  # buffer length the last output reads
        if need > len(self._buf):
            self._buf = np.concatenate([self._buf, np.zeros((need - len(self._buf),) + self._shape, np.float32)])
        out = self._compute(total) if total > self._m else self._empty()
        self._reset()
        return out

    def __repr__(self) -> str:
        return f"Resampler({self.from_rate} Hz -> {self.to_rate} Hz, up {self.up}, down {self.down})"


def resample(x: np.ndarray, from_rate, to_rate) -> np.ndarray:
    """A whole array (N,) or (N, channels) from ``from_rate`` to ``to_rate`` along the first axis,
    float32: one :class:`Resampler` over it plus its flush, the delay removed — equal to
    ``scipy.signal.resample_poly(x, up, down)`` (``ceil(N * up / down)`` samples)."""
    x = np.asarray(x, dtype=np.float32)
    r = Resampler(from_rate, to_rate)
    if r.identity or x.shape[0] == 0:
        return x
    return np.concatenate([r.process(x), r.flush()])[r.delay:]


# ----------------------------------------------------------------------------- feature extractor

def zero_mean_unit_var(x: np.ndarray) -> np.ndarray:
    """The feature extractor's ``do_normalize``: zero mean, unit variance per utterance."""
    x = np.asarray(x, dtype=np.float32)
    return ((x - x.mean()) / np.sqrt(x.var() + 1e-7)).astype(np.float32, copy=False)


class FeatureSettings:
    """A checkpoint's wav2vec2 feature-extractor settings (``preprocessor_config.json``, or the
    ``feature_extractor`` section of transformers 5's ``processor_config.json``)."""

    def __init__(self, sampling_rate: int = SAMPLE_RATE, do_normalize: bool = True,
                 return_attention_mask: bool = False, padding_value: float = 0.0) -> None:
        self.sampling_rate = int(sampling_rate)
        self.do_normalize = bool(do_normalize)
        self.return_attention_mask = bool(return_attention_mask)  # only matters for padded batches
        self.padding_value = float(padding_value)

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> FeatureSettings:
        from ..hub import read_json

        folder = Path(folder)
        for name in ("preprocessor_config.json", "processor_config.json", "feature_extractor_config.json"):
            if (folder / name).is_file():
                cfg = read_json(folder, name)
                cfg = cfg.get("feature_extractor", cfg)
                return cls(**{k: cfg[k] for k in ("sampling_rate", "do_normalize", "return_attention_mask",
                                                  "padding_value") if cfg.get(k) is not None})
        log.warning("%s has no preprocessor_config.json; using 16 kHz with normalisation", folder)
        return cls()

    def __call__(self, x: np.ndarray) -> np.ndarray:
        """(N,) float32 at ``sampling_rate`` -> the model's input values (N,) float32."""
        return zero_mean_unit_var(x) if self.do_normalize else np.asarray(x, dtype=np.float32)

    def __repr__(self) -> str:
        return (f"FeatureSettings({self.sampling_rate} Hz, normalize={self.do_normalize}, "
                f"attention_mask={self.return_attention_mask})")
