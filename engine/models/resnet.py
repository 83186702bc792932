"""ResNet (bottleneck) backbone, as DETR uses it: the "CNN backbone" of the seed.

Module attribute names follow timm's ``resnet50`` / ``resnet101`` keys (``conv1``, ``bn1``,
``layer1.0.conv1``, ``layer1.0.downsample.0`` ...), which is the layout of the real
``facebook/detr-resnet-*`` checkpoints, so the remap from the hub stays small. The frozen
BatchNorms of the checkpoint are folded into the convolutions at load (:func:`fold_state`),
so at run time every block is just conv + bias (+ ReLU).

    stem:   conv1 7x7/2 -> ReLU -> max-pool 3x3/2            (stride 4)
    layer1: bottlenecks, stride 1                             (stride 4)
    layer2..4: bottlenecks, the first one of each with stride 2 (stride 8, 16, 32)

A bottleneck is 1x1 (reduce to width/4) -> 3x3 (stride here) -> 1x1 (expand to width), plus a
shortcut that is a 1x1 strided conv ("downsample") when the shape changes.
"""
from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from .optimize import fold_batchnorm

log = logging.getLogger(__name__)

#: timm backbone name -> blocks per stage (all bottleneck, expansion 4)
TIMM_DEPTHS: dict[str, tuple[int, int, int, int]] = {
    "resnet50": (3, 4, 6, 3),
    "resnet101": (3, 4, 23, 3),
    "resnet152": (3, 8, 36, 3),
}
#: torchvision / timm ResNet-50+ widths: stem, then the output width of each stage
STANDARD_WIDTHS = (64, (256, 512, 1024, 2048))
BN_EPS = 1e-5  # DETR's frozen BatchNorm


@dataclass(frozen=True)
class ResNetConfig:
    depths: tuple[int, ...] = (3, 4, 6, 3)
    stem_width: int = 64
    widths: tuple[int, ...] = (256, 512, 1024, 2048)  # output channels of each stage
    num_channels: int = 3

    @classmethod
    def from_timm_name(cls, name: str, num_channels: int = 3) -> ResNetConfig:
        key = name.split("/")[-1].split(".")[0].replace("timm/", "")
        if key not in TIMM_DEPTHS:
            raise CheckpointError(f"Backbone {name!r} is not supported; Taskscope's DETR supports "
                                  f"{', '.join(sorted(TIMM_DEPTHS))} (bottleneck ResNets).")
        return cls(TIMM_DEPTHS[key], STANDARD_WIDTHS[0], STANDARD_WIDTHS[1], num_channels)

    @classmethod
    def from_hf(cls, cfg: Mapping) -> ResNetConfig:
        """From a transformers ``ResNetConfig`` dict (``backbone_config`` of a DETR config)."""
        if cfg.get("layer_type", "bottleneck") != "bottleneck":
            raise CheckpointError("Only bottleneck ResNet backbones are supported (layer_type 'bottleneck').")
        if cfg.get("downsample_in_bottleneck", False) or cfg.get("downsample_in_first_stage", False):
            raise CheckpointError("ResNet backbones that downsample in the first 1x1 conv or the first stage "
                                  "are not supported.")
        if cfg.get("hidden_act", "relu") != "relu":
            raise CheckpointError(f"ResNet activation {cfg.get('hidden_act')!r} is not supported (relu only).")
        return cls(tuple(cfg.get("depths", (3, 4, 6, 3))), int(cfg.get("embedding_size", 64)),
                   tuple(cfg.get("hidden_sizes", (256, 512, 1024, 2048))), int(cfg.get("num_channels", 3)))

    def with_widths_of(self, state: Mapping[str, torch.Tensor], prefix: str = "") -> ResNetConfig:
        """The same depths with the channel widths a (timm-named) state dict actually has.

        timm configs name the architecture only ("resnet50"); the widths are in the weights.
        """
        try:
            stem = int(state[prefix + "conv1.weight"].shape[0])
            widths = tuple(int(state[f"{prefix}layer{s + 1}.0.conv3.weight"].shape[0])
                           for s in range(len(self.depths)))
        except KeyError:
            return self  # strict loading will list what is missing
        if (stem, widths) != (self.stem_width, self.widths):
            log.info("ResNet widths from the weights: stem %d, stages %s", stem, widths)
        return ResNetConfig(self.depths, stem, widths, self.num_channels)


