"""Device loss (issue 7): a camera that stops delivering, a microphone that fails mid-stream, and a
GPU that runs out of memory — each shown to the person, nothing already shown or transcribed lost,
and the work goes on when the device is back (or on the CPU).

The devices are fakes the tests control: a camera capture object that can be unplugged and plugged
back in (injected through ``VisionTab.camera_factory``), a fake PortAudio device (the sounddevice
functions MicrophoneSource calls, as in tests/test_microphone.py) whose stream vanishes, and engine
tasks placed "on cuda" whose first call raises an exception named OutOfMemoryError. Every wait is
on a signal or a condition (qtbot.waitUntil / waitSignal); no test sleeps or depends on timing.
"""
from __future__ import annotations

import sys
import threading
import types
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QCoreApplication

import engine
from engine.types.vision import DetectionResult
from gui.core.engine_client import EngineClient
from gui.core.engine_state import fallback_notice, gpu_failure, placed_on_gpu
from gui.sources.video import CameraSource

pytestmark = pytest.mark.timeout(240)

WAIT = 20_000
LOAD_WAIT = 120_000  # the first window imports torch on a shared 2-core machine
SR = 16_000


# ================================================================== fakes: engine tasks

class OutOfMemoryError(RuntimeError):
    """Named as torch.cuda.OutOfMemoryError is: the GUI tells GPU failures by name and message."""


class FakeDetector:
    """An object-detection task that says where it runs in its labels; placed on "cuda:0" unless
    loaded for the CPU. ``fail_first`` (on a GPU): its first call raises ``fail_first``."""

    name = "object-detection"

    def __init__(self, model: str, device: str, fail_first: BaseException | None = None) -> None:
        self.model_ref = model
        kind = "cpu" if device == "cpu" else "cuda:0"
        self.placement = SimpleNamespace(device=SimpleNamespace(type=kind.split(":")[0]), describe=lambda: kind)
        self.where = kind
        self.fail_first = fail_first if kind != "cpu" else None
        self.calls = 0

    def describe(self) -> str:
        return f"{self.name} · {self.model_ref} · {self.where}"

    def memory_bytes(self) -> int:
        return 0

    def __call__(self, inputs, options=None, *, cancel=None, progress=None):
        self.calls += 1
        if self.fail_first is not None and self.calls == 1:
            raise self.fail_first
        h, w = np.asarray(inputs).shape[:2]
        return DetectionResult(np.array([[4, 4, w / 2, h / 2]], np.float32), np.array([0.9], np.float32),
                               np.array([1]), (f"on {self.where}",), (h, w), 0.0, np.array([0]))


@pytest.fixture
def fake_tasks(monkeypatch):
    """engine.load_task replaced: every load is recorded as (task, model, device, precision)."""
    state = SimpleNamespace(loads=[], tasks=[], fail_first=None, fail_load=None)

    def load_task(name, model=None, device=None, precision="exact", *, progress=None, cancel=None, offline=None):
        model = model or f"default/{name}"
        state.loads.append((name, model, device, precision))
        if state.fail_load is not None and device != "cpu":
            raise state.fail_load
        task = FakeDetector(model, device, state.fail_first)
        task.name = name
        state.tasks.append(task)
        return task

    monkeypatch.setattr(engine, "load_task", load_task)
    monkeypatch.setattr(engine, "default_model", lambda name: f"default/{name}")
    return state


def vision_window(open_window):
    w = open_window({"models/object-detection": "fake/detector", "vision/task": "object-detection",
                     "vision/threshold": 0.0})
    tab = w.vision_tab
    tab.set_task("object-detection")
    return w, tab


# ================================================================== 1. a camera that stops delivering

class FakeCameraDevice:
    """A camera that can be unplugged and plugged back in (thread-safe). Every frame it makes
    carries its serial number in its first pixels, so frames made after a replug can be told."""

    def __init__(self) -> None:
        self.present = threading.Event()
        self.present.set()
        self.unplugged = threading.Event()
        self._lock = threading.Lock()
        self.made = 0
        self.opens = 0

    def unplug(self) -> None:
        self.present.clear()
        self.unplugged.set()

    def plug(self) -> None:
        self.unplugged.clear()
        self.present.set()

    def frame(self) -> np.ndarray:
        with self._lock:
            serial = self.made
            self.made += 1
        bgr = np.full((120, 160, 3), 90, np.uint8)
        bgr[0, :4, :] = np.frombuffer(serial.to_bytes(4, "little"), np.uint8)[:, None]
        return bgr


