"""EngineClient and its Request handles, with fake tasks (no torch models): latest wins and dropped
counts, per-request signals, error isolation, load failures, cancel, shutdown, long jobs run in steps
with live items between them, the LRU model cache by bytes, the old model serving while a new one
loads, and downloads that outlive a cancelled stream. No sleeps: every wait is on a signal, an event
or a condition, and every ordering assertion is on calls the fakes record."""
from __future__ import annotations

import gc
import threading

import pytest
from PySide6.QtCore import QCoreApplication

import engine
from engine.errors import Cancelled, InputError, ModelNotAvailable
from gui.core.engine_client import UNKNOWN_FRACTION, EngineClient, Outcome, Request, is_load_cancelled_message

WAIT = 5000


class FakeTask:
    """Records its inputs (in its own list and the shared ``log``); blocks while ``gate`` is clear;
    raises on request. Its result says which model made it."""

    def __init__(self, name: str, model: str, gate: threading.Event, log: list, nbytes: int = 0) -> None:
        self.name, self.model_ref, self.gate, self.log, self.nbytes = name, model, gate, log, nbytes
        self.seen: list = []
        self.started = threading.Event()

    def describe(self) -> str:
        return f"{self.name} · {self.model_ref} · fake"

    def memory_bytes(self) -> int:
        return self.nbytes

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
        self.log.append(inputs)
        return (self.model_ref, inputs)


class LongTask(FakeTask):
    """A long job in three steps; step i records ``L{i}`` and then waits for ``gates[i]``."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.gates = [threading.Event() for _ in range(3)]
        self.step_started = [threading.Event() for _ in range(3)]

    def steps(self, inputs, options=None, *, cancel=None):
        for i in range(3):
            self.log.append(f"L{i}")
            self.step_started[i].set()
            while not self.gates[i].wait(0.01):
                if cancel is not None:
                    cancel.check()
            yield (i + 1) / 4, f"partial {i}"
        self.log.append("L-end")
        yield 1.0, f"transcript of {inputs}"


@pytest.fixture
def fake_engine(monkeypatch):
    gate = threading.Event()
    gate.set()
    state = {"gate": gate, "loads": [], "tasks": {}, "fail": set(), "log": [], "sizes": {}, "block": {},
             "tokens": {}}

    def load_task(name, model=None, device=None, precision="exact", *, progress=None, cancel=None, offline=None):
        model = model or f"default/{name}"
        state["loads"].append((name, model, device, precision))
        state["tokens"][model] = cancel
        if model in state["fail"]:
            raise ModelNotAvailable(f"Model '{model}' is not downloaded yet and Taskscope is offline.")
        if progress is not None:
            progress(50, 100, "model.safetensors")
        block = state["block"].get(model)
        if block is not None:  # a download that goes on until the test releases it
            started, release = block
            started.set()
            while not release.wait(0.01):
                cancel.check()
        if progress is not None:
            progress(100, 100, "model.safetensors")
        if cancel is not None:
            cancel.check()
        cls = LongTask if name == "long-task" else FakeTask
        task = cls(name, model, gate, state["log"], state["sizes"].get(model, 0))
        state["tasks"][name] = task
        state["tasks"][model] = task
        return task

    monkeypatch.setattr(engine, "load_task", load_task)
    monkeypatch.setattr(engine, "default_model", lambda name: f"default/{name}")
    return state


@pytest.fixture
def client(qtbot):
    c = EngineClient()
    yield c
    assert c.shutdown(5000)


class Watch:
    """Everything one request's own signals said."""

    def __init__(self, req: Request) -> None:
        self.req = req
        self.results: list[Outcome] = []
        self.errors: list[str] = []
        self.progress: list[tuple] = []
        self.finished = 0
        req.result.connect(self.results.append)
        req.error.connect(self.errors.append)
        req.progress.connect(lambda f, p: self.progress.append((f, p)))
        req.finished.connect(self._finished)

    def _finished(self) -> None:
        self.finished += 1

    @property
    def done(self) -> bool:
        return self.finished > 0


def submit(client, *a, **kw) -> Watch:
    return Watch(client.submit(*a, **kw))


def wait_done(qtbot, *watches: Watch) -> None:
    qtbot.waitUntil(lambda: all(w.done for w in watches), timeout=WAIT)


