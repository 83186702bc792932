"""Load-time optimisations shared by every model, each exact up to float rounding and tested once
(tests/test_optimize.py):

- :func:`place`: a loaded model onto its device and dtype (eval, no gradients, channels-last);
- :func:`fold_batchnorm`, :func:`fold_weight_norm`: constants folded into the layers that use them
  (frozen BatchNorm into the preceding conv, weight norm into a plain weight);
- packed weights on CPU: :func:`pack_linears` replaces a model's nn.Linear layers by
  :class:`PackedLinear` (oneDNN GEMMs on weights packed once, checked by :func:`packing_is_exact`
  first); :func:`linear_gelu` and :func:`linear_add` fuse the GELU or the residual add that
  follows a linear layer into it when it is packed, and are the plain two steps when it is not;
- the ``fast`` precision as a per-model :class:`FastPlan`: :func:`place` keeps the plan's
  numerically sensitive submodules in float32 and casts the rest to the reduced dtype, and
  :func:`cast_at_boundaries` makes every layer take its inputs in its own dtype, so float32 and
  reduced-precision parts can follow each other in one forward pass.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..device import Placement

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------- the fast precision

@dataclass(frozen=True)
class FastPlan:
    """How a model runs in the ``fast`` precision, as measured for it (each model file has one).

    ``keep_fp32``: submodule names (``"decoder"``, ``"backbone.conv1"``; every module under one
    is included) or ``"*suffix"`` patterns (``"*layer_norm"``: every module whose name ends so)
    that stay float32 while the rest runs in the reduced dtype. ``dtypes``: the reduced dtypes
    that keep the model's answers (float16 has 3 more mantissa bits than bfloat16); a device
    whose fast dtype is not among them runs the model ``exact`` instead (engine.device.fast_dtype
    decides, the task logs why). ``why``: the measurement behind the plan, for that notice.
    """

    keep_fp32: tuple[str, ...] = ()
    dtypes: tuple[torch.dtype, ...] = (torch.bfloat16, torch.float16)
    why: str = ""


def _kept(model: nn.Module, patterns: tuple[str, ...]) -> tuple[set[nn.Module], set[str]]:
    """The modules a FastPlan's ``keep_fp32`` names, with everything under them, and the names of
    the parameters it names on their own (``"layer_weights"``)."""
    names = dict(model.named_modules())
    tensors = {n for n, _ in model.named_parameters()} | {n for n, _ in model.named_buffers()}
    roots, own = [], set()
    for pattern in patterns:
        if pattern.startswith("*"):
            roots += [n for n in names if n.endswith(pattern[1:])]
        elif pattern in names:
            roots.append(pattern)
        elif pattern in tensors:
            own.add(pattern)
        else:
            raise ValueError(f"FastPlan names {pattern!r}, which this model does not have")
    return {m for root in roots for m in names[root].modules()}, own


def place(model: nn.Module, placement: Placement, *, channels_last: bool = False,
          keep_fp32: tuple[str, ...] = ()) -> nn.Module:
    """The one way a loaded model reaches its device: eval mode, no gradients, the placement's
    device and dtype, and (for convnets, where it was measured to help) channels-last memory.

    ``keep_fp32`` (a FastPlan's): when the placement's dtype is a reduced one, these submodules
    keep float32 parameters and buffers; call :func:`cast_at_boundaries` once the model's layers
    are final (after packing / fusing) so that each takes its inputs in its own dtype."""
    model = model.eval().requires_grad_(False)
    if not keep_fp32 or placement.dtype == torch.float32:
        model = model.to(device=placement.device, dtype=placement.dtype)
    else:
        model = model.to(device=placement.device, dtype=torch.float32)
        kept, kept_tensors = _kept(model, tuple(keep_fp32))
        for prefix, module in model.named_modules():
            if module in kept:
                continue
            for name, t in list(module.named_parameters(recurse=False)) + list(module.named_buffers(recurse=False)):
                full = f"{prefix}.{name}" if prefix else name
                if t is not None and t.is_floating_point() and full not in kept_tensors:
                    t.data = t.data.to(placement.dtype)
    if channels_last and placement.device.type in ("cpu", "cuda"):
        model = model.to(memory_format=torch.channels_last)
    return model


def module_dtype(module: nn.Module) -> torch.dtype | None:
    """The floating dtype of a module's OWN parameters / buffers (PackedLinear: its packed weight's);
    None when it has none (containers, activations)."""
    if isinstance(module, PackedLinear):
        return module.dtype
    for t in list(module.parameters(recurse=False)) + list(module.buffers(recurse=False)):
        if t.is_floating_point():
            return t.dtype
    return None


def _to(x, dtype: torch.dtype):
    return x.to(dtype) if isinstance(x, torch.Tensor) and x.is_floating_point() and x.dtype != dtype else x


def _cast_inputs(module: nn.Module, args: tuple, kwargs: dict):
    dtype = module._input_dtype
    return tuple(_to(a, dtype) for a in args), {k: _to(v, dtype) for k, v in kwargs.items()}


def cast_at_boundaries(model: nn.Module) -> int:
    """For a model whose layers have different dtypes (a FastPlan's float32 parts among reduced
    ones): make every layer (a leaf module that owns parameters: Linear, Conv, norms) cast its
    floating inputs to its own dtype (a forward pre-hook, a no-op where they already match;
    PackedLinear casts by itself). Outputs are
    left as computed, so a float32 part's result (a norm's, a head's) stays float32 until the next
    reduced layer reads it, and elementwise ops between the two promote to float32. Returns how
    many layers got a cast (0: the model has one dtype and nothing changes). Idempotent."""
    dtypes = {module_dtype(m) for m in model.modules()} - {None}
    hooked = 0
    for module in model.modules():
        old = getattr(module, "_input_cast_hook", None)
        if old is not None:
            old.remove()
            module._input_cast_hook = None
        dtype = module_dtype(module)
        if len(dtypes) < 2 or dtype is None or isinstance(module, PackedLinear) or next(module.children(), None):
            continue
        module._input_dtype = dtype
        module._input_cast_hook = module.register_forward_pre_hook(_cast_inputs, with_kwargs=True)
        hooked += 1
    return hooked


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


# ----------------------------------------------------------------------------- packed weights (CPU)
#
# At batch 1 a Transformer's GEMMs have only a few hundred rows (197 tokens for ViT-B/16 at 224,
# 50 frames a second for wav2vec2, 3136 positions for ConvNeXT's first stage). Plain F.linear then
# re-reads and re-blocks the weight on every call; oneDNN can block ("pack") it once at load, for
# the row count it will mostly see, and then fuse the GELU or the residual add that follows the
# product into the same pass over the output. These ops are private (torch.ops.mkldnn), so each
# model checks them against the plain path once at load (packing_is_exact) and keeps its plain
# nn.Linear layers if they disagree, raise or are missing.

_linear_pointwise = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None)
_reorder_linear_weight = getattr(getattr(torch.ops, "mkldnn", None), "_reorder_linear_weight", None)

#: relative tolerance of the load-time check, per dtype (float32: the rounding of a different
#: summation order; bfloat16: a few units in its last place)
PACKING_TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2}


def can_pack(device: torch.device | str, dtype: torch.dtype) -> bool:
    """Whether oneDNN packed linears exist for ``device`` / ``dtype`` in this torch build (CPU,
    float32 or bfloat16). Whether they are *right* is packing_is_exact's question."""
    return (torch.device(device).type == "cpu" and dtype in PACKING_TOLERANCE
            and _linear_pointwise is not None and _reorder_linear_weight is not None
            and torch.backends.mkldnn.is_available())