def serial_of(rgb: np.ndarray) -> int:
    return int.from_bytes(bytes(rgb[0, :4, 0]), "little")


class FakeCapture:
    """What cv2.VideoCapture would be: frames at ~50 fps while the device is present; after an
    unplug, reads fail (and a stand-in file cannot be rewound: it has ended)."""

    def __init__(self, device: FakeCameraDevice) -> None:
        self.device = device

    def isOpened(self) -> bool:
        return True

    def get(self, prop) -> float:
        import cv2
        return 50.0 if prop == cv2.CAP_PROP_FPS else 0.0

    def set(self, prop, value) -> bool:
        return self.device.present.is_set()

    def read(self):
        if not self.device.present.is_set():
            return False, None
        self.device.unplugged.wait(0.02)  # the camera's frame period (returns at once on unplug)
        if not self.device.present.is_set():
            return False, None
        return True, self.device.frame()

    def release(self) -> None:
        pass


class FakeCamera(CameraSource):
    """A CameraSource whose capture is a FakeCapture on ``device`` (None while it is unplugged)."""

    def __init__(self, index, device: FakeCameraDevice) -> None:
        super().__init__(index)
        self.device = device

    def _open(self):
        self.device.opens += 1
        return FakeCapture(self.device) if self.device.present.is_set() else None


@pytest.mark.gui
@pytest.mark.parametrize("index", [0, "stand-in.avi"], ids=["camera-unplugged", "file-as-camera-ends"])
def test_lost_camera_keeps_what_is_shown_and_comes_back(qtbot, open_window, fake_tasks, index):
    w, tab = vision_window(open_window)
    device = FakeCameraDevice()
    tab.camera_factory = lambda i: FakeCamera(i, device)
    tab.sources.reconnect_interval_ms = 20  # the app tries every 2 s; the test need not wait that long
    errors, statuses = [], []
    tab.errorMessage.connect(errors.append)
    tab.statusMessage.connect(statuses.append)

    tab.start_camera(index)
    qtbot.waitUntil(lambda: tab.results_received >= 2 and tab.last_outcome() is not None, timeout=LOAD_WAIT)
    assert tab.is_running() and errors == []

    device.unplug()
    qtbot.waitUntil(lambda: tab.sources.reconnecting, timeout=WAIT)
    # visible: a banner over the view and the window's message area (once)
    assert len(errors) == 1 and "stopped delivering frames" in errors[0]
    assert tab.view.message.startswith(errors[0]) and "again" in tab.view.message
    assert errors[0] in w.message_area.text()
    # what was shown stays: the last frame and its result
    assert tab.view.frame_id >= 0 and not tab.view.frame_size.isEmpty()
    shown_frame = tab.view.frame_id
    assert tab.last_outcome() is not None and tab.presenter().current_detections() is not None
    assert len(tab.presenter().current_detections()) == 1
    assert tab.start_button.isChecked() and not tab.is_running()  # Stop ends the attempts

    # attempts while it is away fail quietly, and a result still arriving keeps the banner
    attempts = tab.sources.reconnect_attempts
    qtbot.waitUntil(lambda: tab.sources.reconnect_attempts >= attempts + 3, timeout=WAIT)
    assert len(errors) == 1 and tab.view.message.startswith(errors[0])
    assert tab.view.frame_id == shown_frame and tab.presenter().current_detections() is not None

    made_before = device.made
    device.plug()
    qtbot.waitUntil(lambda: not tab.sources.reconnecting and tab.sources.current is not None, timeout=WAIT)
    # new frames from the camera that came back, with new results (promotion cleared the old one)
    qtbot.waitUntil(lambda: tab.last_outcome() is not None and tab._last_frame is not None
                    and serial_of(tab._last_frame) >= made_before, timeout=WAIT)
    assert tab.view.message == "" and tab.is_running()
    assert any("is back" in s for s in statuses)
    assert len(errors) == 1
    tab.stop()
    assert not tab.is_running() and not tab.sources.reconnecting


