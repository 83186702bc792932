"""Microphone source: a sounddevice InputStream, resampled to 16 kHz mono, emitted as blocks.

Every audio source of the Speech tab (this one and :class:`gui.sources.audio_file.AudioFileSource`)
has the same Qt interface, :class:`AudioSource`:

- ``blockReady(block, t_s)``  a float32 16 kHz mono block (~50-100 ms) and the stream time of
  its first sample (seconds since start);
- ``levelChanged(rms, peak)`` linear 0..1 level of that block;
- ``errorOccurred(message)``  a message for the person (no microphone, device failed to open...);
- ``started()`` / ``stopped()``.

The sounddevice callback runs on PortAudio's thread: it only downmixes, resamples, measures and
emits; Qt queues the signals to the receivers' (UI) thread. Nothing here blocks the UI.

A microphone that fails mid-stream (PortAudio aborts the stream: a host error, the device
vanished; or the callback itself fails) reports it once with ``errorOccurred``. Its
``reconnectable`` is True: after ``stop()`` it can be started again once the device is back (the
Speech tab tries every couple of seconds).
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Signal, Slot

from engine.processors.audio import Resampler

log = logging.getLogger(__name__)

SAMPLE_RATE = 16_000
BLOCK_S = 0.064  # ~64 ms blocks


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    default_rate: float
    channels: int
    hostapi: str = ""
    is_default: bool = False

    @property
    def label(self) -> str:
        star = " (default)" if self.is_default else ""
        return f"{self.name}{star} — {self.default_rate / 1000:g} kHz, {self.channels} ch"


def list_input_devices() -> list[InputDevice]:
    """Every device with input channels; an empty list (logged) when PortAudio has none or fails."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as e:  # OSError: libportaudio missing
        log.warning("sounddevice unavailable: %s", e)
        return []
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        try:
            default_in = sd.default.device[0]
        except Exception:  # noqa: BLE001 - PortAudio raises bare PortAudioError here
            default_in = -1
    except Exception as e:  # noqa: BLE001
        log.warning("cannot list audio devices: %s", e)
        return []
    out = []
    for d in devices:
        if d.get("max_input_channels", 0) <= 0:
            continue
        api = hostapis[d["hostapi"]]["name"] if 0 <= d.get("hostapi", -1) < len(hostapis) else ""
        out.append(InputDevice(int(d["index"]), str(d["name"]), float(d["default_samplerate"]),
                               int(d["max_input_channels"]), api, int(d["index"]) == default_in))
    return out


def rescan_devices() -> None:
    """Make PortAudio enumerate devices again (it does so only at initialisation)."""
    try:
        import sounddevice as sd
        sd._terminate()  # noqa: SLF001 - the documented way to re-scan in sounddevice
        sd._initialize()  # noqa: SLF001
    except Exception as e:  # noqa: BLE001
        log.warning("cannot re-scan audio devices: %s", e)


class AudioSource(QObject):
    """The signal interface every Speech-tab audio source has (see the module docstring)."""

    blockReady = Signal(object, float)  # (float32 16 kHz mono block, stream time of its first sample)
    levelChanged = Signal(float, float)  # (rms, peak), linear 0..1
    errorOccurred = Signal(str)
    started = Signal()
    stopped = Signal()

    sample_rate = SAMPLE_RATE
    #: True for a device that may come back after failing (a microphone), not for a file
    reconnectable = False

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._emitted = 0  # 16 kHz samples emitted since start

    def start(self) -> bool:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def is_running(self) -> bool:
        raise NotImplementedError

    @property
    def description(self) -> str:
        return type(self).__name__

    def _emit_block(self, block: np.ndarray) -> None:
        """Emit one 16 kHz block with its stream time and level (any thread)."""
        if len(block) == 0:
            return
        t = self._emitted / SAMPLE_RATE
        self._emitted += len(block)
        rms = float(np.sqrt(np.dot(block, block) / len(block)))
        peak = float(np.max(np.abs(block)))
        self.blockReady.emit(block, t)
        self.levelChanged.emit(min(rms, 1.0), min(peak, 1.0))


