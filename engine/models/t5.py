"""T5: the "text-to-text" Transformer *encoder-decoder*, as in the seed's walk-through (translation:
"translate English to German: ..." in, the German out; summarization with "summarize: ").

1. Encoder: token embeddings (the ``shared`` matrix, not scaled), no position embeddings: every
   self-attention adds a learned *relative position bias* instead, one value per head for each
   bucket of the distance between query and key (small distances exact, larger ones in
   logarithmic buckets up to ``relative_attention_max_distance``; bidirectional in the encoder,
   causal in the decoder). Only the first layer has the bias table; the bias it gives is reused
   by every layer of the stack. Pre-LN layers with T5's *RMS layer norm* (a scale, no mean
   subtraction, no bias; the variance in float32), attention without the 1/sqrt(d) scaling, no
   biases anywhere, a ReLU feed-forward network (T5) or a gated-GELU one (T5 v1.1, FLAN-T5:
   ``feed_forward_proj: gated-gelu``).
2. Decoder: the same embeddings for the tokens written so far (starting from
   ``decoder_start_token_id``, the pad token), *causal* self-attention (its keys / values kept in
   the KV cache), *cross-attention* onto the encoder's output (keys and values computed once per
   input), the feed-forward network; a final RMS norm.
3. LM head: the ``shared`` embeddings (tied; the decoder output scaled by d_model^-0.5 first) or a
   separate ``lm_head`` (untied, ``tie_word_embeddings: false``, not scaled).

Checkpoint layouts read (:func:`remap`): google-t5/t5-small's (``shared.weight`` and/or the
``encoder.embed_tokens.weight`` / ``decoder.embed_tokens.weight`` copies; ``lm_head.weight``
absent when tied; an unused ``decoder.block.0.layer.1.EncDecAttention.relative_attention_bias``,
dropped), architectures ``T5ForConditionalGeneration`` or the older ``T5WithLMHeadModel``. The
embedding matrix may have more rows than the tokenizer has tokens (t5-small: 32,128 for 32,100);
as transformers, every row is a possible output.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..device import Placement
from ..errors import CheckpointError
from .common import drop_legacy_buffers, load_strict, one_shared_embedding, require
from .encoder_decoder import DecoderCache, EncoderDecoder, stepper  # noqa: F401 - stepper: this model's
from .optimize import module_dtype, pack_for_decoding, place, vocab_logits

log = logging.getLogger(__name__)

#: feed_forward_proj's activation -> (function, GELU approximation); "gated-gelu" means the tanh GELU
ACTIVATIONS = {"relu": "relu", "gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh", "silu": "silu",
               "swish": "silu"}
#: the key the hub's checkpoints carry that no T5 uses (cross-attention has no position bias)
UNUSED_KEYS = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)


@dataclass(frozen=True)
class T5Config:
    vocab_size: int
    d_model: int
    d_kv: int
    d_ff: int
    num_layers: int
    num_decoder_layers: int
    num_heads: int
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    layer_norm_epsilon: float = 1e-6
    activation: str = "relu"
    gated: bool = False
    tie_word_embeddings: bool = True  # the LM head is the shared embedding matrix
    scale_decoder_outputs: bool = True  # the decoder output times d_model^-0.5 before the head
    pad_token_id: int = 0
    eos_token_id: int | None = 1
    decoder_start_token_id: int = 0
    n_positions: int = 512  # what the checkpoint was trained to read (relative positions have no hard limit)

    REQUIRED = ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads")

    @classmethod
    def from_hf(cls, cfg: Mapping) -> T5Config:
        if cfg.get("model_type") != "t5":
            raise CheckpointError(f"config.json model_type is {cfg.get('model_type')!r}, not 't5'.")
        require(cfg, cls.REQUIRED, "this T5 checkpoint")
        proj = str(cfg.get("feed_forward_proj", "relu"))
        parts = proj.split("-")
        gated = len(parts) == 2 and parts[0] == "gated"
        act = parts[-1]
        if len(parts) > 2 or (len(parts) == 2 and not gated) or act not in ACTIVATIONS:
            raise CheckpointError(f"T5 feed_forward_proj {proj!r} is not supported (relu, gelu, silu, or "
                                  "gated- one of them).")
        if proj == "gated-gelu":  # what T5 v1.1 was trained with
            act = "gelu_new"
        tie = cfg.get("tie_word_embeddings", True) is not False
        eos = cfg.get("eos_token_id", 1)
        if isinstance(eos, list):
            eos = eos[0] if eos else None
        c = cls(int(cfg["vocab_size"]), int(cfg["d_model"]), int(cfg["d_kv"]), int(cfg["d_ff"]),
                int(cfg["num_layers"]), int(cfg.get("num_decoder_layers") or cfg["num_layers"]), int(cfg["num_heads"]),
                int(cfg.get("relative_attention_num_buckets", 32)), int(cfg.get("relative_attention_max_distance", 128)),
                float(cfg.get("layer_norm_epsilon", 1e-6)), act, gated, tie,
                # transformers 5 writes a separate flag (and tie_word_embeddings true) for v1.1-style heads
                bool(cfg.get("scale_decoder_outputs", tie)),
                int(cfg.get("pad_token_id", 0) or 0), None if eos is None else int(eos),
                int(cfg.get("decoder_start_token_id", cfg.get("pad_token_id", 0)) or 0),
                int(cfg.get("n_positions") or 512))
        if c.relative_attention_num_buckets < 4:
            raise CheckpointError("config.json: relative_attention_num_buckets must be at least 4.")
        return c


def _act(x: torch.Tensor, act: str) -> torch.Tensor:
    kind = ACTIVATIONS[act]
    if kind == "relu":
        return F.relu(x)
    if kind == "silu":
        return F.silu(x)
    return F.gelu(x, approximate=kind)


def relative_buckets(relative: torch.Tensor, bidirectional: bool, num_buckets: int, max_distance: int) -> torch.Tensor:
    """Key position minus query position (int64, any shape) -> its bucket in [0, num_buckets).

    Bidirectional (encoder): half the buckets for keys after the query, half for the others. Causal
    (decoder): only keys at or before the query (later ones fall in bucket 0; the causal mask hides
    them). Within a half, the first ``n // 2`` distances have a bucket each; the rest share
    logarithmically wider buckets up to ``max_distance``, beyond which all fall in the last one."""
    out = torch.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        out = out + (relative > 0).long() * num_buckets
        distance = relative.abs()
    else:
        distance = (-relative).clamp(min=0)
    exact = num_buckets // 2
    # the same float32 arithmetic as the reference, so every distance lands in the same bucket
    wide = exact + (torch.log(distance.float() / exact) / math.log(max_distance / exact)
                    * (num_buckets - exact)).long()
    wide = wide.clamp(max=num_buckets - 1)
    return out + torch.where(distance < exact, distance, wide)


class RMSNorm(nn.Module):
    """T5's layer norm: x / sqrt(mean(x^2) + eps) * weight: no mean subtraction, no bias; the mean
    of squares in float32."""

    def __init__(self, d: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)  # (B, T, 1)
        x = x * torch.rsqrt(variance + self.eps)
        if self.weight.dtype in (torch.float16, torch.bfloat16):
            x = x.to(self.weight.dtype)
        return self.weight * x


class Attention(nn.Module):
    """Multi-head attention without biases and without the 1/sqrt(d_kv) scaling (T5 folds it into
    the initialisation); ``relative_attention_bias`` in the first self-attention layer only."""

    def __init__(self, c: T5Config, relative_bias: bool) -> None:
        super().__init__()
        self.heads, self.head_dim = c.num_heads, c.d_kv
        inner = c.num_heads * c.d_kv
        self.q = nn.Linear(c.d_model, inner, bias=False)
        self.k = nn.Linear(c.d_model, inner, bias=False)
        self.v = nn.Linear(c.d_model, inner, bias=False)
        self.o = nn.Linear(inner, c.d_model, bias=False)
        if relative_bias:
            self.relative_attention_bias = nn.Embedding(c.relative_attention_num_buckets, c.num_heads)

    def split(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)  # (B, heads, T, d_kv)

    def kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.split(self.k(x)), self.split(self.v(x))

    def attend(self, x: torch.Tensor, k: torch.Tensor, v: torch.Tensor, bias: torch.Tensor | None,
               want_weights: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """x (B, T, D) queries over k, v (B, heads, S, d_kv); bias None or (1|B, heads, T, S) added to
        the scores (position bias, -inf where masked) -> (B, T, D) and, if asked, the attention
        probabilities (B, heads, T, S) float32."""
        q = self.split(self.q(x))  # (B, heads, T, d_kv)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)  # (B, heads, T, d_kv)
        weights = None
        if want_weights:  # the softmax SDPA computed, made explicit for the app to show
            scores = q.float() @ k.float().transpose(-2, -1)  # (B, heads, T, S)
            if bias is not None:
                scores = scores + bias.float()
            weights = scores.softmax(dim=-1)
        b, _, t, _ = out.shape
        return self.o(out.transpose(1, 2).reshape(b, t, -1)), weights  # (B, T, D)


class DenseReluDense(nn.Module):
    """The feed-forward network: wo(act(wi x)), or gated wo(act(wi_0 x) * wi_1 x)."""

    def __init__(self, c: T5Config) -> None:
        super().__init__()
        self.gated, self.act = c.gated, c.activation
        if c.gated:
            self.wi_0 = nn.Linear(c.d_model, c.d_ff, bias=False)
            self.wi_1 = nn.Linear(c.d_model, c.d_ff, bias=False)
        else:
            self.wi = nn.Linear(c.d_model, c.d_ff, bias=False)
        self.wo = nn.Linear(c.d_ff, c.d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            h = _act(self.wi_0(x), self.act) * self.wi_1(x)  # (B, T, d_ff)
        else:
            h = _act(self.wi(x), self.act)  # (B, T, d_ff)
        return self.wo(h.to(module_dtype(self.wo)))


class FeedForwardLayer(nn.Module):
    def __init__(self, c: T5Config) -> None:
        super().__init__()
        self.DenseReluDense = DenseReluDense(c)
        self.layer_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.DenseReluDense(self.layer_norm(x))


class SelfAttentionLayer(nn.Module):
    def __init__(self, c: T5Config, relative_bias: bool) -> None:
        super().__init__()
        self.SelfAttention = Attention(c, relative_bias)
        self.layer_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)


class CrossAttentionLayer(nn.Module):
    def __init__(self, c: T5Config) -> None:
        super().__init__()
        self.EncDecAttention = Attention(c, relative_bias=False)
        self.layer_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)


class Block(nn.Module):
    """layer.0 self-attention, (decoder) layer.1 cross-attention, then the feed-forward layer."""

    def __init__(self, c: T5Config, decoder: bool, first: bool) -> None:
        super().__init__()
        parts: list[nn.Module] = [SelfAttentionLayer(c, relative_bias=first)]
        if decoder:
            parts.append(CrossAttentionLayer(c))
        parts.append(FeedForwardLayer(c))
        self.layer = nn.ModuleList(parts)


class Stack(nn.Module):
    def __init__(self, c: T5Config, decoder: bool) -> None:
        super().__init__()
        n = c.num_decoder_layers if decoder else c.num_layers
        self.block = nn.ModuleList(Block(c, decoder, first=i == 0) for i in range(n))
        self.final_layer_norm = RMSNorm(c.d_model, c.layer_norm_epsilon)
        self.bidirectional = not decoder

    def position_bias(self, c: T5Config, queries: int, keys: int, past: int, device) -> torch.Tensor:
        """The first layer's relative position bias for ``queries`` positions (from ``past``) over
        ``keys`` positions -> (1, heads, queries, keys)."""
        q = torch.arange(past, past + queries, dtype=torch.long, device=device)[:, None]
        k = torch.arange(keys, dtype=torch.long, device=device)[None, :]
        buckets = relative_buckets(k - q, self.bidirectional, c.relative_attention_num_buckets,
                                   c.relative_attention_max_distance)  # (queries, keys)
        table = self.block[0].layer[0].SelfAttention.relative_attention_bias
        return table(buckets).permute(2, 0, 1).unsqueeze(0)  # (1, heads, queries, keys)


@dataclass
class T5Output:
    logits: torch.Tensor  # (B, T, vocab) float32
    cross_attentions: tuple[torch.Tensor, ...] | None = None  # per decoder layer (B, heads, T, S)


def _padding_bias(mask: torch.Tensor | None, dtype) -> torch.Tensor | None:
    """attention_mask (B, S) 1 = token, 0 = padding -> None (no padding) or (B, 1, 1, S) additive."""
    if mask is None or bool(mask.all()):
        return None
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
        ~mask.bool(), torch.finfo(dtype).min)[:, None, None, :]


class T5(EncoderDecoder):
    """T5ForConditionalGeneration (T5WithLMHeadModel)."""

    def __init__(self, config: T5Config) -> None:
        super().__init__()
        self.config = config
        self.decoder_layers = config.num_decoder_layers
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.encoder = Stack(config, decoder=False)
        self.decoder = Stack(config, decoder=True)
        self.lm_head = None if config.tie_word_embeddings else nn.Linear(config.d_model, config.vocab_size, bias=False)
        self.head_scale = config.d_model ** -0.5 if config.scale_decoder_outputs else 1.0
        #: the tied head packed for decoding steps (pack_for_decoding), or None
        self.packed_head: nn.Module | None = None

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """input_ids (B, S) -> encoder states (B, S, D)."""
        x = self.shared(input_ids)  # (B, S, D)
        s = input_ids.shape[1]
        bias = self.encoder.position_bias(self.config, s, s, 0, x.device).to(x.dtype)  # (1, heads, S, S)
        pad = _padding_bias(attention_mask, x.dtype)
        if pad is not None:
            bias = bias + pad  # (B, heads, S, S)
        for block in self.encoder.block:
            sa = block.layer[0]
            h = sa.layer_norm(x)
            k, v = sa.SelfAttention.kv(h)
            x = x + sa.SelfAttention.attend(h, k, v, bias)[0]
            x = block.layer[1](x)
        return self.encoder.final_layer_norm(x)

    def decode(self, ids: torch.Tensor, encoder_states: torch.Tensor, cache: DecoderCache | None = None,
               encoder_mask: torch.Tensor | None = None, last_only: bool = False,
               want_cross: bool = False) -> T5Output:
        """Decoder ids (B, T) (after those in ``cache``) over encoder states (B, S, D) -> logits."""
        past = 0 if cache is None else cache.length
        t = ids.shape[1]
        x = self.shared(ids)  # (B, T, D)
        bias = self.decoder.position_bias(self.config, t, past + t, past, x.device).to(x.dtype)  # (1, h, T, past+T)
        if t > 1:  # causal: no query sees a later key
            later = ~torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(past)
            bias = bias.masked_fill(later, float("-inf"))
        cross_bias = _padding_bias(encoder_mask, x.dtype)
        crosses = []
        for i, block in enumerate(self.decoder.block):
            sa, ca = block.layer[0], block.layer[1]
            h = sa.layer_norm(x)
            k, v = sa.SelfAttention.kv(h)
            if cache is not None:
                if cache.self_k[i] is not None:
                    k, v = torch.cat([cache.self_k[i], k], 2), torch.cat([cache.self_v[i], v], 2)  # (B, h, past+T, d_kv)
                cache.self_k[i], cache.self_v[i] = k, v
            x = x + sa.SelfAttention.attend(h, k, v, bias)[0]
            cross = cache.cross[i] if cache is not None else None
            if cross is None:
                cross = ca.EncDecAttention.kv(encoder_states)  # 2 x (B, heads, S, d_kv)
                if cache is not None:
                    cache.cross[i] = cross
            a, w = ca.EncDecAttention.attend(ca.layer_norm(x), cross[0], cross[1], cross_bias, want_weights=want_cross)
            crosses.append(w)
            x = block.layer[2](x + a)
        if cache is not None:
            cache.length = past + t
        if last_only:
            x = x[:, -1:]
        x = self.decoder.final_layer_norm(x) * self.head_scale
        logits = vocab_logits(x, self.packed_head, self.lm_head, self.shared.weight)
        return T5Output(logits.float(), tuple(crosses) if want_cross else None)


# ----------------------------------------------------------------------------- loading

EMBEDDING_COPIES = ("shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight")


def remap(state: Mapping[str, torch.Tensor], tied: bool = True) -> dict[str, torch.Tensor]:
    """Hub keys -> ours (pure): one copy of the shared embeddings kept as ``shared.weight``, the
    tied ``lm_head.weight`` and the unused cross-attention position bias dropped."""
    out = {k: v for k, v in drop_legacy_buffers(state).items() if k not in UNUSED_KEYS}
    return one_shared_embedding(out, EMBEDDING_COPIES, tied)


def build(config: T5Config, state: Mapping[str, torch.Tensor]) -> T5:
    model = T5(config)
    load_strict(model, remap(state, config.tie_word_embeddings), "this T5")
    return model.eval().requires_grad_(False)


def from_checkpoint(folder: Path, placement: Placement) -> T5:
    from ..hub import load_weights, read_json
    config = T5Config.from_hf(read_json(folder, "config.json"))
    model = build(config, load_weights(folder))
    log.info("t5: %d+%d layers, width %d, vocabulary %d, %s feed-forward, %s head", config.num_layers,
             config.num_decoder_layers, config.d_model, config.vocab_size,
             ("gated " if config.gated else "") + config.activation, "tied" if config.tie_word_embeddings else "untied")
    model = place(model, placement)
    model.packed_head = pack_for_decoding(model, device=placement.device, dtype=placement.dtype,
                                          tied_head=model.shared.weight if model.lm_head is None else None)
    return model
