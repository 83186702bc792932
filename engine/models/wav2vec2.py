"""Wav2Vec2: speech in, one vector per 20 ms out (CTC or sequence classification on top).

Following the seed ("How 🤗 Transformers solve tasks", speech and audio):

1. A *feature encoder* (a stack of 1-D convolutions) takes the raw waveform, normalised to zero
   mean and unit variance, and turns it into a sequence of feature vectors, one per 20 ms
   (the strides multiply to 320 samples at 16 kHz).
2. The *quantization module* (codebook of speech units) is only used in pre-training; a fine-tuned
   checkpoint may still carry it (``quantizer``, ``project_q``, ``project_hid``,
   ``masked_spec_embed``): those weights are ignored with a note.
3. A *feature projection* maps the features to the model width, and the *context network*, a
   Transformer encoder that adds a convolutional relative positional embedding, contextualises them.
4. Heads: a linear *language-modelling head* for CTC (connectionist temporal classification),
   or a *sequence classification* head (projector, mean pooling over frames, classifier).

Two layouts come from the config, not from flags: ``base`` (group-norm feature encoder,
post-LN context network) and ``large-lv60``/``self`` (layer-norm feature encoder,
``do_stable_layer_norm``: pre-LN layers and a final layer norm).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CheckpointError
from .common import MultiHeadAttention, drop_legacy_buffers, load_strict, require
from .conv1d import FUSED_GELUS, PackedConv1d, SpectralConv1d, conv1d_gemm
from .optimize import (FastPlan, can_pack, cast_at_boundaries, fold_weight_norm, linear_add, linear_gelu, module_dtype,
                       pack_linears, row_bucket)

log = logging.getLogger(__name__)

ACTIVATIONS = {"gelu": F.gelu, "relu": F.relu, "silu": F.silu, "swish": F.silu,
               "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
               "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh")}
#: the same, in place: for the feature encoder's fresh (C, L) outputs, which would otherwise be copied
#: into a new tensor as large (32 MB for 5 s after the first convolution; above glibc's mmap threshold,
#: so page-faulted anew on every call: measured 27-30 -> 13 ms for the first layer)
INPLACE_ACTIVATIONS = {"gelu": torch.ops.aten.gelu_, "relu": F.relu_, "silu": lambda x: F.silu(x, inplace=True),
                       "swish": lambda x: F.silu(x, inplace=True),
                       "gelu_new": lambda x: torch.ops.aten.gelu_(x, approximate="tanh"),
                       "gelu_pytorch_tanh": lambda x: torch.ops.aten.gelu_(x, approximate="tanh")}
#: pre-training parts a fine-tuned checkpoint may carry; inference never uses them
PRETRAINING_PREFIXES = ("quantizer.", "project_q.", "project_hid.", "wav2vec2.masked_spec_embed", "masked_spec_embed")


@dataclass
class Wav2Vec2Config:
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    conv_dim: tuple[int, ...]
    conv_kernel: tuple[int, ...]
    conv_stride: tuple[int, ...]
    conv_bias: bool = False
    feat_extract_norm: str = "group"  # "group" (base) or "layer" (large-lv60)
    do_stable_layer_norm: bool = False  # pre-LN context network
    num_conv_pos_embeddings: int = 128
    num_conv_pos_embedding_groups: int = 16
    layer_norm_eps: float = 1e-5
    hidden_act: str = "gelu"
    feat_extract_activation: str = "gelu"
    vocab_size: int = 32
    pad_token_id: int = 0
    use_weighted_layer_sum: bool = False
    classifier_proj_size: int = 256
    id2label: dict[int, str] = field(default_factory=dict)

    REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "conv_dim", "conv_kernel", "conv_stride")

    @classmethod
    def from_hf(cls, cfg: dict) -> Wav2Vec2Config:
        """From a hub ``config.json`` dict: unknown keys ignored, missing required keys an error."""
        require(cfg, cls.REQUIRED, "this Wav2Vec2 checkpoint")
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in cfg.items() if k in known and v is not None}
        for k in ("conv_dim", "conv_kernel", "conv_stride"):
            kw[k] = tuple(int(v) for v in kw[k])
        if not len(kw["conv_dim"]) == len(kw["conv_kernel"]) == len(kw["conv_stride"]):
            raise CheckpointError("config.json: conv_dim, conv_kernel and conv_stride differ in length.")
        kw["id2label"] = {int(k): str(v) for k, v in (cfg.get("id2label") or {}).items()}
        config = cls(**kw)
        if config.feat_extract_norm not in ("group", "layer"):
            raise CheckpointError(f"config.json: feat_extract_norm {config.feat_extract_norm!r} is not 'group' or 'layer'.")
        for act in (config.hidden_act, config.feat_extract_activation):
            if act not in ACTIVATIONS:
                raise CheckpointError(f"config.json: activation {act!r} is not supported.")
        return config

    @property
    def inputs_to_logits_ratio(self) -> int:
        """Samples per output frame (320 = 20 ms at 16 kHz for the standard feature encoder)."""
        ratio = 1
        for s in self.conv_stride:
            ratio *= s
        return ratio

    def num_frames(self, num_samples: int) -> int:
        """Output frames of the feature encoder for ``num_samples`` input samples (0 if too short)."""
        n = num_samples
        for k, s in zip(self.conv_kernel, self.conv_stride):
            n = (n - k) // s + 1
            if n <= 0:
                return 0
        return n


# ----------------------------------------------------------------------------- feature encoder

#: output rows of the feature encoder's second layer computed at a time (FeatureEncoder._first_two): a
#: power of two, so that every full chunk's GEMMs share one row bucket
CHUNK_ROWS = 1024


class FeatureEncoderConvLayer(nn.Module):
    """One 1-D convolution of the feature encoder, with an optional norm, then the activation."""

    def __init__(self, c: Wav2Vec2Config, i: int) -> None:
        super().__init__()
        c_in = 1 if i == 0 else c.conv_dim[i - 1]
        c_out = c.conv_dim[i]
        self.conv = nn.Conv1d(c_in, c_out, c.conv_kernel[i], stride=c.conv_stride[i], bias=c.conv_bias)
        self.norm = "layer" if c.feat_extract_norm == "layer" else ("group" if i == 0 else None)
        if self.norm == "layer":
            self.layer_norm = nn.LayerNorm(c_out, eps=c.layer_norm_eps, elementwise_affine=True)
        elif self.norm == "group":  # one group per channel: each channel normalised over time
            self.layer_norm = nn.GroupNorm(c_out, c_out, eps=c.layer_norm_eps, affine=True)
        self.act = INPLACE_ACTIVATIONS[c.feat_extract_activation]  # on this layer's own fresh output
        self.activation = c.feat_extract_activation
        self.packed: PackedConv1d | None = None  # set by pack(): the convolution as packed GEMMs (CPU)

    def pack(self) -> bool:
        """Run the convolution as oneDNN GEMMs on packed weights (PackedConv1d) where oneDNN packs this
        layer's dtype (CPU); the first layer (one input channel, folded with its norm) keeps its own
        path. Returns whether it is packed now."""
        w = self.conv.weight
        if self.conv.in_channels == 1 or not can_pack(w.device, w.dtype):
            return False
        self.packed = PackedConv1d(self.conv, self.activation if self.norm is None else None)
        return True

    def forward(self, x: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """(B, L, C_in) channels last -> (B, L', C_out) channels last. ``rows``: how many rows the
        result's storage should hold (FeatureEncoder.rows_plan; the rows past L' are scratch), so
        that a packed next layer reads its input in place; ignored where it does not matter."""
        if self.norm == "group" and self.conv.in_channels == 1:
            return self.act(self._conv_group_norm(x, rows))
        if self.packed is not None:
            x = self.packed(x.to(self.conv.weight.dtype), rows)
            if self.packed.gelu is not None:
                return x
        else:
            x = conv1d_gemm(x, self.conv.weight, self.conv.bias, self.conv.stride[0])
        if self.norm == "layer":
            x = self.layer_norm(x)  # over channels: the last axis
        elif self.norm == "group":
            x = self.layer_norm(x.transpose(1, 2)).transpose(1, 2)
        return self.act(x)

    def _conv_group_norm(self, x: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """The first convolution (one input channel) and its per-channel GroupNorm as ONE convolution.

        The convolution is linear in the waveform's frames f_t (kernel-long windows, (K,)), so each
        output channel's mean and variance over time follow from the frames' mean mu (K,) and
        covariance S (K, K): mean_c = w_c . mu (+ bias), var_c = w_c^T S w_c. The norm then folds
        into the weights, per utterance: w'_c = w_c g_c / sqrt(var_c + eps), b'_c = beta_c - w'_c . mu
        (the conv bias cancels). Equal to conv + GroupNorm up to float rounding, without the two
        passes over the (C, L') output the norm needs (measured, 5 s of audio: 27-47 -> ~15 ms).
        (B, L, 1) -> (B, L', C)"""
        frames, weight, bias = self.folded(x)
        b, t = frames.shape[:2]
        out = frames.new_empty((b, max(t, rows or 0), weight.shape[2]))  # (B, L' + scratch rows, C)
        out[:, t:] = 0
        for i in range(b):  # the convolution as frames @ W'^T: steadier than oneDNN's 1-channel conv (11 vs 12-29 ms)
            torch.addmm(bias[i], frames[i], weight[i], out=out[i, :t])
        return out[:, :t]

    def folded(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The first layer's convolution with its GroupNorm folded in (see _conv_group_norm), in the
        layer's dtype: (B, L, 1) -> frames (B, L', K) (a view of the samples), weight (B, K, C), bias
        (B, C); the layer's output before its activation is ``frames[i] @ weight[i] + bias[i]``."""
        conv, norm = self.conv, self.layer_norm
        k, stride = conv.kernel_size[0], conv.stride[0]
        b = x.shape[0]
        frames = x[:, :, 0].float().unfold(-1, k, stride)  # (B, T, K), a view
        t = frames.shape[1]
        mu = (frames.new_ones(b, 1, t) @ frames)[:, 0] / t  # (B, K), as a GEMV (reductions over this view are slow)
        cov = frames.transpose(1, 2) @ frames / t - mu[:, :, None] * mu[:, None, :]  # (B, K, K), biased as GroupNorm's
        w = conv.weight[:, 0].float()  # (C, K)
        var = ((cov @ w.t()) * w.t()).sum(1)  # (B, C): w_c^T S w_c
        scale = norm.weight.float() * torch.rsqrt(var + norm.eps)  # (B, C)
        weight = w[None] * scale[:, :, None]  # (B, C, K)
        bias = norm.bias.float() - (mu @ w.t()) * scale  # (B, C)
        dtype = conv.weight.dtype
        return frames.to(dtype), weight.transpose(1, 2).to(dtype), bias.to(dtype)


class FeatureEncoder(nn.Module):
    """The feature encoder: raw normalised waveform -> one feature vector per 20 ms."""

    def __init__(self, c: Wav2Vec2Config) -> None:
        super().__init__()
        self.conv_layers = nn.ModuleList(FeatureEncoderConvLayer(c, i) for i in range(len(c.conv_dim)))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, L) samples -> (B, T, C) features, T = frames of 20 ms"""
        x = wave[:, :, None]  # (B, L, 1)
        plan = self.rows_plan(wave.shape[1])
        layers = list(zip(self.conv_layers, plan))
        if self._first_two_in_chunks(wave.shape[1]):
            if wave.shape[0] > 1:  # one utterance at a time (the chunks are per utterance)
                return torch.cat([self(wave[i:i + 1]) for i in range(wave.shape[0])])
            x = self._first_two(x, plan[1])
            layers = layers[2:]
        for layer, rows in layers:
            x = layer(x, rows)
        return x

    def _first_two_in_chunks(self, samples: int) -> bool:
        """Whether the first two layers run as :meth:`_first_two`: the first one folded with its group
        norm, the second packed without a norm, and input enough for both."""
        if len(self.conv_layers) < 2:
            return False
        first, second = self.conv_layers[0], self.conv_layers[1]
        if first.norm != "group" or first.conv.in_channels != 1 or second.packed is None or second.norm is not None:
            return False
        k0, s0 = first.conv.kernel_size[0], first.conv.stride[0]
        return samples >= k0 and (samples - k0) // s0 + 1 >= second.packed.kernel

    def _first_two(self, x: torch.Tensor, rows: int | None) -> torch.Tensor:
        """The first two layers over one utterance (1, L, 1), in chunks of CHUNK_ROWS output rows of the
        second: each chunk computes the first layer's output for the frames it reads only, into one
        small buffer reused chunk after chunk, then the second layer's packed GEMMs on it. The first
        layer's output for the whole utterance (32 MB for 5 s, allocated and page-faulted on every
        call) is never made; the chunks' GEMMs have one shape. Returns (1, T2, C), a view of
        row_bucket(max(T2, rows)) rows (the next layer reads them in place; past T2: scratch):
        the second layer's own output when one chunk holds it all, else the chunks copied into one."""
        first, second = self.conv_layers[0], self.conv_layers[1]
        packed = second.packed
        frames, weight, bias = first.folded(x)
        frames, weight, bias = frames[0], weight[0], bias[0]  # (T1, K), (K, C), (C,)
        t1 = frames.shape[0]
        t2 = (t1 - packed.kernel) // packed.stride + 1
        m2 = row_bucket(max(t2, rows or 0))
        chunk = min(CHUNK_ROWS, m2)
        out = frames.new_empty((m2, packed.out_channels)) if chunk < m2 else None  # one chunk: its own output
        buffer = frames.new_empty((packed.frames_read(chunk) + packed.kernel, weight.shape[1]))
        for c0 in range(0, m2, chunk):
            m = min(chunk, m2 - c0)
            f0, need = c0 * packed.stride, (m - 1) * packed.stride + packed.kernel  # first-layer frames read
            n = max(min(need, t1 - f0), 0)  # of which real; the rest (past the utterance) zeros
            buffer[n:need] = 0
            if n:
                torch.addmm(bias, frames[f0:f0 + n], weight, out=buffer[:n])
                first.act(buffer[:n])
            y = packed(buffer[None, :need])[0]  # (m, C)
            y = y if packed.gelu is not None else second.act(y)
            if out is None:
                return y[:t2][None]  # a view of all m2 rows
            out[c0:c0 + m] = y
        return out[:t2][None]

    def rows_plan(self, samples: int) -> list[int | None]:
        """Per layer, the rows its output's storage should hold so that the next layer, when packed,
        reads its first GEMM's rows in place (PackedConv1d._view) instead of copying its input. A
        packed layer's own output (row_bucket(T) rows) already holds what the next one reads; the
        first layer's is sized by this. None: no wish."""
        plan: list[int | None] = [None] * len(self.conv_layers)
        n = samples
        for i, layer in enumerate(self.conv_layers):
            n = max((n - layer.conv.kernel_size[0]) // layer.conv.stride[0] + 1, 0)
            if i and layer.packed is not None and n:
                plan[i - 1] = layer.packed.frames_read(row_bucket(n))
        return plan


class FeatureProjection(nn.Module):
    def __init__(self, c: Wav2Vec2Config) -> None:
        super().__init__()
        self.layer_norm = nn.LayerNorm(c.conv_dim[-1], eps=c.layer_norm_eps)
        self.projection = nn.Linear(c.conv_dim[-1], c.hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, T, hidden)"""
        return self.projection(self.layer_norm(features))


# ----------------------------------------------------------------------------- context network

class PositionalConvEmbedding(nn.Module):
    """Convolutional relative positional embedding: a wide grouped convolution over time.

    The checkpoint stores it weight-normalised; ``remap`` folds ``g * v / ||v||`` into a plain weight.
    """

    def __init__(self, c: Wav2Vec2Config) -> None:
        super().__init__()
        k = c.num_conv_pos_embeddings
        self.conv = nn.Conv1d(c.hidden_size, c.hidden_size, k, padding=k // 2, groups=c.num_conv_pos_embedding_groups)
        self.act = ACTIVATIONS[c.feat_extract_activation]
        self.act_inplace = INPLACE_ACTIVATIONS[c.feat_extract_activation]  # on the spectral path's fresh output
        self.spectral: SpectralConv1d | None = None  # set by to_spectral(): the convolution in the frequency domain

    def to_spectral(self) -> bool:
        """On the CPU in float32, run the convolution as SpectralConv1d (~4x faster for 5 s of audio) and
        drop its weight (the spectrum replaces it). Returns whether it runs so now."""
        if self.spectral is None:
            w = self.conv.weight
            if w.device.type != "cpu" or w.dtype != torch.float32:
                return False
            self.spectral = SpectralConv1d(self.conv)
            del self.conv
        return True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, D) -> (B, T, D) positional embedding"""
        t = x.shape[1]
        if self.spectral is not None:  # its output is fresh: the activation may run in place
            return self.act_inplace(self.spectral(x.float())[:, :t])
        bucket = row_bucket(t)
        if bucket != t:  # zero frames after the end: the same as the conv's own zero padding there
            x = F.pad(x, (0, 0, 0, bucket - t))  # (B, T', D): one oneDNN primitive per bucket, not per length
        y = self.conv(x.transpose(1, 2))  # (B, D, T' + remove)
        return self.act(y[:, :, :t]).transpose(1, 2)  # (B, T, D): the extra frame (even kernel) dropped too


class FeedForward(nn.Module):
    """D -> intermediate -> D. With packed weights (CPU) the GELU is fused into the first GEMM and the
    residual add into the second (optimize.linear_gelu / linear_add)."""

    def __init__(self, c: Wav2Vec2Config) -> None:
        super().__init__()
        self.intermediate_dense = nn.Linear(c.hidden_size, c.intermediate_size)
        self.output_dense = nn.Linear(c.intermediate_size, c.hidden_size)
        self.act = ACTIVATIONS[c.hidden_act]
        self.gelu = FUSED_GELUS.get(c.hidden_act)  # F.gelu's ``approximate``, or None: not a GELU

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D), residual None or (B, T, D) -> (B, T, D) (plus ``residual`` when given)"""
        if self.gelu is not None:
            h = linear_gelu(self.intermediate_dense, x, self.gelu)  # (B, T, intermediate)
        else:
            h = self.act(self.intermediate_dense(x))  # (B, T, intermediate)
        if residual is None:
            return self.output_dense(h)
        return linear_add(self.output_dense, h, residual)


class EncoderLayer(nn.Module):
    """One Transformer layer of the context network: post-LN (base) or pre-LN (stable layer norm)."""

    def __init__(self, c: Wav2Vec2Config) -> None:
        super().__init__()
        self.attention = MultiHeadAttention(c.hidden_size, c.num_attention_heads)  # self-attention
        self.layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.feed_forward = FeedForward(c)
        self.final_layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.pre_ln = c.do_stable_layer_norm

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, D) -> (B, T, D)"""
        if self.pre_ln:
            x = x + self.attention(self.layer_norm(x), key_mask=mask)[0]
            return self.feed_forward(self.final_layer_norm(x), residual=x)
        x = self.layer_norm(x + self.attention(x, key_mask=mask)[0])
        return self.final_layer_norm(self.feed_forward(x, residual=x))


