"""ViT: the Vision Transformer (Dosovitskiy et al., 2020) for image classification, as in the
seed's image-classification walk-through ("How 🤗 Transformers solve tasks", ViT).

ViT replaces convolutions with a pure Transformer; what changes is how an image is fed to it:

1. The image is split into non-overlapping square patches, each turned into a vector, the
   *patch embedding*, by one 2-D convolution whose kernel and stride are the patch size. A
   224x224 image becomes 196 patches of 16x16: the image is "tokenized" into a sequence of
   patches, as text is into words.
2. A *learned embedding*, the special ``[CLS]`` token, is prepended to the patch embeddings, as
   in BERT. Its final hidden state is the input of the classification head; the other outputs
   are ignored.
3. Learned *position embeddings* are added, because the model does not know how the patches are
   ordered. They were learned for the checkpoint's patch grid (``image_size / patch_size``
   squared); for an image of another size they are interpolated bicubically to its grid, as
   transformers does with ``interpolate_pos_encoding=True``.
4. Everything goes through the *Transformer encoder* (pre-LN layers: LayerNorm, self-attention,
   residual; LayerNorm, MLP, residual) and a final LayerNorm; the *classification head* (one
   linear layer) turns the final ``[CLS]`` state into logits over the labels.

What the app shows "inside the model" is the self-attention: :func:`cls_attention` (where the
``[CLS]`` token looks in the last layer, per head) and :func:`attention_rollout` (Abnar & Zuidema,
2020: attention propagated through all layers).

Speed (batch 1, CPU): ViT-B/16 is ~97% GEMMs of only 197 rows (the tokens). At load every linear
layer's weight is packed once for oneDNN (optimize.pack_linears, checked against F.linear first),
and the MLP's GELU and both residual adds are fused into the GEMMs before them
(optimize.linear_gelu / linear_add; the plain two steps on GPUs and other CPUs).

Module names follow the hub keys of ``google/vit-base-patch16-224``
(``vit.encoder.layer.N.attention.attention.query.weight``, ...), which transformers 5 still
writes, so :func:`remap` only drops what the classifier does not use.
"""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..device import Placement
from ..errors import CheckpointError, InputError
from .common import drop_legacy_buffers, load_strict, require
from .optimize import linear_add, linear_gelu, pack_linears, place

log = logging.getLogger(__name__)

#: the MLP activations of the config's ``hidden_act``: the GELUs by their F.gelu ``approximate``
#: (fused into the expansion GEMM when its weight is packed), and ReLU
GELUS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}
ACTIVATIONS = (*GELUS, "relu")
#: weights real checkpoints carry that the classifier never uses: the pooler (checkpoints
#: converted with one) and the mask token (masked-image-modelling pre-training)
UNUSED_PREFIXES = ("vit.pooler.", "vit.embeddings.mask_token")


def _square(value, name: str) -> int:
    """An int, or a pair of equal ints (transformers accepts both; ViT's position grid is square)."""
    if isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != 2 or value[0] != value[1]:
            raise CheckpointError(f"config.json: only square ViT {name}s are supported (got {list(value)}).")
        value = value[0]
    return int(value)


@dataclass(frozen=True)
class ViTConfig:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    image_size: int  # the side of the images the position embeddings were learned for
    patch_size: int
    num_labels: int
    num_channels: int = 3
    hidden_act: str = "gelu"
    layer_norm_eps: float = 1e-12
    qkv_bias: bool = True
    id2label: dict[int, str] = field(default_factory=dict)

    REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "image_size", "patch_size")

    @property
    def grid(self) -> int:
        """Patches per side of the checkpoint's own image size (14 for patch16-224)."""
        return self.image_size // self.patch_size

    @classmethod
    def from_hf(cls, cfg: Mapping) -> ViTConfig:
        """From a hub ``config.json`` dict: unknown keys ignored, missing required keys an error."""
        require(cfg, cls.REQUIRED, "this ViT checkpoint")
        act = cfg.get("hidden_act", "gelu")
        if act not in ACTIVATIONS:
            raise CheckpointError(f"ViT activation {act!r} is not supported ({', '.join(ACTIVATIONS)}).")
        id2label = {int(k): str(v) for k, v in (cfg.get("id2label") or {}).items()}
        num_labels = len(id2label) if id2label else int(cfg.get("num_labels") or 0)
        if not num_labels:
            raise CheckpointError("config.json of this ViT has neither id2label nor num_labels.")
        config = cls(int(cfg["hidden_size"]), int(cfg["num_hidden_layers"]), int(cfg["num_attention_heads"]),
                     int(cfg["intermediate_size"]), _square(cfg["image_size"], "image size"),
                     _square(cfg["patch_size"], "patch size"), num_labels, int(cfg.get("num_channels", 3)), act,
                     float(cfg.get("layer_norm_eps", 1e-12)), bool(cfg.get("qkv_bias", True)), id2label)
        if config.hidden_size % config.num_attention_heads:
            raise CheckpointError(f"config.json: hidden_size {config.hidden_size} is not a multiple of "
                                  f"num_attention_heads {config.num_attention_heads}.")
        if config.grid < 1:
            raise CheckpointError(f"config.json: image_size {config.image_size} is smaller than one patch.")
        return config