@pytest.mark.gui
def test_stop_while_reconnecting_ends_the_attempts(qtbot, open_window, fake_tasks):
    w, tab = vision_window(open_window)
    device = FakeCameraDevice()
    tab.camera_factory = lambda i: FakeCamera(i, device)
    tab.sources.reconnect_interval_ms = 20
    tab.start_camera(0)
    qtbot.waitUntil(lambda: tab.view.frame_id >= 0, timeout=LOAD_WAIT)
    device.unplug()
    qtbot.waitUntil(lambda: tab.sources.reconnecting, timeout=WAIT)
    tab.start_button.click()  # Stop
    assert not tab.sources.reconnecting and not tab.start_button.isChecked()
    assert tab.view.message == ""  # "trying again" no longer holds
    assert not tab.sources._retry_timer.isActive() and tab.sources.pending is None
    attempts = tab.sources.reconnect_attempts
    device.plug()
    QCoreApplication.processEvents()  # what is queued runs: nothing may open the camera again
    assert tab.sources.reconnect_attempts == attempts and tab.sources.current is None


def test_a_video_file_that_fails_is_not_reconnected(qtbot):
    """Only sources started with ``reconnect`` (cameras) are opened again; a file's failure is final."""
    from gui.sources.switcher import SourceSwitcher

    device = FakeCameraDevice()
    switcher = SourceSwitcher()
    lost = []
    switcher.failed.connect(lambda msg, current: lost.append((msg, current)))
    switcher.start(FakeCamera(0, device))  # no reconnect given
    qtbot.waitUntil(lambda: switcher.current is not None, timeout=WAIT)
    device.unplug()
    qtbot.waitUntil(lambda: bool(lost), timeout=WAIT)
    assert lost[0][1] is True and not switcher.reconnecting and switcher.current is None
    switcher.stop()
    assert switcher.wait_retired(5000)


# ================================================================== 2. a microphone that fails mid-stream

class PortAudioError(Exception):
    """Stands in for sounddevice.PortAudioError when PortAudio is not installed."""


@pytest.fixture
def sd(monkeypatch):
    try:
        import sounddevice
    except (ImportError, OSError):
        sounddevice = types.ModuleType("sounddevice")
        sounddevice.PortAudioError = PortAudioError
        monkeypatch.setitem(sys.modules, "sounddevice", sounddevice)
    return sounddevice


@dataclass
class FakeMic:
    """One 16 kHz mono input device that can vanish and come back."""

    name: str = "USB Mic"
    index: int = 2
    present: bool = True
    rescans: int = 0
    opens: int = 0
    streams: list = field(default_factory=list)

    def info(self) -> dict:
        return {"name": self.name, "index": self.index, "hostapi": 0, "max_input_channels": 1,
                "max_output_channels": 0, "default_samplerate": 16_000.0}


class FakeMicStream:
    """An InputStream on a FakeMic; ``play`` runs the callback from its own thread, as PortAudio does."""

    def __init__(self, sd, mic: FakeMic, *, samplerate, blocksize, device, channels, dtype, callback,
                 finished_callback, **_ignored) -> None:
        if not mic.present:
            raise sd.PortAudioError("Error opening InputStream: Device unavailable", -9985)
        self.mic, self.blocksize, self.channels = mic, int(blocksize), channels
        self.callback, self.finished_callback = callback, finished_callback
        self.active, self.is_open, self.finished = False, True, 0
        self.thread_errors: list[BaseException] = []
        self.flags = getattr(sd, "CallbackFlags", None)
        mic.streams.append(self)

    def start(self) -> None:
        self.active = True

    def _finish(self) -> None:
        self.active = False
        self.finished += 1
        self.finished_callback()

    def stop(self) -> None:
        if self.active:
            self._finish()

    def close(self) -> None:
        self.is_open = False

    def play(self, audio: np.ndarray, then: str | None = None) -> threading.Thread:
        """Deliver ``audio`` in blocks from a thread; then "vanish": the device goes away and
        PortAudio aborts the stream (its finished callback, without stop())."""
        def run() -> None:
            try:
                for i in range(0, len(audio), self.blocksize):
                    if not self.active:
                        return
                    block = np.ascontiguousarray(audio[i:i + self.blocksize, None], np.float32)
                    status = self.flags() if self.flags else SimpleNamespace(input_overflow=False)
                    self.callback(block, len(block), None, status)
                if then == "vanish":
                    self.mic.present = False
                    self._finish()
            except BaseException as e:  # noqa: BLE001
                self.thread_errors.append(e)

        t = threading.Thread(target=run, name="fake-portaudio", daemon=True)
        t.start()
        return t


