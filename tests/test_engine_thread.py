"""EngineClient: latest-wins dropping, error isolation, loading, cancel, shutdown (no torch models)."""
from __future__ import annotations

import threading

import pytest
from PySide6.QtCore import QCoreApplication

import engine
from engine.errors import Cancelled, InputError, ModelNotAvailable
from gui.engine_thread import EngineClient, Outcome, is_load_cancelled_message


class FakeTask:
    """Records its inputs; blocks while ``gate`` is clear; raises on request."""

    def __init__(self, name: str, model: str, gate: threading.Event) -> None:
        self.name, self.model_ref, self.gate = name, model, gate
        self.seen: list = []
        self.started = threading.Event()

    def describe(self) -> str:
        return f"{self.name} · {self.model_ref} · fake"

    def __call__(self, inputs, options=None, *, cancel=None, progress=None):
        self.started.set()
        while not self.gate.wait(0.01):  # the worker blocks here; the test never sleeps
            if cancel is not None:
                cancel.check()
        if inputs == "boom":
            raise RuntimeError("kaput")
        if inputs == "bad":
            raise InputError("That input is unusable.")
        if progress is not None:
            for i in range(5):
                progress((i + 1) / 5, f"partial {i}")
        self.seen.append(inputs)
        return f"result of {inputs}"


@pytest.fixture
def fake_engine(monkeypatch):
    gate = threading.Event()
    gate.set()
    state = {"gate": gate, "loads": [], "tasks": {}, "fail": set()}

    def load_task(name, model=None, device=None, precision="exact", *, progress=None, cancel=None, offline=None):
        model = model or f"default/{name}"
        state["loads"].append((name, model, device, precision))
        if model in state["fail"]:
            raise ModelNotAvailable(f"Model '{model}' is not downloaded yet and Taskscope is offline.")
        if progress is not None:
            progress(50, 100, "model.safetensors")
            progress(100, 100, "model.safetensors")
        if cancel is not None:
            cancel.check()
        task = FakeTask(name, model, gate)
        state["tasks"][name] = task
        return task

    monkeypatch.setattr(engine, "load_task", load_task)
    monkeypatch.setattr(engine, "default_model", lambda name: f"default/{name}")
    return state


@pytest.fixture
def client(qtbot):
    c = EngineClient()
    yield c
    assert c.shutdown(5000)


def test_latest_wins_drops_and_counts(qtbot, client, fake_engine):
    results: list[Outcome] = []
    client.resultReady.connect(results.append)
    drops: list[tuple[str, int]] = []
    client.droppedChanged.connect(lambda s, n: drops.append((s, n)))
    with qtbot.waitSignal(client.modelLoaded, timeout=5000):
        client.load("object-detection", None)
    gate = fake_engine["gate"]
    gate.clear()
    client.submit("vision", "object-detection", "frame0", item_id=0)
    task = fake_engine["tasks"]["object-detection"]
    qtbot.waitUntil(task.started.is_set, timeout=5000)
    for i in range(1, 6):  # frame0 is running: 1..4 are replaced by their successor
        client.submit("vision", "object-detection", f"frame{i}", item_id=i)
    assert client.dropped("vision") == 4
    assert drops[-1] == ("vision", 4)
    gate.set()
    qtbot.waitUntil(lambda: len(results) == 2, timeout=5000)
    assert [o.item_id for o in results] == [0, 5]
    assert task.seen == ["frame0", "frame5"]
    o = results[1]
    assert o.stream == "vision" and o.task == "object-detection" and o.result == "result of frame5"
    assert o.finished_at >= o.submitted_at


def test_keep_all_queues_every_item(qtbot, client, fake_engine):
    results: list[Outcome] = []
    client.resultReady.connect(results.append)
    fake_engine["gate"].clear()
    for i in range(4):
        client.submit("file", "speech-recognition", f"chunk{i}", item_id=i, keep_all=True)
    fake_engine["gate"].set()
    qtbot.waitUntil(lambda: len(results) == 4, timeout=5000)
    assert [o.item_id for o in results] == [0, 1, 2, 3]
    assert client.dropped("file") == 0


