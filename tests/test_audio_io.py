"""engine.io.audio (files -> mono float32 16 kHz, clear errors for bad files) and engine.processors.audio."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from engine.io.audio import check_samples, load_audio, prepare
from engine.processors.audio import FeatureSettings, resample, zero_mean_unit_var
from engine.errors import InputError


def _tone(rate, seconds, channels=1, freq=440.0):
    t = np.arange(int(rate * seconds)) / rate
    x = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return np.stack([x, -0.5 * x][:channels], axis=1) if channels > 1 else x


def test_stereo_44k_to_mono_16k(tmp_path):
    p = tmp_path / "stereo.wav"
    sf.write(p, _tone(44100, 2.5, channels=2), 44100, subtype="PCM_16")
    x, dur = load_audio(p)
    assert x.dtype == np.float32 and x.ndim == 1
    assert x.shape[0] == 40000 and dur == pytest.approx(2.5)
    # the mean of (s, -s/2) is s/4: amplitude 0.125 after mixing down
    assert np.abs(x[1000:-1000]).max() == pytest.approx(0.125, abs=0.01)


@pytest.mark.parametrize("fmt,rate", [("flac", 48000), ("ogg", 22050), ("wav", 8000)])
def test_formats_and_rates(tmp_path, fmt, rate):
    p = tmp_path / f"a.{fmt}"
    sf.write(p, _tone(rate, 1.0), rate)
    x, dur = load_audio(p)
    assert abs(x.shape[0] - 16000) <= 1 and dur == pytest.approx(1.0, abs=1e-3)


def test_speech_wav_fixture(speech_wav, speech_wav_16k):
    assert sf.info(str(speech_wav)).samplerate == 22050
    a, da = load_audio(speech_wav)
    b, db = load_audio(speech_wav_16k)
    assert da == pytest.approx(db, abs=0.01) and da > 2.0
    assert np.abs(a).max() > 0.05


def test_missing_empty_corrupt_text_folder(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_audio(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "noise.wav").write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(InputError, match="not an audio file"):
        load_audio(tmp_path / "noise.wav")
    (tmp_path / "notes.txt").write_text("hello, this is text\n" * 50)
    with pytest.raises(InputError, match="not an audio file"):
        load_audio(tmp_path / "notes.txt")
    with pytest.raises(InputError, match="folder"):
        load_audio(tmp_path)
    sf.write(tmp_path / "zero.wav", np.zeros((0,), np.float32), 16000)
    with pytest.raises(InputError, match="no audio samples"):
        load_audio(tmp_path / "zero.wav")


def test_truncated_wav_is_clear_or_readable(tmp_path):
    p = tmp_path / "cut.flac"
    sf.write(p, _tone(16000, 2.0), 16000)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 3])
    try:
        x, _ = load_audio(p)
    except InputError as exc:
        assert "cut.flac" in str(exc)
    else:
        assert x.shape[0] <= 32000


def test_too_long(tmp_path):
    p = tmp_path / "long.wav"
    sf.write(p, np.zeros(16000 * 3, np.float32), 16000)
    with pytest.raises(InputError, match="limit"):
        load_audio(p, max_duration_s=2.0)


def test_resample_prepare_and_checks():
    x = _tone(48000, 1.0)
    assert resample(x, 48000, 16000).shape == (16000,)
    assert resample(x, 16000, 16000) is not None
    pcm = (np.stack([_tone(8000, 0.5)] * 2, 1) * 32767).astype(np.int16)
    y = prepare(pcm, 8000)
    assert y.shape == (8000,) and y.dtype == np.float32 and np.abs(y).max() <= 1.0
    with pytest.raises(InputError):
        resample(x, 0, 16000)
    with pytest.raises(InputError, match="empty"):
        check_samples(np.zeros(0, np.float32))
    with pytest.raises(InputError):
        check_samples("audio.wav")
    assert check_samples(np.zeros((2, 100), np.float32)).shape == (100,)  # (channels, N) accepted
    z = zero_mean_unit_var(x)
    assert abs(z.mean()) < 1e-5 and z.std() == pytest.approx(1.0, abs=1e-3)
    assert FeatureSettings().sampling_rate == 16000


def test_audio_module_imports_no_torch():
    code = ("import engine.io.audio, engine.io.image, engine.io.export, engine.processors.audio, "
            "engine.processors.ctc, engine.processors.tokenizer, sys; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
