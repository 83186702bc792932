"""The Swin Transformer (Liu et al., 2021) as a backbone: the 1/4, 1/8, 1/16 and 1/32 feature maps
that Mask2Former's pixel decoder reads (the seed's "backbone ... low-resolution features").

1. *Patch embedding*: the image, padded on the right and bottom to a multiple of the patch size,
   cut into 4x4 patches by a strided convolution, then a LayerNorm.
2. Four *stages* of blocks. Each block is *windowed self-attention* (tokens attend only inside
   non-overlapping ``window_size`` x ``window_size`` windows, with a learned *relative position
   bias* per head), then an MLP, both pre-norm with residuals. Every other block uses *shifted
   windows*: the map is rolled by half a window first, so information crosses window borders; a
   mask keeps the tokens that the roll brought together from different regions apart. Maps whose
   sides are not a multiple of the window are zero-padded for the attention and cropped after.
3. *Patch merging* between stages: each 2x2 neighbourhood concatenated (4C), LayerNorm, a linear
   layer to 2C — the map halves, the channels double.
4. Each stage's output, before merging, goes through its own LayerNorm (``hidden_states_norms``)
   and becomes one feature map (B, C_s, H_s, W_s).

As a backbone the windows are never clamped to the map (transformers' ``always_partition``), so
even a map smaller than one window is padded to one.

Speed (CPU): the padding, the roll and the partition into windows are one index_select, and their
inverse another (:func:`window_plan`, per map size); the relative position bias is gathered once at
load and the shifted windows' mask added to it once per map size; queries, keys and values are one
GEMM (:meth:`WindowAttention.prepare`); the MLP's GELU and both residual adds are fused into the
packed GEMMs before them (optimize.linear_gelu / linear_add) — the output projection is applied
after the tokens are back in map order, on the h*w tokens instead of the padded windows.

Module names follow the hub keys of ``facebook/mask2former-swin-tiny-coco-panoptic`` under
``model.pixel_level_module.encoder.`` (``encoder.layers.S.blocks.J.attention.self.query``,
``hidden_states_norms.stageS``), through a small :func:`remap` (which also takes the layout
transformers 5 writes in memory).
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from .optimize import linear_add, linear_gelu, make_linear, row_bucket

GELUS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}
#: the (H, W) input the packed GEMMs are tuned for (a 640x480 frame at COCO's short side 384); any size works
NOMINAL_SIZE = (384, 512)


@dataclass(frozen=True)
class SwinConfig:
    """The backbone's shape (Swin-T: 96 channels, depths 2/2/6/2, heads 3/6/12/24, window 7)."""

    embed_dim: int
    depths: tuple[int, ...]
    num_heads: tuple[int, ...]
    window_size: int = 7
    patch_size: int = 4
    mlp_ratio: float = 4.0
    num_channels: int = 3
    layer_norm_eps: float = 1e-5
    hidden_act: str = "gelu"
    qkv_bias: bool = True

    @property
    def channels(self) -> tuple[int, ...]:
        return tuple(self.embed_dim * 2 ** s for s in range(len(self.depths)))

    @classmethod
    def from_hf(cls, cfg: Mapping, what: str = "this Swin backbone") -> SwinConfig:
        missing = [k for k in ("embed_dim", "depths", "num_heads") if k not in cfg]
        if missing:
            raise CheckpointError(f"config.json of {what} lacks required keys: {', '.join(missing)}.")
        act = cfg.get("hidden_act", "gelu")
        if act not in GELUS:
            raise CheckpointError(f"{what}: activation {act!r} is not supported ({', '.join(GELUS)}).")
        depths, heads = tuple(int(d) for d in cfg["depths"]), tuple(int(h) for h in cfg["num_heads"])
        if len(depths) != len(heads):
            raise CheckpointError(f"config.json of {what}: {len(depths)} depths but {len(heads)} head counts.")
        c = cls(int(cfg["embed_dim"]), depths, heads, int(cfg.get("window_size", 7)), int(cfg.get("patch_size", 4)),
                float(cfg.get("mlp_ratio", 4.0)), int(cfg.get("num_channels", 3)),
                float(cfg.get("layer_norm_eps", 1e-5)), act, bool(cfg.get("qkv_bias", True)))
        for s, (d, h) in enumerate(zip(c.channels, heads)):
            if d % h:
                raise CheckpointError(f"config.json of {what}: stage {s} has {d} channels for {h} heads.")
        return c