def load(qtbot, client, task, model):
    with qtbot.waitSignal(client.modelLoaded, timeout=WAIT,
                          check_params_cb=lambda t, d: t == task and (model is None or model in d)):
        client.load(task, model)


# ------------------------------------------------------------------ what the old client did, per handle

def test_latest_wins_drops_and_counts(qtbot, client, fake_engine):
    drops: list[tuple[str, int]] = []
    client.droppedChanged.connect(lambda s, n: drops.append((s, n)))
    load(qtbot, client, "object-detection", None)
    gate = fake_engine["gate"]
    gate.clear()
    first = submit(client, "vision", "object-detection", "frame0", item_id=0)
    task = fake_engine["tasks"]["object-detection"]
    qtbot.waitUntil(task.started.is_set, timeout=WAIT)
    later = [submit(client, "vision", "object-detection", f"frame{i}", item_id=i) for i in range(1, 6)]
    assert client.dropped("vision") == 4
    assert drops[-1] == ("vision", 4)
    gate.set()
    wait_done(qtbot, first, *later)
    assert task.seen == ["frame0", "frame5"]
    for w in later[:4]:  # replaced before they ran: finished, dropped, no result, no error
        assert w.req.dropped and not w.req.cancelled and w.results == [] and w.errors == [] and w.finished == 1
    assert [o.item_id for o in first.results] == [0] and not first.req.dropped
    (o,) = later[4].results
    assert o.stream == "vision" and o.task == "object-detection" and o.item_id == 5
    assert o.result == ("default/object-detection", "frame5") and o.request_id == later[4].req.id
    assert o.finished_at >= o.submitted_at and later[4].req.outcome is o


def test_keep_all_queues_every_item(qtbot, client, fake_engine):
    fake_engine["gate"].clear()
    watches = [submit(client, "file", "speech-recognition", f"chunk{i}", item_id=i, keep_all=True) for i in range(4)]
    fake_engine["gate"].set()
    wait_done(qtbot, *watches)
    assert [w.results[0].item_id for w in watches] == [0, 1, 2, 3]
    assert fake_engine["log"] == ["chunk0", "chunk1", "chunk2", "chunk3"]
    assert client.dropped("file") == 0


def test_signals_reach_only_their_request(qtbot, client, fake_engine):
    a = submit(client, "a", "object-detection", "for a", item_id=1)
    b = submit(client, "b", "speech-recognition", "for b", item_id=2)
    bad = submit(client, "c", "object-detection", "bad", item_id=3)
    wait_done(qtbot, a, b, bad)
    assert [o.result[1] for o in a.results] == ["for a"] and a.errors == []
    assert [o.result[1] for o in b.results] == ["for b"] and b.errors == []
    assert bad.results == [] and bad.errors == ["That input is unusable."] and bad.req.error_message
    assert "object-detection" in bad.req.describe() and "'c'" in bad.req.describe()
    assert [p for p, _ in a.progress][-1] == 1.0 and len(a.progress) <= 5
    assert all(w.finished == 1 for w in (a, b, bad))


def test_errors_are_reported_and_the_thread_keeps_working(qtbot, client, fake_engine):
    boom = submit(client, "vision", "object-detection", "boom", keep_all=True)
    bad = submit(client, "vision", "object-detection", "bad", keep_all=True)
    fine = submit(client, "vision", "object-detection", "fine", item_id=7, keep_all=True)
    wait_done(qtbot, boom, bad, fine)
    assert boom.errors[0].startswith("Unexpected error in object-detection") and "kaput" in boom.errors[0]
    assert bad.errors == ["That input is unusable."]
    assert fine.errors == [] and fine.results[0].item_id == 7
    assert boom.results == bad.results == []


