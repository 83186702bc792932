"""SegFormer (Xie et al., 2021) for semantic segmentation, as in the seed's segmentation walk-through.

SegFormer pairs a hierarchical Transformer encoder, the *Mix Transformer* (MiT), with a light
*all-MLP decode head*:

1. Four stages, each beginning with an *overlapping patch embedding*: a strided convolution whose
   kernel is larger than its stride (7x7 stride 4 for the first stage, 3x3 stride 2 after), then a
   LayerNorm. The stages see the image at 1/4, 1/8, 1/16 and 1/32 of its size, as a CNN's
   feature pyramid does, with more channels per stage (``hidden_sizes``).
2. In each block, *efficient self-attention*: the queries are every position of the stage, but the
   keys and values come from a map shrunk by ``sr_ratio`` in each direction (a ``sr_ratio``-strided
   convolution, the *spatial reduction*, and a LayerNorm), so attention costs N x N / sr^2.
3. The *Mix-FFN* instead of position embeddings: dense -> 3x3 depthwise convolution -> GELU ->
   dense; the depthwise convolution's zero padding tells the model where it is, at any image size.
4. A LayerNorm closes each stage; its output, as a (B, C, h, w) map, is one of the four scales.
5. The decode head: each scale projected to ``decoder_hidden_size`` channels by a linear layer,
   upsampled to 1/4 (bilinear), the four concatenated (coarsest first), fused by a 1x1 convolution
   with BatchNorm and ReLU, and classified per position by another 1x1 convolution: logits at 1/4
   of the input size, upsampled by the caller.

Drop path and dropout are the identity at inference and are not built.

Speed (batch 1, CPU; at load, exact up to float rounding): the decode head is linear from the
projections to the BatchNorm, and projecting, upsampling and fusing commute, so each scale's
projection, its block of the fuse convolution and the BatchNorm are folded into one matrix
(``decoder_hidden_size`` x ``C_i``) applied at the scale's own resolution; the huge 1x1 fuse over
4 x ``decoder_hidden_size`` channels at 1/4 (most of a b0's FLOPs at 512x512) disappears. Keys and
values share one GEMM (queries too where there is no spatial reduction), and on CPU every linear
layer's weight is packed once for oneDNN with the GELU or the residual add fused in
(optimize.pack_linears). Tokens stay (B, N, C) rows throughout; the convolutions read and write
them as channels-last (B, C, h, w) views of the same memory, without a permute copy.

Module names follow the hub keys of ``nvidia/segformer-b0-finetuned-ade-512-512``
(``segformer.encoder.block.S.J.attention.self.query``, ``decode_head.linear_c.S.proj``, ...), which
transformers 5 still writes. The encoder (:class:`MixTransformerEncoder`) is shared with GLPN
(:mod:`engine.models.glpn`).
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
from .optimize import PackedLinear, can_pack, fold_batchnorm, linear_add, packing_is_exact, place

log = logging.getLogger(__name__)

#: the Mix-FFN activations of ``hidden_act``: the GELUs by F.gelu's ``approximate``, and ReLU
GELUS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}
ACTIVATIONS = (*GELUS, "relu")
LAYER_NORM_EPS = 1e-5  # every LayerNorm of the MiT (config.json's layer_norm_eps is not used by it)
BATCH_NORM_EPS = 1e-5
#: the side the packed GEMMs are tuned for (the row count of each stage at batch 1); any size works
NOMINAL_SIDE = 512


def _ints(cfg: Mapping, key: str, n: int, default: Sequence[int] | None = None) -> tuple[int, ...]:
    value = cfg.get(key, default)
    if value is None:
        raise CheckpointError(f"config.json lacks {key!r}.")
    if isinstance(value, (int, float)):
        value = [value] * n
    value = tuple(int(v) for v in value)
    if len(value) != n:
        raise CheckpointError(f"config.json: {key} has {len(value)} entries for {n} encoder stages.")
    return value


@dataclass(frozen=True)
class MixTransformerConfig:
    """The Mix Transformer encoder's shape, one entry per stage (MiT-b0: 32/64/160/256 channels,
    2/2/2/2 blocks, 1/2/5/8 heads, spatial reduction 8/4/2/1)."""

    hidden_sizes: tuple[int, ...]
    depths: tuple[int, ...]
    num_attention_heads: tuple[int, ...]
    sr_ratios: tuple[int, ...]
    patch_sizes: tuple[int, ...] = (7, 3, 3, 3)
    strides: tuple[int, ...] = (4, 2, 2, 2)
    mlp_ratios: tuple[int, ...] = (4, 4, 4, 4)
    num_channels: int = 3
    hidden_act: str = "gelu"

    REQUIRED = ("hidden_sizes", "depths", "num_attention_heads", "sr_ratios")

    @classmethod
    def from_hf(cls, cfg: Mapping, what: str = "this SegFormer") -> MixTransformerConfig:
        """The encoder part of a SegFormer / GLPN ``config.json``; unknown keys ignored."""
        require(cfg, cls.REQUIRED, what)
        n = len(cfg["depths"])
        if int(cfg.get("num_encoder_blocks", n)) != n or not n:
            raise CheckpointError(f"config.json of {what}: num_encoder_blocks {cfg.get('num_encoder_blocks')} "
                                  f"but {n} depths.")
        act = cfg.get("hidden_act", "gelu")
        if act not in ACTIVATIONS:
            raise CheckpointError(f"{what}: activation {act!r} is not supported ({', '.join(ACTIVATIONS)}).")
        c = cls(_ints(cfg, "hidden_sizes", n), _ints(cfg, "depths", n), _ints(cfg, "num_attention_heads", n),
                _ints(cfg, "sr_ratios", n), _ints(cfg, "patch_sizes", n, (7, 3, 3, 3)),
                _ints(cfg, "strides", n, (4, 2, 2, 2)), _ints(cfg, "mlp_ratios", n, (4,) * n),
                int(cfg.get("num_channels", 3)), act)
        for s, (d, h) in enumerate(zip(c.hidden_sizes, c.num_attention_heads)):
            if h < 1 or d % h:
                raise CheckpointError(f"config.json of {what}: stage {s} has {d} channels, not a multiple of "
                                      f"its {h} attention heads.")
        return c


@dataclass(frozen=True)
class SegformerConfig:
    encoder: MixTransformerConfig
    num_labels: int
    id2label: dict[int, str] = field(default_factory=dict)
    decoder_hidden_size: int = 256

    @classmethod
    def from_hf(cls, cfg: Mapping) -> SegformerConfig:
        """From a hub ``config.json`` dict: unknown keys ignored, missing required keys an error."""
        encoder = MixTransformerConfig.from_hf(cfg, "this SegFormer")
        id2label = {int(k): str(v) for k, v in (cfg.get("id2label") or {}).items()}
        num_labels = len(id2label) if id2label else int(cfg.get("num_labels") or 0)
        if not num_labels:
            raise CheckpointError("config.json of this SegFormer has neither id2label nor num_labels.")
        return cls(encoder, num_labels, id2label, int(cfg.get("decoder_hidden_size", 256)))


# ----------------------------------------------------------------------------- fused convolution + activation (CPU)
#
# oneDNN runs a convolution with its activation as a post-op and writes a channels-last input's
# result channels-last (plain F.conv2d gives a depthwise convolution's result back as NCHW, which
# costs a transposing copy before the next GEMM). The op is private (torch.ops.mkldnn), so it is
# checked once per dtype against F.conv2d + the activation before it is used.

_conv_pointwise = getattr(getattr(torch.ops, "mkldnn", None), "_convolution_pointwise", None)
#: F.gelu's ``approximate`` / "relu" -> oneDNN's post-op name and algorithm
_POST_OPS = {"none": ("gelu", "none"), "tanh": ("gelu", "tanh"), "relu": ("relu", "")}
_fused_ok: dict[torch.dtype, bool] = {}


def _plain_conv_act(conv: nn.Conv2d, x: torch.Tensor, act: str) -> torch.Tensor:
    y = conv(x)
    return F.relu(y) if act == "relu" else F.gelu(y, approximate=act)


def fused_conv_is_exact(dtype: torch.dtype) -> bool:
    """Whether oneDNN's convolution + activation agrees with F.conv2d + activation here, for a depthwise
    and a dense 3x3 convolution, every activation, batch 1 and 2 (float32: 1e-5; bfloat16: 2e-2)."""
    if dtype not in _fused_ok:
        ok = _conv_pointwise is not None and torch.backends.mkldnn.is_available() and dtype in (
            torch.float32, torch.bfloat16)
        tol = 1e-5 if dtype == torch.float32 else 2e-2
        gen = torch.Generator().manual_seed(0)
        try:
            with torch.inference_mode(), torch.random.fork_rng(devices=[]):  # the layer's init: RNG untouched
                for groups in (16, 1):
                    conv = nn.Conv2d(16, 16, 3, padding=1, groups=groups).to(dtype)
                    for batch in (1, 2):
                        x = torch.randn(batch, 16, 9, 7, generator=gen).to(dtype)  # (B, C, h, w)
                        x = x.contiguous(memory_format=torch.channels_last)
                        for act in _POST_OPS:
                            want = _plain_conv_act(conv, x, act).float()
                            got = conv_act(conv, x, act, fused=True)
                            ok = ok and got.shape == want.shape and torch.allclose(
                                got.float(), want, rtol=tol, atol=tol * float(want.abs().max()))
        except (RuntimeError, TypeError) as exc:  # a torch build without this oneDNN op
            log.info("oneDNN fused convolution unavailable (%s)", exc)
            ok = False
        if not ok:
            log.info("oneDNN fused convolution + activation not used for %s here", dtype)
        _fused_ok[dtype] = ok
    return _fused_ok[dtype]


def conv_act(conv: nn.Conv2d, x: torch.Tensor, act: str, fused: bool) -> torch.Tensor:
    """act(conv(x)), ``act`` an F.gelu ``approximate`` ("none", "tanh") or "relu"; one oneDNN op
    when ``fused`` (on CPU, after fused_conv_is_exact), else the two plain steps."""
    if not fused:
        return _plain_conv_act(conv, x, act)
    attr, algorithm = _POST_OPS[act]
    return _conv_pointwise(x, conv.weight, conv.bias, list(conv.padding), list(conv.stride), list(conv.dilation),
                           conv.groups, attr, [], algorithm)


def can_fuse_convs(device: torch.device, dtype: torch.dtype) -> bool:
    return device.type == "cpu" and fused_conv_is_exact(dtype)


# ----------------------------------------------------------------------------- the Mix Transformer

def as_map(tokens: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(B, h*w, C) rows -> (B, C, h, w), a channels-last view of the same memory (no copy). (Made by
    unflatten + permute: transpose + unflatten gives a size-1 batch a stride that some kernels, as
    bilinear upsampling, do not take for channels-last, and they then copy.)"""
    return tokens.unflatten(1, (h, w)).permute(0, 3, 1, 2)  # (B, C, h, w)