class MicrophoneSource(AudioSource):
    """A sounddevice input device, opened at 16 kHz if it can, else at its default rate; mono if it
    can, else with the channels it needs, mixed down."""

    reconnectable = True

    def __init__(self, device: int | str | None = None, block_s: float = BLOCK_S,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.device = device
        self.block_s = block_s
        self.rate: float | None = None
        self.channels = 0  # channels opened (more than one are mixed down to mono)
        self.overflows = 0
        self._stream = None
        self._resampler: Resampler | None = None  # engine's polyphase resampler, block by block
        self._lock = threading.Lock()
        self._reported = False  # this stream's failure was reported (once per stream)

    @property
    def description(self) -> str:
        return f"microphone {self.device!r} at {self.rate or 0:g} Hz"

    def is_running(self) -> bool:
        return self._stream is not None

    def _candidates(self, sd, device) -> list[tuple[float, int]]:
        """(rate, channels) to try: 16 kHz first, then the device's own rate; mono first, then the
        channels a device that refuses mono (many ALSA hw: devices) needs, mixed down in the callback."""
        info = sd.query_devices(device, "input")
        rates = [float(SAMPLE_RATE), float(info["default_samplerate"])]
        most = max(int(info.get("max_input_channels", 1) or 1), 1)
        channels = [c for c in dict.fromkeys((1, 2, most)) if c <= most]
        return [(r, c) for r in dict.fromkeys(r for r in rates if r > 0) for c in channels]

    def start(self) -> bool:
        """Open and start the device. On failure emit ``errorOccurred`` and return False."""
        if self._stream is not None:
            return True
        try:
            import sounddevice as sd
        except (ImportError, OSError) as e:
            self.errorOccurred.emit(f"Audio input is unavailable (PortAudio could not be loaded: {e}).")
            return False
        if not list_input_devices():
            self.errorOccurred.emit("No microphone found. Connect one and press refresh, "
                                    "or open an audio file instead.")
            return False
        device = self.device
        try:
            candidates = self._candidates(sd, device)
        except Exception as e:  # noqa: BLE001 - unknown device name/index, PortAudioError
            self.errorOccurred.emit(f"Microphone {device!r} is not available: {e}")
            return False
        last_error: Exception | None = None
        for rate, channels in candidates:
            try:
                sd.check_input_settings(device=device, samplerate=rate, channels=channels, dtype="float32")
            except Exception as e:  # noqa: BLE001
                last_error = e
                continue
            stream = None
            try:
                self._resampler = Resampler(rate, SAMPLE_RATE)
                self._emitted = 0
                self._reported = False
                stream = sd.InputStream(device=device, samplerate=rate, channels=channels, dtype="float32",
                                        blocksize=int(round(rate * self.block_s)), callback=self._callback,
                                        finished_callback=self._on_finished)
                stream.start()
            except Exception as e:  # noqa: BLE001
                last_error = e
                log.info("opening %r at %g Hz, %d ch failed: %s", device, rate, channels, e)
                if stream is not None:  # opened but not started: release the device for the next try
                    try:
                        stream.close()
                    except Exception:  # noqa: BLE001
                        pass
                continue
            self._stream = stream
            self.rate = rate
            self.channels = channels
            log.info("microphone %r open at %g Hz, %d ch", device, rate, channels)
            self.started.emit()
            return True
        self.errorOccurred.emit(f"Could not open the microphone {device if device is not None else '(default)'}: "
                                f"{last_error}")
        return False

    def stop(self) -> None:
        stream, self._stream = self._stream, None
        if stream is None:
            return
        try:
            stream.stop()
            stream.close()
        except Exception as e:  # noqa: BLE001
            log.warning("closing the microphone: %s", e)
        self.stopped.emit()

    def _name(self) -> str:
        return str(self.device) if self.device is not None else "(default)"

    def _report_failure(self, detail: str = "") -> None:
        """Say once per stream that it failed (any thread; the signal is queued to the receivers)."""
        with self._lock:
            if self._reported or self._stream is None:  # reported already, or stopped on purpose
                return
            self._reported = True
        self.errorOccurred.emit(f"The microphone {self._name()} stopped delivering audio (disconnected?)."
                                + (f" {detail}" if detail else ""))

    def _on_finished(self) -> None:  # PortAudio thread: the stream ended without stop()
        self._report_failure()

    def _callback(self, indata, frames, time_info, status) -> None:  # PortAudio thread
        if status and status.input_overflow:
            self.overflows += 1
        try:
            x = indata[:, 0] if indata.shape[1] == 1 else indata.mean(axis=1)
            with self._lock:
                resampler = self._resampler
                if resampler is None:
                    return
                self._emit_block(resampler.process(x))
        except Exception as e:  # noqa: BLE001 - a broken block or device: report it and end the stream
            log.exception("microphone callback failed")
            self._report_failure(f"({type(e).__name__}: {e})")
            import sounddevice as sd
            raise getattr(sd, "CallbackAbort", RuntimeError)("microphone callback failed") from e


class BlockRelay(QObject):
    """Forwards one source's blocks to ``receiver(block, t_s, source)``. It lives in the UI thread, so
    a microphone's blocks are queued to it; a block posted before Stop still arrives after the
    disconnect (posted events are not cancelled), and the receiver can drop it by its source."""

    def __init__(self, source, receiver, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.source, self._receiver = source, receiver

    @Slot(object, float)
    def on_block(self, block, t_s: float) -> None:
        self._receiver(block, t_s, self.source)