class ContextNetwork(nn.Module):
    """The context network: Transformer encoder with a convolutional relative positional embedding."""

    def __init__(self, c: Wav2Vec2Config) -> None:
        super().__init__()
        self.pos_conv_embed = PositionalConvEmbedding(c)
        self.layer_norm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.layers = nn.ModuleList(EncoderLayer(c) for _ in range(c.num_hidden_layers))
        self.pre_ln = c.do_stable_layer_norm

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None,
                all_states: bool = False) -> list[torch.Tensor]:
        """(B, T, D), valid (B, T) bool or None -> hidden states, each (B, T, D).

        Returns ``[last]``, or with ``all_states`` the input of the first layer, the output of
        every layer, and the final output (num_hidden_layers + 1 tensors).
        """
        mask = None
        if valid is not None:
            x = x.masked_fill(~valid[:, :, None], 0.0)  # padded frames contribute zeros
            mask = valid[:, None, None, :]  # (B, 1, 1, T) keys that may be attended
        x = x + self.pos_conv_embed(x)
        if not self.pre_ln:
            x = self.layer_norm(x)
        states = [x]
        for layer in self.layers:
            x = layer(x, mask)
            states.append(x)
        if self.pre_ln:
            states[-1] = self.layer_norm(x)
        return states if all_states else states[-1:]