def install_mic(monkeypatch, sd, mic: FakeMic) -> None:
    """Patch exactly what gui.sources.microphone calls on sounddevice (and the re-scan)."""
    def query_devices(device=None, kind=None):
        if device is None and kind is None:
            return [mic.info()] if mic.present else []
        if mic.present and device in (None, mic.name, mic.index):
            return mic.info()
        raise ValueError(f"No {kind or ''} device matching {device!r}")

    def check_input_settings(device=None, channels=None, dtype=None, extra_settings=None, samplerate=None):
        mic.opens += 1
        if not mic.present:
            raise sd.PortAudioError("Invalid settings: Device unavailable", -9985)
        if float(samplerate) != 16_000.0 or channels != 1:
            raise sd.PortAudioError("Invalid settings: Invalid sample rate", -9997)

    def rescan() -> None:
        mic.rescans += 1

    monkeypatch.setattr(sd, "query_devices", query_devices, raising=False)
    monkeypatch.setattr(sd, "query_hostapis", lambda: [{"name": "ALSA"}], raising=False)
    monkeypatch.setattr(sd, "default", types.SimpleNamespace(device=[mic.index, -1]), raising=False)
    monkeypatch.setattr(sd, "check_input_settings", check_input_settings, raising=False)
    monkeypatch.setattr(sd, "InputStream", lambda **kw: FakeMicStream(sd, mic, **kw), raising=False)
    monkeypatch.setattr(sd, "_terminate", rescan, raising=False)
    monkeypatch.setattr(sd, "_initialize", lambda: None, raising=False)


def bursts(*parts: tuple[str, float]) -> np.ndarray:
    """("silence"|"voice", seconds) parts at 16 kHz: voice is a loud buzz the endpointing takes for speech."""
    out = []
    for kind, seconds in parts:
        n = int(round(seconds * SR))
        if kind == "silence":
            out.append(np.zeros(n, np.float32))
        else:
            t = np.arange(n) / SR
            y = sum(np.sin(2 * np.pi * f * t) / k for k, f in enumerate((180.0, 360.0, 540.0, 900.0), 1))
            out.append((0.25 * y * (0.75 + 0.25 * np.sin(2 * np.pi * 4 * t))).astype(np.float32))
    return np.concatenate(out)


@pytest.fixture
def speech_tab(qtbot, monkeypatch, sd, tmp_path, w2v_base_ctc):
    from PySide6.QtCore import QSettings

    from gui.speech.tab import SpeechTab

    monkeypatch.delenv("TASKSCOPE_FAKE_MIC", raising=False)
    mic = FakeMic()
    install_mic(monkeypatch, sd, mic)
    client = EngineClient()
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    tab = SpeechTab(client, settings)
    tab.asr_picker.set_model(str(w2v_base_ctc))
    tab.reconnect_interval_ms = 20  # the app tries every 2 s
    qtbot.addWidget(tab)
    tab.show()
    yield tab, mic
    tab.shutdown()
    assert client.shutdown(10_000)