def test_lazy_load_uses_the_last_choice_and_reports_failures_once(qtbot, client, fake_engine):
    failed: list[tuple[str, str]] = []
    client.modelFailed.connect(lambda t, m: failed.append((t, m)))
    loading: list[tuple] = []
    client.modelLoading.connect(lambda *a: loading.append(a))
    fake_engine["fail"].add("missing/model")
    with qtbot.waitSignal(client.modelFailed, timeout=WAIT):
        client.load("object-detection", "missing/model")
    assert "offline" in failed[0][1]
    watches = [submit(client, "vision", "object-detection", f"f{i}", keep_all=True) for i in range(3)]
    wait_done(qtbot, *watches)  # not retried for every frame; each one hears why
    assert all(w.errors and "offline" in w.errors[0] for w in watches)
    assert len(failed) == 1
    assert [l[1] for l in fake_engine["loads"]] == ["missing/model"]
    assert client.loaded_model("object-detection") is None
    client.load("object-detection", "good/model")
    again = submit(client, "vision", "object-detection", "again")
    wait_done(qtbot, again)
    assert again.results[0].result == ("good/model", "again")
    assert client.loaded_model("object-detection") == "good/model"
    assert ("object-detection", "good/model", 100, 100) in loading


def test_progress_is_forwarded(qtbot, client, fake_engine):
    w = submit(client, "speech", "speech-recognition", "audio")
    wait_done(qtbot, w)
    assert w.progress and w.progress[-1] == (1.0, "partial 4")
    assert len(w.progress) <= 5


def test_cancel_stream_and_configure_reloads(qtbot, client, fake_engine):
    load(qtbot, client, "object-detection", "m/one")
    fake_engine["gate"].clear()
    slow = submit(client, "vision", "object-detection", "slow", item_id=1)
    qtbot.waitUntil(fake_engine["tasks"]["object-detection"].started.is_set, timeout=WAIT)
    pending = submit(client, "vision", "object-detection", "pending", item_id=2)
    client.cancel("vision")
    wait_done(qtbot, slow, pending)
    fake_engine["gate"].set()
    assert slow.results == pending.results == [] and slow.errors == pending.errors == []
    assert slow.req.cancelled and pending.req.cancelled
    assert not client.is_busy()
    with qtbot.waitSignal(client.modelLoaded, timeout=WAIT) as blocker:
        client.configure("cpu", "exact")
    assert "m/one" in blocker.args[1]
    assert fake_engine["loads"][-1] == ("object-detection", "m/one", "cpu", "exact")
    assert client.cached_models() == [("object-detection", "m/one")]  # the old-settings copy is gone


def test_cancel_loading_is_quiet(qtbot, client, fake_engine):
    started, release = threading.Event(), threading.Event()
    fake_engine["block"]["big/model"] = (started, release)
    messages: list[str] = []
    client.modelFailed.connect(lambda t, m: messages.append(m))
    client.load("object-detection", "big/model")
    qtbot.waitUntil(started.is_set, timeout=WAIT)
    with qtbot.waitSignal(client.modelFailed, timeout=WAIT):
        client.cancel_loading()
    assert messages == [""]


def test_shutdown_returns_true_and_later_submits_finish_at_once(qtbot, fake_engine):
    c = EngineClient()
    c.submit("vision", "object-detection", "x")
    assert c.shutdown(5000) is True
    late = submit(c, "vision", "object-detection", "y")  # no work, no crash: finished, cancelled
    wait_done(qtbot, late)
    assert late.req.cancelled and late.results == [] and late.errors == []
    assert c.shutdown(100) is True


def test_shutdown_stops_a_long_job_and_a_download(qtbot, fake_engine):
    c = EngineClient()
    started, release = threading.Event(), threading.Event()
    fake_engine["block"]["big/model"] = (started, release)
    load(qtbot, c, "long-task", None)
    submit(c, "file", "long-task", "audio", long=True)
    qtbot.waitUntil(fake_engine["tasks"]["long-task"].step_started[0].is_set, timeout=WAIT)
    c.load("object-detection", "big/model")
    qtbot.waitUntil(started.is_set, timeout=WAIT)
    assert c.is_busy()
    assert c.shutdown(5000) is True  # both blocked calls check their tokens


def test_cancelled_is_not_an_error(qtbot, client, monkeypatch, fake_engine):
    def load_task(name, model=None, **kw):
        class T:
            def describe(self):
                return "t"

            def __call__(self, *a, **k):
                raise Cancelled()
        return T()

    monkeypatch.setattr(engine, "load_task", load_task)
    one = submit(client, "s", "object-detection", 1)
    two = submit(client, "s", "object-detection", 2, keep_all=True)
    wait_done(qtbot, one, two)
    assert one.errors == two.errors == [] and (one.req.cancelled or one.req.dropped) and two.req.cancelled