class Bottleneck(nn.Module):
    """1x1 reduce -> 3x3 (strided) -> 1x1 expand, each with its BatchNorm folded in, plus shortcut."""

    def __init__(self, in_ch: int, out_ch: int, stride: int) -> None:
        super().__init__()
        mid = out_ch // 4
        self.conv1 = nn.Conv2d(in_ch, mid, 1)
        self.conv2 = nn.Conv2d(mid, mid, 3, stride=stride, padding=1)
        self.conv3 = nn.Conv2d(mid, out_ch, 1)
        self.downsample = (nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride=stride))
                           if stride != 1 or in_ch != out_ch else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C_in, H, W) -> (B, C_out, H/stride, W/stride)"""
        shortcut = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.conv1(x), inplace=True)
        y = F.relu(self.conv2(y), inplace=True)
        y = self.conv3(y)
        return F.relu(y.add_(shortcut), inplace=True)


class ResNet(nn.Module):
    """Bottleneck ResNet trunk returning the last stage's feature map (stride 32)."""

    def __init__(self, cfg: ResNetConfig) -> None:
        super().__init__()
        self.config = cfg
        self.conv1 = nn.Conv2d(cfg.num_channels, cfg.stem_width, 7, stride=2, padding=3)
        in_ch = cfg.stem_width
        for s, (depth, width) in enumerate(zip(cfg.depths, cfg.widths)):
            blocks = []
            for j in range(depth):
                blocks.append(Bottleneck(in_ch, width, stride=2 if (j == 0 and s > 0) else 1))
                in_ch = width
            self.add_module(f"layer{s + 1}", nn.Sequential(*blocks))
        self.out_channels = in_ch

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) normalised pixels -> (B, C, ceil(H/32), ceil(W/32)) features"""
        x = F.relu(self.conv1(pixel_values), inplace=True)
        x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)  # (B, C, H/4, W/4)
        for s in range(len(self.config.depths)):
            x = getattr(self, f"layer{s + 1}")(x)
        return x


# ---------------------------------------------------------------------------- checkpoint layout

_HF_STEM = re.compile(r"^embedder\.embedder\.(convolution|normalization)\.(.+)$")
_HF_BLOCK = re.compile(r"^encoder\.stages\.(\d+)\.layers\.(\d+)\.(layer\.(\d+)|shortcut)\.(convolution|normalization)\.(.+)$")


def hf_to_timm(key: str) -> str:
    """Rename one transformers-ResNet key (relative to the backbone) to timm's name; others pass."""
    m = _HF_STEM.match(key)
    if m:
        return ("conv1." if m.group(1) == "convolution" else "bn1.") + m.group(2)
    m = _HF_BLOCK.match(key)
    if m:
        stage, block, part, k, kind, rest = m.groups()
        head = f"layer{int(stage) + 1}.{block}."
        if part == "shortcut":
            return head + ("downsample.0." if kind == "convolution" else "downsample.1.") + rest
        idx = int(k) + 1
        return head + (f"conv{idx}." if kind == "convolution" else f"bn{idx}.") + rest
    return key


def fold_state(state: Mapping[str, torch.Tensor], prefix: str = "") -> dict[str, torch.Tensor]:
    """Fold every frozen BatchNorm (timm names, under ``prefix``) into the conv before it.

    ``conv1`` + ``bn1`` -> ``conv1.weight/bias``; ``layerS.J.convK`` + ``bnK`` likewise;
    ``downsample.0`` + ``downsample.1`` -> ``downsample.0.weight/bias``. Keys outside
    ``prefix`` pass unchanged; a BatchNorm without its conv is left for strict loading to report.
    """
    out = dict(state)
    bn_keys = [k for k in state if k.startswith(prefix) and k.endswith(".running_mean")]
    for rm_key in bn_keys:
        bn = rm_key[: -len("running_mean")]  # e.g. "backbone.layer1.0.bn2."
        if bn.endswith("downsample.1."):
            conv = bn[: -len("1.")] + "0."
        else:
            m = re.match(r"^(.*)bn(\d+)\.$", bn)
            if m is None:
                continue
            conv = f"{m.group(1)}conv{m.group(2)}."
        if conv + "weight" not in state:
            continue
        try:
            w, b = fold_batchnorm(state[conv + "weight"].float(), None, state[bn + "weight"].float(),
                                  state[bn + "bias"].float(), state[bn + "running_mean"].float(),
                                  state[bn + "running_var"].float(), BN_EPS)
        except KeyError as exc:
            raise CheckpointError(f"BatchNorm {bn[:-1]} in the checkpoint is incomplete: no {exc}.") from None
        for name in ("weight", "bias", "running_mean", "running_var"):
            out.pop(bn + name, None)
        out[conv + "weight"], out[conv + "bias"] = w, b
    return out
