"""MicrophoneSource against a fake PortAudio device that refuses 16 kHz.

The sounddevice functions the source calls (``query_devices``, ``query_hostapis``, ``default``,
``check_input_settings``, ``InputStream``) are replaced by a fake device that answers like PortAudio:
an unsupported rate or channel count raises ``PortAudioError`` ("Invalid sample rate [PaErrorCode
-9997]"), a device that is already open is "Device unavailable". The fake stream's callback is driven
from its own thread, as PortAudio's is, with a 440 Hz sine; the blocks reach a receiver in the UI thread.
"""
from __future__ import annotations

import sys
import threading
import types
from dataclasses import dataclass, field

import numpy as np
import pytest
from PySide6.QtCore import QObject, QThread, Signal, Slot

import gui.sources.microphone as mic

pytestmark = pytest.mark.timeout(60)

SR = 16_000


class PortAudioError(Exception):
    """Stands in for sounddevice.PortAudioError when PortAudio is not installed."""


@pytest.fixture
def sd(monkeypatch):
    """The sounddevice module (a stub when PortAudio is missing), its functions patched per test."""
    try:
        import sounddevice
    except (ImportError, OSError):  # no libportaudio: the source imports this stub instead
        sounddevice = types.ModuleType("sounddevice")
        sounddevice.PortAudioError = PortAudioError
        monkeypatch.setitem(sys.modules, "sounddevice", sounddevice)
    return sounddevice


def _error(sd, message: str, code: int) -> Exception:
    return sd.PortAudioError(message, code)


@dataclass
class FakeDevice:
    name: str
    index: int = 3
    default_rate: float = 48_000.0
    channels: int = 1  # max input channels
    rates: tuple[float, ...] = (44_100.0, 48_000.0)  # what it can be opened at (not 16 kHz)
    mono: bool = True  # False: refuses to be opened with one channel (many ALSA hw: devices)
    start_fails_at: tuple[float, ...] = ()  # rates check_input_settings accepts but start() refuses
    busy: bool = False  # opened by another program: every open fails
    checks: list[tuple[float, int]] = field(default_factory=list)
    streams: list[FakeStream] = field(default_factory=list)

    def info(self) -> dict:
        return {"name": self.name, "index": self.index, "hostapi": 0, "max_input_channels": self.channels,
                "max_output_channels": 0, "default_samplerate": self.default_rate}

    def validate(self, sd, samplerate: float, channels: int, during: str) -> None:
        if self.busy or any(s.is_open for s in self.streams):
            raise _error(sd, f"{during}: Device unavailable", -9985)
        if channels > self.channels or (channels == 1 and not self.mono):
            raise _error(sd, f"{during}: Invalid number of channels", -9998)
        if float(samplerate) not in self.rates + self.start_fails_at:
            raise _error(sd, f"{during}: Invalid sample rate", -9997)


