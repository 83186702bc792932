"""Our ConvNeXT (engine.models.convnext) against transformers' ConvNextForImageClassification."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from engine.device import cpu_has_fast_bf16, resolve
from engine.errors import CheckpointError
from engine.models import convnext

LAYOUTS = ["convnext_checkpoint", "convnext_noscale_checkpoint", "convnext_hub_checkpoint"]
CPU = resolve("cpu", "exact")


@pytest.fixture(scope="module")
def oracles():
    """transformers' model per checkpoint folder, loaded once."""
    from transformers import ConvNextForImageClassification
    cache = {}

    def get(folder):
        if folder not in cache:
            cache[folder] = ConvNextForImageClassification.from_pretrained(folder).eval()
        return cache[folder]
    return get


def _pixels(batch: int, h: int, w: int) -> torch.Tensor:
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(batch * 1000 + h + w))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_logits_and_features_match_transformers(layout, request, oracles):
    folder = request.getfixturevalue(layout)
    ours, theirs = convnext.from_checkpoint(folder, CPU), oracles(folder)
    assert ours.config.id2label == theirs.config.id2label
    for batch, (h, w) in [(1, (64, 64)), (2, (64, 64)), (1, (96, 64)), (2, (96, 64))]:
        x = _pixels(batch, h, w)
        with torch.inference_mode():
            ref = theirs(pixel_values=x, output_hidden_states=True)
            out = ours(x, want_features=True)
        assert out.logits.shape == (batch, 5)
        assert ref.logits.std() > 0.1  # varied logits, so the comparison means something
        torch.testing.assert_close(out.logits, ref.logits, atol=1e-4, rtol=0)
        assert out.features.shape == ref.hidden_states[-1].shape == (batch, 32, h // 32, w // 32)
        torch.testing.assert_close(out.features, ref.hidden_states[-1], atol=1e-4, rtol=0)
        assert ours(x).features is None


@pytest.mark.parametrize("layout", ["convnext_checkpoint", "convnext_noscale_checkpoint"])
def test_plain_and_unfolded_paths_match_transformers(layout, request, oracles):
    """The plain blocks (GPUs, other CPUs) with the layer scale folded or not give the same logits;
    on this CPU from_checkpoint uses the fused oneDNN blocks (tested above)."""
    folder = request.getfixturevalue(layout)
    from engine.hub import load_weights, read_json
    from engine.models.common import load_strict
    from engine.models.optimize import place
    config = convnext.ConvNextConfig.from_hf(read_json(folder, "config.json"))
    unfolded = convnext.ConvNextForImageClassification(config).eval()
    load_strict(unfolded, convnext.remap(load_weights(folder)), "ConvNeXT")
    assert (unfolded.convnext.encoder.stages[0].layers[0].layer_scale_parameter is not None) == config.layer_scale
    plain = place(convnext.build(config, load_weights(folder)), CPU, channels_last=True)
    x = _pixels(2, 96, 64)
    with torch.inference_mode():
        want = oracles(folder)(pixel_values=x).logits
        for model in (unfolded, plain):
            assert all(m.packed is None for m in model.modules() if isinstance(m, convnext.ConvNextLayer))
            torch.testing.assert_close(model(x).logits, want, atol=1e-4, rtol=0)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="no oneDNN in this torch build")
def test_the_fused_blocks_are_used_on_cpu(convnext_checkpoint):
    model = convnext.from_checkpoint(convnext_checkpoint, CPU)
    blocks = [m for m in model.modules() if isinstance(m, convnext.ConvNextLayer)]
    assert blocks and all(b.packed is not None and b.pwconv1.weight is None for b in blocks)


