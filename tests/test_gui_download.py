"""First use of a model in the REAL window: the download dialog against a fake Hugging Face Hub.

The tiny random-weight DETR checkpoint is served as the repo ``acme/detr-tiny`` by tests/fake_hub.py,
which the real huggingface_hub download path (engine.hub, in the engine thread) talks to. The hub's
throttle keeps the weights trickling in until the test releases it, so the dialog is caught mid-way.
"""
from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDialogButtonBox

import engine
from gui.app import MainWindow, make_settings
from gui.sources.video import ImageSource
from tests.fake_hub import fake_hub_server, hf_cache  # noqa: F401 - pytest fixtures

pytestmark = [pytest.mark.gui, pytest.mark.timeout(120)]

REPO = "acme/detr-tiny"
TASK = "object-detection"
LOAD_TIMEOUT_MS = 60_000  # the first load imports torch and builds the model on a shared 2-core machine
SIDE_FILES = ("config.json", "preprocessor_config.json")


def _mb(n: int) -> str:  # how the dialog writes sizes
    return f"{n / 1e6:,.1f} MB"


@pytest.fixture
def detr_hub(fake_hub_server, detr_timm_checkpoint):
    """The checkpoint folder as a Hub repo, throttled until the test calls ``throttle.release()``."""
    fake_hub_server.add_folder(REPO, detr_timm_checkpoint)
    fake_hub_server.throttle.engage(delay_s=0.015, piece=8 * 1024)  # ~0.6 MB of weights in ~1.2 s
    return fake_hub_server


@pytest.fixture
def sizes(detr_timm_checkpoint) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in detr_timm_checkpoint.iterdir()}


@pytest.fixture
def window(open_window, detr_hub):
    """The real main window, online, with acme/detr-tiny chosen for object detection (not cached yet),
    threshold 0 (random weights give low scores) and the fastest input size. Closed before the hub stops."""
    return open_window({f"models/{TASK}": REPO, "vision/threshold": 0.0, "vision/input_size": 384}, offline=False)


class DialogLog:
    """What the download dialog showed at each of the engine's modelLoading signals (connected after
    the window's own slot, so the dialog has already been updated)."""

    def __init__(self, w: MainWindow) -> None:
        self.w = w
        self.entries: list[dict] = []
        w.engine.modelLoading.connect(self._record)

    def _record(self, task: str, model: str, done, total) -> None:
        d = self.w.download_dialog
        self.entries.append({"task": task, "model": model, "done": done, "total": total, "visible": d.isVisible(),
                             "text": d._detail.text(), "bar": d._bar.value(), "title": d._title.text()})

    def bytes(self) -> list[dict]:
        return [e for e in self.entries if e["done"] is not None]

    def weights_arriving(self, side: int) -> list[dict]:
        """The updates while the weights (after the side files) were coming in."""
        return [e for e in self.bytes() if e["total"] and side < e["done"] < e["total"]]


