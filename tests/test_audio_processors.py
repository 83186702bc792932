"""engine.processors.audio: the one resampler (files and the microphone) against scipy's
resample_poly, streaming = whole-array, and the feature extractor's settings."""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.signal import firwin, resample_poly

from engine.errors import InputError
from engine.processors.audio import Resampler, lowpass_filter, ratio, resample

RATES = [44_100, 48_000, 8_000, 22_050, 16_000]


def _signal(rate: int, seconds: float, seed: int = 0, channels: int | None = None) -> np.ndarray:
    """Speech-like test audio in [-1, 1]: tones, a chirp and noise."""
    rng = np.random.default_rng(seed)
    n = int(rate * seconds)
    t = np.arange(n) / rate
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * (200 + 3000 * t) * t)
    x = x + 0.2 * rng.uniform(-1, 1, n)
    if channels:
        x = np.stack([x * (1 - 0.3 * c) for c in range(channels)], axis=1)
    return x.astype(np.float32)


def _blocks(r: Resampler, x: np.ndarray, seed: int, most: int = 3000) -> np.ndarray:
    """Feed ``x`` in random block sizes (seeded; empty blocks too), then flush."""
    rng = np.random.default_rng(seed)
    out, i = [], 0
    while i < len(x):
        n = int(rng.integers(0, most))
        out.append(r.process(x[i:i + n]))
        i += n
    out.append(r.flush())
    return np.concatenate(out)


def test_the_filter_is_resample_polys():
    for up, down in [(160, 441), (1, 3), (2, 1), (320, 441), (441, 160)]:
        half_len = 10 * max(up, down)
        ref = firwin(2 * half_len + 1, 1.0 / max(up, down), window=("kaiser", 5.0)) * up
        assert np.allclose(lowpass_filter(up, down), ref, rtol=0, atol=1e-15)
    assert ratio(44_100, 16_000) == (160, 441) and ratio(48_000.0, 16_000) == (1, 3)


@pytest.mark.parametrize("from_rate", RATES)
def test_whole_array_equals_resample_poly(from_rate):
    x = _signal(from_rate, 1.37, seed=from_rate)
    up, down = ratio(from_rate, 16_000)
    ref = resample_poly(x.astype(np.float64), up, down)
    y = resample(x, from_rate, 16_000)
    assert y.dtype == np.float32 and y.shape == ref.shape == (math.ceil(len(x) * up / down),)
    assert np.abs(y - ref).max() < 1e-6
    # the float32 path of scipy too
    assert np.abs(y - resample_poly(x, up, down)).max() < 1e-6


@pytest.mark.parametrize("from_rate", RATES)
def test_block_by_block_equals_whole_array(from_rate):
    x = _signal(from_rate, 2.1, seed=1)
    r = Resampler(from_rate, 16_000)
    whole = np.concatenate([r.process(x), r.flush()])
    assert len(whole) == r.delay + len(resample(x, from_rate, 16_000))
    assert np.array_equal(whole[r.delay:], resample(x, from_rate, 16_000))
    for seed in range(3):
        streamed = _blocks(r, x, seed)  # the same object: flush() started a new stream
        assert np.array_equal(streamed, whole), seed
    tiny = _blocks(Resampler(from_rate, 16_000), x[:3000], seed=9, most=4)  # 0-3 samples a block
    r2 = Resampler(from_rate, 16_000)
    assert np.array_equal(tiny, np.concatenate([r2.process(x[:3000]), r2.flush()]))


def test_short_inputs_stereo_and_other_pairs():
    rng = np.random.default_rng(5)
    for f, t in [(16_000, 44_100), (11_025, 16_000), (44_100, 48_000), (16_000, 8_000)]:
        for n in (1, 2, 7, 100):
            x = rng.uniform(-1, 1, n).astype(np.float32)
            up, down = ratio(f, t)
            ref = resample_poly(x.astype(np.float64), up, down)
            y = resample(x, f, t)
            assert y.shape == ref.shape and np.abs(y - ref).max() < 1e-6, (f, t, n)
    x = _signal(44_100, 0.5, channels=2)
    ref = resample_poly(x.astype(np.float64), 160, 441, axis=0)
    y = resample(x, 44_100, 16_000)
    assert y.shape == ref.shape == (8000, 2) and np.abs(y - ref).max() < 1e-6
    assert np.array_equal(_blocks(Resampler(44_100, 16_000), x, seed=3)[10:], y)


def test_streaming_is_causal_and_keeps_pace():
    """Nothing is held back: after N input samples the stream has ~N * to / from outputs (what a
    microphone's consumer counts on); the first ``delay`` ones are the filter's start-up."""
    for f in (48_000, 44_100, 22_050, 8_000):
        r = Resampler(f, 16_000)
        block = int(round(f * 0.064))
        got = 0
        for k in range(1, 40):
            got += len(r.process(np.zeros(block, np.float32)))
            assert abs(got - k * block * 16_000 / f) <= 1
        assert r.delay == (20 if f == 8_000 else 10)


def test_a_stream_resampled_for_16k_is_a_clean_tone():
    for f in (48_000, 44_100, 22_050, 8_000):
        t = np.arange(2 * f) / f
        x = np.sin(2 * np.pi * 440 * t).astype(np.float32)
        r = Resampler(f)  # to 16 kHz by default
        y = np.concatenate([r.process(x[i:i + 1234]) for i in range(0, len(x), 1234)])
        seg = y[8000:]
        assert abs(np.sqrt(np.mean(seg ** 2)) - 1 / np.sqrt(2)) < 1e-3
        spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
        assert abs(np.argmax(spec) * 16_000 / len(seg) - 440) < 2
        assert np.max(np.abs(np.diff(seg))) < 2 * np.pi * 440 / 16_000 * 1.01  # no clicks at the seams


def test_identity_empty_and_bad_input():
    x = _signal(16_000, 0.1)
    r = Resampler(16_000, 16_000)
    assert r.identity and r.delay == 0
    assert np.array_equal(r.process(x), x) and len(r.flush()) == 0
    assert resample(x, 16_000, 16_000) is not None
    assert resample(np.zeros(0, np.float32), 44_100, 16_000).shape == (0,)
    r = Resampler(48_000, 16_000)
    assert r.process(np.zeros(0, np.float32)).shape == (0,) and r.flush().shape == (0,)
    for bad in (0, -8000, 22_050.5, float("nan")):
        with pytest.raises(InputError):
            Resampler(bad, 16_000)
        with pytest.raises(InputError):
            resample(x, bad, 16_000)
    with pytest.raises(InputError):
        Resampler(48_000).process(np.zeros((2, 3, 4), np.float32))
    r = Resampler(48_000)
    r.process(np.zeros(100, np.float32))
    with pytest.raises(InputError, match="changed shape"):
        r.process(np.zeros((100, 2), np.float32))
