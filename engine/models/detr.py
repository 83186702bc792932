"""DETR: DEtection TRansformer (Carion et al., 2020), as in the seed's object-detection walk-through.

An image goes through a CNN backbone (ResNet, :mod:`engine.models.resnet`); a 1x1 projection
maps its last feature map to ``d_model`` channels; fixed sine positional encodings tell the
Transformer encoder where each feature sits; the decoder with object queries (``num_queries``
learned embeddings) cross-attends to the encoded image; class and box heads turn every query
into one prediction — a class (or "no object") and a box (cx, cy, w, h in [0, 1]). The whole
set is predicted in a single pass, without anchors or non-maximum suppression: in training,
bipartite matching (the Hungarian algorithm) assigns each ground-truth object to exactly one
query, so the queries learn not to duplicate each other.

Images of different sizes run as one batch padded bottom-right, with a pixel mask (1 = real
pixel): the positional encodings then count real feature cells only and attention never looks at
padded cells, so each image's boxes are relative to its own real (unpadded) extent, as the
checkpoints were trained. The backbone's convolutions do see the zeros beyond an image's edge
(and the feature grid differs), so a padded image's outputs are not exactly those of the same
image run alone.

Checkpoints: the real ``facebook/detr-resnet-50`` / ``-101`` use timm's ResNet key names
(``model.backbone.conv_encoder.model.layer1.0.conv1.weight``); checkpoints written by
transformers with ``use_timm_backbone=False`` use its own ResNet names
(``...model.embedder.embedder.convolution.weight``). :func:`remap` accepts both.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from .common import MultiHeadAttention, drop_legacy_buffers, load_strict, require
from .optimize import FastPlan, module_dtype
from .resnet import ResNet, ResNetConfig, fold_state, hf_to_timm

log = logging.getLogger(__name__)

_ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}

#: The ``fast`` precision of DETR (engine.device.for_model), measured on benchmarks/detection.py's
#: random-weight DETR-R50 (calibrated so that, like the trained facebook/detr-resnet-50, +-1 grey
#: level on 9% of the pixels moves its scores by ~0.01: the "noise floor", which moves its 8 kept
#: boxes by up to 1.6 px) on the bench's 640x480 frame, against float32:
#:   bfloat16 everywhere: kept boxes move up to 19 px, scores 0.04, a kept detection changes;
#:   bfloat16 in the backbone only (input projection, encoder, decoder, heads, norms and positions
#:   float32): 14 px, 0.046 - the ResNet's bfloat16 convolutions alone move its features by ~1%
#:   (the grey-level change: 0.18%; rounding only its weights to bfloat16: 0.65%), and no half of it
#:   can be spared (bfloat16 in layer1+2 only: 6 px; in layer3+4 only: 14 px);
#:   bfloat16 with the backbone and input projection float32: 4.3 px - and no faster, the backbone
#:   being ~90% of the FLOPs;
#:   float16 everywhere (3 more mantissa bits): 1.7 px, scores within 0.005, kept set and labels
#:   unchanged: the noise floor. (Other calibrations of the random model: bf16 13-35 px, fp16 1.2-6.)
#: So DETR runs fast in float16 only (GPUs), with the stem convolution (raw pixels), the input
#: projection, the layer norms (and so the residual streams), the positional encodings (sine and
#: the object queries') and both heads in float32; on a bfloat16-only device (these CPUs) it runs exact.
FAST_PLAN = FastPlan(
    keep_fp32=("backbone.conv1", "input_projection", "query_position_embeddings", "*layer_norm",
               "decoder.layernorm", "class_labels_classifier", "bbox_predictor"),
    dtypes=(torch.float16,),
    why="in bfloat16 its ResNet backbone alone moves the kept boxes by ~15 px where an invisible "
        "change of the image moves them by ~2 px; measured in engine/models/detr.py")


@dataclass(frozen=True)
class DetrConfig:
    d_model: int
    encoder_layers: int
    decoder_layers: int
    encoder_attention_heads: int
    decoder_attention_heads: int
    encoder_ffn_dim: int
    decoder_ffn_dim: int
    num_queries: int
    num_labels: int
    backbone: ResNetConfig
    activation_function: str = "relu"
    id2label: dict[int, str] = field(default_factory=dict)

    REQUIRED = ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
                "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim", "num_queries")

    @classmethod
    def from_hf(cls, cfg: Mapping) -> DetrConfig:
        """From a transformers ``config.json`` dict; unknown keys are ignored."""
        require(cfg, cls.REQUIRED, "DETR")
        if cfg.get("model_type", "detr") != "detr":
            raise CheckpointError(f"config.json is for a {cfg.get('model_type')!r} model, not DETR.")
        if cfg.get("position_embedding_type", "sine") != "sine":
            raise CheckpointError("Only DETR with sine positional encodings is supported "
                                  f"(this one uses {cfg.get('position_embedding_type')!r}).")
        if cfg.get("dilation"):
            raise CheckpointError("DETR DC5 checkpoints (dilation: true) are not supported.")
        act = cfg.get("activation_function", "relu")
        if act not in _ACTIVATIONS:
            raise CheckpointError(f"DETR activation {act!r} is not supported ({', '.join(_ACTIVATIONS)}).")
        id2label = {int(k): str(v) for k, v in (cfg.get("id2label") or {}).items()}
        num_labels = len(id2label) if id2label else cfg.get("num_labels")
        if not num_labels:
            raise CheckpointError("config.json of DETR has neither id2label nor num_labels.")
        return cls(int(cfg["d_model"]), int(cfg["encoder_layers"]), int(cfg["decoder_layers"]),
                   int(cfg["encoder_attention_heads"]), int(cfg["decoder_attention_heads"]),
                   int(cfg["encoder_ffn_dim"]), int(cfg["decoder_ffn_dim"]), int(cfg["num_queries"]),
                   int(num_labels), _backbone_config(cfg), act, id2label)


def _backbone_config(cfg: Mapping) -> ResNetConfig:
    channels = int(cfg.get("num_channels", 3))
    sub = cfg.get("backbone_config")
    if isinstance(sub, Mapping):
        kind = sub.get("model_type", "resnet")
        if kind == "resnet":
            return ResNetConfig.from_hf(sub)
        if kind == "timm_backbone":
            return ResNetConfig.from_timm_name(str(sub.get("backbone", "resnet50")), channels)
        raise CheckpointError(f"DETR backbone {kind!r} is not supported (ResNet only).")
    if cfg.get("use_timm_backbone", True):
        return ResNetConfig.from_timm_name(str(cfg.get("backbone") or "resnet50"), channels)
    return ResNetConfig(num_channels=channels)  # transformers' default ResNet-50 ResNetConfig


def _sine(pos: torch.Tensor, half: int, temperature: float) -> torch.Tensor:
    """Positions (...) in [0, 2π] -> (..., half): channel pairs (2i, 2i+1) are sin/cos at frequency i."""
    dim_t = torch.arange(half, dtype=torch.int64, device=pos.device).to(torch.float32)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / half)  # (half,)
    p = pos[..., None] / dim_t  # (..., half)
    return torch.stack((p[..., 0::2].sin(), p[..., 1::2].cos()), dim=-1).flatten(-2)  # (..., half) interleaved


def sine_position_encoding(h: int, w: int, d_model: int, device: torch.device, dtype: torch.dtype,
                           temperature: float = 10000.0) -> torch.Tensor:
    """DETR's fixed 2-D sine positional encodings (normalised to 2π) -> (h*w, d_model).

    The first half of the channels encode the row (y), the second the column (x); within
    each half, channel pairs (2i, 2i+1) are sin/cos of the position at frequency i.
    """
    half = d_model // 2
    scale, eps = 2 * math.pi, 1e-6
    y = torch.arange(1, h + 1, dtype=torch.float32, device=device)
    x = torch.arange(1, w + 1, dtype=torch.float32, device=device)
    py = _sine(y / (y[-1:] + eps) * scale, half, temperature)  # (h, half)
    px = _sine(x / (x[-1:] + eps) * scale, half, temperature)  # (w, half)
    pos = torch.cat((py[:, None, :].expand(h, w, half), px[None, :, :].expand(h, w, half)), dim=2)  # (h, w, d)
    return pos.reshape(h * w, d_model).to(dtype)  # (h*w, d_model)


def masked_sine_position_encoding(mask: torch.Tensor, d_model: int, dtype: torch.dtype,
                                  temperature: float = 10000.0) -> torch.Tensor:
    """The same encodings for padded images: mask (B, h, w), True = a cell of the real image
    -> (B, h*w, d_model).

    A cell's row position is the number of real cells above it and at it in its column (a
    cumulative sum of the mask), divided by the column's count of real cells; columns alike. So
    the real part of every image spans [0, 2π] whatever its padding, and padding cells get 0.
    With no padding this equals :func:`sine_position_encoding`.
    """
    half = d_model // 2
    scale, eps = 2 * math.pi, 1e-6
    m = mask.to(torch.float32)  # (B, h, w)
    y = m.cumsum(1)  # (B, h, w) row position counting real cells only
    x = m.cumsum(2)  # (B, h, w) column position
    y = y / (y[:, -1:, :] + eps) * scale
    x = x / (x[:, :, -1:] + eps) * scale
    pos = torch.cat((_sine(y, half, temperature), _sine(x, half, temperature)), dim=-1)  # (B, h, w, d)
    return pos.flatten(1, 2).to(dtype)  # (B, h*w, d_model)


def feature_mask(pixel_mask: torch.Tensor, h: int, w: int) -> torch.Tensor | None:
    """Pixel mask (B, H, W), 1 = real pixel, 0 = padding -> (B, h, w) bool mask of the feature
    map, True = real. Nearest-neighbour downsampling, as the reference implementation does: cell
    (i, j) takes pixel (floor(i * H / h), floor(j * W / w)). None when every cell is real, so that
    nothing needs masking (padding thinner than one cell can vanish here)."""
    mask = F.interpolate(pixel_mask[:, None].float(), size=(h, w), mode="nearest")[:, 0].bool()  # (B, h, w)
    return None if bool(mask.all()) else mask


class EncoderLayer(nn.Module):
    """Post-norm Transformer encoder layer over the flattened feature map."""

    def __init__(self, cfg: DetrConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.self_attn = MultiHeadAttention(d, cfg.encoder_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, cfg.encoder_ffn_dim)
        self.fc2 = nn.Linear(cfg.encoder_ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.act = _ACTIVATIONS[cfg.activation_function]

    def forward(self, x: torch.Tensor, pos: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, HW, D), pos (1 or B, HW, D), key_mask None or (B, 1, 1, HW) -> (B, HW, D)"""
        qk = x + pos
        x = self.self_attn_layer_norm(x + self.self_attn(qk, qk, x, key_mask)[0])
        return self.final_layer_norm(x + self.fc2(self.act(self.fc1(x))))


