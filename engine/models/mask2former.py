"""Mask2Former (Cheng et al., 2022): every kind of segmentation as *mask classification* — N learned
object queries each predict a mask and a class (the seed's "Image segmentation" section).

1. The **backbone** (Swin, :mod:`engine.models.swin`) gives low-resolution features at 1/4, 1/8,
   1/16 and 1/32 of the image.
2. The **pixel decoder** lifts them to per-pixel embeddings: the 1/32, 1/16 and 1/8 maps, each
   projected to ``feature_size`` channels (1x1 conv + GroupNorm), go through a Transformer encoder
   of *multi-scale deformable attention* (each position attends to a few sampled points around it
   on every scale, at learned offsets, with learned weights — Deformable DETR); then an FPN step
   adds the 1/4 map, and a 1x1 conv makes the *per-pixel embeddings* at 1/4.
3. The **Transformer decoder** refines the learned object queries layer by layer with *masked
   attention*: each layer's cross-attention sees only the pixels inside the mask the previous layer
   predicted (sigmoid >= 0.5), cycling through the 1/32, 1/16, 1/8 scales; then self-attention
   among the queries and an MLP. After every layer, each query gives *class logits* (a linear
   layer, the last class "no object") and a *mask embedding* (an MLP) whose dot product with the
   per-pixel embeddings is its mask.

The deformable attention is plain PyTorch: ONE ``grid_sample`` call samples every query, head,
level and point (the three levels stacked, zero-padded to the largest one, with the sampling grid
rescaled so each level's points land in its own region; zero padding outside is what
``padding_mode="zeros"`` gives anyway).

Module names follow the hub keys of ``facebook/mask2former-swin-tiny-coco-panoptic``
(``model.pixel_level_module.encoder...``, ``model.pixel_level_module.decoder.encoder.layers.i.
self_attn.sampling_offsets``, ``model.transformer_module.decoder.layers.i.cross_attn.in_proj_weight``,
``class_predictor``); :func:`remap` drops the training-only ``criterion.empty_weight``.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..device import Placement
from ..errors import CheckpointError, InputError
from . import swin
from .common import drop_legacy_buffers, load_strict, require
from .optimize import place

log = logging.getLogger(__name__)

NUM_LEVELS = 3  # the pixel decoder's encoder and the decoder's masked attention use 1/32, 1/16, 1/8
NUM_POINTS = 4  # sampling points per head and level in the deformable attention


@dataclass(frozen=True)
class Mask2FormerConfig:
    backbone: swin.SwinConfig
    num_labels: int
    id2label: dict[int, str] = field(default_factory=dict)
    feature_size: int = 256
    mask_feature_size: int = 256
    hidden_dim: int = 256
    encoder_feedforward_dim: int = 1024
    encoder_layers: int = 6
    decoder_layers: int = 10
    num_attention_heads: int = 8
    dim_feedforward: int = 2048
    pre_norm: bool = False
    enforce_input_projection: bool = False
    common_stride: int = 4
    num_queries: int = 100
    activation_function: str = "relu"

    @classmethod
    def from_hf(cls, cfg: Mapping) -> Mask2FormerConfig:
        require(cfg, ("backbone_config",), "this Mask2Former")
        bcfg = cfg["backbone_config"] or {}
        if bcfg.get("model_type", "swin") != "swin":
            raise CheckpointError(f"This Mask2Former has a {bcfg.get('model_type')!r} backbone; only Swin "
                                  "backbones are supported.")
        backbone = swin.SwinConfig.from_hf(bcfg, "this Mask2Former's Swin backbone")
        id2label = {int(k): str(v) for k, v in (cfg.get("id2label") or {}).items()}
        num_labels = len(id2label) if id2label else int(cfg.get("num_labels") or 0)
        if not num_labels:
            raise CheckpointError("config.json of this Mask2Former has neither id2label nor num_labels.")
        act = cfg.get("activation_function", "relu")
        if act not in ("relu", "gelu"):
            raise CheckpointError(f"Mask2Former: activation {act!r} is not supported (relu, gelu).")
        c = cls(backbone, num_labels, id2label, int(cfg.get("feature_size", 256)),
                int(cfg.get("mask_feature_size", 256)), int(cfg.get("hidden_dim", 256)),
                int(cfg.get("encoder_feedforward_dim", 1024)), int(cfg.get("encoder_layers", 6)),
                int(cfg.get("decoder_layers", 10)), int(cfg.get("num_attention_heads", 8)),
                int(cfg.get("dim_feedforward", 2048)), bool(cfg.get("pre_norm", False)),
                bool(cfg.get("enforce_input_projection", False)), int(cfg.get("common_stride", 4)),
                int(cfg.get("num_queries", 100)), act)
        if c.feature_size % 32 or c.feature_size % c.num_attention_heads or c.hidden_dim % c.num_attention_heads:
            raise CheckpointError(f"config.json of this Mask2Former: feature_size {c.feature_size} / hidden_dim "
                                  f"{c.hidden_dim} do not fit 32 groups and {c.num_attention_heads} heads.")
        return c


# ----------------------------------------------------------------------------- shared pieces

def sine_position_embedding(h: int, w: int, num_feats: int, device, dtype) -> torch.Tensor:
    """DETR's normalised sine position embedding of an h x w map -> (h*w, 2*num_feats), y then x
    (a constant of the map's size: computed once per size, device and dtype)."""
    key = (h, w, num_feats, torch.device(device), dtype)
    if key not in _POSITIONS:
        if len(_POSITIONS) > 32:
            _POSITIONS.clear()
        with torch.inference_mode():
            _POSITIONS[key] = _sine(h, w, num_feats, device, dtype)
    return _POSITIONS[key]


_POSITIONS: dict[tuple, torch.Tensor] = {}


def _sine(h: int, w: int, num_feats: int, device, dtype) -> torch.Tensor:
    eps, scale = 1e-6, 2 * math.pi
    y = torch.arange(1, h + 1, dtype=dtype, device=device)
    x = torch.arange(1, w + 1, dtype=dtype, device=device)
    y = y / (y[-1:] + eps) * scale
    x = x / (x[-1:] + eps) * scale
    dim_t = torch.arange(num_feats, device=device).to(dtype)
    dim_t = 10000 ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_feats)  # (F,)
    def enc(v: torch.Tensor) -> torch.Tensor:
        p = v[:, None] / dim_t  # (n, F)
        return torch.stack((p[:, 0::2].sin(), p[:, 1::2].cos()), dim=2).flatten(1)  # (n, F) interleaved
    py, px = enc(y), enc(x)  # (h, F), (w, F)
    pos = torch.cat((py[:, None].expand(h, w, -1), px[None].expand(h, w, -1)), dim=-1)  # (h, w, 2F)
    return pos.reshape(h * w, -1)


