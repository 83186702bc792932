"""GLPN (Kim et al., 2022: Global-Local Path Networks) for monocular depth estimation, as in the
seed's depth-estimation walk-through.

GLPN reuses SegFormer's hierarchical encoder, the Mix Transformer (:mod:`engine.models.segformer`):
its four scales, at 1/4, 1/8, 1/16 and 1/32 of the image, carry the *global* path (what
self-attention has seen of the whole image). A light decoder brings the coarsest scale back to
the image's size, and at each step mixes in the encoder's scale of that size, the *local* path:

1. Each scale is projected to ``decoder_hidden_size`` channels by a 1x1 convolution (none for a
   scale that already has that many, as the first one of ``vinvino02/glpn-nyu``).
2. The 1/32 features are upsampled x2 (bilinear) to 1/16.
3. *Selective Feature Fusion* (SFF) at 1/16, 1/8 and 1/4: the local and the upsampled global
   features are concatenated and go through two 3x3 convolutions (BatchNorm, ReLU) and a third
   one to two channels, whose sigmoid is an *attention map* per position: how much of the local
   and how much of the global features to keep. Their weighted sum is upsampled x2 for the next
   step; after the last one, x2 again, to the image's size.
4. The head: a 3x3 convolution, ReLU, a 3x3 convolution to one channel; its sigmoid times
   ``max_depth`` (10 m for NYU Depth v2 indoors, 80 m for KITTI outdoors) is the depth in metres.

The app shows the SFF attention maps: where the model trusts local detail and where the global
context (:meth:`GLPNForDepthEstimation.forward_with_internals`).

Speed (batch 1, CPU): the encoder's load-time steps are SegFormer's (packed GEMMs, fused depthwise
convolution); every BatchNorm is folded into the convolution before it, and each convolution with
a ReLU after it runs as one oneDNN op with the ReLU as a post-op (checked at load); everything
stays channels-last, where bilinear upsampling and the convolutions are fastest.

Module names follow the hub keys of ``vinvino02/glpn-nyu`` / ``-kitti`` (``glpn.encoder.block.S.J...``,
``decoder.stages.S.fusion.convolutional_layer1.0.weight``, ``head.head.0.weight``), which
transformers 5 still writes.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..device import Placement
from ..errors import CheckpointError, InputError
from .common import drop_legacy_buffers, load_strict
from .optimize import fold_batchnorm, place
from .segformer import (BATCH_NORM_EPS, MixTransformerConfig, MixTransformerEncoder, can_fuse_convs, check_pixels,
                        conv_act, optimize_encoder)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GLPNConfig:
    encoder: MixTransformerConfig
    decoder_hidden_size: int = 64
    max_depth: float = 10.0  # metres: the sigmoid's output is scaled to (0, max_depth)
    head_in_index: int = -1  # which decoder output the head reads (-1: the full-size one)

    @classmethod
    def from_hf(cls, cfg: Mapping) -> GLPNConfig:
        """From a hub ``config.json`` dict: unknown keys ignored, missing required keys an error."""
        encoder = MixTransformerConfig.from_hf(cfg, "this GLPN")
        config = cls(encoder, int(cfg.get("decoder_hidden_size", 64)), float(cfg.get("max_depth", 10)),
                     int(cfg.get("head_in_index", -1)))
        n = len(encoder.hidden_sizes)
        if not -n <= config.head_in_index < n:
            raise CheckpointError(f"config.json of this GLPN: head_in_index {config.head_in_index} is not one of "
                                  f"its {n} decoder stages.")
        if config.decoder_hidden_size < 2 or config.max_depth <= 0:
            raise CheckpointError("config.json of this GLPN: decoder_hidden_size must be at least 2 and "
                                  "max_depth positive.")
        return config


def _upsample(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C, 2h, 2w), bilinear, align_corners=False."""
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


def _fold_conv_bn(seq: nn.Sequential) -> None:
    """[conv, BatchNorm, ReLU] -> [conv with the BatchNorm folded in, Identity, ReLU]."""
    conv, bn = seq[0], seq[1]
    if isinstance(bn, nn.Identity):
        return
    with torch.no_grad():
        w, b = fold_batchnorm(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)
        conv.weight.copy_(w)
        conv.bias.copy_(b)
    seq[1] = nn.Identity()