class FakeStream:
    """An InputStream on a FakeDevice; ``play`` calls the callback from a thread, as PortAudio does."""

    def __init__(self, sd, dev: FakeDevice, *, samplerate, blocksize, device, channels, dtype, callback,
                 finished_callback, **_ignored) -> None:
        assert device == dev.name and dtype == "float32"
        dev.validate(sd, samplerate, channels, "Error opening InputStream")
        self.sd = sd
        self.dev, self.samplerate, self.blocksize, self.channels = dev, float(samplerate), int(blocksize), channels
        self.callback, self.finished_callback = callback, finished_callback
        self.is_open, self.active, self.finished = True, False, 0
        self.thread_errors: list[BaseException] = []
        self.flags = sd.CallbackFlags if hasattr(sd, "CallbackFlags") else None
        dev.streams.append(self)

    def start(self) -> None:
        if self.samplerate in self.dev.start_fails_at:
            raise _error(self.sd, "Error starting stream: Invalid sample rate", -9997)
        self.active = True

    def _finish(self) -> None:
        self.active = False
        self.finished += 1
        self.finished_callback()

    def stop(self) -> None:  # PortAudio calls the finished callback on stop too
        if self.active:
            self._finish()

    def close(self) -> None:
        self.is_open = False

    def play(self, frames: np.ndarray, then: str | None = None) -> threading.Thread:
        """Deliver ``frames`` ((n, channels) float32) in blocks of ``blocksize`` from a thread; then
        "end" (the stream ends on its own) or "fail" (a host error aborts it: overflow, then finished)."""
        def run() -> None:
            try:
                for i in range(0, len(frames), self.blocksize):
                    if not self.active:
                        return
                    block = np.ascontiguousarray(frames[i:i + self.blocksize], np.float32)
                    status = self.flags() if self.flags else types.SimpleNamespace(input_overflow=False)
                    self.callback(block, len(block), None, status)
                if then == "fail":
                    bad = self.flags(0x2) if self.flags else types.SimpleNamespace(input_overflow=True)
                    self.callback(np.zeros((self.blocksize, self.channels), np.float32), self.blocksize, None, bad)
                if then in ("end", "fail"):
                    self._finish()
            except BaseException as e:  # noqa: BLE001 - would be printed by sounddevice and abort the stream
                self.thread_errors.append(e)
            finally:
                sink_marker.done.emit()  # after everything the source emitted from this thread

        sink_marker = Marker()
        sink_marker.done.connect(self._receiver.on_marker)
        t = threading.Thread(target=run, name="fake-portaudio", daemon=True)
        t.start()
        return t


class Marker(QObject):
    """Emitted from the fake PortAudio thread after its last callback: queued behind the source's signals."""

    done = Signal()



class Sink(QObject):
    """A receiver in the UI thread, like the Speech tab: the source's signals arrive here queued."""

    def __init__(self, source: mic.MicrophoneSource) -> None:
        super().__init__()
        self.blocks: list[tuple[np.ndarray, float]] = []
        self.levels: list[tuple[float, float]] = []
        self.errors: list[str] = []
        self.started = self.stopped = self.markers = 0
        self.threads: set = set()
        source.blockReady.connect(self.on_block)
        source.levelChanged.connect(self.on_level)
        source.errorOccurred.connect(self.on_error)
        source.started.connect(self.on_started)
        source.stopped.connect(self.on_stopped)

    @Slot(object, float)
    def on_block(self, block, t) -> None:
        self.threads.add(QThread.currentThread())
        self.blocks.append((block, t))

    @Slot(float, float)
    def on_level(self, rms, peak) -> None:
        self.levels.append((rms, peak))

    @Slot(str)
    def on_error(self, message) -> None:
        self.errors.append(message)

    @Slot()
    def on_started(self) -> None:
        self.started += 1

    @Slot()
    def on_stopped(self) -> None:
        self.stopped += 1

    @Slot()
    def on_marker(self) -> None:
        self.markers += 1

    def audio(self) -> np.ndarray:
        return np.concatenate([b for b, _ in self.blocks]) if self.blocks else np.zeros(0, np.float32)


def install(monkeypatch, sd, dev: FakeDevice, sink_holder: list) -> None:
    """Patch exactly what gui.sources.microphone calls on sounddevice."""
    def query_devices(device=None, kind=None):
        if device is None and kind is None:
            return [dev.info()]
        if device in (None, dev.name, dev.index):
            return dev.info()
        raise ValueError(f"No {kind or ''} device matching {device!r}")

    def check_input_settings(device=None, channels=None, dtype=None, extra_settings=None, samplerate=None):
        dev.checks.append((float(samplerate), int(channels)))
        if float(samplerate) in dev.start_fails_at:  # some host APIs only find out when starting
            return
        dev.validate(sd, samplerate, channels, "Invalid settings")

    def input_stream(**kwargs):
        stream = FakeStream(sd, dev, **kwargs)
        stream._receiver = sink_holder[0]
        return stream

    monkeypatch.setattr(sd, "query_devices", query_devices, raising=False)
    monkeypatch.setattr(sd, "query_hostapis", lambda: [{"name": "ALSA"}], raising=False)
    monkeypatch.setattr(sd, "default", types.SimpleNamespace(device=[dev.index, -1]), raising=False)
    monkeypatch.setattr(sd, "check_input_settings", check_input_settings, raising=False)
    monkeypatch.setattr(sd, "InputStream", input_stream, raising=False)