def deformable_attention(value: torch.Tensor, shapes: list[tuple[int, int]], locations: torch.Tensor,
                         weights: torch.Tensor) -> torch.Tensor:
    """Multi-scale deformable attention, every query, head, level and point in one grid_sample.

    value (B, S, heads, hd) over the levels' flattened maps (S = sum h_l*w_l), shapes [(h_l, w_l)],
    locations (B, Q, heads, L, P, 2) as (x, y) in [0, 1] of each level, weights (B, Q, heads, L, P)
    -> (B, Q, heads*hd)."""
    b, _, heads, hd = value.shape
    _, q, _, n_levels, points, _ = locations.shape
    hmax, wmax = max(h for h, _ in shapes), max(w for _, w in shapes)
    stacked = value.new_zeros(b, heads, n_levels, hd, hmax, wmax)  # every level, zero-padded
    start = 0
    sizes = torch.empty(n_levels, 2, dtype=locations.dtype, device=locations.device)
    for lvl, (h, w) in enumerate(shapes):  # copies only (the sampling below is one call)
        stacked[:, :, lvl, :, :h, :w] = value[:, start:start + h * w].permute(0, 2, 3, 1).view(b, heads, hd, h, w)
        sizes[lvl, 0], sizes[lvl, 1] = w / wmax, h / hmax
        start += h * w
    grid = 2 * locations * sizes[:, None, :] - 1  # (B, Q, heads, L, P, 2) in the padded map's [-1, 1]
    grid = grid.permute(0, 2, 3, 1, 4, 5).reshape(b * heads * n_levels, q, points, 2)  # (B*h*L, Q, P, 2)
    sampled = F.grid_sample(stacked.view(b * heads * n_levels, hd, hmax, wmax), grid, mode="bilinear",
                            padding_mode="zeros", align_corners=False)  # (B*h*L, hd, Q, P)
    sampled = sampled.view(b, heads, n_levels, hd, q, points)
    out = torch.einsum("bhldqp,bqhlp->bqhd", sampled, weights)  # (B, Q, heads, hd)
    return out.reshape(b, q, heads * hd)