def _conv_bn_relu(seq: nn.Sequential, x: torch.Tensor, fused: bool) -> torch.Tensor:
    if isinstance(seq[1], nn.Identity):  # folded
        return conv_act(seq[0], x, "relu", fused)
    return F.relu(seq[1](seq[0](x)))


class SelectiveFeatureFusion(nn.Module):
    """An attention map over two sources per position: local (this scale) and global (from coarser)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.convolutional_layer1 = nn.Sequential(nn.Conv2d(2 * d, d, 3, padding=1),
                                                  nn.BatchNorm2d(d, eps=BATCH_NORM_EPS), nn.ReLU())
        self.convolutional_layer2 = nn.Sequential(nn.Conv2d(d, d // 2, 3, padding=1),
                                                  nn.BatchNorm2d(d // 2, eps=BATCH_NORM_EPS), nn.ReLU())
        self.convolutional_layer3 = nn.Conv2d(d // 2, 2, 3, padding=1)
        self.fused = False  # set at load: conv + ReLU as one oneDNN op

    def fold(self) -> None:
        _fold_conv_bn(self.convolutional_layer1)
        _fold_conv_bn(self.convolutional_layer2)

    def forward(self, local: torch.Tensor, global_: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """local, global (B, D, h, w) -> fused features (B, D, h, w) and the attention (B, 2, h, w):
        channel 0 weighs the local features, channel 1 the global ones (each in (0, 1))."""
        x = torch.cat([local, global_], dim=1)  # (B, 2D, h, w)
        x = _conv_bn_relu(self.convolutional_layer2, _conv_bn_relu(self.convolutional_layer1, x, self.fused),
                          self.fused)  # (B, D/2, h, w)
        attn = torch.sigmoid(self.convolutional_layer3(x))  # (B, 2, h, w)
        return torch.addcmul(local * attn[:, 0:1], global_, attn[:, 1:2]), attn


class DecoderStage(nn.Module):
    def __init__(self, in_ch: int, d: int, fusion: bool) -> None:
        super().__init__()
        # the 1x1 projection to the decoder's width; none where the scale has it already (hub: no keys)
        self.convolution = nn.Conv2d(in_ch, d, 1) if in_ch != d else None
        self.fusion = SelectiveFeatureFusion(d) if fusion else None


class Decoder(nn.Module):
    """Coarsest scale first: project, fuse with the upsampled coarser result (SFF), upsample x2."""

    def __init__(self, c: GLPNConfig) -> None:
        super().__init__()
        d = c.decoder_hidden_size
        self.stages = nn.ModuleList(DecoderStage(ch, d, fusion=i > 0)
                                    for i, ch in enumerate(reversed(c.encoder.hidden_sizes)))

    def forward(self, scales: Sequence[torch.Tensor], last: int,
                image_hw: tuple[int, int]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The encoder's scales (finest first) -> the decoder's outputs up to stage ``last`` (each at
        twice its scale's size; the final stage's upsampled x2 once more, to the image's size) and the
        SFF attention maps (B, 2, h, w), coarsest first. (``image_hw``: the input's size, for the error.)"""
        outs, attentions, x = [], [], None
        for i, (feat, stage) in enumerate(zip(reversed(scales), self.stages)):
            if i > last:
                break
            local = feat if stage.convolution is None else stage.convolution(feat)  # (B, D, h, w)
            if x is None:
                x = local
            else:
                if x.shape[-2:] != local.shape[-2:]:
                    raise InputError(f"GLPN needs image sides that are multiples of 32 (its image processor "
                                     f"rounds them down to size_divisor 32); got {image_hw[1]}x{image_hw[0]}.")
                x, attn = stage.fusion(local, x)  # (B, D, h, w), (B, 2, h, w)
                attentions.append(attn)
            x = _upsample(x)  # (B, D, 2h, 2w)
            outs.append(x)
        if last == len(self.stages) - 1:
            outs[-1] = _upsample(outs[-1])  # (B, D, H, W) the image's size
        return outs, attentions