def test_items_skipped_for_a_failed_model_report_an_error(qtbot, client, fake_engine):
    """A tab waiting for an item (a file's progress, a final utterance) must hear about it."""
    fake_engine["fail"].add("missing/model")
    with qtbot.waitSignal(client.modelFailed, timeout=WAIT):
        client.load("speech-recognition", "missing/model")
    watches = [submit(client, "speech", "speech-recognition", f"chunk{i}", keep_all=True) for i in range(3)]
    wait_done(qtbot, *watches)
    assert all(len(w.errors) == 1 and "offline" in w.errors[0] for w in watches)
    assert [l[1] for l in fake_engine["loads"]] == ["missing/model"]  # still not retried per item


def test_lazy_load_failure_reports_the_item(qtbot, client, fake_engine):
    fake_engine["fail"].add("default/object-detection")
    w = submit(client, "vision", "object-detection", "f0")
    with qtbot.waitSignal(w.req.error, timeout=WAIT) as blocker:
        pass
    assert "offline" in blocker.args[0]


def test_items_skipped_after_cancel_loading_say_so(qtbot, client, fake_engine):
    started, release = threading.Event(), threading.Event()
    fake_engine["block"]["default/speech-recognition"] = (started, release)
    first = submit(client, "speech", "speech-recognition", "file", keep_all=True)  # loads lazily
    qtbot.waitUntil(started.is_set, timeout=WAIT)
    client.cancel_loading()
    wait_done(qtbot, first)
    expected = "The model for speech-recognition is not loaded (loading was cancelled)."
    assert first.errors == [expected]
    nxt = submit(client, "speech", "speech-recognition", "next", keep_all=True)  # not reloaded on its own
    wait_done(qtbot, nxt)
    assert nxt.errors == [expected]
    assert len(fake_engine["loads"]) == 1
    assert is_load_cancelled_message(expected) and not is_load_cancelled_message("Model 'x' is offline.")


def test_is_busy_follows_the_work(qtbot, client, fake_engine):
    assert not client.is_busy()
    fake_engine["gate"].clear()
    w = submit(client, "vision", "object-detection", "x")
    assert client.is_busy()
    fake_engine["gate"].set()
    wait_done(qtbot, w)
    qtbot.waitUntil(lambda: not client.is_busy(), timeout=WAIT)


# ------------------------------------------------------------------ handles are freed

def test_finished_requests_are_freed(qtbot, client, fake_engine):
    """A 30-minute live session at 20 fps submits 36 000 frames: the client keeps no finished ones."""
    load(qtbot, client, "object-detection", None)
    gc.collect()
    before = Request.alive()
    most_open = 0
    for i in range(2000):
        client.submit("vision", "object-detection", f"frame{i}", item_id=i)
        if i % 20 == 19:  # the UI thread's event loop runs between camera frames
            QCoreApplication.processEvents()
            most_open = max(most_open, client.open_requests())
    qtbot.waitUntil(lambda: client.open_requests() == 0 and not client.is_busy(), timeout=WAIT)
    gc.collect()
    assert Request.alive() - before == 0
    assert most_open < 100
    assert client.dropped("vision") > 0
    kept = client.submit("vision", "object-detection", "held")  # one a tab holds stays usable after finishing
    with qtbot.waitSignal(kept.finished, timeout=WAIT):
        pass
    assert kept.outcome.result[1] == "held" and client.open_requests() == 0
    del kept
    gc.collect()
    assert Request.alive() - before == 0


# ------------------------------------------------------------------ long jobs