# ----------------------------------------------------------------------------- embeddings

class PatchEmbeddings(nn.Module):
    """The image split into non-overlapping patches, each projected to a vector by one strided conv."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        p = config.patch_size
        self.projection = nn.Conv2d(config.num_channels, config.hidden_size, kernel_size=p, stride=p)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, C, H, W) -> patch embeddings (B, rows*cols, D) and the patch grid (rows, cols);
        pixels beyond the last whole patch are not seen (rows = H // patch)."""
        x = self.projection(pixel_values)  # (B, D, rows, cols)
        rows, cols = x.shape[-2:]
        return x.flatten(2).transpose(1, 2), (rows, cols)  # (B, rows*cols, D)


class Embeddings(nn.Module):
    """Patch embeddings, the learned [CLS] token prepended, learned position embeddings added."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.grid = config.grid
        self.cls_token = nn.Parameter(torch.zeros(1, 1, config.hidden_size))
        self.position_embeddings = nn.Parameter(torch.zeros(1, 1 + self.grid ** 2, config.hidden_size))
        self.patch_embeddings = PatchEmbeddings(config)

    def positions_for(self, rows: int, cols: int) -> torch.Tensor:
        """Position embeddings for a rows x cols patch grid -> (1, 1 + rows*cols, D). The checkpoint's
        own grid as learned; any other grid bicubically interpolated from it (the [CLS] position as is),
        computed in float32 as transformers does with ``interpolate_pos_encoding=True``."""
        pos = self.position_embeddings
        if (rows, cols) == (self.grid, self.grid):
            return pos
        d = pos.shape[-1]
        patch_pos = pos[:, 1:].float().reshape(1, self.grid, self.grid, d).permute(0, 3, 1, 2)  # (1, D, g, g)
        patch_pos = F.interpolate(patch_pos, size=(rows, cols), mode="bicubic", align_corners=False)  # (1, D, r, c)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, rows * cols, d)  # (1, rows*cols, D)
        return torch.cat([pos[:, :1], patch_pos.to(pos.dtype)], dim=1)  # (1, 1 + rows*cols, D)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
        """(B, C, H, W) -> tokens (B, 1 + rows*cols, D), [CLS] first, and the grid (rows, cols)."""
        patches, (rows, cols) = self.patch_embeddings(pixel_values)  # (B, rows*cols, D)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)  # (B, 1, D)
        tokens = torch.cat([cls, patches], dim=1)  # (B, T, D), T = 1 + rows*cols
        return tokens + self.positions_for(rows, cols), (rows, cols)


# ----------------------------------------------------------------------------- Transformer encoder

class SelfAttention(nn.Module):
    """Multi-head self-attention, computed with SDPA; the probabilities made explicit only when asked."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        d = config.hidden_size
        self.heads, self.head_dim = config.num_attention_heads, d // config.num_attention_heads
        self.query = nn.Linear(d, d, bias=config.qkv_bias)
        self.key = nn.Linear(d, d, bias=config.qkv_bias)
        self.value = nn.Linear(d, d, bias=config.qkv_bias)

    def forward(self, x: torch.Tensor, want_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, T, D) -> context (B, T, D) and, if asked, the attention probabilities (B, heads, T, T) float32."""
        b, t, d = x.shape
        q, k, v = (proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, heads, T, head_dim)
                   for proj in (self.query, self.key, self.value))
        context = F.scaled_dot_product_attention(q, k, v)  # (B, heads, T, head_dim)
        probs = None
        if want_attention:  # the softmax SDPA computes, made explicit for the app (logits unchanged)
            scores = (q.float() @ k.float().transpose(-2, -1)) * self.head_dim ** -0.5  # (B, heads, T, T)
            probs = scores.softmax(dim=-1)
        return context.transpose(1, 2).reshape(b, t, d), probs  # (B, T, D)


class Output(nn.Module):
    """A linear layer under the ``dense`` name the checkpoints use, whose output is added to the
    residual stream (``attention.output.dense``, ``output.dense``); the add is fused into the GEMM
    when the weight is packed (optimize.linear_add)."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """(..., d_in), residual (..., d_out) -> residual + dense(x) (..., d_out)"""
        return linear_add(self.dense, x, residual)


class Intermediate(nn.Module):
    """The MLP's expansion (D -> intermediate_size) and its activation, one fused GEMM + GELU when
    the weight is packed (optimize.linear_gelu)."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.intermediate_size)
        self.act = config.hidden_act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., D) -> (..., intermediate_size)"""
        if self.act in GELUS:
            return linear_gelu(self.dense, x, GELUS[self.act])
        return F.relu(self.dense(x))


class Attention(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.attention = SelfAttention(config)
        self.output = Output(config.hidden_size, config.hidden_size)

    def forward(self, x: torch.Tensor, residual: torch.Tensor,
                want_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, T, D) normalised, residual (B, T, D) -> residual + attention output (B, T, D),
        probabilities (B, heads, T, T) or None"""
        context, probs = self.attention(x, want_attention)
        return self.output(context, residual), probs