class DepthEstimationHead(nn.Module):
    def __init__(self, c: GLPNConfig) -> None:
        super().__init__()
        d = c.decoder_hidden_size
        self.head = nn.Sequential(nn.Conv2d(d, d, 3, padding=1), nn.ReLU(), nn.Conv2d(d, 1, 3, padding=1))
        self.max_depth = c.max_depth
        self.fused = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D, H, W) -> depth (B, H, W) in (0, max_depth)."""
        y = self.head[2](conv_act(self.head[0], x, "relu", self.fused))  # (B, 1, H, W)
        return (torch.sigmoid(y) * self.max_depth).squeeze(1)


class GLPNModel(nn.Module):
    def __init__(self, c: MixTransformerConfig) -> None:
        super().__init__()
        self.encoder = MixTransformerEncoder(c)


class GLPNForDepthEstimation(nn.Module):
    """The Mix Transformer encoder, the SFF decoder and the depth head."""

    def __init__(self, config: GLPNConfig) -> None:
        super().__init__()
        self.config = config
        self.glpn = GLPNModel(config.encoder)
        self.decoder = Decoder(config)
        self.head = DepthEstimationHead(config)

    def forward_with_internals(self, pixel_values: torch.Tensor
                               ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """pixel_values (B, 3, H, W) rescaled to [0, 1] (GLPN does not normalise), H and W multiples of
        32 -> predicted depth (B, H, W) float32 in metres, the encoder's four scales (B, C_i, h_i, w_i)
        at 1/4 .. 1/32, and the SFF attention maps (B, 2, h, w) at 1/16, 1/8, 1/4 (coarsest first;
        channel 0: the local features' weight, 1: the global ones')."""
        check_pixels(pixel_values, self.config.encoder.num_channels, "GLPN")
        dtype = self.glpn.encoder.patch_embeddings[0].proj.weight.dtype
        scales = self.glpn.encoder(pixel_values.to(dtype))
        last = self.config.head_in_index % len(self.decoder.stages)
        outs, fusion = self.decoder(scales, last, tuple(pixel_values.shape[-2:]))
        return self.head(outs[last]).float(), scales, fusion

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, 3, H, W) -> predicted depth (B, H, W) float32."""
        return self.forward_with_internals(pixel_values)[0]


# ----------------------------------------------------------------------------- loading

def remap(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hub keys -> ours (pure): legacy buffers dropped (the BatchNorms' ``num_batches_tracked``); a bare
    GLPNModel's keys (``encoder.``) prefixed with ``glpn.`` so that loading names the missing decoder."""
    return {("glpn." + k if k.startswith("encoder.") else k): v for k, v in drop_legacy_buffers(state).items()}


def check_config(cfg: Mapping, folder: Path) -> None:
    kind = cfg.get("model_type")
    if kind != "glpn":
        raise CheckpointError(f"{Path(folder).name} is a {kind or 'unknown'!r} model, not a GLPN "
                              "(config.json model_type is not 'glpn').")
    archs = [str(a) for a in cfg.get("architectures") or []]
    if archs and not any(a.endswith("ForDepthEstimation") for a in archs):
        raise CheckpointError(f"{Path(folder).name} is a GLPN without a depth-estimation head ({', '.join(archs)}). "
                              "Choose one such as vinvino02/glpn-nyu.")


def optimize_for(model: GLPNForDepthEstimation, placement: Placement) -> GLPNForDepthEstimation:
    """After the strict load: the encoder's steps (SegFormer's), BatchNorms folded, placed channels-last,
    convolution + ReLU fused where oneDNN agrees."""
    model.glpn.encoder.fuse_projections()
    for stage in model.decoder.stages:
        if stage.fusion is not None:
            stage.fusion.fold()
    model = place(model, placement, channels_last=True)
    optimize_encoder(model.glpn.encoder, model.config.encoder, placement)
    fused = can_fuse_convs(placement.device, placement.dtype)
    for m in model.modules():
        if isinstance(m, (SelectiveFeatureFusion, DepthEstimationHead)):
            m.fused = fused
    return model


def from_checkpoint(folder: Path, placement: Placement) -> GLPNForDepthEstimation:
    """A checkpoint folder (config.json + weights) -> GLPN on ``placement``, eval, no grad.
    CheckpointError when the folder is not a GLPN depth estimator or its weights do not fit."""
    from ..hub import load_weights, read_json

    cfg = read_json(folder, "config.json")
    check_config(cfg, folder)
    config = GLPNConfig.from_hf(cfg)
    model = GLPNForDepthEstimation(config)
    load_strict(model, remap(load_weights(folder)), "this GLPN depth estimator")
    e = config.encoder
    log.info("GLPN: channels %s, depths %s, decoder %d, max depth %g m on %s", "/".join(map(str, e.hidden_sizes)),
             "/".join(map(str, e.depths)), config.decoder_hidden_size, config.max_depth, placement.describe())
    return optimize_for(model, placement)
