"""Audio files and arrays -> mono float32 at 16 kHz, the input every speech model here takes.

Reading and checking; the resampling is :func:`engine.processors.audio.resample` (the one
resampler, shared with the microphone). No torch here: the GUI uses this module too (file sources,
waveform view).

    from engine.io.audio import load_audio
    samples, duration_s = load_audio("speech.flac")      # (N,) float32, 16 kHz mono
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..processors.audio import SAMPLE_RATE, resample

log = logging.getLogger(__name__)

MAX_DURATION_S = 4 * 3600.0  # longer files are refused (memory: 4 h = ~1 GB of float32 at 16 kHz)
EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".w64", ".caf")


def to_mono(x: np.ndarray) -> np.ndarray:
    """(N,) or (N, channels) -> (N,) float32, channels averaged."""
    x = np.asarray(x, dtype=np.float32)
    if x.ndim == 2:
        x = x.mean(axis=1) if x.shape[1] > 1 else x[:, 0]
    elif x.ndim != 1:
        raise InputError(f"Audio must be (samples,) or (samples, channels), not shape {x.shape}.")
    return np.ascontiguousarray(x, dtype=np.float32)


def prepare(x: np.ndarray, rate: int, to_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Any array (samples[, channels]) at ``rate`` -> mono float32 at ``to_rate`` (16 kHz)."""
    x = np.asarray(x)
    if np.issubdtype(x.dtype, np.integer):  # PCM integers -> [-1, 1)
        x = x.astype(np.float32) / float(np.iinfo(x.dtype).max + 1)
    return resample(to_mono(x), rate, to_rate)


def check_samples(x, what: str = "The audio") -> np.ndarray:
    """Validate a task's input: a non-empty, finite 1-D (or (N, channels)) float array -> (N,) float32."""
    if not isinstance(x, np.ndarray):
        raise InputError(f"{what} must be a numpy array of samples, not {type(x).__name__}.")
    if x.dtype.kind not in "fiu":
        raise InputError(f"{what} must hold numbers, not {x.dtype}.")
    if x.ndim == 2 and x.shape[1] > x.shape[0]:
        x = x.T  # (channels, N) -> (N, channels)
    x = to_mono(x.astype(np.float32) if x.dtype.kind == "f" else prepare(x, 1, 1))
    if x.size == 0:
        raise InputError(f"{what} is empty (0 samples).")
    if not np.isfinite(x).all():
        raise InputError(f"{what} contains NaN or infinite samples.")
    return x


def as_samples(inputs, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A task's audio input -> validated (N,) float32 samples: a file path is read (and resampled
    to ``sample_rate``), an array is checked with :func:`check_samples`."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs, _ = load_audio(inputs, sample_rate)
    return check_samples(inputs)


def probe_audio(path: str | os.PathLike, max_duration_s: float = MAX_DURATION_S) -> float:
    """Check an audio file's header without decoding it; returns its duration in seconds (0 when
    the header does not say). Fast enough for the UI thread. Raises :class:`InputError` like
    :func:`load_audio` for missing, empty, non-audio or too long files."""
    return _probe(Path(os.path.expanduser(str(path))), max_duration_s)[1]


def _probe(p: Path, max_duration_s: float):
    import soundfile as sf

    if not p.exists():
        raise InputError(f"Audio file not found: {p}")
    if p.is_dir():
        raise InputError(f"{p} is a folder, not an audio file.")
    try:
        size = p.stat().st_size
    except OSError as exc:
        raise InputError(f"Cannot read {p.name}: {exc.strerror or exc}") from exc
    if size == 0:
        raise InputError(f"{p.name} is empty (0 bytes).")
    try:
        info = sf.info(str(p))
    except Exception as exc:  # noqa: BLE001 - libsndfile: unknown format, truncated header, text file
        raise InputError(f"{p.name} is not an audio file Taskscope can read (WAV, FLAC, OGG, MP3): "
                         f"{_first_line(exc)}") from exc
    if info.samplerate <= 0 or info.channels <= 0:
        raise InputError(f"{p.name} has an invalid header ({info.samplerate} Hz, {info.channels} channels).")
    duration = info.frames / info.samplerate if info.frames > 0 else 0.0
    if duration > max_duration_s:
        raise InputError(f"{p.name} is {duration / 3600:.1f} h long; the limit is "
                         f"{max_duration_s / 3600:.1f} h. Cut it into parts first.")
    return info, duration


def load_audio(path: str | os.PathLike, sample_rate: int = SAMPLE_RATE,
               max_duration_s: float = MAX_DURATION_S) -> tuple[np.ndarray, float]:
    """Read an audio file (wav, flac, ogg/opus, mp3 where libsndfile supports it; any rate and
    channel count) as mono float32 at ``sample_rate``. Returns ``(samples, duration_s)``.

    Raises :class:`InputError` with a message for the user when the file is missing, empty,
    not audio, corrupt or longer than ``max_duration_s``.
    """
    import soundfile as sf

    p = Path(os.path.expanduser(str(path)))
    _probe(p, max_duration_s)
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - corrupt data after a valid header
        raise InputError(f"{p.name} is corrupt or truncated: {_first_line(exc)}") from exc
    if data.shape[0] == 0:
        raise InputError(f"{p.name} holds no audio samples.")
    if data.shape[0] / rate > max_duration_s:
        raise InputError(f"{p.name} is longer than {max_duration_s / 3600:.1f} h. Cut it into parts first.")
    if not np.isfinite(data).all():
        raise InputError(f"{p.name} contains invalid (NaN or infinite) samples.")
    x = resample(to_mono(data), rate, sample_rate)
    log.debug("loaded %s: %d Hz x %d ch -> %d samples at %d Hz", p.name, rate, data.shape[1], x.size, sample_rate)
    return x, x.shape[0] / float(sample_rate)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
