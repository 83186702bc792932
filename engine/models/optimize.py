"""Load-time optimisations shared by every model: placing a loaded model on its device and dtype,
and folding constants into the layers that use them (frozen BatchNorm into the preceding conv,
weight norm into a plain weight). Each is exact up to float rounding and tested once
(tests/test_optimize.py)."""
from __future__ import annotations

import torch
from torch import nn

from ..device import Placement


def place(model: nn.Module, placement: Placement, *, channels_last: bool = False) -> nn.Module:
    """The one way a loaded model reaches its device: eval mode, no gradients, the placement's
    device and dtype, and (for convnets, where it was measured to help) channels-last memory."""
    model = model.eval().requires_grad_(False).to(device=placement.device, dtype=placement.dtype)
    if channels_last and placement.device.type in ("cpu", "cuda"):
        model = model.to(memory_format=torch.channels_last)
    return model


def fold_batchnorm(conv_weight: torch.Tensor, conv_bias: torch.Tensor | None, bn_weight: torch.Tensor,
                   bn_bias: torch.Tensor, running_mean: torch.Tensor, running_var: torch.Tensor,
                   eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold a frozen BatchNorm that follows a convolution into the convolution's weight and bias."""
    scale = bn_weight / torch.sqrt(running_var + eps)  # (C_out,)
    weight = conv_weight * scale.reshape(-1, *([1] * (conv_weight.dim() - 1)))
    bias = conv_bias if conv_bias is not None else torch.zeros_like(running_mean)
    bias = (bias - running_mean) * scale + bn_bias
    return weight, bias


def fold_weight_norm(weight_g: torch.Tensor, weight_v: torch.Tensor, dim: int) -> torch.Tensor:
    """The plain weight of a weight-normalised layer: g * v / ||v|| (norm over all dims but ``dim``)."""
    dims = [d for d in range(weight_v.dim()) if d != dim]
    return weight_g * weight_v / weight_v.norm(dim=dims, keepdim=True)
