"""Startup and exit of the app: the UI thread never imports torch (the device list comes from a
worker thread, the picker shows the remembered choice meanwhile), the window paints before any
torch import, and the process ends cleanly (exit code 0, no "QThread: Destroyed while thread is
still running" abort) even when a forward pass outlives the shutdown wait.

The whole-app checks run in a subprocess (a fresh interpreter where torch is not imported yet).
No sleeps: the subprocesses wait on events, signals and their own exit."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from gui.common.pickers import DeviceLister, DevicePicker

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 240  # a subprocess on a busy 2-core machine: starting Qt, importing torch


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"QT_QPA_PLATFORM": "offscreen", "HF_HUB_OFFLINE": "1",
                "TASKSCOPE_SETTINGS_DIR": str(tmp_path / "settings"), "PYTHONPATH": str(ROOT)})
    env.pop("TASKSCOPE_EXIT_AFTER_FIRST_PAINT", None)
    env.update(extra)
    return env


# ---------------------------------------------------------------------------------- startup

# Every request for the module "torch" is recorded with the thread that asks. Until the window's
# first paint, a thread other than the UI thread that asks is held at the gate: so no one can have
# imported torch before the first paint without the UI thread's own request being recorded (a
# UI-thread import would find torch missing from sys.modules and ask the finders). A gate that is
# opened by its timeout instead of by the first paint means the first paint waited for torch.
STARTUP_SCRIPT = r'''
import importlib.abc
import json
import sys
import threading

GATE_S = 60.0
gate = threading.Event()
asked = []  # (thread name, is the main thread)
gate_timed_out = []


class Recorder(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "torch":
            me = threading.current_thread()
            asked.append((me.name, me is threading.main_thread()))
            if me is not threading.main_thread() and not gate.wait(GATE_S):
                gate_timed_out.append(me.name)
        return None  # the normal finders import it


sys.meta_path.insert(0, Recorder())

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QApplication, QWidget

from gui.app import MainWindow

app = QApplication([])
state = {}


class FirstPaint(QObject):
    def eventFilter(self, obj, event):
        if (not state and event.type() == QEvent.Type.Paint and isinstance(obj, QWidget)
                and obj.window() is window):
            state["torch_at_first_paint"] = "torch" in sys.modules
            state["asked_before_paint"] = list(asked)
            state["picker_at_first_paint"] = [window.device_picker.device_combo.itemData(i)
                                              for i in range(window.device_picker.device_combo.count())]
            state["device_at_first_paint"] = window.device_picker.device()
            state["precision_at_first_paint"] = window.device_picker.precision()
            gate.set()
        return False


paint_filter = FirstPaint()
app.installEventFilter(paint_filter)
window = MainWindow(device=sys.argv[1], precision="fast")
window.show()
picker = window.device_picker
picker.devicesListed.connect(app.quit)
QTimer.singleShot(int(GATE_S * 2000), app.quit)  # a safety net; the test fails if it fires
if not picker.devices_listed():
    app.exec()
gate.set()
state.update({
    "listed": picker.devices_listed(),
    "asked": list(asked),
    "gate_timed_out": list(gate_timed_out),
    "items": [(picker.device_combo.itemData(i), picker.device_combo.itemText(i))
              for i in range(picker.device_combo.count())],
    "device": picker.device(),
    "precision": picker.precision(),
    "fast_supported": picker.fast_supported(),
    "engine_device": (window.engine._s.device, window.engine._s.precision),
})
print("STATE " + json.dumps(state), flush=True)
assert window.shutdown()
'''


def _state(proc: subprocess.CompletedProcess) -> dict:
    lines = [line for line in proc.stdout.splitlines() if line.startswith("STATE ")]
    assert proc.returncode == 0 and lines, f"rc={proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(lines[-1][len("STATE "):])


def test_the_ui_thread_never_imports_torch_and_the_window_paints_first(tmp_path):
    # a remembered device that is not there: shown at once, replaced by "auto" when the list arrives
    proc = subprocess.run([sys.executable, "-c", STARTUP_SCRIPT, "cuda:7"], cwd=str(ROOT), env=_env(tmp_path),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    state = _state(proc)
    assert state["torch_at_first_paint"] is False
    assert state["asked_before_paint"] == [] or all(not main for _, main in state["asked_before_paint"])
    assert not any(main for _, main in state["asked"]), f"the UI thread asked for torch: {state['asked']}"
    assert state["asked"], "the device list was made without torch?"
    assert state["gate_timed_out"] == [], "the first paint waited for a thread importing torch"
    # before the list: the placeholders and the requested device, "fast" kept tentatively
    assert state["picker_at_first_paint"][:2] == ["auto", "cpu"] and "cuda:7" in state["picker_at_first_paint"]
    assert (state["device_at_first_paint"], state["precision_at_first_paint"]) == ("cuda:7", "fast")
    # the real list: "auto" first, then the devices (the CPU last, with its name)
    assert state["listed"]
    names = [name for name, _ in state["items"]]
    assert names[0] == "auto" and names[-1] == "cpu" and "cuda:7" not in names
    assert dict(state["items"])["cpu"].startswith("CPU · ")
    # cuda:7 is not here: auto; "fast" only where the best device runs it natively
    assert state["device"] == "auto"
    assert state["precision"] == ("fast" if state["fast_supported"] else "exact")
    assert state["engine_device"] == [state["device"], state["precision"]]  # the engine was told


def test_first_paint_exit_hook_prints_the_time(tmp_path):
    """What `python main.py bench startup` runs: the window quits after its first paint."""
    proc = subprocess.run([sys.executable, str(ROOT / "main.py")], cwd=str(ROOT),
                          env=_env(tmp_path, TASKSCOPE_EXIT_AFTER_FIRST_PAINT="1"),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if line.startswith("first-paint-s=")]
    assert len(lines) == 1 and float(lines[0].split("=", 1)[1]) > 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_bench_startup_is_offered():
    from benchmarks.cli import build_parser
    args = build_parser().parse_args(["startup", "--runs", "2"])
    assert args.target == "benchmarks.startup" and args.runs == 2


# ---------------------------------------------------------------------------------- the picker

@dataclass(frozen=True)
class Dev:  # engine.device.DeviceInfo's fields (that module imports torch)
    name: str
    label: str
    fast_supported: bool
    fast_dtype: str | None


class HeldLister(DeviceLister):
    """A lister that lists only when the test says so (``deliver``)."""

    def __init__(self) -> None:
        super().__init__()
        self.starts = 0

    def start(self) -> None:
        self.starts += 1

    def deliver(self, devices) -> None:
        self._on_found(devices)


CPU_SLOW = Dev("cpu", "CPU · Test 2 cores", False, None)
CPU_BF16 = Dev("cpu", "CPU · Test 2 cores", True, "bfloat16")
GPU = Dev("cuda:0", "GPU 0 · Test", True, "bfloat16")


def _watch(picker):
    seen = {"changed": [], "adjusted": []}
    picker.changed.connect(lambda d, p: seen["changed"].append((d, p)))
    picker.adjusted.connect(lambda d, p: seen["adjusted"].append((d, p)))
    return seen


def test_picker_shows_the_choice_before_the_list_and_adjusts_it_after(qtbot):
    lister = HeldLister()
    picker = DevicePicker(lister=lister)
    qtbot.addWidget(picker)
    seen = _watch(picker)
    assert not picker.devices_listed()
    assert [picker.device_combo.itemData(i) for i in range(picker.device_combo.count())] == ["auto", "cpu"]
    picker.set_choice("cuda:1", "fast")
    assert (picker.device(), picker.precision()) == ("cuda:1", "fast")  # as remembered, until known
    lister.deliver([GPU, CPU_SLOW])
    assert picker.devices_listed()
    assert [picker.device_combo.itemData(i) for i in range(picker.device_combo.count())] == ["auto", "cuda:0", "cpu"]
    assert picker.device_combo.itemText(0) == "Auto · GPU 0 · Test"
    assert (picker.device(), picker.precision()) == ("auto", "fast")  # cuda:1 is not here; auto (the GPU) is fast
    assert seen == {"changed": [], "adjusted": [("auto", "fast")]}
    # precision follows the device's fast support
    picker.device_combo.setCurrentIndex(picker.device_combo.findData("cpu"))
    assert picker.precision() == "exact" and not picker.precision_combo.model().item(1).isEnabled()
    assert picker.precision_combo.itemText(1) == "Fast (unavailable)"
    assert seen["changed"][-1] == ("cpu", "exact")


def test_picker_keeps_a_choice_the_list_confirms(qtbot):
    lister = HeldLister()
    picker = DevicePicker(lister=lister)
    qtbot.addWidget(picker)
    seen = _watch(picker)
    picker.set_choice("cpu", "fast")
    lister.deliver([CPU_BF16])
    assert (picker.device(), picker.precision()) == ("cpu", "fast")
    assert picker.precision_combo.itemText(1) == "Fast (bfloat16)"
    assert seen == {"changed": [], "adjusted": []}
    # a second picker in the same process gets the list at once
    again = DevicePicker(lister=lister)
    qtbot.addWidget(again)
    assert again.devices_listed() and again.device_combo.count() == 2


def test_picker_without_fast_support_drops_a_tentative_fast(qtbot):
    lister = HeldLister()
    picker = DevicePicker(lister=lister)
    qtbot.addWidget(picker)
    seen = _watch(picker)
    picker.set_choice(None, "fast")
    assert (picker.device(), picker.precision()) == ("auto", "fast")
    lister.deliver([CPU_SLOW])
    assert (picker.device(), picker.precision()) == ("auto", "exact")
    assert seen == {"changed": [], "adjusted": [("auto", "exact")]}


def test_picker_starts_listing_when_painted_and_survives_a_failed_list(qtbot):
    lister = HeldLister()
    picker = DevicePicker(lister=lister)
    qtbot.addWidget(picker)
    picker.show()
    qtbot.waitUntil(lambda: lister.starts >= 1, timeout=10_000)  # after its first paint
    lister.deliver([])  # listing failed: the placeholders stay, exact only
    assert picker.devices_listed()
    assert [picker.device_combo.itemData(i) for i in range(picker.device_combo.count())] == ["auto", "cpu"]
    assert picker.precision() == "exact" and not picker.fast_supported()


# ---------------------------------------------------------------------------------- exit

STUCK_SCRIPT = r'''
import sys
import threading

import engine

started = threading.Event()


class Stuck:
    """A task whose forward pass outlives the shutdown wait by far, and does not look at cancel."""

    def describe(self):
        return "stuck · fake"

    def memory_bytes(self):
        return 0

    def __call__(self, inputs, options=None, *, cancel=None, progress=None):
        started.set()
        print("task-started", flush=True)
        threading.Event().wait(120)
        return None


engine.load_task = lambda name, model=None, device=None, precision="exact", **kw: Stuck()
engine.default_model = lambda name: "fake/stuck"

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication

from gui.app import MainWindow, run_app

MainWindow.shutdown_timeout_ms = 200
app = QApplication([sys.argv[0]])


def kick():
    window = next(w for w in app.topLevelWidgets() if isinstance(w, MainWindow))
    window.engine.submit("stuck", "object-detection", "frame")

    def close_once_started():
        if started.is_set():
            print("closing", flush=True)
            window.close()
        else:
            QTimer.singleShot(10, close_once_started)
    close_once_started()


QTimer.singleShot(0, kick)
code = run_app([])
print(f"run_app returned {code}", flush=True)
sys.exit(code)
'''


def test_exit_with_a_forward_pass_still_running_is_clean(tmp_path):
    proc = subprocess.run([sys.executable, "-c", STUCK_SCRIPT], cwd=str(ROOT), env=_env(tmp_path),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    out = proc.stdout + proc.stderr
    assert "task-started" in proc.stdout and "closing" in proc.stdout, out[-3000:]
    assert "Destroyed while thread" not in out, out[-3000:]
    assert proc.returncode == 0, f"exit code {proc.returncode} (-6: aborted)\n{out[-3000:]}"
    assert "did not stop within 200 ms" in out  # the engine said why it could not wait
    assert "run_app returned" not in proc.stdout  # the process ended in run_app, without destructors


def test_a_clean_exit_returns_from_run_app(tmp_path):
    """Without a stuck thread, run_app returns its exit code as before (no os._exit)."""
    source = STUCK_SCRIPT.replace("threading.Event().wait(120)", "pass")
    proc = subprocess.run([sys.executable, "-c", source], cwd=str(ROOT), env=_env(tmp_path),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert "run_app returned 0" in proc.stdout


CLIENT_SCRIPT = r'''
import gc
import sys
import threading

import engine

started, release = threading.Event(), threading.Event()


class Stuck:
    def describe(self):
        return "stuck · fake"

    def memory_bytes(self):
        return 0

    def __call__(self, inputs, options=None, *, cancel=None, progress=None):
        started.set()
        release.wait(120)  # does not look at cancel
        return "done"


engine.load_task = lambda name, model=None, device=None, precision="exact", **kw: Stuck()
engine.default_model = lambda name: "fake/stuck"

from PySide6.QtCore import QCoreApplication

from gui.core import engine_client

app = QCoreApplication([])
client = engine_client.EngineClient()
client.submit("stuck", "object-detection", "frame")
while not started.wait(0.01):
    app.processEvents()
assert client.shutdown(100) is False
thread = client._thread
del client
gc.collect()
print("survived", thread.isRunning(), len(engine_client._UNFINISHED), flush=True)
release.set()
assert thread.wait(60_000)
print("finished", flush=True)
'''


def test_a_client_whose_thread_outlives_shutdown_is_never_destroyed_running(tmp_path):
    proc = subprocess.run([sys.executable, "-c", CLIENT_SCRIPT], cwd=str(ROOT), env=_env(tmp_path),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    out = proc.stdout + proc.stderr
    assert "Destroyed while thread" not in out and proc.returncode == 0, f"rc={proc.returncode}\n{out[-3000:]}"
    assert "survived True 1" in proc.stdout and "finished" in proc.stdout


PAINT_SCRIPT = r'''
import sys

from PySide6.QtGui import QColor, QImage, QPainter
from PySide6.QtWidgets import QApplication

from gui.app import MainWindow

n = 4 * sys.getrefcount(None) + 100_000  # more references than None has: unguarded, this aborts
app = QApplication([])
window = MainWindow(offline=True)  # guards against the leak before anything paints
image = QImage(8, 8, QImage.Format.Format_RGB32)
painter = QPainter(image)
colour = QColor(10, 20, 30)
for _ in range(n):
    painter.setPen(colour)
painter.end()
print("painted", n, flush=True)
assert window.shutdown()
'''


def test_many_paint_calls_do_not_exhaust_none(tmp_path):
    """PySide6 6.12.0 on Python 3.11: QPainter.setPen & co. return None without a reference; a
    live session used them all up within minutes and aborted ("none_dealloc")."""
    proc = subprocess.run([sys.executable, "-c", PAINT_SCRIPT], cwd=str(ROOT), env=_env(tmp_path),
                          capture_output=True, text=True, timeout=TIMEOUT_S)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and "painted" in proc.stdout, f"rc={proc.returncode}\n{out[-3000:]}"
    assert "deallocating None" not in out