def test_live_items_run_between_the_steps_of_a_long_job(qtbot, client, fake_engine):
    log = fake_engine["log"]
    load(qtbot, client, "long-task", None)
    load(qtbot, client, "object-detection", None)
    long_task = fake_engine["tasks"]["long-task"]
    job = submit(client, "file", "long-task", "audio.wav", long=True, keep_all=True)
    qtbot.waitUntil(long_task.step_started[0].is_set, timeout=WAIT)
    v1 = submit(client, "vision", "object-detection", "v1")  # both wait while step 0 runs
    s1 = submit(client, "speech", "object-detection", "s1")
    long_task.gates[0].set()
    qtbot.waitUntil(long_task.step_started[1].is_set, timeout=WAIT)
    assert log == ["L0", "v1", "s1", "L1"]  # one pending item per stream, then the next step
    v2 = submit(client, "vision", "object-detection", "v2")
    v3 = submit(client, "vision", "object-detection", "v3")  # latest wins: v2 is dropped
    long_task.gates[1].set()
    qtbot.waitUntil(long_task.step_started[2].is_set, timeout=WAIT)
    assert log[4:] == ["v3", "L2"]
    long_task.gates[2].set()  # nothing pending: the job goes on to its end
    wait_done(qtbot, job, v1, s1, v2, v3)
    assert log[6:] == ["L-end"]
    assert v2.req.dropped and [o.result[1] for o in v3.results] == ["v3"]
    assert [o.result for o in job.results] == ["transcript of audio.wav"] and job.errors == []
    assert job.progress and job.progress[0] == (0.25, "partial 0")  # partials reach the job's own handle
    assert all(f < 1.0 for f, _ in job.progress)
    assert v1.progress and all(p[1].startswith("partial") and p[0] >= 0.2 for p in v1.progress)


def test_long_jobs_of_one_stream_run_one_after_the_other_and_cancel(qtbot, client, fake_engine):
    log = fake_engine["log"]
    load(qtbot, client, "long-task", None)
    long_task = fake_engine["tasks"]["long-task"]
    first = submit(client, "file", "long-task", "one", long=True, keep_all=True)
    second = submit(client, "file", "long-task", "two", long=True, keep_all=True)
    qtbot.waitUntil(long_task.step_started[0].is_set, timeout=WAIT)
    client.cancel("file")
    wait_done(qtbot, first, second)
    assert first.req.cancelled and second.req.cancelled and first.errors == second.errors == []
    assert log == ["L0"] and not client.is_busy()


def test_a_task_without_steps_runs_as_one_long_step(qtbot, client, fake_engine):
    w = submit(client, "file", "object-detection", "whole", long=True)
    wait_done(qtbot, w)
    assert w.results[0].result[1] == "whole" and w.progress == []


def test_base_task_steps_come_from_stream():
    from engine.tasks.base import Task

    class One(Task):
        name = "one"

        def __init__(self):
            pass

        def run(self, inputs, options=None, *, cancel=None, progress=None):
            return f"done {inputs}"

    class Partials(One):
        def stream(self, inputs, options=None, *, cancel=None):
            yield "so far"
            yield "final"

    assert list(One().steps("x")) == [(1.0, "done x")]
    assert list(Partials().steps("x")) == [(None, "so far"), (None, "final"), (1.0, "final")]
    assert One().memory_bytes() == 0
    assert UNKNOWN_FRACTION < 0


# ------------------------------------------------------------------ the model cache

def test_lru_eviction_by_bytes(qtbot, fake_engine):
    fake_engine["sizes"].update({"m/a": 100, "m/b": 100, "m/c": 100})
    c = EngineClient(memory_limit=250)
    try:
        load(qtbot, c, "t1", "m/a")
        load(qtbot, c, "t2", "m/b")
        assert c.memory_used() == 200
        load(qtbot, c, "t3", "m/c")  # over the limit: the least recently used goes
        assert c.cached_models() == [("t2", "m/b"), ("t3", "m/c")]
        assert c.loaded_model("t1") is None and c.memory_used() == 200
        used = submit(c, "s", "t2", "touch")  # m/b is now the most recently used
        wait_done(qtbot, used)
        load(qtbot, c, "t1", "m/a")
        assert c.cached_models() == [("t2", "m/b"), ("t1", "m/a")]
        assert [l[1] for l in fake_engine["loads"]] == ["m/a", "m/b", "m/c", "m/a"]
        again = submit(c, "s", "t3", "lazy")  # its model was evicted: loaded again on demand
        wait_done(qtbot, again)
        assert again.results[0].result == ("m/c", "lazy")
        assert c.cached_models() == [("t1", "m/a"), ("t3", "m/c")]
        c.set_memory_limit(150)  # never the one used last
        assert c.cached_models() == [("t3", "m/c")] and c.memory_limit() == 150
    finally:
        assert c.shutdown(5000)


def test_switching_back_to_a_cached_model_does_not_load_it_again(qtbot, client, fake_engine):
    load(qtbot, client, "object-detection", "m/a")
    load(qtbot, client, "object-detection", "m/b")
    load(qtbot, client, "object-detection", "m/a")
    assert [l[1] for l in fake_engine["loads"]] == ["m/a", "m/b"]
    assert client.loaded_model("object-detection") == "m/a"
    w = submit(client, "vision", "object-detection", "x")
    wait_done(qtbot, w)
    assert w.results[0].result == ("m/a", "x")


