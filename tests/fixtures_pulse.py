"""A private PulseAudio daemon with a virtual microphone, to test the REAL sounddevice path.

``pulse_mic`` starts ``pulseaudio`` (no D-Bus, no system config, its own socket in a temp dir)
with ``module-pipe-source`` as the default source, points this process at it with
``PULSE_SERVER=unix:<dir>/native``, re-initialises PortAudio so sounddevice lists ``pulse`` and
``default``, and yields a :class:`PulseMic` whose ``play(wav)`` writes the audio into the source's
FIFO in real time (100 ms chunks, from a background thread). The daemon is killed by its pid at
teardown. Skipped, with the reason, when pulseaudio or PortAudio is missing.

CI on a fresh Debian: ``apt-get install -y pulseaudio pulseaudio-utils libasound2-plugins libportaudio2``.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import unavailable

log = logging.getLogger(__name__)

RATE = 16_000
CHUNK_S = 0.1


class PulseMic:
    """The running daemon: ``source`` is the virtual microphone's Pulse name."""

    def __init__(self, folder: Path, proc: subprocess.Popen, fifo: Path, source: str) -> None:
        self.folder = folder
        self.proc = proc
        self.fifo = fifo
        self.source = source
        self.server = f"unix:{folder / 'native'}"
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._fifo_file = None
        self._lock = threading.Lock()
        self.chunks_written = 0

    def _writer(self):
        with self._lock:
            if self._fifo_file is None:  # opening the FIFO for writing blocks until pulse reads it: it does
                self._fifo_file = open(self.fifo, "wb", buffering=0)  # noqa: SIM115 - closed in close()
            return self._fifo_file

    def play(self, wav_path, lead_s: float = 0.3, tail_s: float = 1.0) -> threading.Thread:
        """Feed ``wav_path`` (any rate/channels soundfile reads) into the mic in real time, with
        ``lead_s`` / ``tail_s`` of silence around it, from a background thread (returned)."""
        import soundfile as sf
        from scipy.signal import resample_poly

        data, rate = sf.read(str(wav_path), dtype="float32", always_2d=True)
        x = data.mean(axis=1)
        if rate != RATE:
            x = resample_poly(x, RATE, rate).astype(np.float32)
        x = np.concatenate((np.zeros(int(lead_s * RATE), np.float32), x, np.zeros(int(tail_s * RATE), np.float32)))
        return self.play_samples(x)

    def play_samples(self, x: np.ndarray) -> threading.Thread:
        pcm = (np.clip(np.asarray(x, np.float32), -1.0, 1.0) * 32767).astype("<i2")
        chunk = int(CHUNK_S * RATE)

        def run() -> None:
            f = self._writer()
            t0 = time.monotonic()
            for k, i in enumerate(range(0, len(pcm), chunk)):
                if self._stop.is_set():
                    return
                try:
                    f.write(pcm[i:i + chunk].tobytes())
                except (BrokenPipeError, ValueError, OSError):
                    return
                self.chunks_written += 1
                # pace to real time against the wall clock (no drift), never the whole file at once
                delay = t0 + (k + 1) * CHUNK_S - time.monotonic()
                if delay > 0:
                    self._stop.wait(delay)

        t = threading.Thread(target=run, name="pulse-mic-feeder", daemon=True)
        t.start()
        self._threads.append(t)
        return t

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=2)
        if self._fifo_file is not None:
            try:
                self._fifo_file.close()
            except OSError:
                pass


def _reinit_portaudio() -> None:
    """PortAudio enumerates devices only in Pa_Initialize: re-initialise after env changes."""
    import sounddevice as sd
    sd._terminate()  # noqa: SLF001
    sd._initialize()  # noqa: SLF001


def _wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    ev = threading.Event()
    while time.monotonic() < end:
        if cond():
            return True
        ev.wait(0.05)  # polling an external process, not a test sleep
    return cond()


@pytest.fixture
def pulse_mic():
    exe = shutil.which("pulseaudio")
    if exe is None:
        unavailable("pulseaudio is not installed (apt-get install pulseaudio pulseaudio-utils libasound2-plugins)")
    try:
        import sounddevice  # noqa: F401
    except OSError as e:
        unavailable(f"PortAudio is missing (apt-get install libportaudio2): {e}")
    folder = Path(tempfile.mkdtemp(prefix="taskscope-pulse-"))
    fifo = folder / "mic.fifo"  # module-pipe-source creates it
    env = dict(os.environ, HOME=str(folder), XDG_RUNTIME_DIR=str(folder), XDG_CONFIG_HOME=str(folder),
               PULSE_RUNTIME_PATH=str(folder), PULSE_STATE_PATH=str(folder))
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    cmd = [exe, "-n", "--daemonize=no", "--exit-idle-time=-1", "--use-pid-file=false", "--disable-shm=true",
           "--log-target=stderr", "--log-level=error",
           "-L", f"module-native-protocol-unix socket={folder / 'native'} auth-anonymous=1",
           "-L", f"module-pipe-source source_name=taskscope_mic file={fifo} format=s16le rate={RATE} channels=1",
           "-L", "module-null-sink sink_name=taskscope_null",
           "-L", "module-default-device-restore"]
    log_file = open(folder / "pulse.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
    old_server = os.environ.get("PULSE_SERVER")
    mic = None
    try:
        if not _wait_for(lambda: (folder / "native").exists() and fifo.exists() or proc.poll() is not None, 10):
            unavailable("pulseaudio did not start in 10 s")
        if proc.poll() is not None:
            unavailable(f"pulseaudio exited: {(folder / 'pulse.log').read_text(errors='replace')[-500:]}")
        os.environ["PULSE_SERVER"] = f"unix:{folder / 'native'}"
        if shutil.which("pactl"):
            subprocess.run(["pactl", "set-default-source", "taskscope_mic"], env=dict(env, PULSE_SERVER=os.environ["PULSE_SERVER"]),
                           check=False, capture_output=True, timeout=10)
        _reinit_portaudio()
        mic = PulseMic(folder, proc, fifo, "taskscope_mic")
        yield mic
    finally:
        if mic is not None:
            mic.close()
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        log_file.close()
        if old_server is None:
            os.environ.pop("PULSE_SERVER", None)
        else:
            os.environ["PULSE_SERVER"] = old_server
        try:
            _reinit_portaudio()  # forget the daemon's devices
        except Exception:  # noqa: BLE001
            pass
        shutil.rmtree(folder, ignore_errors=True)