# ----------------------------------------------------------------------------- the pixel decoder

class MultiscaleDeformableAttention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.sampling_offsets = nn.Linear(dim, heads * NUM_LEVELS * NUM_POINTS * 2)
        self.attention_weights = nn.Linear(dim, heads * NUM_LEVELS * NUM_POINTS)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor, reference: torch.Tensor,
                shapes: list[tuple[int, int]]) -> torch.Tensor:
        """x (B, S, D) tokens of every level, pos (1, S, D), reference (S, 2) the tokens' centres as
        (x, y) in [0, 1] -> (B, S, D)."""
        b, s, d = x.shape
        query = x + pos
        value = self.value_proj(x).view(b, s, self.heads, d // self.heads)  # (B, S, heads, hd)
        offsets = self.sampling_offsets(query).view(b, s, self.heads, NUM_LEVELS, NUM_POINTS, 2)
        weights = self.attention_weights(query).view(b, s, self.heads, NUM_LEVELS * NUM_POINTS).softmax(-1)
        weights = weights.view(b, s, self.heads, NUM_LEVELS, NUM_POINTS)
        normalizer = torch.tensor([[w, h] for h, w in shapes], dtype=x.dtype, device=x.device)  # (L, 2) as (x, y)
        locations = reference[None, :, None, None, None, :] + offsets / normalizer[:, None, :]  # (B, S, h, L, P, 2)
        return self.output_proj(deformable_attention(value, shapes, locations, weights))


class PixelDecoderEncoderLayer(nn.Module):
    def __init__(self, c: Mask2FormerConfig) -> None:
        super().__init__()
        d = c.feature_size
        self.self_attn = MultiscaleDeformableAttention(d, c.num_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, c.encoder_feedforward_dim)
        self.fc2 = nn.Linear(c.encoder_feedforward_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, x, pos, reference, shapes):
        x = self.self_attn_layer_norm(x + self.self_attn(x, pos, reference, shapes))
        return self.final_layer_norm(x + self.fc2(F.relu(self.fc1(x))))


class PixelDecoderEncoder(nn.Module):
    def __init__(self, c: Mask2FormerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(PixelDecoderEncoderLayer(c) for _ in range(c.encoder_layers))


def conv_norm(cin: int, cout: int, k: int, bias: bool, relu: bool = False) -> nn.Sequential:
    layers = [nn.Conv2d(cin, cout, k, padding=k // 2, bias=bias), nn.GroupNorm(32, cout)]
    return nn.Sequential(*layers, *([nn.ReLU()] if relu else []))


class PixelDecoder(nn.Module):
    """Backbone maps -> per-pixel embeddings at 1/4 and the three encoded scales (1/32, 1/16, 1/8)."""

    def __init__(self, c: Mask2FormerConfig) -> None:
        super().__init__()
        d, chans = c.feature_size, c.backbone.channels
        self.level_embed = nn.Parameter(torch.zeros(NUM_LEVELS, d))
        self.input_projections = nn.ModuleList(conv_norm(ch, d, 1, True) for ch in chans[-NUM_LEVELS:][::-1])
        self.encoder = PixelDecoderEncoder(c)
        self.mask_projection = nn.Conv2d(d, c.mask_feature_size, 1)
        # the FPN steps from 1/8 down to the common stride (1/4): one for Swin
        self.num_fpn_levels = int(math.log2(8) - math.log2(c.common_stride))
        for i in range(self.num_fpn_levels):
            self.add_module(f"adapter_{i + 1}", conv_norm(chans[i], d, 1, False))
            self.add_module(f"layer_{i + 1}", conv_norm(d, d, 3, False, relu=True))

    def forward(self, maps: list[torch.Tensor]) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """maps [(B, C_s, H_s, W_s)] at 1/4 ... 1/32 -> mask features (B, mask_dim, H/4, W/4) and the
        encoded scales [(B, D, h_l, w_l)] coarsest first."""
        levels = maps[::-1][:NUM_LEVELS]  # 1/32, 1/16, 1/8
        proj = [p(x) for p, x in zip(self.input_projections, levels)]  # (B, D, h_l, w_l)
        shapes = [tuple(x.shape[-2:]) for x in proj]
        b, d = proj[0].shape[:2]
        dev, dt = proj[0].device, proj[0].dtype
        tokens = torch.cat([x.flatten(2).transpose(1, 2) for x in proj], dim=1)  # (B, S, D)
        pos = torch.cat([sine_position_embedding(h, w, d // 2, dev, dt) + self.level_embed[i]
                         for i, (h, w) in enumerate(shapes)])[None]  # (1, S, D)
        refs = []
        for h, w in shapes:  # each token's centre, (x, y) in [0, 1] of its level
            ry, rx = torch.meshgrid(torch.linspace(0.5, h - 0.5, h, dtype=dt, device=dev) / h,
                                    torch.linspace(0.5, w - 0.5, w, dtype=dt, device=dev) / w, indexing="ij")
            refs.append(torch.stack((rx.reshape(-1), ry.reshape(-1)), -1))
        reference = torch.cat(refs)  # (S, 2)
        for layer in self.encoder.layers:
            tokens = layer(tokens, pos, reference, shapes)
        outs, start = [], 0
        for h, w in shapes:
            outs.append(tokens[:, start:start + h * w].transpose(1, 2).reshape(b, d, h, w))  # (B, D, h, w)
            start += h * w
        y = outs[-1]
        for i in reversed(range(self.num_fpn_levels)):  # FPN: the finer backbone maps, 1/4 last
            lateral = getattr(self, f"adapter_{i + 1}")(maps[i])
            y = getattr(self, f"layer_{i + 1}")(
                lateral + F.interpolate(y, size=lateral.shape[-2:], mode="bilinear", align_corners=False))
        return self.mask_projection(y), outs


class PixelLevelModule(nn.Module):
    def __init__(self, c: Mask2FormerConfig) -> None:
        super().__init__()
        self.encoder = swin.SwinBackbone(c.backbone)
        self.decoder = PixelDecoder(c)


# ----------------------------------------------------------------------------- the Transformer decoder

class QueryAttention(nn.Module):
    """Self-attention among the queries (``self_attn.{q,k,v,out}_proj``): positions added to queries and keys."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        qk = x + pos
        split = lambda t: t.view(b, n, self.heads, d // self.heads).transpose(1, 2)  # (B, heads, N, hd)
        out = F.scaled_dot_product_attention(split(self.q_proj(qk)), split(self.k_proj(qk)), split(self.v_proj(x)))
        return self.out_proj(out.transpose(1, 2).reshape(b, n, d))


class MaskedCrossAttention(nn.Module):
    """The masked attention (an nn.MultiheadAttention in the checkpoint: ``in_proj_weight``, ``out_proj``)."""

    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.in_proj_weight = nn.Parameter(torch.zeros(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """query (B, Q, D), key/value (B, T, D), allowed (B, 1, Q, T) bool -> (B, Q, D)."""
        b, nq, d = query.shape
        wq, wk, wv = self.in_proj_weight.chunk(3)
        bq, bk, bv = self.in_proj_bias.chunk(3)
        split = lambda t: t.view(b, -1, self.heads, d // self.heads).transpose(1, 2)  # (B, heads, T, hd)
        out = F.scaled_dot_product_attention(split(F.linear(query, wq, bq)), split(F.linear(key, wk, bk)),
                                             split(F.linear(value, wv, bv)), attn_mask=allowed)
        return self.out_proj(out.transpose(1, 2).reshape(b, nq, d))


class DecoderLayer(nn.Module):
    """Masked cross-attention -> self-attention -> MLP, post-norm (or pre-norm where the config says)."""

    def __init__(self, c: Mask2FormerConfig) -> None:
        super().__init__()
        d = c.hidden_dim
        self.pre_norm, self.act = c.pre_norm, c.activation_function
        self.self_attn = QueryAttention(d, c.num_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.cross_attn = MaskedCrossAttention(d, c.num_attention_heads)
        self.cross_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, c.dim_feedforward)
        self.fc2 = nn.Linear(c.dim_feedforward, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(x)) if self.act == "relu" else F.gelu(self.fc1(x)))

    def forward(self, x, query_pos, memory, memory_pos, allowed):
        """x (B, Q, D) the object queries, memory (B, T, D) one scale's pixels -> (B, Q, D)."""
        if self.pre_norm:
            y = self.cross_attn_layer_norm(x)
            x = x + self.cross_attn(y + query_pos, memory + memory_pos, memory, allowed)
            x = x + self.self_attn(self.self_attn_layer_norm(x), query_pos)
            return x + self.mlp(self.final_layer_norm(x))
        x = self.cross_attn_layer_norm(x + self.cross_attn(x + query_pos, memory + memory_pos, memory, allowed))
        x = self.self_attn_layer_norm(x + self.self_attn(x, query_pos))
        return self.final_layer_norm(x + self.mlp(x))


class PredictionBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.add_module("0", nn.Linear(cin, cout))


class MaskEmbedder(nn.Module):
    """The 3-layer MLP (ReLU between) of ``mask_embedder.i.0``."""

    def __init__(self, dim: int, out: int) -> None:
        super().__init__()
        for i in range(3):
            self.add_module(str(i), PredictionBlock(dim, out if i == 2 else dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(3):
            x = getattr(self, str(i))._modules["0"](x)
            x = F.relu(x) if i < 2 else x
        return x


class MaskPredictor(nn.Module):
    def __init__(self, c: Mask2FormerConfig) -> None:
        super().__init__()
        self.mask_embedder = MaskEmbedder(c.hidden_dim, c.mask_feature_size)


class MaskedAttentionDecoder(nn.Module):
    def __init__(self, c: Mask2FormerConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c.decoder_layers - 1))
        self.layernorm = nn.LayerNorm(c.hidden_dim)
        self.mask_predictor = MaskPredictor(c)


class TransformerModule(nn.Module):
    def __init__(self, c: Mask2FormerConfig) -> None:
        super().__init__()
        d = c.hidden_dim
        self.queries_embedder = nn.Embedding(c.num_queries, d)  # the queries' positions
        self.queries_features = nn.Embedding(c.num_queries, d)  # the queries' content
        project = c.feature_size != d or c.enforce_input_projection
        self.input_projections = nn.ModuleList(
            nn.Conv2d(c.feature_size, d, 1) if project else nn.Identity() for _ in range(NUM_LEVELS))
        self.decoder = MaskedAttentionDecoder(c)
        self.level_embed = nn.Embedding(NUM_LEVELS, d)


class Mask2FormerModel(nn.Module):
    def __init__(self, c: Mask2FormerConfig) -> None:
        super().__init__()
        self.pixel_level_module = PixelLevelModule(c)
        self.transformer_module = TransformerModule(c)


@dataclass
class Mask2FormerOutput:
    """class_logits (B, Q, num_labels + 1) (last = no object), mask_logits (B, Q, H/4, W/4), and, when
    asked, the allowed region of each decoder layer's masked attention: [(B, Q, h_l, w_l) bool]."""

    class_logits: torch.Tensor
    mask_logits: torch.Tensor
    attention_masks: list[torch.Tensor] | None = None


class Mask2FormerForUniversalSegmentation(nn.Module):
    def __init__(self, config: Mask2FormerConfig) -> None:
        super().__init__()
        self.config = config
        self.model = Mask2FormerModel(config)
        self.class_predictor = nn.Linear(config.hidden_dim, config.num_labels + 1)

    def predict_masks(self, queries: torch.Tensor, pixel_embeddings: torch.Tensor,
                      size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """queries (B, Q, D) normalised -> mask logits (B, Q, H/4, W/4) and the next layer's allowed
        region (B, Q, h, w) bool at ``size`` (sigmoid >= 0.5 of the bilinearly resized logits)."""
        tm = self.model.transformer_module
        emb = tm.decoder.mask_predictor.mask_embedder(queries)  # (B, Q, C)
        masks = torch.einsum("bqc,bchw->bqhw", emb, pixel_embeddings)  # (B, Q, H/4, W/4)
        small = F.interpolate(masks, size=size, mode="bilinear", align_corners=False)
        return masks, small.sigmoid() >= 0.5

    def forward(self, pixel_values: torch.Tensor, want_masks: bool = False) -> Mask2FormerOutput:
        """pixel_values (B, 3, H, W) normalised as preprocessor_config.json says -> Mask2FormerOutput."""
        c = self.config
        if pixel_values.dim() != 4 or pixel_values.shape[1] != c.backbone.num_channels:
            raise InputError(f"Mask2Former takes pixel values (B, {c.backbone.num_channels}, H, W); got shape "
                             f"{tuple(pixel_values.shape)}.")
        if min(pixel_values.shape[-2:]) < 32:
            raise InputError("The image is too small for Mask2Former (at least 32x32 pixels).")
        plm, tm = self.model.pixel_level_module, self.model.transformer_module
        dtype = tm.level_embed.weight.dtype
        maps = plm.encoder(pixel_values.to(dtype))
        pixel_embeddings, scales = plm.decoder(maps)
        b = pixel_values.shape[0]
        memories, memory_pos, sizes = [], [], []
        for i, x in enumerate(scales):  # the three scales the masked attention cycles through
            h, w = x.shape[-2:]
            sizes.append((h, w))
            memory_pos.append(sine_position_embedding(h, w, c.hidden_dim // 2, x.device, x.dtype)[None])  # (1, T, D)
            memories.append(tm.input_projections[i](x).flatten(2).transpose(1, 2) + tm.level_embed.weight[i])  # (B, T, D)
        query_pos = tm.queries_embedder.weight[None].expand(b, -1, -1)  # (B, Q, D)
        x = tm.queries_features.weight[None].expand(b, -1, -1)
        decoder = tm.decoder
        masks, allowed = self.predict_masks(decoder.layernorm(x), pixel_embeddings, sizes[0])
        seen = [] if want_masks else None
        for i, layer in enumerate(decoder.layers):
            # a query whose mask is empty attends to every pixel instead of to none
            allowed = allowed | ~allowed.flatten(2).any(-1)[..., None, None]  # (B, Q, h, w)
            if seen is not None:
                seen.append(allowed)
            x = layer(x, query_pos, memories[i % NUM_LEVELS], memory_pos[i % NUM_LEVELS],
                      allowed.flatten(2)[:, None])
            masks, allowed = self.predict_masks(decoder.layernorm(x), pixel_embeddings, sizes[(i + 1) % NUM_LEVELS])
        class_logits = self.class_predictor(decoder.layernorm(x))
        return Mask2FormerOutput(class_logits.float(), masks.float(), seen)


# ----------------------------------------------------------------------------- loading

BACKBONE = "model.pixel_level_module.encoder."


def remap(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hub keys -> ours (pure): the loss's ``criterion.empty_weight`` and legacy buffers dropped, the
    Swin backbone's keys through :func:`engine.models.swin.remap`."""
    state = {k: v for k, v in drop_legacy_buffers(state).items() if not k.startswith("criterion.")}
    backbone = {k[len(BACKBONE):]: v for k, v in state.items() if k.startswith(BACKBONE)}
    out = {k: v for k, v in state.items() if not k.startswith(BACKBONE)}
    out.update({BACKBONE + k: v for k, v in swin.remap(backbone).items()})
    return out


def check_config(cfg: Mapping, folder: Path) -> None:
    kind = cfg.get("model_type")
    if kind != "mask2former":
        raise CheckpointError(f"{Path(folder).name} is a {kind or 'unknown'!r} model, not a Mask2Former "
                              "(config.json model_type is not 'mask2former').")


def from_checkpoint(folder: Path, placement: Placement) -> Mask2FormerForUniversalSegmentation:
    """A checkpoint folder (config.json + weights) -> Mask2Former on ``placement``, eval, no grad."""
    from ..hub import load_weights, read_json

    cfg = read_json(folder, "config.json")
    check_config(cfg, folder)
    config = Mask2FormerConfig.from_hf(cfg)
    model = Mask2FormerForUniversalSegmentation(config)
    load_strict(model, remap(load_weights(folder)), "this Mask2Former")
    bb = config.backbone
    log.info("Mask2Former: Swin %d ch, depths %s, window %d; %d queries, %d decoder layers, %d labels on %s",
             bb.embed_dim, "/".join(map(str, bb.depths)), bb.window_size, config.num_queries,
             config.decoder_layers, config.num_labels, placement.describe())
    return place(model, placement)