def row_bucket(rows: int) -> int:
    """The row count a packed GEMM of ``rows`` rows runs at: ``rows`` itself up to 32, above that
    rounded up to one of 8 steps per power of two (at most 12.5 % more rows).

    Why: oneDNN builds, and keeps in its primitive cache (up to 1024), one primitive per input
    shape, ~0.35 MB each for a 768 x 3072 layer. Inputs whose length changes all the time (live
    speech partials, text as it is typed) would each leave ~50 of those behind: the app's memory
    grew for half an hour. With buckets a model sees a few dozen shapes, all cached after warm-up."""
    if rows <= 32:
        return rows
    step = 1 << (rows.bit_length() - 4)
    return -(-rows // step) * step


def _pad_rows(x: torch.Tensor) -> tuple[torch.Tensor, tuple | None]:
    """(..., n) -> (x as (M', n) with M' = row_bucket(M) rows, the zero padding below, and x's
    leading shape) when its M flattened rows need padding; else (x, None), unchanged. Each output
    row of a GEMM depends on its own input row only: the padding changes nothing in the rows kept.
    When x's storage already holds the M' rows (x is the first M rows of a packed layer's padded
    output: a feed-forward's intermediate), the padding is a view of it (rows read, never
    written; their values, the other layer's scratch, land in output rows that are dropped)."""
    n = x.shape[-1]
    m = x.numel() // n if n else 0
    bucket = row_bucket(m)
    if bucket == m:
        return x, None
    if x.is_contiguous() and x.storage_offset() + bucket * n <= x.untyped_storage().nbytes() // x.element_size():
        return x.as_strided((bucket, n), (n, 1), x.storage_offset()), (x.shape[:-1], m)
    padded = x.new_zeros((bucket, n))
    padded[:m] = x.reshape(m, n)
    return padded, (x.shape[:-1], m)


def _unpad_rows(y: torch.Tensor, lead: tuple | None) -> torch.Tensor:
    """The inverse for the GEMM's (M', out) output: its first M rows, in the input's leading shape."""
    if lead is None:
        return y
    shape, m = lead
    return y[:m].reshape(*shape, y.shape[-1])


class PackedLinear(nn.Module):
    """A frozen nn.Linear whose weight is packed once in oneDNN's blocked layout, tuned for ``rows``
    input rows (any other row count works, a little slower): the product of F.linear, and with a
    GELU (:meth:`gelu`) or a residual add (:meth:`add`) fused in. The plain weight is not kept: the
    packed one is the only copy, so the layer stays on the CPU and dtype it was packed for."""

    def __init__(self, linear: nn.Linear, rows: int = 256) -> None:
        super().__init__()
        self.in_features, self.out_features, self.rows = linear.in_features, linear.out_features, rows
        with torch.no_grad():
            self.packed = _reorder_linear_weight(linear.weight.detach(), rows)  # (out, in), opaque oneDNN layout
        self.bias = None if linear.bias is None else linear.bias.detach()  # (out,)
        self.dtype = linear.weight.dtype  # inputs in another dtype (a FastPlan's boundary) are cast to it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out) = x W^T + b"""
        x, m = _pad_rows(_to(x, self.dtype))
        return _unpad_rows(_linear_pointwise(x, self.packed, self.bias, "none", [], ""), m)

    def gelu(self, x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
        """(..., in) -> (..., out) = GELU(x W^T + b) in one pass (``approximate`` as F.gelu's)."""
        x, m = _pad_rows(_to(x, self.dtype))
        return _unpad_rows(_linear_pointwise(x, self.packed, self.bias, "gelu", [], approximate), m)

    def add(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """(..., in), residual (..., out) -> residual + x W^T + b in one pass (residual unchanged).
        A residual in another dtype (a float32 residual stream around a reduced layer) is added
        after the product, in the wider of the two dtypes."""
        if residual.dtype != self.dtype:
            return residual + self(x)
        x, m = _pad_rows(_to(x, self.dtype))
        residual, _ = _pad_rows(residual.contiguous())
        return _unpad_rows(_linear_pointwise.binary(x, residual, self.packed, self.bias, "add"), m)

    def gemm(self, x: torch.Tensor, gelu: str | None = None) -> torch.Tensor:
        """(M, in) rows, as given (a strided view is fine; no row bucketing: the caller keeps M to
        a few sizes) -> (M, out) = x W^T + b, with F.gelu's ``approximate`` = ``gelu`` fused in
        unless None."""
        return _linear_pointwise(x, self.packed, self.bias, "none" if gelu is None else "gelu", [], gelu or "")

    def gemm_add(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        """(M, in) rows as :meth:`gemm`, residual (M, out) contiguous -> residual + x W^T + b."""
        return _linear_pointwise.binary(x, residual, self.packed, self.bias, "add")

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, packed for {self.rows} rows"


def make_linear(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """An nn.Linear holding these (out, in) / (out,) tensors, e.g. several layers' weights concatenated
    into one GEMM at load (built on the meta device: no random init; no gradients)."""
    layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None, device="meta")
    layer.weight = nn.Parameter(weight.detach().contiguous(), requires_grad=False)
    if bias is not None:
        layer.bias = nn.Parameter(bias.detach().contiguous(), requires_grad=False)
    return layer


def linear_gelu(layer: nn.Module, x: torch.Tensor, approximate: str = "none") -> torch.Tensor:
    """GELU(layer(x)) for an nn.Linear or a PackedLinear: one fused oneDNN op when packed."""
    if isinstance(layer, PackedLinear):
        return layer.gelu(x, approximate)
    return F.gelu(layer(x), approximate=approximate)


def linear_add(layer: nn.Module, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
    """residual + layer(x) for an nn.Linear or a PackedLinear: the add fused into the GEMM when packed."""
    if isinstance(layer, PackedLinear):
        return layer.add(x, residual)
    return residual + layer(x)


def packing_is_exact(linear: nn.Linear, rows: int = 256) -> bool:
    """Check PackedLinear (plain, + GELU, + residual add) against F.linear on ``linear``'s own weights,
    on 1, 7 and 300 rows and on a (2, 3, 5, in) input, within PACKING_TOLERANCE of its dtype. False
    when an op disagrees or raises (a build without these oneDNN ops), with the reason logged."""
    p = linear.weight
    if not can_pack(p.device, p.dtype):
        return False
    tol = PACKING_TOLERANCE[p.dtype]
    gen = torch.Generator().manual_seed(0)
    try:
        with torch.inference_mode():
            packed = PackedLinear(linear, rows)
            for shape in ((1,), (7,), (300,), (2, 3, 5)):
                x = torch.randn(*shape, linear.in_features, generator=gen).to(p.dtype)  # (..., in)
                residual = torch.randn(*shape, linear.out_features, generator=gen).to(p.dtype)  # (..., out)
                plain = F.linear(x, linear.weight, linear.bias)  # (..., out)
                for got, want in ((packed(x), plain), (packed.gelu(x), F.gelu(plain)),
                                  (packed.gelu(x, "tanh"), F.gelu(plain, approximate="tanh")),
                                  (packed.add(x, residual), residual + plain)):
                    if got.shape != want.shape or not torch.allclose(
                            got.float(), want.float(), rtol=tol, atol=tol * float(want.abs().max())):
                        log.info("oneDNN packed linear disagrees with F.linear here (%s, rows %s); "
                                 "using plain linear layers", p.dtype, shape)
                        return False
    except (RuntimeError, TypeError) as exc:  # a torch build without these oneDNN ops
        log.info("oneDNN packed linear unavailable (%s); using plain linear layers", exc)
        return False
    return True


def pack_linears(model: nn.Module, *, device: torch.device | str, dtype: torch.dtype, rows: int = 256) -> int:
    """Replace every plain nn.Linear of ``model`` whose weight is in ``dtype`` by a PackedLinear
    tuned for ``rows`` rows, once packing_is_exact passed on the first of them; on another device
    or dtype, or when the check fails, nothing changes. Returns how many layers were packed (0: the
    model is as it was). A model with float32 parts (a FastPlan) is packed once per dtype."""
    if not can_pack(device, dtype):
        return 0
    found = [(parent, name, child) for parent in model.modules()
             for name, child in parent.named_children() if type(child) is nn.Linear and child.weight.dtype == dtype]
    if not found or not packing_is_exact(found[0][2], rows):
        return 0
    for parent, name, child in found:
        setattr(parent, name, PackedLinear(child, rows))
    return len(found)


# ----------------------------------------------------------------------------- decoders (CPU)
#
# A decoding step at batch 1 multiplies a few rows (1 for greedy and sampling, num_beams for beam
# search) by every decoder matrix once: it reads the weights and does little arithmetic, so its
# floor is the memory's read bandwidth. Measured on GPT-2 small's 494 MB of matrices (and on
# distilbart's decoder, the same picture), AMD EPYC Zen 4, 2 threads, each matrix once per pass:
#
#   rows per step                     1        4        16
#   F.linear on (out, in)            31 ms    51 ms    74 ms    (MKL's small-M kernels: 9-16 GB/s)
#   oneDNN packed for 16 rows       9.4 ms   10 ms    17 ms    (~53 GB/s at 1 row, the read bandwidth)
#
# and in bfloat16 13 ms against 4.9 ms. oneDNN packed for 1 row is as slow as F.linear; packed for
# 4, 16 or 256 rows all run 1..16 rows alike, so one packing (DECODE_ROWS) serves greedy, beam search
# and the prompt. A head tied to the token embeddings gets a packed copy of its own (the embedding
# lookup still reads the plain matrix): the head is the largest matrix a step reads.

#: rows a decoder's matrices are packed for (any row count runs; 1..16 rows run alike)
DECODE_ROWS = 16


def pack_for_decoding(model: nn.Module, *, device: torch.device | str, dtype: torch.dtype,
                      tied_head: torch.Tensor | None = None, head_bias: torch.Tensor | None = None
                      ) -> PackedLinear | None:
    """Pack every nn.Linear of a decoder ``model`` for decoding steps (:func:`pack_linears`, DECODE_ROWS
    rows) and return a PackedLinear computing ``x tied_head^T + head_bias`` for a head tied to the token
    embeddings ``tied_head`` (vocab, d) — None when there is none, or where nothing could be packed
    (another device, a dtype oneDNN does not pack, or the check failed): the model is then as it was."""
    if not pack_linears(model, device=device, dtype=dtype, rows=DECODE_ROWS) or tied_head is None:
        return None
    return packed_copy(tied_head, head_bias)


def packed_copy(weight: torch.Tensor, bias: torch.Tensor | None = None, rows: int = DECODE_ROWS
                ) -> PackedLinear | None:
    """A PackedLinear computing ``x weight^T + bias`` from a (out, in) matrix that stays in use as it is
    elsewhere (token embeddings that are also the head): a packed copy, ``rows`` rows (DECODE_ROWS: a
    few rows a call). None where oneDNN does not pack it (see can_pack); call it once packing_is_exact
    passed for the model (pack_linears packed something)."""
    if not can_pack(weight.device, weight.dtype):
        return None
    return PackedLinear(make_linear(weight, None if bias is None else bias.to(weight.dtype)), rows)


def vocab_logits(x: torch.Tensor, packed: nn.Module | None, head: nn.Module | None, table: torch.Tensor,
                 bias: torch.Tensor | None = None) -> torch.Tensor:
    """x (..., d) -> (..., vocab) logits of a language-model head: its packed copy when there is one
    (:func:`packed_copy`, the bias inside), else a separate ``head`` layer (nn.Linear or PackedLinear,
    no bias), else the token embeddings ``table`` (vocab, d) it is tied to; plus ``bias``."""
    if packed is not None:
        return packed(x)
    y = head(x) if head is not None else F.linear(x.to(table.dtype), table)
    return y if bias is None else y + bias.to(y.dtype)