def test_first_use_downloads_with_progress_then_draws_boxes(qtbot, window, detr_hub, sizes, image_file, hf_cache):
    w, tab = window, window.vision_tab
    assert tab.model_picker.current_model() == REPO
    assert not engine.is_cached(REPO)
    log = DialogLog(w)
    total = sizes["model.safetensors"] + sum(sizes[n] for n in SIDE_FILES)
    side = sum(sizes[n] for n in SIDE_FILES)

    assert tab.open_file(image_file)
    # the throttled weights: the dialog follows them, update after update
    qtbot.waitUntil(lambda: len(log.weights_arriving(side)) >= 2, timeout=LOAD_TIMEOUT_MS)
    mid = log.weights_arriving(side)[-1]
    assert mid["done"] > log.weights_arriving(side)[0]["done"]
    assert mid["task"] == TASK and mid["model"] == REPO
    assert mid["total"] == total  # the real download's byte count: config, preprocessor config, weights
    assert mid["visible"] and w.download_dialog.isVisible()  # shown at once when bytes are known
    assert f"Loading {REPO} for object detection" == mid["title"]
    assert mid["text"].startswith(f"Downloading: {_mb(mid['done'])} of {_mb(total)}"), mid["text"]
    assert mid["bar"] == int(1000 * mid["done"] / total)
    assert "detr-tiny" in w.model_status.text()  # "Loading detr-tiny…"

    detr_hub.throttle.release()
    qtbot.waitUntil(lambda: tab.last_outcome() is not None, timeout=LOAD_TIMEOUT_MS)
    assert not w.download_dialog.isVisible()

    dones = [e["done"] for e in log.bytes()]
    assert dones == sorted(dones) and dones[-1] == total
    assert {e["total"] for e in log.bytes()} == {total}
    assert len([d for d in dones if side < d < total]) >= 2  # progress moved through the weights
    assert log.bytes()[-1]["text"].startswith(f"Downloaded {_mb(total)}")
    # fetched through the Hub and its CDN, now in the (test's) Hugging Face cache
    assert f"/api/models/{REPO}" in detr_hub.paths()
    assert [p for p in detr_hub.paths() if p.startswith("/lfs/")]
    assert engine.is_cached(REPO)
    assert w.engine.loaded_model(TASK) == REPO
    assert w.last_error == "" and w.failure_box is None

    # boxes drawn on the image
    assert isinstance(tab.source, ImageSource)
    shown = tab.presenter("object-detection").current_detections()
    assert shown is not None and len(shown) > 0 and shown.image_size == (240, 320)
    tab.view.resize(640, 480)
    with_boxes = tab.view.grab().toImage()
    tab.presenter("object-detection").set_threshold(1.0)  # nothing scores above 1: the same frame without boxes
    assert len(tab.presenter("object-detection").current_detections()) == 0
    assert tab.view.grab().toImage() != with_boxes


def test_cancel_during_download_then_open_again_completes(qtbot, window, detr_hub, sizes, image_file, hf_cache):
    w, tab = window, window.vision_tab
    log = DialogLog(w)
    total = sizes["model.safetensors"] + sum(sizes[n] for n in SIDE_FILES)
    side = sum(sizes[n] for n in SIDE_FILES)

    assert tab.open_file(image_file)
    qtbot.waitUntil(lambda: bool(log.weights_arriving(side)) and w.download_dialog.isVisible(),
                    timeout=LOAD_TIMEOUT_MS)
    cancel = w.download_dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Cancel)
    with qtbot.waitSignal(w.engine.modelFailed, timeout=10_000) as failed:
        qtbot.mouseClick(cancel, Qt.MouseButton.LeftButton)
        assert w.download_dialog._detail.text() == "Cancelling…"
    assert failed.args == [TASK, ""]  # cancelled, not failed
    last = log.bytes()[-1]["done"]
    assert last < total  # stopped in the middle

    assert not w.download_dialog.isVisible()
    assert "cancelled" in w.statusBar().currentMessage().lower()
    assert w.failure_box is None and w.last_error == ""  # a cancel is no error
    qtbot.waitUntil(lambda: tab.view.frame_id == 0, timeout=10_000)  # the image itself is shown
    assert tab.view.message == ""
    assert tab.last_outcome() is None
    assert w.engine.loaded_model(TASK) is None
    assert not engine.is_cached(REPO)
    assert [p.name for p in hf_cache.rglob("*") if p.name.endswith(".incomplete")] == []

    detr_hub.throttle.release()
    n_before = len(log.bytes())
    assert tab.open_file(image_file)
    qtbot.waitUntil(lambda: tab.last_outcome() is not None, timeout=LOAD_TIMEOUT_MS)
    assert not w.download_dialog.isVisible()
    assert engine.is_cached(REPO)
    assert log.bytes()[-1]["done"] == total and len(log.bytes()) > n_before
    assert len(tab.presenter("object-detection").current_detections()) > 0
    assert w.last_error == "" and w.failure_box is None