def test_class_map_is_the_head_at_each_position(convnext_checkpoint, oracles):
    theirs = oracles(convnext_checkpoint)
    ours = convnext.from_checkpoint(convnext_checkpoint, CPU)
    x = _pixels(2, 96, 64)
    with torch.inference_mode():
        last = theirs(pixel_values=x, output_hidden_states=True).hidden_states[-1]  # (B, C, h, w)
        per_position = theirs.classifier(theirs.convnext.layernorm(last.permute(0, 2, 3, 1)))  # (B, h, w, labels)
        features = ours(x, want_features=True).features
        for class_id in range(5):
            got = ours.class_map(features, class_id)
            assert got.shape == (2, 3, 2)
            torch.testing.assert_close(got, per_position[..., class_id], atol=1e-4, rtol=0)
        ids = torch.tensor([3, 1])  # one class per image
        got = ours.class_map(features, ids)
    torch.testing.assert_close(got[0], per_position[0, ..., 3], atol=1e-4, rtol=0)
    torch.testing.assert_close(got[1], per_position[1, ..., 1], atol=1e-4, rtol=0)


def test_config_from_hf():
    cfg = convnext.ConvNextConfig.from_hf({"hidden_sizes": [96, 192, 384, 768], "depths": [3, 3, 9, 3],
                                           "num_labels": 3, "something_new": 1, "patch_size": [4, 4]})
    assert cfg.hidden_sizes == (96, 192, 384, 768) and cfg.patch_size == 4 and cfg.layer_scale
    assert cfg.layer_norm_eps == 1e-12 and cfg.num_labels == 3
    cfg = convnext.ConvNextConfig.from_hf({"hidden_sizes": [8], "depths": [1], "layer_scale_init_value": 0,
                                           "id2label": {"0": "a", "1": "b"}})
    assert not cfg.layer_scale and cfg.num_labels == 2 and cfg.id2label == {0: "a", 1: "b"}
    with pytest.raises(CheckpointError, match="depths"):
        convnext.ConvNextConfig.from_hf({"hidden_sizes": [8], "num_labels": 2})
    with pytest.raises(CheckpointError, match="activation"):
        convnext.ConvNextConfig.from_hf({"hidden_sizes": [8], "depths": [1], "num_labels": 2, "hidden_act": "relu"})


def _copy(src, tmp_path, edit_config=None):
    dst = tmp_path / "ckpt"
    shutil.copytree(src, dst)
    if edit_config is not None:
        cfg = json.loads((dst / "config.json").read_text())
        edit_config(cfg)
        (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_a_non_convnext_config_is_refused(convnext_checkpoint, tmp_path):
    folder = _copy(convnext_checkpoint, tmp_path, lambda c: c.update(model_type="vit", architectures=["ViTModel"]))
    with pytest.raises(CheckpointError, match=r"'vit' model, not a ConvNeXT"):
        convnext.from_checkpoint(folder, CPU)


def test_a_checkpoint_without_a_head_is_refused(convnext_bare_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match=r"ConvNextModel without an image-classification head"):
        convnext.from_checkpoint(convnext_bare_checkpoint, CPU)
    # the same weights with no architectures in config.json: the weights tell
    folder = _copy(convnext_bare_checkpoint, tmp_path, lambda c: c.pop("architectures"))
    with pytest.raises(CheckpointError, match="no classification head"):
        convnext.from_checkpoint(folder, CPU)


def test_a_missing_key_is_listed(convnext_checkpoint, tmp_path):
    from safetensors.torch import load_file, save_file
    folder = _copy(convnext_checkpoint, tmp_path)
    state = load_file(str(folder / "model.safetensors"))
    key = "convnext.encoder.stages.2.layers.1.layer_scale_parameter"
    del state[key]
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(CheckpointError, match=r"missing keys: " + key.replace(".", r"\.")):
        convnext.from_checkpoint(folder, CPU)


@pytest.mark.skipif(not cpu_has_fast_bf16(), reason="this CPU has no native bfloat16")
def test_fast_precision_runs_close_to_exact(convnext_checkpoint, oracles):
    ours = convnext.from_checkpoint(convnext_checkpoint, resolve("cpu", "fast"))
    x = _pixels(2, 64, 64)
    with torch.inference_mode():
        got = ours(x.bfloat16()).logits.float()
        want = oracles(convnext_checkpoint)(pixel_values=x).logits
    assert torch.isfinite(got).all()
    torch.testing.assert_close(got, want, atol=0.1 * float(want.abs().max()), rtol=0)