def as_tokens(x: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, h*w, C) rows (free for a channels-last map, a copy otherwise)."""
    return x.permute(0, 2, 3, 1).flatten(1, 2)  # (B, h*w, C)


class OverlapPatchEmbeddings(nn.Module):
    """A strided convolution whose kernel overlaps its neighbours' (padding kernel // 2), then LayerNorm."""

    def __init__(self, patch_size: int, stride: int, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_ch, out_ch, patch_size, stride=stride, padding=patch_size // 2)
        self.layer_norm = nn.LayerNorm(out_ch, eps=LAYER_NORM_EPS)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """(B, C_in, H, W) -> tokens (B, h*w, C) and h, w (= ceil(H / stride) for the hub's kernels)."""
        x = self.proj(x)  # (B, C, h, w)
        h, w = x.shape[-2:]
        return self.layer_norm(as_tokens(x)), h, w


def _linear(weight: torch.Tensor, bias: torch.Tensor) -> nn.Linear:
    """An nn.Linear holding these (out, in) / (out,) tensors (built on the meta device: no random init)."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], device="meta")
    layer.weight = nn.Parameter(weight.contiguous(), requires_grad=False)
    layer.bias = nn.Parameter(bias, requires_grad=False)
    return layer


class EfficientSelfAttention(nn.Module):
    """Multi-head attention whose keys and values come from the map spatially reduced by ``sr_ratio``."""

    def __init__(self, dim: int, heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.heads, self.head_dim, self.sr_ratio = heads, dim // heads, sr_ratio
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)
        if sr_ratio > 1:  # the spatial reduction: a sr x sr patchify conv and a LayerNorm
            self.sr = nn.Conv2d(dim, dim, sr_ratio, stride=sr_ratio)
            self.layer_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        # set by fuse_projections(): keys+values (with spatial reduction) or all three in one GEMM
        self.kv: nn.Module | None = None
        self.qkv: nn.Module | None = None
        self.sr_patch: nn.Module | None = None

    def fuse_projections(self) -> None:
        """After loading: one linear layer for what reads the same input (exact: rows of one GEMM), and
        the spatial reduction as a linear layer over sr x sr patches (the conv's kernel, reordered)."""
        with torch.no_grad():
            if self.sr_ratio > 1:
                self.kv = _linear(torch.cat([self.key.weight, self.value.weight]),  # (2D, D)
                                  torch.cat([self.key.bias, self.value.bias]))
                del self.key, self.value
                w = self.sr.weight  # (D, D_in, sr, sr) -> (D, sr*sr*D_in) in (ky, kx, c) order, as the patches
                self.sr_patch = _linear(w.permute(0, 2, 3, 1).flatten(1), self.sr.bias.clone())
                del self.sr
            else:
                self.qkv = _linear(torch.cat([self.query.weight, self.key.weight, self.value.weight]),  # (3D, D)
                                   torch.cat([self.query.bias, self.key.bias, self.value.bias]))
                del self.query, self.key, self.value

    def reduce(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """The spatial reduction: (B, h*w, D) tokens -> (B, M, D) normalised, M = (h // sr) * (w // sr);
        the last h % sr rows and w % sr columns are not seen, as by the unpadded sr-strided conv."""
        r = self.sr_ratio
        if min(h, w) < r:
            raise InputError(f"The image is too small for this model: a {w}x{h} feature map cannot be "
                             f"reduced {r}x (use an image of at least 32x32 pixels).")
        b, _, d = x.shape
        if self.sr_patch is None:
            reduced = as_tokens(self.sr(as_map(x, h, w)))  # (B, M, D)
        else:
            h2, w2 = h // r, w // r
            grid = x.view(b, h, w, d)[:, :h2 * r, :w2 * r]  # (B, h2*r, w2*r, D)
            patches = grid.unflatten(2, (w2, r)).unflatten(1, (h2, r))  # (B, h2, r, w2, r, D)
            patches = patches.permute(0, 1, 3, 2, 4, 5).reshape(b, h2 * w2, r * r * d)  # (B, M, r*r*D)
            reduced = self.sr_patch(patches)  # (B, M, D)
        return F.layer_norm(reduced, (d,), self.layer_norm.weight, self.layer_norm.bias, self.layer_norm.eps)

    def _heads(self, x: torch.Tensor, k: int) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, k, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (k, B, heads, T, head_dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, N, D) normalised tokens of an h x w map -> context (B, N, D) (before the output dense)."""
        b, n, d = x.shape
        if self.qkv is not None:
            q, k, v = self._heads(self.qkv(x), 3)  # 3 x (B, heads, N, head_dim)
        else:
            q = self._heads(self.query(x), 1)[0]  # (B, heads, N, head_dim)
            kv_in = self.reduce(x, h, w) if self.sr_ratio > 1 else x  # (B, M, D)
            if self.kv is not None:
                k, v = self._heads(self.kv(kv_in), 2)  # 2 x (B, heads, M, head_dim)
            else:
                k, v = self._heads(self.key(kv_in), 1)[0], self._heads(self.value(kv_in), 1)[0]
        context = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, head_dim)
        return context.transpose(1, 2).reshape(b, n, d)  # (B, N, D)


class SelfOutput(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dense = nn.Linear(dim, dim)


class Attention(nn.Module):
    """``attention.self`` (efficient self-attention) and ``attention.output.dense``."""

    def __init__(self, dim: int, heads: int, sr_ratio: int) -> None:
        super().__init__()
        self.self = EfficientSelfAttention(dim, heads, sr_ratio)
        self.output = SelfOutput(dim)

    def forward(self, x: torch.Tensor, residual: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, N, D) normalised, residual (B, N, D) -> residual + attention (B, N, D)"""
        return linear_add(self.output.dense, self.self(x, h, w), residual)


class DepthWiseConv(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 3, padding=1, groups=dim)


class MixFFN(nn.Module):
    """dense1 (C -> ratio*C) -> 3x3 depthwise conv on the map -> activation -> dense2 (-> C)."""

    def __init__(self, dim: int, hidden: int, act: str) -> None:
        super().__init__()
        self.dense1 = nn.Linear(dim, hidden)
        self.dwconv = DepthWiseConv(hidden)
        self.dense2 = nn.Linear(hidden, dim)
        self.act = GELUS.get(act, act)  # F.gelu's approximate, or "relu"
        self.fused = False  # set at load: the conv and its activation as one oneDNN op (conv_act)

    def forward(self, x: torch.Tensor, residual: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, N, C) normalised, residual (B, N, C) -> residual + Mix-FFN (B, N, C)"""
        y = conv_act(self.dwconv.dwconv, as_map(self.dense1(x), h, w), self.act, self.fused)  # (B, hidden, h, w)
        return linear_add(self.dense2, as_tokens(y), residual)  # (B, N, C)


class Layer(nn.Module):
    """One pre-LN block: x + attention(LN(x)), then x + Mix-FFN(LN(x))."""

    def __init__(self, dim: int, heads: int, sr_ratio: int, mlp_ratio: int, act: str) -> None:
        super().__init__()
        self.layer_norm_1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attention = Attention(dim, heads, sr_ratio)
        self.layer_norm_2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = MixFFN(dim, int(dim * mlp_ratio), act)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """(B, N, C) tokens of an h x w map -> (B, N, C)"""
        x = self.attention(self.layer_norm_1(x), x, h, w)
        return self.mlp(self.layer_norm_2(x), x, h, w)


class MixTransformerEncoder(nn.Module):
    """The hierarchical encoder (hub ``encoder.``): per stage, patch embeddings, blocks, LayerNorm."""

    def __init__(self, c: MixTransformerConfig) -> None:
        super().__init__()
        ins = (c.num_channels, *c.hidden_sizes[:-1])
        self.patch_embeddings = nn.ModuleList(
            OverlapPatchEmbeddings(p, s, i, o) for p, s, i, o in zip(c.patch_sizes, c.strides, ins, c.hidden_sizes))
        self.block = nn.ModuleList(
            nn.ModuleList(Layer(dim, heads, sr, ratio, c.hidden_act) for _ in range(depth))
            for dim, depth, heads, sr, ratio in zip(c.hidden_sizes, c.depths, c.num_attention_heads, c.sr_ratios,
                                                    c.mlp_ratios))
        self.layer_norm = nn.ModuleList(nn.LayerNorm(dim, eps=LAYER_NORM_EPS) for dim in c.hidden_sizes)

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """(B, C, H, W) -> the four scales, (B, C_i, h_i, w_i) at 1/4, 1/8, 1/16, 1/32 (ceil divisions),
        channels-last views of each stage's (B, h_i*w_i, C_i) tokens."""
        scales = []
        x = pixel_values
        for embed, blocks, norm in zip(self.patch_embeddings, self.block, self.layer_norm):
            tokens, h, w = embed(x)  # (B, N, C)
            for layer in blocks:
                tokens = layer(tokens, h, w)
            x = as_map(norm(tokens), h, w)  # (B, C, h, w)
            scales.append(x)
        return scales

    def fuse_projections(self) -> None:
        for m in self.modules():
            if isinstance(m, EfficientSelfAttention):
                m.fuse_projections()


def pack_encoder(encoder: MixTransformerEncoder, config: MixTransformerConfig, placement: Placement) -> int:
    """Replace the encoder's linear layers by oneDNN-packed ones (optimize.PackedLinear), each tuned for
    its stage's token count at NOMINAL_SIDE, once optimize.packing_is_exact passed on the first of them.
    Returns how many were packed (0: none, the plain layers kept)."""
    if not can_pack(placement.device, placement.dtype):
        return 0
    side, found = NOMINAL_SIDE, []
    for s, blocks in enumerate(encoder.block):
        side = -(-side // config.strides[s])
        found += [(parent, name, child, side * side) for parent in blocks.modules()
                  for name, child in parent.named_children()
                  if type(child) is nn.Linear and child.weight.dtype == placement.dtype]
    if not found or not packing_is_exact(found[0][2], found[0][3]):
        return 0
    for parent, name, child, rows in found:
        setattr(parent, name, PackedLinear(child, rows))
    return len(found)


def check_pixels(pixel_values: torch.Tensor, channels: int, what: str) -> None:
    if pixel_values.dim() != 4 or pixel_values.shape[1] != channels:
        raise InputError(f"{what} takes pixel values (B, {channels}, H, W); got shape {tuple(pixel_values.shape)}.")


# ----------------------------------------------------------------------------- the all-MLP decode head

class MLP(nn.Module):
    """One scale's linear projection to ``decoder_hidden_size`` channels (``linear_c.S.proj``)."""

    def __init__(self, in_ch: int, out_ch: int) -> None:
        super().__init__()
        self.proj = nn.Linear(in_ch, out_ch)


class DecodeHead(nn.Module):
    """Project each scale, upsample to 1/4, concatenate coarsest first, fuse (1x1 conv + BatchNorm
    + ReLU), classify (1x1 conv). After :meth:`fold` the first three steps run as one matrix per scale."""

    def __init__(self, c: SegformerConfig) -> None:
        super().__init__()
        d, n = c.decoder_hidden_size, len(c.encoder.hidden_sizes)
        self.linear_c = nn.ModuleList(MLP(ch, d) for ch in c.encoder.hidden_sizes)
        self.linear_fuse = nn.Conv2d(n * d, d, 1, bias=False)
        self.batch_norm = nn.BatchNorm2d(d, eps=BATCH_NORM_EPS)
        self.classifier = nn.Conv2d(d, c.num_labels, 1)
        self.folded: nn.ParameterList | None = None  # per scale (D, C_i); set by fold()
        self.folded_bias: nn.Parameter | None = None  # (D, 1)

    def fold(self) -> None:
        """Fold projections, fuse conv and BatchNorm into one (D, C_i) matrix per scale and one bias.
        fuse(concat_i up(P_i x_i + b_i)) = sum_i up(F_i P_i x_i) + sum_i F_i b_i, where F_i is the fuse
        conv's block of columns for scale i (blocks ordered coarsest first) and bilinear upsampling keeps
        constants; the BatchNorm's scale and shift then fold into both."""
        d = self.batch_norm.num_features
        fuse = self.linear_fuse.weight.flatten(1)  # (D, n*D)
        n = len(self.linear_c)
        blocks = [fuse[:, (n - 1 - i) * d:(n - i) * d] for i in range(n)]  # F_i (D, D), scale i's columns
        with torch.no_grad():
            mats = [f @ proj.proj.weight for f, proj in zip(blocks, self.linear_c)]  # (D, C_i)
            shift = sum(f @ proj.proj.bias for f, proj in zip(blocks, self.linear_c))  # (D,)
            bn = self.batch_norm
            ones = torch.ones(d, 1, dtype=shift.dtype)
            scale, bias = fold_batchnorm(ones, shift, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)
            scale = scale[:, 0]  # (D,) the BatchNorm's per-channel gain
        self.folded = nn.ParameterList(nn.Parameter(scale[:, None] * m, requires_grad=False) for m in mats)
        self.folded_bias = nn.Parameter(bias[:, None], requires_grad=False)  # (D, 1)
        del self.linear_c, self.linear_fuse, self.batch_norm

    def forward(self, scales: Sequence[torch.Tensor]) -> torch.Tensor:
        """The four scales (B, C_i, h_i, w_i) -> logits (B, num_labels, h_0, w_0) at the first scale's size."""
        b, _, h0, w0 = scales[0].shape
        if self.folded is None:  # the plain steps, as the checkpoint describes them
            ups = []
            for x, mlp in zip(scales, self.linear_c):
                y = as_map(mlp.proj(as_tokens(x)), *x.shape[-2:])  # (B, D, h_i, w_i)
                ups.append(F.interpolate(y, size=(h0, w0), mode="bilinear", align_corners=False))  # (B, D, h0, w0)
            y = F.relu(self.batch_norm(self.linear_fuse(torch.cat(ups[::-1], dim=1))))  # (B, D, h0, w0)
            return self.classifier(y)
        # folded: each scale's (D, C_i) matrix at its own resolution, summed at 1/4 as (B, h0*w0, D) rows
        acc = None
        for x, mat in zip(scales, self.folded):
            h, w = x.shape[-2:]
            y = F.linear(as_tokens(x), mat, self.folded_bias[:, 0] if acc is None else None)  # (B, h*w, D)
            if (h, w) != (h0, w0):  # channels-last bilinear upsampling, rows in, rows out
                y = as_tokens(F.interpolate(as_map(y, h, w), size=(h0, w0), mode="bilinear", align_corners=False))
            acc = y if acc is None else acc.add_(y)  # (B, h0*w0, D)
        hidden = acc.relu_()  # fused, normalised, ReLU
        cls = self.classifier
        logits = torch.baddbmm(cls.bias[:, None].expand(b, -1, h0 * w0), cls.weight.flatten(1).expand(b, -1, -1),
                               hidden.transpose(1, 2))  # (B, num_labels, h0*w0), NCHW straight from the GEMM
        return logits.view(b, -1, h0, w0)


# ----------------------------------------------------------------------------- the model

class SegformerModel(nn.Module):
    def __init__(self, c: MixTransformerConfig) -> None:
        super().__init__()
        self.encoder = MixTransformerEncoder(c)


class SegformerForSemanticSegmentation(nn.Module):
    """The Mix Transformer encoder and the all-MLP decode head."""

    def __init__(self, config: SegformerConfig) -> None:
        super().__init__()
        self.config = config
        self.segformer = SegformerModel(config.encoder)
        self.decode_head = DecodeHead(config)

    def forward_with_internals(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """pixel_values (B, 3, H, W), normalised as preprocessor_config.json says, any size of at least
        32x32 -> logits (B, num_labels, ceil(H/4), ceil(W/4)) float32 (the hub's kernels) and the
        encoder's four scales (B, C_i, h_i, w_i) at 1/4, 1/8, 1/16, 1/32, in the model's dtype."""
        check_pixels(pixel_values, self.config.encoder.num_channels, "SegFormer")
        dtype = self.segformer.encoder.patch_embeddings[0].proj.weight.dtype
        scales = self.segformer.encoder(pixel_values.to(dtype))
        return self.decode_head(scales).float(), scales

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """pixel_values (B, 3, H, W) -> logits (B, num_labels, ceil(H/4), ceil(W/4)) float32."""
        return self.forward_with_internals(pixel_values)[0]


# ----------------------------------------------------------------------------- loading

def remap(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hub keys -> ours (pure): legacy buffers dropped (``batch_norm.num_batches_tracked``); a bare
    encoder's keys (``encoder.``, as in ``nvidia/mit-b0``-style SegformerModel files) prefixed with
    ``segformer.`` so that loading names the missing decode head rather than every key."""
    return {("segformer." + k if k.startswith("encoder.") else k): v for k, v in drop_legacy_buffers(state).items()}


def check_config(cfg: Mapping, folder: Path) -> None:
    kind = cfg.get("model_type")
    if kind != "segformer":
        raise CheckpointError(f"{Path(folder).name} is a {kind or 'unknown'!r} model, not a SegFormer "
                              "(config.json model_type is not 'segformer').")
    archs = [str(a) for a in cfg.get("architectures") or []]
    if archs and not any(a.endswith("ForSemanticSegmentation") for a in archs):
        raise CheckpointError(f"{Path(folder).name} is a SegFormer without a semantic-segmentation head "
                              f"({', '.join(archs)}). Choose one fine-tuned for segmentation, such as "
                              "nvidia/segformer-b0-finetuned-ade-512-512.")


def optimize_encoder(encoder: MixTransformerEncoder, config: MixTransformerConfig, placement: Placement) -> None:
    """After place(): on CPU the Mix-FFN's depthwise conv + activation as one oneDNN op (when exact) and
    every linear layer packed for its stage (pack_encoder, checked first)."""
    fused = can_fuse_convs(placement.device, placement.dtype)
    for m in encoder.modules():
        if isinstance(m, MixFFN):
            m.fused = fused
    packed = pack_encoder(encoder, config, placement)
    log.info("Mix Transformer: %d linear layers packed for oneDNN%s", packed,
             ", fused depthwise conv + activation" if fused else "")


def optimize_for(model: SegformerForSemanticSegmentation, placement: Placement) -> SegformerForSemanticSegmentation:
    """The load-time steps after the strict load: projections fused, the decode head folded, placed
    (channels-last convolution weights), the CPU kernels chosen."""
    model.segformer.encoder.fuse_projections()
    model.decode_head.fold()
    model = place(model, placement, channels_last=True)
    optimize_encoder(model.segformer.encoder, model.config.encoder, placement)
    return model


def from_checkpoint(folder: Path, placement: Placement) -> SegformerForSemanticSegmentation:
    """A checkpoint folder (config.json + weights) -> SegFormer on ``placement``, eval, no grad.
    CheckpointError when the folder is not a SegFormer for segmentation or its weights do not fit."""
    from ..hub import load_weights, read_json

    cfg = read_json(folder, "config.json")
    check_config(cfg, folder)
    config = SegformerConfig.from_hf(cfg)
    model = SegformerForSemanticSegmentation(config)
    load_strict(model, remap(load_weights(folder)), "this SegFormer for semantic segmentation")
    e = config.encoder
    log.info("SegFormer: channels %s, depths %s, heads %s, reduction %s, decoder %d, %d labels on %s",
             "/".join(map(str, e.hidden_sizes)), "/".join(map(str, e.depths)),
             "/".join(map(str, e.num_attention_heads)), "/".join(map(str, e.sr_ratios)), config.decoder_hidden_size,
             config.num_labels, placement.describe())
    return optimize_for(model, placement)