@pytest.mark.gui
@pytest.mark.parametrize("how", ["picker", "set_source"])
def test_lost_microphone_keeps_the_transcript_and_comes_back(qtbot, speech_tab, how):
    from gui.sources.microphone import MicrophoneSource

    tab, mic = speech_tab
    assert tab.mic.currentData() == mic.name  # the picker lists the fake device
    if how == "set_source":
        tab.set_source(MicrophoneSource(device=mic.name, parent=tab))
    errors, changes = [], []
    tab.errorMessage.connect(errors.append)
    tab.recordingChanged.connect(changes.append)
    assert tab.start(), tab.msg.text()
    first = mic.streams[-1]

    # one utterance ended by a pause, a second one still going when the device vanishes
    first.play(bursts(("silence", 0.6), ("voice", 1.0), ("silence", 1.0), ("voice", 0.8)), then="vanish")
    qtbot.waitUntil(lambda: tab.reconnecting, timeout=WAIT)
    assert first.thread_errors == []
    assert len(errors) == 1 and "stopped delivering audio" in errors[0]
    assert tab.msg.text().startswith(errors[0]) and "again" in tab.msg.text()
    assert tab.record_btn.isChecked() and not tab.is_recording() and changes == [True, False]
    # the utterance in progress was finalized from what was heard: two finals, both shown
    qtbot.waitUntil(lambda: len(tab.segments) == 2, timeout=LOAD_WAIT)
    assert [e[0] for e in tab.events].count("final") == 2
    assert tab.segments[0][2] <= tab.segments[1][1] and tab.segments[1][2] > tab.segments[1][1]
    before = list(tab.segments)
    transcript = tab.transcript.toPlainText()

    # while it is away every attempt fails quietly (and PortAudio is asked to list devices again)
    attempts = tab.reconnect_attempts
    qtbot.waitUntil(lambda: tab.reconnect_attempts >= attempts + 3, timeout=WAIT)
    assert len(errors) == 1 and tab.msg.text().startswith(errors[0])
    assert mic.rescans >= 3

    mic.present = True
    qtbot.waitUntil(lambda: tab.is_recording(), timeout=WAIT)
    assert not tab.reconnecting and "back" in tab.msg.text() and changes == [True, False, True]
    again = mic.streams[-1]
    assert again is not first and again.active
    again.play(bursts(("silence", 0.6), ("voice", 1.0), ("silence", 1.0)))
    qtbot.waitUntil(lambda: len(tab.segments) == 3, timeout=LOAD_WAIT)
    assert tab.segments[:2] == before  # nothing already transcribed was lost
    assert tab.table.rowCount() == 3
    assert tab.transcript.toPlainText().startswith(transcript)
    tab.stop()
    assert not tab.reconnecting and not tab.record_btn.isChecked() and len(errors) == 1


@pytest.mark.gui
def test_stop_while_the_microphone_is_away_ends_the_attempts(qtbot, speech_tab):
    tab, mic = speech_tab
    assert tab.start()
    mic.streams[-1].play(bursts(("silence", 0.3)), then="vanish")
    qtbot.waitUntil(lambda: tab.reconnecting, timeout=WAIT)
    tab.record_btn.click()  # Stop
    assert not tab.reconnecting and not tab.record_btn.isChecked()
    attempts, opened = tab.reconnect_attempts, len(mic.streams)
    mic.present = True
    assert not tab._reconnect_timer.isActive()
    assert tab.reconnect_attempts == attempts and len(mic.streams) == opened and not tab.is_recording()


def test_callback_failure_is_reported_once_and_the_stream_aborted(qtbot, monkeypatch, sd):
    """A block the callback cannot process (a broken device buffer) is a stream error: reported
    once, the stream aborted (CallbackAbort), and the source can be started again afterwards."""
    from gui.sources.microphone import MicrophoneSource

    mic = FakeMic()
    install_mic(monkeypatch, sd, mic)
    source = MicrophoneSource(device=mic.name)
    errors = []
    source.errorOccurred.connect(errors.append)
    assert source.start()
    stream = mic.streams[-1]
    done = threading.Event()

    def broken() -> None:
        try:
            stream.callback(np.zeros(1024, np.float32), 1024, None, SimpleNamespace(input_overflow=False))
        except BaseException as e:  # noqa: BLE001 - what sounddevice would turn into an abort
            stream.thread_errors.append(e)
        stream._finish()  # PortAudio then calls the finished callback
        done.set()

    threading.Thread(target=broken, daemon=True).start()
    qtbot.waitUntil(lambda: done.is_set() and bool(errors), timeout=WAIT)
    assert len(stream.thread_errors) == 1
    if hasattr(sd, "CallbackAbort"):
        assert isinstance(stream.thread_errors[0], sd.CallbackAbort)
    assert len(errors) == 1 and "stopped delivering audio" in errors[0] and "IndexError" in errors[0]
    source.stop()
    assert len(errors) == 1
    assert source.reconnectable and source.start() and mic.streams[-1] is not stream  # opened again
    source.stop()