class DecoderLayer(nn.Module):
    """Self-attention among the object queries, cross-attention to the image, feed-forward."""

    def __init__(self, cfg: DetrConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.self_attn = MultiHeadAttention(d, cfg.decoder_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.encoder_attn = MultiHeadAttention(d, cfg.decoder_attention_heads)
        self.encoder_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, cfg.decoder_ffn_dim)
        self.fc2 = nn.Linear(cfg.decoder_ffn_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)
        self.act = _ACTIVATIONS[cfg.activation_function]

    def forward(self, x: torch.Tensor, query_pos: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor,
                key_mask: torch.Tensor | None = None,
                want_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, Q, D) queries, query_pos (1, Q, D), memory (B, HW, D), pos (1 or B, HW, D), key_mask
        None or (B, 1, 1, HW) -> (B, Q, D) and, if asked, cross-attention weights (B, Q, HW)."""
        qk = x + query_pos
        x = self.self_attn_layer_norm(x + self.self_attn(qk, qk, x)[0])  # queries never padded
        attended, weights = self.encoder_attn(x + query_pos, memory + pos, memory, key_mask, want_weights)
        x = self.encoder_attn_layer_norm(x + attended)
        x = self.final_layer_norm(x + self.fc2(self.act(self.fc1(x))))
        return x, weights


class Encoder(nn.Module):
    def __init__(self, cfg: DetrConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(EncoderLayer(cfg) for _ in range(cfg.encoder_layers))

    def forward(self, x: torch.Tensor, pos: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, HW, D) -> (B, HW, D); padded cells (key_mask False) are attended to by none"""
        for layer in self.layers:
            x = layer(x, pos, key_mask)
        return x


class Decoder(nn.Module):
    def __init__(self, cfg: DetrConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(cfg) for _ in range(cfg.decoder_layers))
        self.layernorm = nn.LayerNorm(cfg.d_model)

    def forward(self, x: torch.Tensor, query_pos: torch.Tensor, memory: torch.Tensor, pos: torch.Tensor,
                key_mask: torch.Tensor | None = None,
                want_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(B, Q, D) -> (B, Q, D); the LAST layer's cross-attention (B, Q, HW) when asked."""
        weights = None
        for i, layer in enumerate(self.layers):
            x, weights = layer(x, query_pos, memory, pos, key_mask, want_weights and i == len(self.layers) - 1)
        return self.layernorm(x), weights


class BoxHead(nn.Module):
    """3-layer MLP -> (cx, cy, w, h) logits; the sigmoid is applied by the model."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, 4)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, Q, D) -> (B, Q, 4)"""
        x = F.relu(self.layers[0](x))
        x = F.relu(self.layers[1](x))
        return self.layers[2](x)


@dataclass
class DetrOutput:
    logits: torch.Tensor  # (B, Q, num_labels + 1); the last class is "no object"
    boxes: torch.Tensor  # (B, Q, 4) cx, cy, w, h relative to the image (its real part when padded)
    cross_attention: torch.Tensor | None  # (B, Q, h, w) last decoder layer, mean over heads
    feature_size: tuple[int, int]  # (h, w) of the backbone feature map
    feature_mask: torch.Tensor | None = None  # (B, h, w) True = real image cell; None: no padding


class DetrForObjectDetection(nn.Module):
    def __init__(self, cfg: DetrConfig) -> None:
        super().__init__()
        self.config = cfg
        self.backbone = ResNet(cfg.backbone)
        self.input_projection = nn.Conv2d(self.backbone.out_channels, cfg.d_model, 1)
        self.query_position_embeddings = nn.Embedding(cfg.num_queries, cfg.d_model)  # the object queries
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.class_labels_classifier = nn.Linear(cfg.d_model, cfg.num_labels + 1)  # +1: "no object"
        self.bbox_predictor = BoxHead(cfg.d_model)
        self._pos_cache: dict[tuple, torch.Tensor] = {}

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype the pixels should come in: the stem convolution's (float32 under the fast plan)."""
        return module_dtype(self.backbone.conv1) or torch.float32

    def _positions(self, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
        key = (h, w, like.device, like.dtype)
        pos = self._pos_cache.get(key)
        if pos is None:
            if len(self._pos_cache) > 8:
                self._pos_cache.clear()
            pos = sine_position_encoding(h, w, self.config.d_model, like.device, like.dtype)[None]  # (1, HW, D)
            self._pos_cache[key] = pos
        return pos

    def forward(self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor | None = None,
                want_attention: bool = False) -> DetrOutput:
        """pixel_values (B, 3, H, W) normalised; pixel_mask None (every pixel real) or (B, H, W) with
        1 = real pixel, 0 = padding (images of different sizes padded bottom-right to one size) ->
        DetrOutput with logits (B, Q, L+1), boxes (B, Q, 4) and optionally cross-attention.

        With a mask, the positional encodings count real cells only and neither the encoder nor the
        decoder's cross-attention looks at padded cells; without one (or when the padding vanishes
        at the feature map's resolution) nothing is masked: the single-image path does no extra work.
        """
        features = self.backbone(pixel_values)  # (B, C, h, w), stride 32
        x = self.input_projection(features)  # (B, D, h, w)
        b, d, h, w = x.shape
        x = x.flatten(2).transpose(1, 2).contiguous()  # (B, h*w, D)
        mask = None if pixel_mask is None else feature_mask(pixel_mask, h, w)  # (B, h, w) or None
        if mask is None:
            pos, key_mask = self._positions(h, w, x), None  # (1, h*w, D)
        else:
            pos = masked_sine_position_encoding(mask, d, x.dtype)  # (B, h*w, D)
            key_mask = mask.flatten(1)[:, None, None, :]  # (B, 1, 1, h*w), broadcast over heads and queries
        memory = self.encoder(x, pos, key_mask)  # (B, h*w, D)
        query_pos = self.query_position_embeddings.weight[None]  # (1, Q, D)
        queries = torch.zeros(b, query_pos.shape[1], d, dtype=x.dtype, device=x.device)  # (B, Q, D)
        hs, attn = self.decoder(queries, query_pos, memory, pos, key_mask, want_attention)  # (B, Q, D)
        logits = self.class_labels_classifier(hs)  # (B, Q, L+1)
        boxes = self.bbox_predictor(hs).sigmoid()  # (B, Q, 4)
        if attn is not None:
            attn = attn.reshape(b, attn.shape[1], h, w)  # (B, Q, h, w)
        return DetrOutput(logits, boxes, attn, (h, w), mask)


# ---------------------------------------------------------------------------- checkpoints

_BACKBONE_PREFIXES = ("backbone.conv_encoder.model.", "backbone.model.", "backbone.conv_encoder.")


def remap(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hub DETR keys (timm or transformers ResNet backbone) -> this module's keys, with the
    backbone's frozen BatchNorms folded into its convolutions. Pure: the input is not changed."""
    out: dict[str, torch.Tensor] = {}
    for key, value in drop_legacy_buffers(state).items():
        k = key[len("model."):] if key.startswith("model.") else key
        for prefix in _BACKBONE_PREFIXES:
            if k.startswith(prefix):
                k = "backbone." + hf_to_timm(k[len(prefix):])
                break
        if k.startswith("backbone.fc."):
            continue  # a timm classifier head, unused by DETR
        # names used inside transformers 5 (accepted in case a checkpoint carries them)
        k = k.replace(".o_proj.", ".out_proj.").replace(".mlp.fc1.", ".fc1.").replace(".mlp.fc2.", ".fc2.")
        out[k] = value
    return fold_state(out, prefix="backbone.")


def build(config: Mapping, state: Mapping[str, torch.Tensor]) -> DetrForObjectDetection:
    """Build DETR from ``config.json`` and hub weights, loading them with strict key checks."""
    cfg = DetrConfig.from_hf(config)
    weights = remap(state)
    cfg = replace(cfg, backbone=cfg.backbone.with_widths_of(weights, "backbone."))
    model = DetrForObjectDetection(cfg)
    load_strict(model, weights, "DETR")  # missing, unexpected and mis-sized keys -> CheckpointError
    return model.eval()


def fast_placement(placement):
    """``placement`` as DETR runs on it -> (placement, notice): ``fast`` becomes float16 on GPUs
    and ``exact`` where only bfloat16 is fast (see FAST_PLAN); notice says so, else None."""
    from ..device import for_model
    placement, notice = for_model(placement, FAST_PLAN.dtypes, "DETR", FAST_PLAN.why)
    if notice:
        log.warning(notice)
    return placement, notice


def from_checkpoint(folder, placement) -> DetrForObjectDetection:
    """A checkpoint folder -> DETR on ``placement``, in channels-last memory on CPU and CUDA; in the
    ``fast`` precision by FAST_PLAN (:func:`fast_placement`: float16 with float32 parts, or exact).

    channels_last measured on this project's 2-core AVX-512 CPU, DETR-R50 at 800x1066, one frame end
    to end: best 1275 ms vs 2091 ms contiguous (oneDNN convs prefer NHWC); on CUDA it is what
    tensor-core convolutions want."""
    from ..hub import load_weights, read_json
    from .optimize import cast_at_boundaries, place
    placement, _ = fast_placement(placement)
    model = place(build(read_json(folder, "config.json"), load_weights(folder)), placement, channels_last=True,
                  keep_fp32=FAST_PLAN.keep_fp32 if placement.precision == "fast" else ())
    cast_at_boundaries(model)
    return model
