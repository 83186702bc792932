"""The load-time optimisations of engine.models.optimize, each tested once: packed linear layers
(plain, + GELU, + residual add) against F.linear, the load-time check and its fallback, BatchNorm
and weight-norm folding."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from engine.models import optimize
from engine.models.optimize import (PackedLinear, can_pack, fold_batchnorm, fold_weight_norm, linear_add,
                                    linear_gelu, pack_linears, packing_is_exact)

CPU = torch.device("cpu")
needs_onednn = pytest.mark.skipif(not can_pack(CPU, torch.float32), reason="no oneDNN packed linear in this build")


def _linear(d_in: int = 64, d_out: int = 96, seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(d_in, d_out).eval().requires_grad_(False)


def _x(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _close(got: torch.Tensor, want: torch.Tensor) -> None:
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5 * float(want.abs().max()))


class _MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(2)
        self.up, self.down = nn.Linear(32, 128), nn.Linear(128, 32)
        self.blocks = nn.ModuleList([nn.Linear(32, 32, bias=False)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = linear_add(self.down, linear_gelu(self.up, x), x)
        return self.blocks[0](x)


# ----------------------------------------------------------------------------- packed linear layers

@needs_onednn
@pytest.mark.parametrize("rows", [1, 7, 300])
def test_packed_linear_equals_f_linear(rows):
    linear = _linear()
    x = _x(rows, 64)
    with torch.inference_mode():
        for packed_for in (rows, 256):  # the row count it was packed for, and another
            _close(PackedLinear(linear, packed_for)(x), F.linear(x, linear.weight, linear.bias))


@needs_onednn
def test_fused_variants_equal_the_unfused_composition():
    linear = _linear()
    packed = PackedLinear(linear, 197)
    x, residual = _x(2, 197, 64), _x(2, 197, 96, seed=2)
    kept = residual.clone()
    with torch.inference_mode():
        plain = F.linear(x, linear.weight, linear.bias)  # (2, 197, 96)
        _close(packed.gelu(x), F.gelu(plain))
        _close(packed.gelu(x, "tanh"), F.gelu(plain, approximate="tanh"))
        _close(packed.add(x, residual), residual + plain)
        assert torch.equal(residual, kept)  # the residual is read, not overwritten
        # the helpers models call: fused when the layer is packed, the two steps when it is plain
        for layer in (packed, linear):
            _close(linear_gelu(layer, x), F.gelu(plain))
            _close(linear_add(layer, x, residual), residual + plain)
        _close(packed.add(x, residual.transpose(0, 1).contiguous().transpose(0, 1)), residual + plain)  # strided


@needs_onednn
def test_pack_linears_replaces_every_linear_and_keeps_the_output():
    model = _MLP().eval().requires_grad_(False)
    x = _x(5, 32)
    with torch.inference_mode():
        want = model(x)
        assert pack_linears(model, device=CPU, dtype=torch.float32, rows=5) == 3
        assert not [m for m in model.modules() if type(m) is nn.Linear]
        assert isinstance(model.blocks[0], PackedLinear) and model.blocks[0].bias is None
        _close(model(x), want)


def test_pack_linears_leaves_other_devices_and_dtypes_alone():
    model = _MLP().double()
    assert pack_linears(model, device=CPU, dtype=torch.float64) == 0
    assert pack_linears(model, device=torch.device("cuda"), dtype=torch.float32) == 0
    assert all(type(m) is nn.Linear for m in (model.up, model.down, model.blocks[0]))


class _WrongOp:
    """Stands in for torch.ops.mkldnn._linear_pointwise: off by one, or raising like a build without it."""

    def __init__(self, real, fail: str) -> None:
        self.real, self.fail = real, fail

    def _result(self, y: torch.Tensor) -> torch.Tensor:
        if self.fail == "raise":
            raise RuntimeError("mkldnn linear is not supported on this build")
        return y + 1.0

    def __call__(self, *args):
        return self._result(self.real(*args))

    def binary(self, *args):
        return self._result(self.real.binary(*args))


@needs_onednn
@pytest.mark.parametrize("fail", ["wrong values", "raise"])
def test_pack_linears_falls_back_to_plain_layers_when_the_check_fails(fail, monkeypatch, caplog):
    monkeypatch.setattr(optimize, "_linear_pointwise", _WrongOp(optimize._linear_pointwise, fail))
    model = _MLP().eval().requires_grad_(False)
    x = _x(5, 32)
    with torch.inference_mode():
        want = model(x)
        with caplog.at_level("INFO", logger="engine.models.optimize"):
            assert not packing_is_exact(model.up)
            assert pack_linears(model, device=CPU, dtype=torch.float32) == 0
        assert all(type(m) is nn.Linear for m in (model.up, model.down, model.blocks[0]))
        assert torch.equal(model(x), want)
    assert "using plain linear layers" in caplog.text


@needs_onednn
def test_only_the_gelu_wrong_is_caught_too(monkeypatch):
    real = optimize._linear_pointwise

    class GeluWrong(_WrongOp):
        def __call__(self, x, w, b, attr, scalars, algorithm):
            y = real(x, w, b, attr, scalars, algorithm)
            return y * 1.01 if attr == "gelu" else y

    monkeypatch.setattr(optimize, "_linear_pointwise", GeluWrong(real, "wrong values"))
    assert not packing_is_exact(_linear())


# ----------------------------------------------------------------------------- folding constants

def test_fold_batchnorm_equals_conv_then_batchnorm():
    torch.manual_seed(0)
    for bias in (True, False):
        conv = nn.Conv2d(3, 8, 3, padding=1, bias=bias).eval()
        bn = nn.BatchNorm2d(8, eps=1e-5).eval()
        with torch.no_grad():
            bn.weight.uniform_(0.5, 2.0)
            bn.bias.normal_()
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.1, 3.0)
        weight, b = fold_batchnorm(conv.weight, conv.bias, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                                   bn.eps)
        x = _x(2, 3, 10, 12)
        with torch.inference_mode():
            _close(F.conv2d(x, weight, b, padding=1), bn(conv(x)))


def test_fold_weight_norm_is_g_v_over_norm_of_v():
    torch.manual_seed(0)
    v = torch.randn(16, 4, 5)  # wav2vec2's positional conv: (out, in / groups, kernel), norm over all but dim 2
    g = torch.rand(1, 1, 5) + 0.5
    folded = fold_weight_norm(g, v, dim=2)
    for k in range(5):
        torch.testing.assert_close(folded[:, :, k], g[0, 0, k] * v[:, :, k] / v[:, :, k].norm())
    conv = nn.utils.parametrizations.weight_norm(nn.Conv1d(64, 16, 5, groups=16), dim=2)
    with torch.no_grad():
        conv.parametrizations.weight.original0.copy_(g)
        conv.parametrizations.weight.original1.copy_(v)
        torch.testing.assert_close(folded, conv.weight)


def test_row_buckets_are_few_and_close_above():
    """Packed GEMMs run at bucketed row counts (one oneDNN primitive per bucket, not per length):
    exact up to 32 rows, then at most 12.5 % more rows, and few distinct counts up to 4096 rows."""
    from engine.models.optimize import row_bucket
    buckets = {row_bucket(m) for m in range(1, 4097)}
    assert len(buckets) <= 32 + 8 * 7
    for m in range(1, 4097):
        b = row_bucket(m)
        assert m <= b <= m * 1.125 and (m > 32 or b == m)
        assert row_bucket(b) == b


@needs_onednn
@pytest.mark.parametrize("shape", [(33,), (2, 50), (3, 7, 13), (257,)])
def test_packed_linear_on_padded_rows_equals_f_linear(shape):
    """Row counts that are not a bucket are padded with zero rows and cut back: the rows kept are
    those of F.linear, in the input's own leading shape (plain, + GELU, + residual add)."""
    lin = _linear()
    packed = PackedLinear(lin, 256)
    g = torch.Generator().manual_seed(len(shape))
    x = torch.randn(*shape, 64, generator=g)
    r = torch.randn(*shape, 96, generator=g)
    with torch.inference_mode():
        plain = F.linear(x, lin.weight, lin.bias)
        for got, want in ((packed(x), plain), (packed.gelu(x), F.gelu(plain)), (packed.add(x, r), r + plain)):
            assert got.shape == want.shape
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@needs_onednn
def test_padding_read_in_place_from_a_roomy_storage_leaves_the_rows_kept_exact():
    """An input that is the first M rows of a longer storage (a packed layer's padded output, cut
    back) is padded as a view of that storage: the rows past M (here NaN and inf, the worst a
    scratch row can hold) only reach output rows that are dropped."""
    from engine.models.optimize import _pad_rows, row_bucket
    lin = _linear()
    packed = PackedLinear(lin, 256)
    g = torch.Generator().manual_seed(3)
    m = 249
    roomy = torch.randn(row_bucket(m), 64, generator=g)
    roomy[m:] = float("nan")
    roomy[-1] = float("inf")
    x = roomy[:m]
    padded, lead = _pad_rows(x)
    assert padded.data_ptr() == roomy.data_ptr() and padded.shape == roomy.shape  # a view, not a copy
    r = torch.randn(m, 96, generator=g)
    with torch.inference_mode():
        plain = F.linear(x, lin.weight, lin.bias)
        for got, want in ((packed(x), plain), (packed.gelu(x), F.gelu(plain)), (packed.add(x, r), r + plain)):
            assert got.shape == want.shape and torch.isfinite(got).all()
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