# ================================================================== 3. GPU out of memory -> the CPU

def test_gpu_failures_are_told_by_name_and_message():
    assert gpu_failure(OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")) == "out of memory"
    assert gpu_failure(type("OutOfMemoryError", (Exception,), {})("boom")) == "out of memory"
    assert gpu_failure(RuntimeError("CUDA error: an illegal memory access was encountered")) == "error"
    assert gpu_failure(RuntimeError("cuDNN error: CUDNN_STATUS_EXECUTION_FAILED")) == "error"
    assert gpu_failure(RuntimeError("CUBLAS_STATUS_ALLOC_FAILED when calling cublasCreate(handle)")) == "out of memory"
    assert gpu_failure(RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate")) == ""
    assert gpu_failure(ValueError("shapes do not match")) == ""
    assert placed_on_gpu(FakeDetector("m", "auto")) and not placed_on_gpu(FakeDetector("m", "cpu"))
    assert not placed_on_gpu(object())
    assert fallback_notice("object-detection", OutOfMemoryError("CUDA out of memory")) == \
        "GPU out of memory: running object-detection on the CPU"


class Heard:
    """One request's result/error, and every deviceFallback of the client."""

    def __init__(self, client: EngineClient) -> None:
        self.notices: list[tuple[str, str]] = []
        client.deviceFallback.connect(lambda task, notice: self.notices.append((task, notice)))

    @staticmethod
    def watch(request):
        got = SimpleNamespace(results=[], errors=[], finished=0)
        request.result.connect(got.results.append)
        request.error.connect(got.errors.append)
        request.finished.connect(lambda: setattr(got, "finished", got.finished + 1))
        return got


@pytest.fixture
def client(qtbot):
    c = EngineClient()
    yield c
    assert c.shutdown(5000)


def frame() -> np.ndarray:
    return np.zeros((48, 64, 3), np.uint8)


def test_out_of_memory_reruns_the_item_on_a_cpu_reload(qtbot, client, fake_tasks):
    fake_tasks.fail_first = OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
    heard = Heard(client)
    client.load("object-detection", "fake/detector")
    got = heard.watch(client.submit("vision", "object-detection", frame()))
    qtbot.waitUntil(lambda: got.finished == 1, timeout=WAIT)
    # the same request got a result, computed by a CPU-placed reload of the same model, exact
    assert got.errors == [] and len(got.results) == 1
    assert got.results[0].result.labels == ("on cpu",)
    assert fake_tasks.loads == [("object-detection", "fake/detector", "auto", "exact"),
                                ("object-detection", "fake/detector", "cpu", "exact")]
    gpu, cpu = fake_tasks.tasks
    assert gpu.calls == 1 and cpu.calls == 1
    assert heard.notices == [("object-detection", "GPU out of memory: running object-detection on the CPU")]
    # the GPU model left the cache; later items run on the CPU one, with no second notice or load
    assert client.cached_models() == [("object-detection", "fake/detector")]
    later = heard.watch(client.submit("vision", "object-detection", frame()))
    qtbot.waitUntil(lambda: later.finished == 1, timeout=WAIT)
    assert later.results[0].result.labels == ("on cpu",) and len(heard.notices) == 1
    assert len(fake_tasks.loads) == 2
    # a change of the device settings tries them again
    client.configure("cuda:0", "exact")
    qtbot.waitUntil(lambda: len(fake_tasks.loads) == 3, timeout=WAIT)
    assert fake_tasks.loads[-1] == ("object-detection", "fake/detector", "cuda:0", "exact")


def test_a_driver_error_falls_back_and_other_errors_do_not(qtbot, client, fake_tasks):
    fake_tasks.fail_first = RuntimeError("CUDA error: device-side assert triggered")
    heard = Heard(client)
    got = heard.watch(client.submit("vision", "object-detection", frame()))
    qtbot.waitUntil(lambda: got.finished == 1, timeout=WAIT)
    assert got.results and got.results[0].result.labels == ("on cpu",)
    assert heard.notices and heard.notices[0][1].startswith("GPU error (CUDA error: device-side assert")
    assert heard.notices[0][1].endswith("running object-detection on the CPU")

    # not a GPU failure: an ordinary error of that request, nothing reloaded
    fake_tasks.fail_first = ValueError("that frame is unusable")
    with qtbot.waitSignal(client.modelLoaded, timeout=WAIT):  # back on the GPU (the CPU model serves until then)
        client.configure("cuda:0", "exact")
    bad = heard.watch(client.submit("vision", "object-detection", frame()))
    qtbot.waitUntil(lambda: bad.finished == 1, timeout=WAIT)
    assert bad.results == [] and "that frame is unusable" in bad.errors[0]
    assert fake_tasks.loads[-1][2] == "cuda:0" and len(heard.notices) == 1


def test_a_cuda_message_on_the_cpu_is_an_ordinary_error(qtbot, client, fake_tasks):
    client.configure("cpu", "exact")
    heard = Heard(client)
    # a task on the CPU never falls back (FakeDetector on the CPU does not fail; make it fail)
    client.load("object-detection", "fake/detector")
    qtbot.waitUntil(lambda: bool(fake_tasks.tasks), timeout=WAIT)
    fake_tasks.tasks[0].fail_first = OutOfMemoryError("CUDA out of memory")
    got = heard.watch(client.submit("vision", "object-detection", frame()))
    qtbot.waitUntil(lambda: got.finished == 1, timeout=WAIT)
    assert got.results == [] and "OutOfMemoryError" in got.errors[0] and heard.notices == []


def test_out_of_memory_while_loading_loads_on_the_cpu(qtbot, client, fake_tasks):
    fake_tasks.fail_load = OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
    heard = Heard(client)
    got = heard.watch(client.submit("vision", "object-detection", frame()))
    qtbot.waitUntil(lambda: got.finished == 1, timeout=WAIT)
    assert got.results and got.results[0].result.labels == ("on cpu",)
    assert [load[2:] for load in fake_tasks.loads] == [("auto", "exact"), ("cpu", "exact")]
    assert heard.notices == [("object-detection", "GPU out of memory: running object-detection on the CPU")]


def test_a_long_job_that_runs_out_of_gpu_memory_starts_again_on_the_cpu(qtbot, client, fake_tasks):
    def steps(self, inputs, options=None, *, cancel=None):
        yield 0.5, "half"
        if self.where != "cpu":
            raise OutOfMemoryError("CUDA out of memory")
        yield 1.0, f"all of it on {self.where}"

    FakeDetector.steps = steps
    try:
        heard = Heard(client)
        got = heard.watch(client.submit("file", "object-detection", frame(), long=True))
        qtbot.waitUntil(lambda: got.finished == 1, timeout=WAIT)
    finally:
        del FakeDetector.steps
    assert got.errors == [] and [o.result for o in got.results] == ["all of it on cpu"]
    assert len(heard.notices) == 1


@pytest.mark.gui
def test_the_vision_tab_shows_the_cpu_notice_once_and_the_cpu_result(qtbot, open_window, fake_tasks, image_file):
    fake_tasks.fail_first = OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 MiB")
    w, tab = vision_window(open_window)
    errors = []
    tab.warningMessage.connect(errors.append)  # a notice: it works, on the CPU
    notice = "GPU out of memory: running object-detection on the CPU"
    assert tab.open_file(image_file)  # one frame, one request: it must get its result
    qtbot.waitUntil(lambda: tab.last_outcome() is not None, timeout=LOAD_WAIT)
    assert tab.last_outcome().result.labels == ("on cpu",)
    assert tab.presenter().current_detections().labels == ("on cpu",)
    assert errors == [notice]
    assert w.message_area.text() == notice
    assert [load[2] for load in fake_tasks.loads] == [fake_tasks.loads[0][2], "cpu"]
    assert fake_tasks.loads[0][2] != "cpu"
    # the other tabs do not repeat it; later frames run on the CPU without a second notice
    tab.presenter().optionsChanged.emit()
    qtbot.waitUntil(lambda: tab.results_received >= 2, timeout=WAIT)
    assert errors == [notice] and len(fake_tasks.loads) == 2
