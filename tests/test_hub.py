"""engine.hub: local folders, weight formats, refusing pickles, offline errors."""
from __future__ import annotations

import shutil

import pytest
import torch

from engine import hub, load_task
from engine.errors import CheckpointError, ModelNotAvailable


def test_local_folder_resolves_as_is(detr_timm_checkpoint):
    assert hub.resolve(str(detr_timm_checkpoint)) == detr_timm_checkpoint
    assert hub.is_cached(str(detr_timm_checkpoint))


def test_safetensors_and_bin_give_the_same_tensors(detr_timm_checkpoint, detr_bin_checkpoint):
    assert hub.find_weights(detr_bin_checkpoint) == [detr_bin_checkpoint / "pytorch_model.bin"]
    a, b = hub.load_weights(detr_timm_checkpoint), hub.load_weights(detr_bin_checkpoint)
    assert a.keys() == b.keys() and len(a) > 100
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_bin_checkpoint_runs_the_task(detr_bin_checkpoint, detr_timm_checkpoint, detr_test_image):
    from engine.types.vision import DetectionOptions
    opts = DetectionOptions(threshold=0.05, shortest_edge=128, longest_edge=200)
    a = load_task("object-detection", str(detr_bin_checkpoint), device="cpu")(detr_test_image, opts)
    b = load_task("object-detection", str(detr_timm_checkpoint), device="cpu")(detr_test_image, opts)
    assert a.scores.tolist() == b.scores.tolist() and len(a) > 0


class Payload:
    """Any non-tensor object; unpickling it would import and call code."""

    def __reduce__(self):
        return (print, ("this must never run",))


def test_bin_with_pickled_code_is_refused(detr_timm_checkpoint, tmp_path, capsys):
    folder = tmp_path / "evil"
    folder.mkdir()
    shutil.copy(detr_timm_checkpoint / "config.json", folder / "config.json")
    torch.save({"model.input_projection.weight": torch.zeros(1), "x": Payload()}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        hub.load_weights(folder)
    assert "this must never run" not in capsys.readouterr().out


def test_bin_that_is_not_a_state_dict_is_refused(detr_timm_checkpoint, tmp_path):
    folder = tmp_path / "list"
    folder.mkdir()
    shutil.copy(detr_timm_checkpoint / "config.json", folder / "config.json")
    torch.save([torch.zeros(1)], folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="state dict"):
        hub.load_weights(folder)


def test_offline_and_not_downloaded_names_the_model_and_how_to_get_it():
    with pytest.raises(ModelNotAvailable) as err:
        hub.resolve("facebook/detr-resnet-50", offline=True)
    msg = str(err.value)
    assert "facebook/detr-resnet-50" in msg and "offline" in msg
    assert "python main.py download facebook/detr-resnet-50" in msg
    assert not hub.is_cached("facebook/detr-resnet-50")


def test_load_task_offline_missing_model():
    with pytest.raises(ModelNotAvailable, match="facebook/detr-resnet-101"):
        load_task("object-detection", "facebook/detr-resnet-101", device="cpu", offline=True)


def test_folder_without_config_is_a_checkpoint_error(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="config.json"):
        hub.resolve(str(tmp_path))


def test_folder_without_weights_is_a_checkpoint_error(detr_timm_checkpoint, tmp_path):
    shutil.copy(detr_timm_checkpoint / "config.json", tmp_path / "config.json")
    with pytest.raises(CheckpointError, match="No weights"):
        hub.load_weights(tmp_path)


def test_corrupt_safetensors_is_a_checkpoint_error(detr_timm_checkpoint, tmp_path):
    shutil.copy(detr_timm_checkpoint / "config.json", tmp_path / "config.json")
    (tmp_path / "model.safetensors").write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(CheckpointError, match="model.safetensors"):
        hub.load_weights(tmp_path)