def test_the_old_model_serves_while_the_new_one_loads(qtbot, client, fake_engine):
    load(qtbot, client, "object-detection", "m/old")
    started, release = threading.Event(), threading.Event()
    fake_engine["block"]["m/new"] = (started, release)
    loaded: list[str] = []
    client.modelLoaded.connect(lambda t, d: loaded.append(d))
    client.load("object-detection", "m/new")
    qtbot.waitUntil(started.is_set, timeout=WAIT)
    during = [submit(client, "vision", "object-detection", f"f{i}", keep_all=True) for i in range(3)]
    wait_done(qtbot, *during)  # while m/new is still loading
    assert [w.results[0].result for w in during] == [("m/old", "f0"), ("m/old", "f1"), ("m/old", "f2")]
    assert client.loaded_model("object-detection") == "m/old" and loaded == []
    with qtbot.waitSignal(client.modelLoaded, timeout=WAIT):
        release.set()
    assert client.loaded_model("object-detection") == "m/new"
    after = submit(client, "vision", "object-detection", "later")
    wait_done(qtbot, after)
    assert after.results[0].result == ("m/new", "later")
    assert client.cached_models() == [("object-detection", "m/old"), ("object-detection", "m/new")]


def test_cancelling_a_stream_leaves_a_shared_download_running(qtbot, client, fake_engine):
    started, release = threading.Event(), threading.Event()
    fake_engine["block"]["default/speech-recognition"] = (started, release)
    failed: list = []
    client.modelFailed.connect(lambda *a: failed.append(a))
    a = submit(client, "speech-a", "speech-recognition", "for a", keep_all=True)  # triggers the lazy load
    b = submit(client, "speech-b", "speech-recognition", "for b", keep_all=True)  # waits on the same load
    qtbot.waitUntil(started.is_set, timeout=WAIT)
    client.cancel("speech-a")
    wait_done(qtbot, a)
    assert a.req.cancelled and a.errors == []
    assert not fake_engine["tokens"]["default/speech-recognition"].cancelled
    with qtbot.waitSignal(client.modelLoaded, timeout=WAIT):
        release.set()
    wait_done(qtbot, b)
    assert b.results[0].result == ("default/speech-recognition", "for b")
    assert failed == [] and a.results == []
    assert len(fake_engine["loads"]) == 1


def test_cancelling_the_only_waiting_stream_keeps_the_load(qtbot, client, fake_engine):
    started, release = threading.Event(), threading.Event()
    fake_engine["block"]["default/speech-recognition"] = (started, release)
    failed: list = []
    client.modelFailed.connect(lambda *a: failed.append(a))
    w = submit(client, "speech", "speech-recognition", "file", keep_all=True)
    qtbot.waitUntil(started.is_set, timeout=WAIT)
    client.cancel("speech")
    wait_done(qtbot, w)
    assert w.req.cancelled and w.errors == []
    with qtbot.waitSignal(client.modelLoaded, timeout=WAIT):  # the load belongs to the loader
        release.set()
    assert failed == [] and client.loaded_model("speech-recognition") == "default/speech-recognition"


def test_a_newer_choice_cancels_the_load_in_progress(qtbot, client, fake_engine):
    started, release = threading.Event(), threading.Event()
    fake_engine["block"]["m/slow"] = (started, release)
    failed: list = []
    client.modelFailed.connect(lambda *a: failed.append(a))
    client.load("object-detection", "m/slow")
    qtbot.waitUntil(started.is_set, timeout=WAIT)
    load(qtbot, client, "object-detection", "m/quick")
    assert fake_engine["tokens"]["m/slow"].cancelled
    assert failed == [("object-detection", "")] and client.loaded_model("object-detection") == "m/quick"


def test_many_emits_do_not_exhaust_the_references_to_true(client):
    """PySide6 6.12.0's emit() takes a reference from True each time (see guard_emit_refcount)."""
    from gui.core.qt_fixes import _Probe
    probe = _Probe()
    for _ in range(50_000):  # more than True's references in this process
        probe.ping.emit()