class PatchEmbeddings(nn.Module):
    def __init__(self, c: SwinConfig) -> None:
        super().__init__()
        self.patch_size = c.patch_size
        self.projection = nn.Conv2d(c.num_channels, c.embed_dim, c.patch_size, stride=c.patch_size)


class Embeddings(nn.Module):
    """Patch embedding (``embeddings.patch_embeddings.projection``) and its LayerNorm (``embeddings.norm``)."""

    def __init__(self, c: SwinConfig) -> None:
        super().__init__()
        self.patch_embeddings = PatchEmbeddings(c)
        self.norm = nn.LayerNorm(c.embed_dim)

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        """(B, 3, H, W) -> tokens (B, h*w, C), h = ceil(H / patch), w = ceil(W / patch)."""
        p = self.patch_embeddings.patch_size
        H, W = pixel_values.shape[-2:]
        x = F.pad(pixel_values, (0, (-W) % p, 0, (-H) % p))  # right and bottom zeros
        x = self.patch_embeddings.projection(x)  # (B, C, h, w)
        h, w = x.shape[-2:]
        return self.norm(x.flatten(2).transpose(1, 2)), h, w  # (B, h*w, C)


def relative_position_index(window: int) -> torch.Tensor:
    """(N, N) index into the (2w-1)^2 bias table for every pair of positions of a window, N = w*w."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # (N, N, 2) from 0
    return rel[..., 0] * (2 * window - 1) + rel[..., 1]  # (N, N)


class WindowAttention(nn.Module):
    """Self-attention inside each window, with a learned bias per head for each relative offset."""

    def __init__(self, dim: int, heads: int, window: int, qkv_bias: bool) -> None:
        super().__init__()
        self.heads, self.head_dim, self.window = heads, dim // heads, window
        self.query = nn.Linear(dim, dim, bias=qkv_bias)
        self.key = nn.Linear(dim, dim, bias=qkv_bias)
        self.value = nn.Linear(dim, dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, heads))
        self.register_buffer("index", relative_position_index(window).flatten(), persistent=False)
        # set by prepare(): queries, keys and values in one GEMM, and the bias gathered once
        self.qkv: nn.Module | None = None
        self.register_buffer("position_bias", None, persistent=False)

    def bias(self) -> torch.Tensor:
        """The relative position bias (heads, N, N) of one window, N = w*w."""
        if self.position_bias is not None:
            return self.position_bias
        n = self.window * self.window
        return self.relative_position_bias_table[self.index].view(n, n, -1).permute(2, 0, 1)  # (heads, N, N)

    @torch.no_grad()
    def prepare(self) -> None:
        """After loading: the three projections as one (3C, C) linear layer (exact: the rows of one
        GEMM) and the bias table gathered into its (heads, N, N) form once instead of on every call."""
        self.position_bias = self.bias().contiguous()
        bias = None if self.query.bias is None else torch.cat([self.query.bias, self.key.bias, self.value.bias])
        self.qkv = make_linear(torch.cat([self.query.weight, self.key.weight, self.value.weight]), bias)  # (3C, C)
        del self.query, self.key, self.value

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """(..., C) -> (..., 3C): queries, keys and values."""
        if self.qkv is not None:
            return self.qkv(x)
        return torch.cat([self.query(x), self.key(x), self.value(x)], dim=-1)

    def context(self, qkv: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """qkv (B*nW, N, 3C) of windows of N = w*w tokens, bias (1 or B*nW, heads, N, N) additive (the
        relative position bias, with the shifted-window mask where there is one) -> (B*nW, N, C) the
        heads' outputs, before the output projection ``proj``."""
        bw, n, c3 = qkv.shape
        q, k, v = qkv.view(bw, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)  # (B*nW, heads, N, hd)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)  # (B*nW, heads, N, hd)
        return out.transpose(1, 2).reshape(bw, n, c3 // 3)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """x (B*nW, N, C) windows of N = w*w tokens, mask None or (nW, N, N) additive (0 / -100)
        -> (B*nW, N, C)."""
        return self.proj(self.context(self.project(x), window_bias(self.bias().to(x.dtype), mask, x.shape[0])))


def window_bias(bias: torch.Tensor, mask: torch.Tensor | None, bw: int) -> torch.Tensor:
    """The additive attention bias of B*nW = ``bw`` windows: the relative position bias (heads, N, N),
    plus, for shifted windows, the (nW, N, N) mask -> (1 or bw, heads, N, N)."""
    if mask is None:
        return bias[None]  # (1, heads, N, N)
    nw = mask.shape[0]
    full = bias[None] + mask[:, None].to(bias.dtype)  # (nW, heads, N, N)
    return full if bw == nw else full.repeat(bw // nw, 1, 1, 1)  # (B*nW, heads, N, N)


def partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """(B, H, W, C) with H, W multiples of w -> (B*nW, w*w, C) windows, row-major over the map."""
    b, h, wd, c = x.shape
    x = x.view(b, h // w, w, wd // w, w, c).transpose(2, 3)  # (B, H/w, W/w, w, w, C)
    return x.reshape(-1, w * w, c)


def shift_mask(h: int, w: int, window: int, shift: int, device: torch.device) -> torch.Tensor:
    """(nW, N, N) additive mask for shifted windows of a (padded) h x w map: -100 between tokens that
    the cyclic roll brought into one window from different regions, 0 elsewhere."""
    def regions(n: int) -> torch.Tensor:
        i = torch.arange(n, device=device)
        return (i >= n - window).long() + (i >= n - shift).long()  # 0, 1, 2 along the axis

    label = (regions(h)[:, None] * 3 + regions(w)[None, :]).float()[None, :, :, None]  # (1, h, w, 1)
    win = partition(label, window)[..., 0]  # (nW, N)
    return (win[:, None, :] != win[:, :, None]).float() * -100.0  # (nW, N, N)


@dataclass(frozen=True)
class WindowPlan:
    """Where each token goes for the windowed attention of an h x w map: ``gather`` (nW*N,) picks,
    for every window position in order, its token of the map (h*w = the zero row that stands for the
    padding); ``scatter`` (h*w,) is the inverse, each token's window position. Together they are the
    zero padding to Hp x Wp, the cyclic roll of the shifted windows and the partition into windows
    (and back), as one index_select each way."""

    gather: torch.Tensor
    scatter: torch.Tensor
    padded: bool
    hp: int
    wp: int
    tokens: int  # nW*N: the gather's rows that are window positions (any after them: padding rows)


_PLANS: dict[tuple, WindowPlan] = {}


def window_plan(h: int, w: int, window: int, shift: int, device: torch.device, rows: int = 0) -> WindowPlan:
    """The plan of an h x w map's windows; ``rows`` > nW*N: the gather index padded with that many
    rows in all (more copies of the padding's zero row), for a GEMM that computes on that many anyway
    (optimize.row_bucket)."""
    key = (h, w, window, shift, torch.device(device), rows)
    plan = _PLANS.get(key)
    if plan is None:
        if len(_PLANS) > 32:
            _PLANS.clear()
        hp, wp = h + (-h) % window, w + (-w) % window
        r = (torch.arange(hp) + shift) % hp  # the padded map's row each rolled row comes from
        col = (torch.arange(wp) + shift) % wp
        src = torch.where((r[:, None] < h) & (col[None, :] < w), r[:, None] * w + col[None, :], h * w)  # (Hp, Wp)
        gather = partition(src[None, :, :, None], window).flatten()  # (nW*N,) window order
        scatter = torch.empty(h * w + 1, dtype=torch.long)
        scatter[gather] = torch.arange(gather.numel())  # (the padding's entry: any of its positions)
        n = gather.numel()
        if rows > n:
            gather = torch.cat([gather, torch.full((rows - n,), h * w)])  # (rows,)
        plan = _PLANS[key] = WindowPlan(gather.to(device), scatter[:h * w].to(device), bool((gather == h * w).any()),
                                        hp, wp, n)
    return plan


class SwinBlock(nn.Module):
    """LayerNorm -> (shifted) window attention -> residual; LayerNorm -> MLP -> residual."""

    def __init__(self, dim: int, heads: int, c: SwinConfig, shift: int) -> None:
        super().__init__()
        self.window, self.shift, self.act = c.window_size, shift, GELUS[c.hidden_act]
        self.layernorm_before = nn.LayerNorm(dim, eps=c.layer_norm_eps)
        self.attention = WindowAttention(dim, heads, c.window_size, c.qkv_bias)
        self.layernorm_after = nn.LayerNorm(dim, eps=c.layer_norm_eps)
        hidden = int(c.mlp_ratio * dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self._biases: dict[tuple, torch.Tensor] = {}
        self.pad_rows = False  # set when the linear layers are packed (mask2former.pack)

    def attention_bias(self, plan: WindowPlan, bw: int, x: torch.Tensor) -> torch.Tensor:
        """(1 or B*nW, heads, N, N): the relative position bias with, for shifted windows, the mask
        of the map's size added (computed once per size, batch, device and dtype)."""
        key = (plan.hp, plan.wp, bw, x.device, x.dtype)
        bias = self._biases.get(key)
        if bias is None:
            mask = shift_mask(plan.hp, plan.wp, self.window, self.shift, x.device) if self.shift else None
            bias = window_bias(self.attention.bias().to(x.dtype), mask, bw).contiguous()
            if len(self._biases) > 4:
                self._biases.clear()
            self._biases[key] = bias
        return bias

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        """x (B, h*w, C) -> (B, h*w, C)."""
        b, _, c = x.shape
        n = self.window * self.window
        plan = window_plan(h, w, self.window, self.shift, x.device)
        if self.pad_rows and b == 1:  # as many rows as the packed GEMM computes on: it need not copy them
            plan = window_plan(h, w, self.window, self.shift, x.device, row_bucket(plan.tokens))
        y = self.layernorm_before(x)  # (B, h*w, C)
        if plan.padded:
            y = torch.cat([y, y.new_zeros(b, 1, c)], dim=1)  # (B, h*w + 1, C): the last row is the padding
        windows = y.index_select(1, plan.gather)  # (B, nW*N (+ padding rows), C) padded, rolled, partitioned
        qkv = self.attention.project(windows)[:, :plan.tokens].view(-1, n, 3 * c)  # (B*nW, N, 3C)
        y = self.attention.context(qkv, self.attention_bias(plan, qkv.shape[0], x))  # (B*nW, N, C)
        y = y.view(b, -1, c).index_select(1, plan.scatter)  # (B, h*w, C) back in map order
        x = linear_add(self.attention.proj, y, x)  # x + proj(y), per token
        return linear_add(self.fc2, linear_gelu(self.fc1, self.layernorm_after(x), self.act), x)


class PatchMerging(nn.Module):
    """2x2 neighbours concatenated (4C), LayerNorm, linear to 2C: (B, h*w, C) -> (B, ceil(h/2)*ceil(w/2), 2C)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.reduction = nn.Linear(4 * dim, 2 * dim, bias=False)
        self.norm = nn.LayerNorm(4 * dim)

    def forward(self, x: torch.Tensor, h: int, w: int) -> torch.Tensor:
        b, _, c = x.shape
        y = x.view(b, h, w, c)
        if h % 2 or w % 2:
            y = F.pad(y, (0, 0, 0, w % 2, 0, h % 2))  # (B, even h, even w, C)
        h2, w2 = y.shape[1] // 2, y.shape[2] // 2
        # the order of the checkpoint's 4C channels: (row 0, col 0), (1, 0), (0, 1), (1, 1): column outer
        y = y.view(b, h2, 2, w2, 2, c).permute(0, 1, 3, 4, 2, 5).reshape(b, h2 * w2, 4 * c)  # (B, h2*w2, 4C)
        return self.reduction(self.norm(y))  # (B, h2*w2, 2C)


class SwinStage(nn.Module):
    def __init__(self, c: SwinConfig, s: int) -> None:
        super().__init__()
        dim, heads = c.channels[s], c.num_heads[s]
        self.blocks = nn.ModuleList(SwinBlock(dim, heads, c, 0 if j % 2 == 0 else c.window_size // 2)
                                    for j in range(c.depths[s]))
        self.downsample = PatchMerging(dim) if s < len(c.depths) - 1 else None


class SwinEncoder(nn.Module):
    def __init__(self, c: SwinConfig) -> None:
        super().__init__()
        self.layers = nn.ModuleList(SwinStage(c, s) for s in range(len(c.depths)))


class SwinBackbone(nn.Module):
    """The Swin Transformer with a LayerNorm on each stage's output: pixels -> four feature maps."""

    def __init__(self, c: SwinConfig) -> None:
        super().__init__()
        self.config = c
        self.embeddings = Embeddings(c)
        self.encoder = SwinEncoder(c)
        self.hidden_states_norms = nn.ModuleDict(
            {f"stage{s + 1}": nn.LayerNorm(ch) for s, ch in enumerate(c.channels)})

    def prepare(self) -> list[tuple[nn.Module, str, nn.Linear, int]]:
        """After loading: each window attention's projections fused and its bias gathered
        (WindowAttention.prepare). Returns every linear layer as (parent, name, layer, rows), rows =
        the tokens it sees at the nominal input NOMINAL_SIZE (the hint for packing its weight)."""
        found = []
        h, w = (-(-side // self.config.patch_size) for side in NOMINAL_SIZE)
        ws = self.config.window_size
        for stage in self.encoder.layers:
            windowed = (h + (-h) % ws) * (w + (-w) % ws)
            for block in stage.blocks:
                block.attention.prepare()
                found += [(block.attention, "qkv", block.attention.qkv, windowed),
                          (block.attention, "proj", block.attention.proj, h * w),
                          (block, "fc1", block.fc1, h * w), (block, "fc2", block.fc2, h * w)]
            if stage.downsample is not None:
                h, w = (h + 1) // 2, (w + 1) // 2
                found.append((stage.downsample, "reduction", stage.downsample.reduction, h * w))
        return found

    def forward(self, pixel_values: torch.Tensor) -> list[torch.Tensor]:
        """pixel_values (B, 3, H, W) -> [(B, C_s, H_s, W_s)] at 1/4, 1/8, 1/16, 1/32 (sides rounded up)."""
        x, h, w = self.embeddings(pixel_values)  # (B, h*w, C)
        maps = []
        for s, stage in enumerate(self.encoder.layers):
            for block in stage.blocks:
                x = block(x, h, w)
            y = self.hidden_states_norms[f"stage{s + 1}"](x)  # (B, h*w, C_s)
            maps.append(y.transpose(1, 2).reshape(y.shape[0], -1, h, w))  # (B, C_s, h, w)
            if stage.downsample is not None:
                x = stage.downsample(x, h, w)
                h, w = (h + 1) // 2, (w + 1) // 2
        return maps


# hub key -> ours, inside a block (the hub's layout; transformers 5's in-memory names also accepted)
_BLOCK_RENAMES = (
    (r"\.attention\.self\.(query|key|value|relative_position_bias_table)", r".attention.\1"),
    (r"\.attention\.output\.dense\.", ".attention.proj."),
    (r"\.intermediate\.dense\.", ".fc1."),
    (r"\.output\.dense\.", ".fc2."),
    (r"\.attention\.q_proj\.", ".attention.query."),
    (r"\.attention\.k_proj\.", ".attention.key."),
    (r"\.attention\.v_proj\.", ".attention.value."),
    (r"\.attention\.o_proj\.", ".attention.proj."),
    (r"\.attention\.relative_position_bias\.relative_position_bias_table", ".attention.relative_position_bias_table"),
    (r"\.mlp\.fc([12])\.", r".fc\1."),
)


def remap(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Swin backbone's keys (relative to the backbone) -> ours (pure): the fixed
    ``relative_position_index`` buffers and the unused final ``layernorm`` dropped, a ``swin.``
    prefix (transformers 5) removed, the block's sub-layer names shortened."""
    out = {}
    for k, v in state.items():
        if k.endswith("relative_position_index") or k.startswith(("layernorm.", "swin.layernorm.")):
            continue
        k = k[len("swin."):] if k.startswith("swin.") else k
        if ".blocks." in k:
            for pattern, repl in _BLOCK_RENAMES:
                k = re.sub(pattern, repl, k)
        out[k] = v
    return out
