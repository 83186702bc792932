"""Layers and helpers shared by several architectures (only what more than one file uses)."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from ..errors import CheckpointError

log = logging.getLogger(__name__)

#: buffers that old checkpoints carry and that no model here needs
LEGACY_BUFFER_SUFFIXES = ("position_ids", "num_batches_tracked")


def drop_legacy_buffers(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in state.items() if not k.endswith(LEGACY_BUFFER_SUFFIXES)}


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], what: str) -> None:
    """``load_state_dict(strict=True)`` with an error that lists missing and unexpected keys."""
    try:
        result = module.load_state_dict(dict(state), strict=False)
    except RuntimeError as exc:  # tensors whose shapes do not fit (strict=False still checks sizes)
        lines = [line.strip() for line in str(exc).splitlines() if "size mismatch" in line]
        raise CheckpointError(f"The weights do not fit {what} built from config.json: "
                              + "; ".join(lines[:6] or [str(exc)[:500]])) from None
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        def show(keys: list[str]) -> str:
            head = ", ".join(keys[:12])
            return head + (f", … ({len(keys)} in all)" if len(keys) > 12 else "")
        parts = []
        if missing:
            parts.append(f"missing keys: {show(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {show(unexpected)}")
        raise CheckpointError(f"The weights do not fit {what}: " + "; ".join(parts) + ".")


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


def require(config: Mapping, keys: Iterable[str], what: str) -> None:
    missing = [k for k in keys if k not in config]
    if missing:
        raise CheckpointError(f"config.json of {what} lacks required keys: {', '.join(missing)}.")