def test_errors_are_reported_and_the_thread_keeps_working(qtbot, client, fake_engine):
    errors: list[tuple[str, str]] = []
    client.errorOccurred.connect(lambda s, m: errors.append((s, m)))
    results: list[Outcome] = []
    client.resultReady.connect(results.append)
    client.submit("vision", "object-detection", "boom", keep_all=True)
    client.submit("vision", "object-detection", "bad", keep_all=True)
    client.submit("vision", "object-detection", "fine", item_id=7, keep_all=True)
    qtbot.waitUntil(lambda: len(results) == 1, timeout=5000)
    assert errors[0][0] == "vision" and errors[0][1].startswith("Unexpected error in object-detection")
    assert "kaput" in errors[0][1]
    assert errors[1] == ("vision", "That input is unusable.")
    assert results[0].item_id == 7


def test_lazy_load_uses_the_last_choice_and_reports_failures_once(qtbot, client, fake_engine):
    failed: list[tuple[str, str]] = []
    client.modelFailed.connect(lambda t, m: failed.append((t, m)))
    loading: list[tuple] = []
    client.modelLoading.connect(lambda *a: loading.append(a))
    fake_engine["fail"].add("missing/model")
    with qtbot.waitSignal(client.modelFailed, timeout=5000):
        client.load("object-detection", "missing/model")
    assert "offline" in failed[0][1]
    for i in range(3):  # not retried for every frame
        client.submit("vision", "object-detection", f"f{i}", keep_all=True)
    qtbot.waitUntil(lambda: not client.is_busy(), timeout=5000)
    assert len(failed) == 1
    assert [l[1] for l in fake_engine["loads"]] == ["missing/model"]
    assert client.loaded_model("object-detection") is None
    results: list[Outcome] = []
    client.resultReady.connect(results.append)
    client.load("object-detection", "good/model")
    client.submit("vision", "object-detection", "again")
    qtbot.waitUntil(lambda: len(results) == 1, timeout=5000)
    assert client.loaded_model("object-detection") == "good/model"
    assert ("object-detection", "good/model", 100, 100) in loading


def test_progress_is_forwarded(qtbot, client, fake_engine):
    progress: list[tuple] = []
    client.progressChanged.connect(lambda s, f, p: progress.append((s, f, p)))
    with qtbot.waitSignal(client.resultReady, timeout=5000):
        client.submit("speech", "speech-recognition", "audio")
    assert progress and progress[-1] == ("speech", 1.0, "partial 4")
    assert len(progress) <= 5


def test_cancel_stream_and_configure_reloads(qtbot, client, fake_engine):
    results: list[Outcome] = []
    client.resultReady.connect(results.append)
    with qtbot.waitSignal(client.modelLoaded, timeout=5000):
        client.load("object-detection", "m/one")
    fake_engine["gate"].clear()
    client.submit("vision", "object-detection", "slow", item_id=1)
    qtbot.waitUntil(fake_engine["tasks"]["object-detection"].started.is_set, timeout=5000)
    client.submit("vision", "object-detection", "pending", item_id=2)
    client.cancel("vision")
    qtbot.waitUntil(lambda: not client.is_busy(), timeout=5000)
    fake_engine["gate"].set()
    assert results == []
    with qtbot.waitSignal(client.modelLoaded, timeout=5000) as blocker:
        client.configure("cpu", "exact")
    assert "m/one" in blocker.args[1]
    assert fake_engine["loads"][-1] == ("object-detection", "m/one", "cpu", "exact")


def test_cancel_loading_is_quiet(qtbot, client, fake_engine, monkeypatch):
    started = threading.Event()

    def slow_load(name, model=None, device=None, precision="exact", *, progress=None, cancel=None, offline=None):
        started.set()
        while True:
            cancel.check()
            if progress is not None:
                progress(1, 10, "x")
            started.wait(0.01)

    monkeypatch.setattr(engine, "load_task", slow_load)
    messages: list[str] = []
    client.modelFailed.connect(lambda t, m: messages.append(m))
    client.load("object-detection", "big/model")
    qtbot.waitUntil(started.is_set, timeout=5000)
    with qtbot.waitSignal(client.modelFailed, timeout=5000):
        client.cancel_loading()
    assert messages == [""]