class Layer(nn.Module):
    """One pre-LN encoder layer: x + attention(LN(x)), then x + MLP(LN(x))."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.layernorm_before = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.attention = Attention(config)
        self.layernorm_after = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.intermediate = Intermediate(config)
        self.output = Output(config.intermediate_size, config.hidden_size)

    def forward(self, x: torch.Tensor, want_attention: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, T, D) -> (B, T, D), probabilities (B, heads, T, T) or None"""
        x, probs = self.attention(self.layernorm_before(x), x, want_attention)  # x + attention(LN(x))
        x = self.output(self.intermediate(self.layernorm_after(x)), x)  # x + MLP(LN(x))
        return x, probs


class Encoder(nn.Module):
    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.layer = nn.ModuleList(Layer(config) for _ in range(config.num_hidden_layers))


class ViTModel(nn.Module):
    """Embeddings, the Transformer encoder and the final LayerNorm (the hub's ``vit.`` part)."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.embeddings = Embeddings(config)
        self.encoder = Encoder(config)
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    def forward(self, pixel_values: torch.Tensor, want_attention: bool = False
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, ...] | None, tuple[int, int]]:
        """(B, C, H, W) -> final hidden states (B, T, D), per-layer attention probabilities
        (B, heads, T, T) when asked, and the patch grid (rows, cols); T = 1 + rows*cols."""
        x, grid = self.embeddings(pixel_values)  # (B, T, D)
        attentions = []
        for layer in self.encoder.layer:
            x, probs = layer(x, want_attention)
            attentions.append(probs)
        return self.layernorm(x), (tuple(attentions) if want_attention else None), grid


@dataclass(frozen=True)
class ViTOutput:
    logits: torch.Tensor  # (B, num_labels) float32
    attentions: tuple[torch.Tensor, ...] | None  # per layer (B, heads, T, T) float32, T = 1 + rows*cols
    grid: tuple[int, int]  # patch rows, cols


class ViTForImageClassification(nn.Module):
    """ViT with the classification head (one linear layer) on the final [CLS] state."""

    def __init__(self, config: ViTConfig) -> None:
        super().__init__()
        self.config = config
        self.vit = ViTModel(config)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)

    def forward(self, pixel_values: torch.Tensor, want_attention: bool = False) -> ViTOutput:
        """pixel_values (B, 3, H, W), normalised as the checkpoint's preprocessor_config says, of any
        size of at least one patch (position embeddings interpolated when the patch grid is not the
        checkpoint's) -> ViTOutput: logits (B, num_labels) float32; every layer's attention
        probabilities (B, heads, T, T) float32 when ``want_attention``, else None; the grid (rows, cols)."""
        weight = self.vit.embeddings.patch_embeddings.projection.weight
        p = self.config.patch_size
        if pixel_values.dim() != 4 or pixel_values.shape[1] != self.config.num_channels:
            raise InputError(f"ViT takes pixel values (B, {self.config.num_channels}, H, W); "
                             f"got shape {tuple(pixel_values.shape)}.")
        if min(pixel_values.shape[-2:]) < p:
            raise InputError(f"The image ({pixel_values.shape[-1]}x{pixel_values.shape[-2]}) is smaller than "
                             f"one {p}x{p} patch.")
        hidden, attentions, grid = self.vit(pixel_values.to(weight.dtype), want_attention)  # (B, T, D)
        logits = self.classifier(hidden[:, 0])  # (B, num_labels) from the final [CLS] state
        return ViTOutput(logits.float(), attentions, grid)


# ----------------------------------------------------------------------------- inside the model

def attention_rollout(attentions: Sequence[torch.Tensor]) -> torch.Tensor:
    """Attention rollout (Abnar & Zuidema, 2020): per layer, heads averaged, the identity added for the
    residual connection and rows renormalised; the layers multiplied from the first to the last.
    Per-layer (B, heads, T, T) -> the [CLS] row (B, T): how much each token (the [CLS] token itself
    first, then the patches row by row) flows into the final [CLS] state. Each row sums to 1."""
    rollout = None
    for a in attentions:
        a = a.float().mean(dim=1)  # (B, T, T)
        a = a + torch.eye(a.shape[-1], device=a.device)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout  # (B, T, T)
    if rollout is None:
        raise ValueError("attention_rollout needs the attentions of at least one layer.")
    return rollout[:, 0]  # (B, T)


def patch_map(values: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """Per-token values (..., T) -> the patches' values on the image grid (..., rows, cols) ([CLS] dropped)."""
    rows, cols = grid
    return values[..., 1:].reshape(*values.shape[:-1], rows, cols)  # (..., rows, cols)


def cls_attention(attentions: Sequence[torch.Tensor], grid: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The last layer's attention from [CLS] to every patch: per head (B, heads, rows, cols) and averaged
    over heads (B, rows, cols). (The [CLS]-to-[CLS] share is left out, so a map sums to at most 1.)"""
    per_head = patch_map(attentions[-1][:, :, 0].float(), grid)  # (B, heads, rows, cols)
    return per_head, per_head.mean(dim=1)


# ----------------------------------------------------------------------------- loading

def remap(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hub keys -> ours (pure): drop legacy buffers (``vit.embeddings.position_ids``), the pooler and
    mask token the classifier does not use; add the ``vit.`` prefix to a bare ViTModel's keys."""
    out: dict[str, torch.Tensor] = {}
    for k, v in drop_legacy_buffers(state).items():
        if k.startswith(("embeddings.", "encoder.", "layernorm.", "pooler.")):
            k = "vit." + k
        if not k.startswith(UNUSED_PREFIXES):
            out[k] = v
    return out


def from_checkpoint(folder: Path, placement: Placement) -> ViTForImageClassification:
    """A checkpoint folder (config.json + weights) -> ViT classifier on ``placement``, eval, no grad.
    CheckpointError when the folder is not a ViT image classifier or its weights do not fit."""
    from ..hub import load_weights, read_json

    cfg = read_json(folder, "config.json")
    kind = cfg.get("model_type")
    if kind != "vit":
        raise CheckpointError(f"{Path(folder).name} is a {kind or 'unknown'!r} model, not a Vision Transformer "
                              "(config.json model_type is not 'vit').")
    archs = [str(a) for a in cfg.get("architectures") or []]
    if archs and not any(a.endswith("ForImageClassification") for a in archs):
        raise CheckpointError(f"{Path(folder).name} is a ViT without an image-classification head "
                              f"({', '.join(archs)}): it gives image features, not labels. Choose a classifier "
                              "such as google/vit-base-patch16-224.")
    config = ViTConfig.from_hf(cfg)
    model = ViTForImageClassification(config)
    load_strict(model, remap(load_weights(folder)), "this ViT image classifier")
    log.info("ViT: %d layers, width %d, %d heads, %dx%d patches of %d px, %d labels", config.num_hidden_layers,
             config.hidden_size, config.num_attention_heads, config.grid, config.grid, config.patch_size,
             config.num_labels)
    model = place(model, placement)
    packed = pack_linears(model, device=placement.device, dtype=placement.dtype, rows=1 + config.grid ** 2)
    if packed:
        log.info("ViT: %d linear layers packed for oneDNN (%d tokens)", packed, 1 + config.grid ** 2)
    return model
