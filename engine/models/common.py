"""Layers and helpers shared by several architectures (only what more than one file uses)."""
from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
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


def require(config: Mapping, keys: Iterable[str], what: str) -> None:
    missing = [k for k in keys if k not in config]
    if missing:
        raise CheckpointError(f"config.json of {what} lacks required keys: {', '.join(missing)}.")


class MultiHeadAttention(nn.Module):
    """Multi-head attention computed with SDPA. The projections are named as in the hub
    checkpoints (``q_proj``, ``k_proj``, ``v_proj``, ``out_proj``), so models load them as they are."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, dim // heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.qkv: nn.Module | None = None  # set by fuse_qkv(): one GEMM instead of three

    def fuse_qkv(self) -> None:
        """For self-attention only (queries, keys and values from one input), after loading."""
        dim = self.q_proj.in_features
        qkv = nn.Linear(dim, 3 * self.q_proj.out_features)
        with torch.no_grad():
            qkv.weight.copy_(torch.cat([self.q_proj.weight, self.k_proj.weight, self.v_proj.weight]))  # (3D, D)
            qkv.bias.copy_(torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]))  # (3D,)
        self.qkv = qkv.to(self.q_proj.weight)
        del self.q_proj, self.k_proj, self.v_proj

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, heads, T, head_dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor | None = None, value: torch.Tensor | None = None,
                key_mask: torch.Tensor | None = None,
                want_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """query (B, Tq, D), key/value (B, Tk, D) (both None: self-attention over ``query``),
        key_mask None or (B, 1, 1, Tk) bool (False = padding, never attended to) -> (B, Tq, D) and,
        if asked, the attention weights averaged over heads (B, Tq, Tk)."""
        if key is None and value is None and self.qkv is not None:
            q, k, v = (self._split(t) for t in self.qkv(query).chunk(3, dim=-1))  # 3 x (B, heads, T, head_dim)
        else:
            key = query if key is None else key
            value = query if value is None else value
            q = self._split(self.q_proj(query))  # (B, heads, Tq, head_dim)
            k = self._split(self.k_proj(key))  # (B, heads, Tk, head_dim)
            v = self._split(self.v_proj(value))  # (B, heads, Tk, head_dim)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask)  # (B, heads, Tq, head_dim)
        weights = None
        if want_weights:  # the same softmax SDPA computes, made explicit for the app to show
            scores = (q.float() @ k.float().transpose(-2, -1)) * self.head_dim ** -0.5  # (B, heads, Tq, Tk)
            if key_mask is not None:
                scores = scores.masked_fill(~key_mask, float("-inf"))
            weights = scores.softmax(dim=-1).mean(dim=1)  # (B, Tq, Tk)
        b, _, tq, _ = out.shape
        out = out.transpose(1, 2).reshape(b, tq, self.heads * self.head_dim)  # (B, Tq, D)
        return self.out_proj(out), weights


def one_shared_embedding(state: dict, copies: tuple[str, ...], tied: bool) -> dict:
    """Encoder-decoders (BART, T5) store their shared token embeddings once, twice or three times
    (``copies``), or only as a tied ``lm_head.weight``: keep one as ``shared.weight`` and drop the
    tied head. Modifies and returns ``state``."""
    shared = next((state[k] for k in copies if k in state), None)
    if shared is None and tied and "lm_head.weight" in state:
        shared = state["lm_head.weight"]
    for k in copies:
        state.pop(k, None)
    if shared is not None:
        state["shared.weight"] = shared
    if tied:
        state.pop("lm_head.weight", None)
    return state
