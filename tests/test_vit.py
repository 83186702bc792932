"""Our ViT (engine.models.vit) against transformers' ViTForImageClassification."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from engine.device import Placement, resolve
from engine.errors import CheckpointError, InputError
from engine.hub import load_weights
from engine.models import vit

LAYOUTS = ["vit_checkpoint", "vit_p16_checkpoint", "vit_bin_checkpoint", "vit_pooler_checkpoint"]
EXACT = resolve("cpu", "exact")


@pytest.fixture(scope="module")
def oracles():
    """transformers' model per checkpoint folder, read from the same files (eager attention, so that
    output_attentions returns the probabilities)."""
    from transformers import ViTForImageClassification
    cache = {}

    def get(folder):
        if folder not in cache:
            cache[folder] = ViTForImageClassification.from_pretrained(folder, attn_implementation="eager").eval()
        return cache[folder]
    return get


@pytest.fixture(scope="module")
def ours():
    cache = {}

    def get(folder):
        if folder not in cache:
            cache[folder] = vit.from_checkpoint(folder, EXACT)
        return cache[folder]
    return get


def _pixels(batch: int, h: int, w: int, seed: int = 3) -> torch.Tensor:
    return torch.randn(batch, 3, h, w, generator=torch.Generator().manual_seed(seed))


def _side(folder) -> int:
    return json.loads((folder / "config.json").read_text())["image_size"]


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("layout", LAYOUTS)
def test_logits_match_transformers(layout, batch, request, oracles, ours):
    folder = request.getfixturevalue(layout)
    side = _side(folder)
    pixels = _pixels(batch, side, side)
    with torch.inference_mode():
        out = ours(folder)(pixels)
        want = oracles(folder)(pixel_values=pixels).logits
    assert out.logits.shape == want.shape == (batch, 5)
    assert want.std() > 0.1  # the logits vary, so the comparison means something
    torch.testing.assert_close(out.logits, want, atol=1e-4, rtol=0)
    assert out.attentions is None
    assert out.grid == (side // (8 if side == 32 else 16),) * 2


@pytest.mark.parametrize("layout, size", [("vit_checkpoint", (48, 40)), ("vit_checkpoint", (50, 42)),
                                          ("vit_checkpoint", (24, 24)), ("vit_p16_checkpoint", (96, 80))])
def test_other_sizes_interpolate_the_position_embeddings(layout, size, request, oracles, ours):
    folder = request.getfixturevalue(layout)
    pixels = _pixels(2, *size, seed=5)
    with torch.inference_mode():
        out = ours(folder)(pixels)
        want = oracles(folder)(pixel_values=pixels, interpolate_pos_encoding=True).logits
    torch.testing.assert_close(out.logits, want, atol=1e-4, rtol=0)
    patch = 8 if layout == "vit_checkpoint" else 16
    assert out.grid == (size[0] // patch, size[1] // patch)


@pytest.mark.parametrize("size", [(32, 32), (48, 40)])
def test_attention_probabilities_match_transformers(vit_checkpoint, size, oracles, ours):
    model = ours(vit_checkpoint)
    pixels = _pixels(2, *size, seed=8)
    with torch.inference_mode():
        out = model(pixels, want_attention=True)
        plain = model(pixels)
        want = oracles(vit_checkpoint)(pixel_values=pixels, output_attentions=True, interpolate_pos_encoding=True)
    rows, cols = out.grid
    t = 1 + rows * cols
    assert len(out.attentions) == len(want.attentions) == 3
    for mine, theirs in zip(out.attentions, want.attentions):
        assert mine.shape == (2, 4, t, t) and mine.dtype == torch.float32
        torch.testing.assert_close(mine, theirs, atol=1e-5, rtol=0)
    assert want.attentions[-1].max() > 0.5  # peaked, not uniform
    torch.testing.assert_close(out.logits, plain.logits, atol=0, rtol=0)  # asking does not change the answer

    rollout = vit.attention_rollout(out.attentions)
    assert rollout.shape == (2, t)
    torch.testing.assert_close(rollout.sum(dim=-1), torch.ones(2), atol=1e-5, rtol=0)
    per_head, mean = vit.cls_attention(out.attentions, out.grid)
    assert per_head.shape == (2, 4, rows, cols) and mean.shape == (2, rows, cols)
    torch.testing.assert_close(per_head, want.attentions[-1][:, :, 0, 1:].reshape(2, 4, rows, cols),
                               atol=1e-5, rtol=0)
    assert vit.patch_map(rollout, out.grid).shape == (2, rows, cols)


def test_attention_rollout_is_abnar_and_zuidemas():
    g = torch.Generator().manual_seed(0)
    layers = [torch.rand(1, 3, 5, 5, generator=g).softmax(-1) for _ in range(2)]
    joint = [0.5 * a.mean(1)[0] + 0.5 * torch.eye(5) for a in layers]  # residual: half attention, half identity
    torch.testing.assert_close(vit.attention_rollout(layers)[0], (joint[1] @ joint[0])[0])


def test_remap_drops_what_the_classifier_does_not_use(vit_pooler_checkpoint):
    state = load_weights(vit_pooler_checkpoint)
    before = dict(state)
    mapped = vit.remap(state)
    assert state.keys() == before.keys()  # pure
    assert not [k for k in mapped if "pooler" in k or k.endswith("position_ids")]
    assert "vit.encoder.layer.0.attention.attention.query.weight" in mapped and "classifier.weight" in mapped


def test_fast_precision_runs(vit_checkpoint):
    model = vit.from_checkpoint(vit_checkpoint, Placement(torch.device("cpu"), torch.bfloat16, "fast"))
    pixels = _pixels(1, 40, 32)
    with torch.inference_mode():
        out = model(pixels, want_attention=True)
    assert out.logits.dtype == torch.float32 and torch.isfinite(out.logits).all()
    torch.testing.assert_close(vit.attention_rollout(out.attentions).sum(-1), torch.ones(1), atol=1e-4, rtol=0)


def test_bad_input_is_an_input_error(vit_checkpoint, ours):
    model = ours(vit_checkpoint)
    with pytest.raises(InputError, match="smaller than one 8x8 patch"):
        model(_pixels(1, 4, 32))
    with pytest.raises(InputError, match="pixel values"):
        model(torch.zeros(1, 1, 32, 32))


def _edited(src, tmp_path, **changes):
    dst = shutil.copytree(src, tmp_path / "ckpt")
    cfg = json.loads((dst / "config.json").read_text())
    cfg.update(changes)
    (dst / "config.json").write_text(json.dumps(cfg))
    return dst


def test_a_non_vit_config_is_refused(vit_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="'bert' model, not a Vision Transformer"):
        vit.from_checkpoint(_edited(vit_checkpoint, tmp_path, model_type="bert"), EXACT)


def test_a_vit_without_head_is_refused(vit_backbone_checkpoint, tmp_path):
    with pytest.raises(CheckpointError, match="without an image-classification head"):
        vit.from_checkpoint(vit_backbone_checkpoint, EXACT)
    # without `architectures` the weights tell: the classifier is missing
    with pytest.raises(CheckpointError, match="missing keys: classifier.weight, classifier.bias"):
        vit.from_checkpoint(_edited(vit_backbone_checkpoint, tmp_path, architectures=None, num_labels=5), EXACT)


def test_a_missing_weight_is_named(vit_bin_checkpoint, tmp_path):
    dst = shutil.copytree(vit_bin_checkpoint, tmp_path / "ckpt")
    state = torch.load(dst / "pytorch_model.bin", weights_only=True)
    del state["vit.encoder.layer.1.output.dense.weight"]
    torch.save(state, dst / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"missing keys: vit\.encoder\.layer\.1\.output\.dense\.weight"):
        vit.from_checkpoint(dst, EXACT)


def test_config_requires_its_keys():
    with pytest.raises(CheckpointError, match="lacks required keys: patch_size"):
        vit.ViTConfig.from_hf({"model_type": "vit", "hidden_size": 48, "num_hidden_layers": 1,
                               "num_attention_heads": 4, "intermediate_size": 96, "image_size": 32,
                               "num_labels": 2})