def test_shutdown_returns_true_and_ignores_later_submits(qtbot, fake_engine):
    c = EngineClient()
    c.submit("vision", "object-detection", "x")
    assert c.shutdown(5000) is True
    c.submit("vision", "object-detection", "y")  # no effect, no crash
    assert c.shutdown(100) is True


def test_cancelled_is_not_an_error(qtbot, client, monkeypatch, fake_engine):
    def load_task(name, model=None, **kw):
        class T:
            def describe(self):
                return "t"

            def __call__(self, *a, **k):
                raise Cancelled()
        return T()

    monkeypatch.setattr(engine, "load_task", load_task)
    errors: list = []
    client.errorOccurred.connect(lambda *a: errors.append(a))
    client.submit("s", "object-detection", 1)
    client.submit("s", "object-detection", 2, keep_all=True)
    qtbot.waitUntil(lambda: not client.is_busy(), timeout=5000)
    assert errors == []


def test_items_skipped_for_a_failed_model_report_an_error(qtbot, client, fake_engine):
    """A tab waiting for an item (a file's progress, a final utterance) must hear about it."""
    errors: list[tuple[str, str]] = []
    client.errorOccurred.connect(lambda s, m: errors.append((s, m)))
    fake_engine["fail"].add("missing/model")
    with qtbot.waitSignal(client.modelFailed, timeout=5000):
        client.load("speech-recognition", "missing/model")
    for i in range(3):
        client.submit("speech", "speech-recognition", f"chunk{i}", keep_all=True)
    qtbot.waitUntil(lambda: len(errors) == 3, timeout=5000)
    assert all(s == "speech" and "offline" in m for s, m in errors)
    assert [l[1] for l in fake_engine["loads"]] == ["missing/model"]  # still not retried per item


def test_lazy_load_failure_reports_the_item(qtbot, client, fake_engine):
    fake_engine["fail"].add("default/object-detection")
    with qtbot.waitSignal(client.errorOccurred, timeout=5000) as blocker:
        client.submit("vision", "object-detection", "f0")
    assert blocker.args[0] == "vision" and "offline" in blocker.args[1]


def _slow_loader(started: threading.Event):
    def slow_load(name, model=None, device=None, precision="exact", *, progress=None, cancel=None, offline=None):
        started.set()
        while True:
            cancel.check()
            started.wait(0.01)
    return slow_load


def test_items_skipped_after_cancel_loading_say_so(qtbot, client, fake_engine, monkeypatch):
    started = threading.Event()
    monkeypatch.setattr(engine, "load_task", _slow_loader(started))
    errors: list[tuple[str, str]] = []
    client.errorOccurred.connect(lambda s, m: errors.append((s, m)))
    client.submit("speech", "speech-recognition", "file", keep_all=True)  # loads lazily
    qtbot.waitUntil(started.is_set, timeout=5000)
    client.cancel_loading()
    qtbot.waitUntil(lambda: len(errors) == 1, timeout=5000)
    expected = ("speech", "The model for speech-recognition is not loaded (loading was cancelled).")
    assert errors[0] == expected
    client.submit("speech", "speech-recognition", "next", keep_all=True)  # not reloaded on its own
    qtbot.waitUntil(lambda: len(errors) == 2, timeout=5000)
    assert errors[1] == expected
    assert is_load_cancelled_message(expected[1]) and not is_load_cancelled_message("Model 'x' is offline.")


def test_user_cancel_of_a_lazy_load_stays_quiet(qtbot, client, fake_engine, monkeypatch):
    started = threading.Event()
    monkeypatch.setattr(engine, "load_task", _slow_loader(started))
    errors: list = []
    client.errorOccurred.connect(lambda *a: errors.append(a))
    failed: list = []
    client.modelFailed.connect(lambda *a: failed.append(a))
    client.submit("speech", "speech-recognition", "file", keep_all=True)
    qtbot.waitUntil(started.is_set, timeout=5000)
    client.cancel("speech")
    qtbot.waitUntil(lambda: not client.is_busy(), timeout=5000)
    QCoreApplication.processEvents()  # everything the worker posted before it went idle
    assert failed == [("speech-recognition", "")]
    assert errors == []