class Wav2Vec2Model(nn.Module):
    def __init__(self, c: Wav2Vec2Config) -> None:
        super().__init__()
        self.config = c
        self.feature_extractor = FeatureEncoder(c)  # checkpoint name of the feature encoder
        self.feature_projection = FeatureProjection(c)
        self.encoder = ContextNetwork(c)  # checkpoint name of the context network

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype the samples should come in: the feature encoder's first convolution's."""
        return module_dtype(self.feature_extractor.conv_layers[0].conv) or torch.float32

    def forward(self, wave: torch.Tensor, valid: torch.Tensor | None = None,
                all_states: bool = False) -> list[torch.Tensor]:
        """(B, L) normalised samples, valid (B, T) frame mask or None -> hidden states (B, T, D)."""
        features = self.feature_extractor(wave)  # (B, T, C)
        return self.encoder(self.feature_projection(features), valid, all_states)


# ----------------------------------------------------------------------------- heads

class Wav2Vec2ForCTC(nn.Module):
    def __init__(self, c: Wav2Vec2Config) -> None:
        super().__init__()
        self.config = c
        self.wav2vec2 = Wav2Vec2Model(c)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size)

    def forward(self, wave: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) normalised samples -> CTC logits (B, T, vocab), one row per 20 ms frame."""
        return self.lm_head(self.wav2vec2(wave, valid)[-1])


