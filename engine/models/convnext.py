"""ConvNeXT (Liu et al., 2022) for image classification, as in the seed's CNN walk-through.

ConvNeXT is a CNN that takes up modern network designs; convolutions stay at its core. It
modernises a CNN in five ways (the seed's list, and where each one is here):

1. Blocks per stage and a *patchify stem*: a 4x4 convolution with stride 4 cuts the image into
   non-overlapping patches, like ViT's patches (:class:`ConvNextEmbeddings`); the stages have
   3/3/9/3 blocks (tiny), each stage after the first begins with a *downsampling layer*
   (LayerNorm + 2x2 convolution with stride 2, :class:`ConvNextStage`).
2. An *inverted bottleneck*: each block expands the channels x4 and then reduces them again
   (``pwconv1`` / ``pwconv2``, pointwise 1x1 convolutions written as Linear layers).
3. A *depthwise convolution* with a larger *7x7 kernel* (``dwconv``, one filter per channel),
   placed before the expansion, like the per-token mixing of self-attention before the MLP.
4. *Fewer activations and normalisations*: one GELU and one LayerNorm per block.
5. *GELU* instead of ReLU, *LayerNorm* instead of BatchNorm.

Each block ends with a *layer scale* (a learned per-channel ``gamma``) and the residual; drop
path (stochastic depth) is the identity at inference. The head is global average pooling, a
LayerNorm and a Linear classifier. Sizes (tiny/small/base/large/xlarge, 224/384) come from
config.json: ``hidden_sizes``, ``depths``.

Speed (batch 1, CPU): the trunk runs channels-last end to end, as (B, H, W, C) tensors; the
depthwise conv reads and writes the same memory as an NCHW channels-last view, so LayerNorm and
the Linear layers see contiguous rows without a single permute copy. At load the layer scale is
folded into ``pwconv2`` (gamma * (W x + b) = (gamma W) x + gamma b), and on CPU each block's two
pointwise layers run as oneDNN GEMMs on weights packed once, with the GELU and the residual add
fused in as post-ops (checked against the plain path at load, else the plain path is kept).
The GEMMs are then ~90% of the time, near the machine's fp32 GEMM rate.

Checkpoint keys are those of ``facebook/convnext-tiny-224`` (``convnext.embeddings.patch_embeddings``,
``convnext.encoder.stages.S.layers.J.dwconv`` ..., ``classifier``), so :func:`remap` is tiny.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..device import Placement
from ..errors import CheckpointError
from .common import drop_legacy_buffers, load_strict, require
from .optimize import PackedLinear, can_pack, linear_add, linear_gelu, packing_is_exact, place

log = logging.getLogger(__name__)

BLOCK_EPS = 1e-6  # the stem's, the downsampling layers' and the blocks' LayerNorms (fixed in ConvNeXT)
KERNEL = 7  # the depthwise convolution's kernel
EXPANSION = 4  # inverted bottleneck: C -> 4C -> C


@dataclass(frozen=True)
class ConvNextConfig:
    hidden_sizes: tuple[int, ...]  # channels of each stage
    depths: tuple[int, ...]  # blocks of each stage
    num_labels: int
    num_channels: int = 3
    patch_size: int = 4
    layer_norm_eps: float = 1e-12  # the final LayerNorm (before the classifier)
    layer_scale: bool = True  # blocks carry a learned per-channel gamma
    hidden_act: str = "gelu"
    image_size: int = 224  # what the checkpoint was trained at (only a hint for weight packing)
    id2label: dict[int, str] = field(default_factory=dict)

    REQUIRED = ("hidden_sizes", "depths")

    @classmethod
    def from_hf(cls, cfg: Mapping) -> ConvNextConfig:
        """From a transformers ``config.json`` dict; unknown keys are ignored."""
        require(cfg, cls.REQUIRED, "ConvNeXT")
        sizes, depths = tuple(int(c) for c in cfg["hidden_sizes"]), tuple(int(d) for d in cfg["depths"])
        if not sizes or len(sizes) != len(depths):
            raise CheckpointError(f"config.json of ConvNeXT has {len(sizes)} hidden_sizes but {len(depths)} depths; "
                                  "they must be one per stage.")
        act = cfg.get("hidden_act", "gelu")
        if act != "gelu":
            raise CheckpointError(f"ConvNeXT activation {act!r} is not supported (gelu only).")
        patch = cfg.get("patch_size", 4)
        if isinstance(patch, (list, tuple)):
            if len(set(patch)) != 1:
                raise CheckpointError(f"Non-square ConvNeXT patches ({patch}) are not supported.")
            patch = patch[0]
        size = cfg.get("image_size", 224)
        size = int(size[0] if isinstance(size, (list, tuple)) else size)
        id2label = {int(k): str(v) for k, v in (cfg.get("id2label") or {}).items()}
        num_labels = len(id2label) if id2label else cfg.get("num_labels")
        if not num_labels:
            raise CheckpointError("config.json of ConvNeXT has neither id2label nor num_labels.")
        return cls(sizes, depths, int(num_labels), int(cfg.get("num_channels", 3)), int(patch),
                   float(cfg.get("layer_norm_eps", 1e-12)), float(cfg.get("layer_scale_init_value", 1e-6)) > 0,
                   act, size, id2label)


@dataclass(frozen=True)
class ConvNextOutput:
    logits: torch.Tensor  # (B, num_labels)
    features: torch.Tensor | None = None  # (B, C, h, w) the last stage's feature map, before pooling


def _norm_last(x: torch.Tensor, norm: nn.LayerNorm) -> torch.Tensor:
    """LayerNorm over the channels of a channels-last (..., C) tensor."""
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


def _conv_nhwc(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """A Conv2d on (B, H, W, C) -> (B, H', W', C'), through an NCHW view of the same memory."""
    y = conv(x.permute(0, 3, 1, 2))  # (B, C, H, W) view, channels-last memory: no copy
    return y.permute(0, 2, 3, 1)  # (B, H', W', C'), contiguous when the conv kept channels-last


class ConvNextEmbeddings(nn.Module):
    """The patchify stem: a ``patch_size`` x ``patch_size`` conv with the same stride, then LayerNorm."""

    def __init__(self, c: ConvNextConfig) -> None:
        super().__init__()
        self.patch_embeddings = nn.Conv2d(c.num_channels, c.hidden_sizes[0], c.patch_size, stride=c.patch_size)
        self.layernorm = nn.LayerNorm(c.hidden_sizes[0], eps=BLOCK_EPS)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised pixels -> (B, H/4, W/4, C0) patch embeddings (channels last)"""
        x = self.patch_embeddings(pixel_values).permute(0, 2, 3, 1)  # (B, H/4, W/4, C0)
        return _norm_last(x, self.layernorm)


class ConvNextLayer(nn.Module):
    """One block, an inverted bottleneck: depthwise 7x7 conv -> LayerNorm -> pointwise expansion
    (C -> 4C) -> GELU -> pointwise projection (4C -> C) -> layer scale -> + residual."""

    def __init__(self, c: ConvNextConfig, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, KERNEL, padding=KERNEL // 2, groups=dim)  # depthwise
        self.layernorm = nn.LayerNorm(dim, eps=BLOCK_EPS)
        self.pwconv1 = nn.Linear(dim, EXPANSION * dim)  # pointwise expansion
        self.pwconv2 = nn.Linear(EXPANSION * dim, dim)  # pointwise projection
        self.layer_scale_parameter = nn.Parameter(torch.ones(dim)) if c.layer_scale else None  # gamma
        # set by use_fused_kernels(): pwconv1/2 packed for oneDNN GEMMs with GELU / residual add fused in
        self.packed: tuple[PackedLinear, PackedLinear] | None = None

    def fold_layer_scale(self) -> None:
        """gamma * (W x + b) = (gamma W) x + gamma b: fold gamma into pwconv2 (exact up to rounding)."""
        if self.layer_scale_parameter is None:
            return
        with torch.no_grad():
            gamma = self.layer_scale_parameter
            self.pwconv2.weight.mul_(gamma[:, None])  # (C, 4C) rows scaled
            self.pwconv2.bias.mul_(gamma)
        self.layer_scale_parameter = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C) -> (B, H, W, C)"""
        y = _norm_last(_conv_nhwc(self.dwconv, x), self.layernorm)  # (B, H, W, C)
        if self.packed is not None:
            pwconv1, pwconv2 = self.packed
            return linear_add(pwconv2, linear_gelu(pwconv1, y), x)  # x + W2 GELU(W1 y + b1) + b2, (B, H, W, C)
        y = self.pwconv2(F.gelu(self.pwconv1(y)))  # (B, H, W, C)
        if self.layer_scale_parameter is not None:
            y = y * self.layer_scale_parameter
        return x + y  # the residual (drop path is the identity at inference)


class ConvNextStage(nn.Module):
    """A downsampling layer (LayerNorm + 2x2 stride-2 conv; none in the first stage), then blocks."""

    def __init__(self, c: ConvNextConfig, in_ch: int, out_ch: int, depth: int, downsample: bool) -> None:
        super().__init__()
        self.downsampling_layer = nn.ModuleList(
            [nn.LayerNorm(in_ch, eps=BLOCK_EPS), nn.Conv2d(in_ch, out_ch, 2, stride=2)] if downsample else [])
        self.layers = nn.ModuleList(ConvNextLayer(c, out_ch) for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H, W, C_in) -> (B, H/2, W/2, C_out) (the first stage keeps H, W and C)"""
        if len(self.downsampling_layer):
            norm, conv = self.downsampling_layer
            x = _conv_nhwc(conv, _norm_last(x, norm))  # (B, H/2, W/2, C_out)
        for layer in self.layers:
            x = layer(x)
        return x


class ConvNextEncoder(nn.Module):
    def __init__(self, c: ConvNextConfig) -> None:
        super().__init__()
        chans = (c.hidden_sizes[0],) + c.hidden_sizes
        self.stages = nn.ModuleList(ConvNextStage(c, chans[s], chans[s + 1], depth, downsample=s > 0)
                                    for s, depth in enumerate(c.depths))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, H/4, W/4, C0) -> (B, H/32, W/32, C_last) for four stages"""
        for stage in self.stages:
            x = stage(x)
        return x


class ConvNextModel(nn.Module):
    """Stem + stages + the final LayerNorm (applied to the pooled vector, by the caller)."""

    def __init__(self, c: ConvNextConfig) -> None:
        super().__init__()
        self.embeddings = ConvNextEmbeddings(c)
        self.encoder = ConvNextEncoder(c)
        self.layernorm = nn.LayerNorm(c.hidden_sizes[-1], eps=c.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) -> (B, h, w, C) the last stage's feature map, channels last"""
        return self.encoder(self.embeddings(pixel_values))


class ConvNextForImageClassification(nn.Module):
    """ConvNeXT with its head: global average pooling -> LayerNorm -> Linear classifier."""

    def __init__(self, c: ConvNextConfig) -> None:
        super().__init__()
        self.config = c
        self.convnext = ConvNextModel(c)
        self.classifier = nn.Linear(c.hidden_sizes[-1], c.num_labels)

    def forward(self, pixel_values: torch.Tensor, want_features: bool = False) -> ConvNextOutput:
        """pixel_values (B, 3, H, W) normalised -> logits (B, num_labels) and, if asked, the
        last stage's feature map (B, C, h, w) before pooling (h, w = H/32, W/32 rounded down)."""
        x = self.convnext(pixel_values)  # (B, h, w, C)
        pooled = _norm_last(x.mean(dim=(1, 2)), self.convnext.layernorm)  # (B, C) global average pool
        logits = self.classifier(pooled)  # (B, num_labels)
        return ConvNextOutput(logits, x.permute(0, 3, 1, 2) if want_features else None)  # (B, C, h, w)

    def class_map(self, features: torch.Tensor, class_id: int | torch.Tensor) -> torch.Tensor:
        """The head applied at each position of the last feature map, for one class: features
        (B, C, h, w), class_id an int or (B,) ids -> (B, h, w) that class's logit per position."""
        x = _norm_last(features.permute(0, 2, 3, 1), self.convnext.layernorm)  # (B, h, w, C)
        ids = torch.as_tensor(class_id, device=features.device)
        w, b = self.classifier.weight[ids], self.classifier.bias[ids]  # (C,) / () or (B, C) / (B,)
        if ids.dim() == 0:
            return x @ w + b  # (B, h, w)
        return torch.einsum("bhwc,bc->bhw", x, w) + b[:, None, None]  # (B, h, w)

    def fold_layer_scale(self) -> None:
        for m in self.modules():
            if isinstance(m, ConvNextLayer):
                m.fold_layer_scale()


# ---------------------------------------------------------------------------- fused CPU kernels

def _pack(block: ConvNextLayer, rows: int) -> None:
    """Pack the block's pointwise layers once in oneDNN's layout, tuned for ``rows`` positions."""
    block.packed = (PackedLinear(block.pwconv1, rows), PackedLinear(block.pwconv2, rows))


def use_fused_kernels(model: ConvNextForImageClassification) -> bool:
    """On CPU (float32 / bfloat16), run each block's pointwise layers as oneDNN GEMMs with the
    GELU and the residual add as post-ops, their weights packed once in oneDNN's layout for the
    row count of the checkpoint's image size at batch 1 (checked against the plain path first).
    The packed weights replace the plain ones (no second copy in memory), so the model then stays
    on the device and dtype it was placed on. True when enabled."""
    c = model.config
    stages = model.convnext.encoder.stages
    blocks = [b for stage in stages for b in stage.layers]
    p = model.classifier.weight
    if (not blocks or not can_pack(p.device, p.dtype)
            or any(b.layer_scale_parameter is not None or b.packed is not None for b in blocks)):
        return False
    rows = [max(1, c.image_size // c.patch_size // 2 ** s) ** 2 for s in range(len(stages))]  # positions per stage
    firsts = [(stage.layers[0], n) for stage, n in zip(stages, rows) if len(stage.layers)]  # one block per stage
    if not all(packing_is_exact(layer, n) for block, n in firsts for layer in (block.pwconv1, block.pwconv2)):
        return False  # packing_is_exact logged why
    for stage, n in zip(stages, rows):
        for b in stage.layers:
            _pack(b, n)
    for b in blocks:
        b.pwconv1.weight = b.pwconv2.weight = None  # only the packed copies are used from now on
    return True


# ---------------------------------------------------------------------------- loading

def remap(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hub key layout -> ours (pure): drop legacy buffers; a bare ``ConvNextModel`` checkpoint's keys
    get the ``convnext.`` prefix (so loading reports the missing head, not every key)."""
    out: dict[str, torch.Tensor] = {}
    for k, v in drop_legacy_buffers(state).items():
        if k.startswith(("embeddings.", "encoder.", "layernorm.")):
            k = "convnext." + k
        out[k] = v
    return out


def check_config(config: Mapping) -> None:
    """A ConvNeXT with an image-classification head, or a CheckpointError saying what it is instead."""
    kind = config.get("model_type")
    if kind != "convnext":
        raise CheckpointError(f"This checkpoint is a {kind!r} model, not a ConvNeXT ('convnext')."
                              if kind else "config.json has no model_type; it is not a ConvNeXT checkpoint.")
    archs = [a for a in config.get("architectures") or [] if isinstance(a, str)]
    if archs and not any(a.endswith("ForImageClassification") for a in archs):
        raise CheckpointError(f"This ConvNeXT checkpoint is a {', '.join(archs)} without an image-classification "
                              "head; pick one fine-tuned for classification (ConvNextForImageClassification), "
                              "e.g. facebook/convnext-tiny-224.")


def build(config: ConvNextConfig, state: Mapping[str, torch.Tensor]) -> ConvNextForImageClassification:
    """A float model from hub weights: remap, strict load, layer scale folded."""
    weights = remap(state)
    if "classifier.weight" not in weights and "convnext.embeddings.patch_embeddings.weight" in weights:
        raise CheckpointError("This ConvNeXT checkpoint has no classification head (no classifier weights): "
                              "it is a bare ConvNextModel; pick one fine-tuned for image classification.")
    model = ConvNextForImageClassification(config)
    load_strict(model, weights, "ConvNeXT for image classification")
    model.fold_layer_scale()
    return model.eval().requires_grad_(False)


def from_checkpoint(folder: Path, placement: Placement) -> ConvNextForImageClassification:
    """config.json + weights of a checkpoint folder -> a ready model on ``placement``."""
    from ..hub import load_weights, read_json

    raw = read_json(folder, "config.json")
    check_config(raw)
    config = ConvNextConfig.from_hf(raw)
    model = place(build(config, load_weights(folder)), placement, channels_last=True)
    fused = use_fused_kernels(model)
    log.info("ConvNeXT %s / %s, %d labels on %s%s", "-".join(map(str, config.hidden_sizes)),
             "-".join(map(str, config.depths)), config.num_labels, placement.describe(),
             ", fused oneDNN blocks" if fused else "")
    return model
