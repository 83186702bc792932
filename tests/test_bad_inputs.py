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
    from engine.imageio import read_image
    with pytest.raises(InputError, match="is a video"):
        read_image(path)
    r = run_main("classify-image", str(path), "--model", str(tmp_path / "none"))
    assert r.returncode == 2 and "is a video" in r.stderr and "Traceback" not in r.stderr