@pytest.fixture
def open_mic(qtbot, monkeypatch, sd):
    """``open_mic(device) -> (source, sink)``: a MicrophoneSource on the fake device, started."""
    made: list[mic.MicrophoneSource] = []

    def make(dev: FakeDevice, expect_start: bool = True):
        holder: list = [None]
        install(monkeypatch, sd, dev, holder)
        source = mic.MicrophoneSource(device=dev.name)
        sink = holder[0] = Sink(source)
        made.append(source)
        assert source.start() is expect_start, sink.errors
        return source, sink

    yield make
    for source in made:
        source.stop()


def sine(seconds: float, rate: float, amplitude: float = 0.5, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def dominant_hz(y: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(y * np.hanning(len(y))))
    return float(np.argmax(spec) * SR / len(y))


def play_and_wait(qtbot, stream: FakeStream, sink: Sink, frames: np.ndarray, then: str | None = None) -> None:
    markers = sink.markers
    stream.play(frames, then)
    qtbot.waitUntil(lambda: sink.markers > markers, timeout=20_000)
    assert stream.thread_errors == []  # nothing raised on the audio thread


# ---------------------------------------------------------------------------- tests

def test_device_refusing_16k_is_opened_at_48k_and_resampled(qtbot, open_mic):
    dev = FakeDevice("USB Mic", default_rate=48_000.0)
    source, sink = open_mic(dev)
    assert source.rate == 48_000.0 and source.is_running() and sink.started == 1
    assert dev.checks[0] == (16_000.0, 1)  # 16 kHz was tried first and refused
    (stream,) = dev.streams
    assert (stream.samplerate, stream.channels) == (48_000.0, 1)
    assert stream.blocksize == round(48_000 * mic.BLOCK_S) and stream.active

    block = stream.blocksize
    silence = np.zeros(4 * block, np.float32)  # then ~1 s of a 440 Hz sine, in PortAudio-sized blocks
    x = np.concatenate([silence, sine(16 * block / 48_000, 48_000)])
    play_and_wait(qtbot, stream, sink, x[:, None])

    assert sink.threads == {QThread.currentThread()}  # queued to the UI thread, not run on PortAudio's
    assert all(b.dtype == np.float32 and b.ndim == 1 for b, _ in sink.blocks)
    y = sink.audio()
    assert abs(len(y) - len(x) / 3) <= 1  # 16 kHz: a third of the 48 kHz samples
    assert all(abs(len(b) - block / 3) <= 1 for b, _ in sink.blocks)  # ~64 ms each
    starts = np.cumsum([0] + [len(b) for b, _ in sink.blocks[:-1]]) / SR
    assert np.allclose([t for _, t in sink.blocks], starts)  # stream times follow the samples

    tone = y[len(silence) // 3 + SR // 10:]  # after the anti-alias filter's start-up
    assert abs(dominant_hz(tone) - 440) < 2
    assert abs(np.sqrt(np.mean(tone ** 2)) - 0.5 / np.sqrt(2)) < 0.02

    # one level per block: silent, then the sine's rms and peak
    assert len(sink.levels) == len(sink.blocks)
    assert sink.levels[0] == (0.0, 0.0)
    rms, peak = sink.levels[-1]
    assert abs(rms - 0.354) < 0.02 and abs(peak - 0.5) < 0.03

    source.stop()  # PortAudio's finished callback fires on stop too: that is no error
    assert not source.is_running() and not stream.is_open and stream.finished == 1
    assert sink.stopped == 1 and sink.errors == []


def test_stereo_only_device_is_opened_in_stereo_and_mixed_down(qtbot, open_mic):
    dev = FakeDevice("Stereo Interface", default_rate=44_100.0, channels=2, rates=(44_100.0,), mono=False)
    source, sink = open_mic(dev)
    (stream,) = dev.streams
    assert (source.rate, source.channels) == (44_100.0, 2)
    assert (stream.samplerate, stream.channels) == (44_100.0, 2)

    left = sine(1.0, 44_100, amplitude=0.6)
    x = np.stack([left, left / 3], axis=1)  # the same tone, quieter on the right: 0.4 once mixed
    play_and_wait(qtbot, stream, sink, x)
    y = sink.audio()
    assert y.ndim == 1 and y.dtype == np.float32
    assert abs(len(y) - len(x) * SR / 44_100) <= 1
    tone = y[SR // 10:]
    assert abs(dominant_hz(tone) - 440) < 2
    assert abs(np.sqrt(np.mean(tone ** 2)) - 0.4 / np.sqrt(2)) < 0.02


def test_stream_that_ends_on_its_own_reports_it(qtbot, open_mic):
    dev = FakeDevice("USB Mic")
    source, sink = open_mic(dev)
    (stream,) = dev.streams
    play_and_wait(qtbot, stream, sink, sine(0.3, 48_000)[:, None], then="end")
    assert len(sink.blocks) > 0
    assert sink.errors == ["The microphone USB Mic stopped delivering audio (disconnected?)."]
    source.stop()  # what the Speech tab does on the error: no second message
    assert sink.errors[1:] == [] and sink.stopped == 1 and not stream.is_open


def test_device_error_while_recording_reports_it(qtbot, open_mic):
    dev = FakeDevice("USB Mic")
    source, sink = open_mic(dev)
    (stream,) = dev.streams
    play_and_wait(qtbot, stream, sink, sine(0.2, 48_000)[:, None], then="fail")
    assert source.overflows == 1  # PortAudio's status flag is counted, not raised
    assert len(sink.errors) == 1 and "stopped delivering audio" in sink.errors[0]
    source.stop()
    assert not source.is_running() and sink.errors[1:] == []


def test_device_that_cannot_be_opened_reports_why(qtbot, open_mic):
    dev = FakeDevice("USB Mic", busy=True)
    source, sink = open_mic(dev, expect_start=False)
    assert not source.is_running() and sink.started == 0
    assert len(sink.errors) == 1
    assert sink.errors[0].startswith("Could not open the microphone USB Mic: ")
    assert "Device unavailable" in sink.errors[0]


def test_unknown_device_reports_it(qtbot, monkeypatch, sd):
    install(monkeypatch, sd, FakeDevice("USB Mic"), [None])
    gone = mic.MicrophoneSource(device="Unplugged Mic")  # picked before it was unplugged
    gone_sink = Sink(gone)
    assert gone.start() is False
    assert gone_sink.errors == ["Microphone 'Unplugged Mic' is not available: No input device matching "
                                "'Unplugged Mic'"]


def test_stream_that_fails_to_start_is_closed_before_the_next_rate(qtbot, open_mic):
    """Some host APIs accept 16 kHz in check_input_settings and refuse it only when the stream starts;
    the refused stream must be closed, or the device stays busy and the next rate fails as well."""
    dev = FakeDevice("USB Mic", start_fails_at=(16_000.0,))
    source, sink = open_mic(dev)
    first, second = dev.streams
    assert first.samplerate == 16_000.0 and not first.is_open and not first.active
    assert second.samplerate == 48_000.0 and second.active
    assert source.rate == 48_000.0 and sink.errors == []