class Wav2Vec2ForSequenceClassification(nn.Module):
    def __init__(self, c: Wav2Vec2Config) -> None:
        super().__init__()
        if not c.id2label:
            raise CheckpointError("config.json of this audio classifier has no id2label.")
        self.config = c
        self.wav2vec2 = Wav2Vec2Model(c)
        if c.use_weighted_layer_sum:  # one weight per hidden state, embedding output included
            self.layer_weights = nn.Parameter(torch.full((c.num_hidden_layers + 1,), 1.0 / (c.num_hidden_layers + 1)))
        self.projector = nn.Linear(c.hidden_size, c.classifier_proj_size)
        self.classifier = nn.Linear(c.classifier_proj_size, len(c.id2label))

    def forward(self, wave: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """(B, L) normalised samples, valid (B, T) or None -> class logits (B, num_labels)."""
        if self.config.use_weighted_layer_sum:
            states = torch.stack(self.wav2vec2(wave, valid, all_states=True), dim=1)  # (B, layers + 1, T, D)
            w = torch.softmax(self.layer_weights, dim=-1)  # (layers + 1,)
            hidden = (states * w[None, :, None, None]).sum(dim=1)  # (B, T, D)
        else:
            hidden = self.wav2vec2(wave, valid)[-1]  # (B, T, D)
        h = self.projector(hidden)  # (B, T, P)
        if valid is None:
            pooled = h.mean(dim=1)  # (B, P) mean over frames
        else:
            m = valid[:, :, None].to(h.dtype)  # (B, T, 1)
            pooled = (h * m).sum(dim=1) / m.sum(dim=1)  # (B, P) mean over valid frames
        return self.classifier(pooled)


HEADS = {"ctc": Wav2Vec2ForCTC, "classification": Wav2Vec2ForSequenceClassification}

#: The ``fast`` precision of Wav2Vec2 (engine.device.for_model), measured on benchmarks/speech.py's
#: random-weight wav2vec2-base-960h and its 5 s espeak clip (249 frames), against float32. Noise
#: floor: 1 LSB of 16-bit dither on the samples moves the CTC logits by 0.023 on average (and, the
#: random head's margins being thin, changes one character of the float32 transcript for 1 seed
#: of 3). Mean |logit change| / frames whose argmax flips / transcript:
#:   bfloat16 everywhere:                                      0.17  / 6 / changed
#:   bfloat16, this plan's parts float32:                      0.10  / 7 / changed
#:   ... and the whole feature encoder float32 (no faster than exact, 444 vs 450 ms): 0.063 / 4 / changed
#:   (no single part dominates: attention, feed-forward, convolutions, norms, heads in float32 one
#:   at a time each leave 0.11-0.17)
#:   float16 everywhere:                                       0.022 / 1 / changed
#:   float16, this plan's parts float32:                       0.013 / 0 / the same
#: So Wav2Vec2 runs fast in float16 only (GPUs), with the feature encoder's first convolution and
#: its group norm (raw samples; folded into one convolution), every layer norm (and so the residual
#: stream), the convolutional positional embedding, the feature projection and the heads in
#: float32; on a bfloat16-only device (these CPUs) it runs exact.
FAST_PLAN = FastPlan(
    keep_fp32=("wav2vec2.feature_extractor.conv_layers.0", "*layer_norm", "wav2vec2.encoder.pos_conv_embed",
               "wav2vec2.feature_projection"),
    dtypes=(torch.float16,),
    why="in bfloat16 its CTC logits move 4-8x more than 1 LSB of dither on the audio moves them, and the "
        "transcript changes; measured in engine/models/wav2vec2.py")
#: and per head: the heads themselves (tiny) stay float32
FAST_PLAN_KEEP = {"ctc": ("lm_head",), "classification": ("projector", "classifier")}


# ----------------------------------------------------------------------------- loading

def remap(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Hub key layout -> ours (pure): fold the positional conv's weight norm, drop legacy
    buffers and pre-training parts, add the ``wav2vec2.`` prefix where a bare model lacks it."""
    state = drop_legacy_buffers(state)
    out: dict[str, torch.Tensor] = {}
    dropped = []
    for k, v in state.items():
        if k.startswith(PRETRAINING_PREFIXES):
            dropped.append(k)
            continue
        if k.startswith(("feature_extractor.", "feature_projection.", "encoder.")):
            k = "wav2vec2." + k
        out[k] = v
    if dropped:
        log.info("Wav2Vec2: ignoring %d pre-training weights (quantization module etc.): %s",
                 len(dropped), ", ".join(sorted({d.split(".")[0] for d in dropped})))
    conv = "wav2vec2.encoder.pos_conv_embed.conv."
    for g_key, v_key in ((conv + "weight_g", conv + "weight_v"),
                         (conv + "parametrizations.weight.original0", conv + "parametrizations.weight.original1")):
        if g_key in out and v_key in out:
            # weight norm over every dim but the kernel dim (dim=2)
            out[conv + "weight"] = fold_weight_norm(out.pop(g_key), out.pop(v_key), dim=2)
    return out


def build(config: Wav2Vec2Config, state: dict[str, torch.Tensor], head: str) -> nn.Module:
    """A ready (eval, no-grad) model with ``head`` ("ctc" or "classification") from hub weights."""
    model = HEADS[head](config)
    load_strict(model, remap(state), f"Wav2Vec2 with a {head} head")
    return model.eval().requires_grad_(False)


def optimize_for_inference(model: nn.Module, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """Fuse the self-attention q/k/v projections into one GEMM; on CPU also pack the linear layers'
    weights once for oneDNN (optimize.pack_linears, checked against F.linear first), tuned for
    256 frames (~5 s of audio): those in ``dtype`` and, under the fast plan, the float32 ones; and
    then the feature encoder's convolutions (PackedConv1d). On CPU in float32 the positional
    convolution runs in the frequency domain (SpectralConv1d). Then casts at the boundaries of
    float32 and reduced parts. Returns the same model, changed in place."""
    for m in list(model.modules()):
        if isinstance(m, MultiHeadAttention):
            m.fuse_qkv()
    packed = pack_linears(model, device=device, dtype=dtype, rows=256)
    if dtype != torch.float32:
        packed += pack_linears(model, device=device, dtype=torch.float32, rows=256)
    if packed:  # the check passed: the feature encoder's convolutions as packed GEMMs too
        convs = sum(layer.pack() for layer in model.modules() if isinstance(layer, FeatureEncoderConvLayer))
        log.info("Wav2Vec2: %d linear layers and %d convolutions packed for oneDNN", packed, convs)
    for m in model.modules():
        if isinstance(m, PositionalConvEmbedding) and m.to_spectral():
            log.info("Wav2Vec2: the positional convolution runs in the frequency domain")
    cast_at_boundaries(model)
    return model


def fast_placement(placement):
    """``placement`` as Wav2Vec2 runs on it -> (placement, notice) (see FAST_PLAN)."""
    from ..device import for_model
    placement, notice = for_model(placement, FAST_PLAN.dtypes, "Wav2Vec2", FAST_PLAN.why)
    if notice:
        log.warning(notice)
    return placement, notice


def from_checkpoint(folder, placement, head: str) -> nn.Module:
    """Config + weights of a checkpoint folder -> model with ``head`` on ``placement`` (device, dtype);
    in the ``fast`` precision by FAST_PLAN (:func:`fast_placement`)."""
    from ..hub import load_weights, read_json
    from .optimize import place

    placement, _ = fast_placement(placement)
    config = Wav2Vec2Config.from_hf(read_json(folder, "config.json"))
    keep = ()
    if placement.precision == "fast":  # the plan, the head's own part, and the layer-sum weights if any
        keep = FAST_PLAN.keep_fp32 + FAST_PLAN_KEEP[head] + (
            ("layer_weights",) if head == "classification" and config.use_weighted_layer_sum else ())
    model = place(build(config, load_weights(folder), head), placement, keep_fp32=keep)
    return optimize_for_inference(model, placement.device, placement.dtype)
