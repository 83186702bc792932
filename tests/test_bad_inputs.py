"""Bad input through the engine and the CLI: a clear one-line message (exit 2), never a traceback."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.errors import CheckpointError, EngineError, InputError, ModelNotAvailable

ROOT = Path(__file__).resolve().parents[1]


def run_main(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, env={**os.environ})


def test_invalid_hub_id_is_not_called_a_network_problem():
    from engine import hub
    with pytest.raises(ModelNotAvailable, match="not a checkpoint folder, nor a valid Hugging Face model id"):
        hub.resolve("facebook/detr resnet?50", offline=False)


def test_download_leaves_the_process_offline_setting_alone(monkeypatch):
    """The hub's module-wide offline flag is flipped only for the duration of one download."""
    from huggingface_hub import constants

    from engine import hub
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    seen = []

    def fake(repo_id, progress, cancel):
        seen.append(constants.HF_HUB_OFFLINE)
        raise ModelNotAvailable("no network in tests")
    monkeypatch.setattr(hub, "_download_online", fake)
    with pytest.raises(ModelNotAvailable):
        hub._download("someone/model", None, None)
    assert seen == [False] and constants.HF_HUB_OFFLINE is True


def test_garbage_bin_never_suggests_weights_only_false(tmp_path):
    from engine import hub
    (tmp_path / "config.json").write_text('{"model_type": "vit"}')
    (tmp_path / "pytorch_model.bin").write_bytes(os.urandom(4096))
    with pytest.raises(CheckpointError) as info:
        hub.load_weights(tmp_path)
    assert "corrupt" in str(info.value) and "weights_only" not in str(info.value)


def test_cpu_0_is_the_cpu():
    from engine import device
    assert device.resolve("cpu:0").device.type == "cpu"
    with pytest.raises(EngineError, match="not available"):
        device.resolve("tpu")


def test_config_without_model_type(tmp_path):
    from engine import load_task
    (tmp_path / "config.json").write_text('{"hidden_size": 8}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="names no model_type") as info:
        load_task("image-classification", str(tmp_path), device="cpu")
    assert "unknown" not in str(info.value)


def test_a_video_given_as_an_image_is_called_a_video(tmp_path):
    import cv2
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(3):
        writer.write(np.full((48, 64, 3), i * 40, np.uint8))
    writer.release()
    from engine.io.image import read_image
    with pytest.raises(InputError, match="is a video"):
        read_image(path)
    r = run_main("classify-image", str(path), "--model", str(tmp_path / "none"))
    assert r.returncode == 2 and "is a video" in r.stderr and "Traceback" not in r.stderr


def test_detection_refuses_what_would_not_fit_before_allocating(detr_timm_checkpoint, monkeypatch):
    from engine import DetectionOptions, load_task
    from engine import device as device_mod
    task = load_task("object-detection", str(detr_timm_checkpoint), device="cpu")
    image = np.zeros((60, 80, 3), np.uint8)
    assert len(task.run_batch([image, image], DetectionOptions(threshold=0.5, shortest_edge=64))) == 2
    monkeypatch.setattr(device_mod, "free_memory_bytes", lambda device: 200 * 2**20)  # 200 MB free
    with pytest.raises(InputError, match="would need about .* GB of memory"):
        task.run_batch([image] * 8, DetectionOptions(threshold=0.5, shortest_edge=1600, longest_edge=2000))


def test_extreme_aspect_ratios_in_a_batch(detr_timm_checkpoint):
    """20000x1 and 1x20000 clamp to at least 1 px after resizing; they run beside a normal image."""
    from engine import DetectionOptions, load_task
    task = load_task("object-detection", str(detr_timm_checkpoint), device="cpu")
    images = [np.zeros((1, 20000, 3), np.uint8), np.zeros((60, 80, 3), np.uint8), np.zeros((20000, 1, 3), np.uint8)]
    results = task.run_batch(images, DetectionOptions(threshold=0.5, shortest_edge=64))
    assert [r.image_size for r in results] == [(1, 20000), (60, 80), (20000, 1)]


def test_cli_reports_each_bad_image_and_runs_the_others(detr_timm_checkpoint, tmp_path):
    import cv2
    good, empty = tmp_path / "good.png", tmp_path / "empty.png"
    cv2.imwrite(str(good), np.zeros((60, 80, 3), np.uint8))
    empty.write_bytes(b"")
    r = run_main("detect", str(good), str(empty), "--model", str(detr_timm_checkpoint), "--device", "cpu",
                 "--size", "64", "--threshold", "0.5")
    assert r.returncode == 2
    assert "objects in " + str(good) in r.stdout and "empty.png is empty" in r.stderr and "Traceback" not in r.stderr


def test_transcript_is_kept_when_writing_fails_after_the_work(w2v_base_ctc, speech_wav, tmp_path, monkeypatch,
                                                              capsys):
    """The output path is checked before starting; if writing still fails (disk full, removed
    folder), the transcript goes to standard output with a message instead of being lost."""
    from engine import cli
    out = tmp_path / "talk.txt"
    real_write = Path.write_text

    def full_disk(self, *args, **kwargs):
        if self == out:
            raise OSError(28, "No space left on device")
        return real_write(self, *args, **kwargs)
    monkeypatch.setattr(Path, "write_text", full_disk)
    assert cli.main(["transcribe", str(speech_wav), "--model", str(w2v_base_ctc), "--device", "cpu",
                     "-o", str(out)]) == 0
    captured = capsys.readouterr()
    assert "could not write" in captured.err and "No space left" in captured.err
    assert captured.out.strip() != "" or "transcript follows" in captured.err
    assert not out.exists()


def test_speech_tab_window_is_the_window(qtbot, tmp_path, monkeypatch):
    """Issue: SpeechTab.window (a sliding audio window) shadowed QWidget.window()."""
    monkeypatch.setenv("TASKSCOPE_SETTINGS_DIR", str(tmp_path / "settings"))
    from gui.app import MainWindow
    w = MainWindow(offline=True)
    qtbot.addWidget(w)
    assert w.speech_tab.window() is w and w.vision_tab.window() is w
    assert w.shutdown()
