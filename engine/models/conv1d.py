"""Frozen 1-D convolutions without padding, channels last, as matrix products (the CPU paths of
wav2vec2's feature encoder; any model's strided 1-D convolutions):

- :func:`conv1d_gemm`: K accumulated GEMMs (torch's, MKL's) on strided views of the input;
- :class:`PackedConv1d`: oneDNN GEMMs on weights packed once (optimize.PackedLinear), the input read
  as rows of S frames, at bucketed row counts (optimize.row_bucket).

Both equal F.conv1d up to float rounding (tests/test_wav2vec2.py)."""
from __future__ import annotations

import torch
from torch import nn

from .optimize import PackedLinear, make_linear, row_bucket

#: activation name -> F.gelu's ``approximate``, for the GELUs a packed GEMM fuses (PackedConv1d with one GEMM,
#: optimize.linear_gelu)
FUSED_GELUS = {"gelu": "none", "gelu_new": "tanh", "gelu_pytorch_tanh": "tanh"}


def conv1d_gemm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, stride: int) -> torch.Tensor:
    """A 1-D convolution without padding, channels last, as K accumulated GEMMs on strided views.

    (B, L, C_in), weight (C_out, C_in, K) -> (B, L', C_out), L' = (L - K) // stride + 1.
    Why not ``F.conv1d``: on the CPU oneDNN builds (and keeps, up to 1024 in its cache) a primitive
    per input length, with its own buffers; speech gives it a new length with nearly every partial
    result, and the app's memory grew by ~20 MB per new length until the cache was full (measured:
    45 lengths, 1.5 -> 1.9 GB; with this, flat). The GEMMs (the BLAS library's) keep nothing per
    shape, read the input in place (row stride ``stride * C_in``) and cost the same here."""
    b, length, c_in = x.shape
    c_out, _, k = weight.shape
    if length < k:
        raise ValueError(f"a convolution of kernel {k} needs at least {k} frames, got {length}")
    t = (length - k) // stride + 1
    x = x.to(weight.dtype)
    taps = weight.permute(2, 1, 0).contiguous()  # (K, C_in, C_out): one (C_in, C_out) matrix per tap
    out = x.new_empty((b, t, c_out))
    span = stride * (t - 1) + 1
    for i in range(b):
        row = x[i]
        if bias is not None:
            torch.addmm(bias, row[0:span:stride], taps[0], out=out[i])
        else:
            torch.mm(row[0:span:stride], taps[0], out=out[i])
        for j in range(1, k):
            out[i].addmm_(row[j:j + span:stride], taps[j])
    return out


class PackedConv1d(nn.Module):
    """A frozen 1-D convolution without padding (kernel K, stride S), channels last, as oneDNN GEMMs on
    packed weights (CPU): the input (L, C_in) read as rows of S frames, so row t holds frames
    S t .. S t + S - 1 and output frame t needs rows t .. t + ceil(K / S) - 1. One GEMM per row of
    taps, each on a strided view of the input, the first with the bias (and, when it is the only one,
    the GELU) fused in, the others adding onto it (oneDNN's fused add). wav2vec2-base's K=3 / S=2 layers
    take two GEMMs (taps 0-1 over 2 C_in, tap 2 over C_in), its K=2 / S=2 ones one.

    Why: conv1d_gemm's products are torch's (MKL's); on AMD CPUs MKL keeps to its AVX2 kernels, at
    about half oneDNN's rate (measured, AMD EPYC Zen 4, 5 s of audio: layers 1-6 137 -> 82 ms). Row
    counts go through optimize.row_bucket like every packed layer's, so oneDNN keeps a few dozen
    primitives, not one per input length."""

    def __init__(self, conv: nn.Conv1d, activation: str | None = None, rows: int = 1024) -> None:
        super().__init__()
        weight = conv.weight.detach()  # (C_out, C_in, K)
        c_out, c_in, k = weight.shape
        s = conv.stride[0]
        self.kernel, self.stride, self.in_channels, self.out_channels = k, s, c_in, c_out
        #: part r: the taps r S .. r S + S - 1 as one packed (C_out, taps * C_in) matrix, read from the
        #: input's rows starting at row r (its in_features: the width it reads of each row)
        self.parts = nn.ModuleList()
        for r in range(-(-k // s)):
            taps = weight[:, :, r * s:min(k, (r + 1) * s)]  # (C_out, C_in, taps), taps in time order
            matrix = taps.permute(0, 2, 1).reshape(c_out, -1)  # (C_out, taps * C_in): frame-major as the rows
            bias = conv.bias.detach() if (r == 0 and conv.bias is not None) else None
            self.parts.append(PackedLinear(make_linear(matrix, bias), rows))
        #: F.gelu's ``approximate`` fused into a single GEMM, or None (the caller applies its activation)
        self.gelu = FUSED_GELUS.get(activation) if len(self.parts) == 1 else None

    def frames_read(self, rows: int) -> int:
        """Input frames the first GEMM reads in place for ``rows`` rows (see _view); give the input that
        many (FeatureEncoder.rows_plan) and no layer copies its input."""
        return (rows - 1) * self.stride + self.parts[0].in_features // self.in_channels

    def forward(self, x: torch.Tensor, rows: int | None = None) -> torch.Tensor:
        """(B, L, C_in) -> (B, L', C_out), L' = (L - K) // S + 1; GELU applied when ``self.gelu``.

        The GEMMs run on M = row_bucket(max(L', rows)) rows (the rows past L' are scratch: a GEMM's
        output row depends on its own input row only); with B = 1 the result is a view of their
        whole (M, C_out) output, which the next layer then reads in place."""
        b, length, c_in = x.shape
        if length < self.kernel:
            raise ValueError(f"a convolution of kernel {self.kernel} needs at least {self.kernel} frames, got {length}")
        t = (length - self.kernel) // self.stride + 1
        m = row_bucket(max(t, rows or 0))
        x = x.contiguous() if x.stride(-1) != 1 or x.stride(-2) != c_in else x
        outs = []
        for i in range(b):
            y = None
            for r, part in enumerate(self.parts):
                width = part.in_features
                rows_r = self._view(x, i, r, width, m)
                if y is None:  # the first taps, with the bias
                    y = part.gemm(rows_r if rows_r is not None else self._copied(x, i, r, width, t, m), self.gelu)
                elif rows_r is not None:  # fused: y + rows_r W_r^T
                    y = part.gemm_add(rows_r, y)
                elif m - r >= t and (early := self._view(x, i, 0, width, m)) is not None:
                    # the rows run past the input's storage (its last S r frames are scratch): the
                    # same product on the rows r earlier, added r rows up, in place
                    y[:m - r] += part.gemm(early)[r:]
                else:
                    y = part.gemm_add(self._copied(x, i, r, width, t, m), y)
            outs.append(y)  # (M, C_out)
        if b == 1:
            return outs[0][:t][None]
        return torch.stack([y[:t] for y in outs])

    def _rows(self, x: torch.Tensor, i: int, r: int) -> tuple[int, int]:
        """(storage offset, stride) of batch item ``i``'s rows of S frames from row ``r`` on."""
        step = self.stride * self.in_channels
        return x.storage_offset() + i * x.stride(0) + r * step, step

    def _view(self, x: torch.Tensor, i: int, r: int, width: int, m: int) -> torch.Tensor | None:
        """(M, width) rows of batch item ``i`` starting at frame ``r * S``, row stride S frames, as a
        view of x's storage; None when the storage ends before the last of them."""
        start, step = self._rows(x, i, r)
        if start + (m - 1) * step + width > x.untyped_storage().nbytes() // x.element_size():
            return None
        return x.as_strided((m, width), (step, 1), start)

    def _copied(self, x: torch.Tensor, i: int, r: int, width: int, t: int, m: int) -> torch.Tensor:
        """The same rows as _view, the ``t`` real ones copied above zeros (when x is too short)."""
        start, step = self._rows(x, i, r)
        rows = x.new_empty((m, width))
        rows[t:] = 0
        rows[:t] = x.as_strided((t, width), (step, 1), start)
        return rows

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel}, stride={self.stride}, "
                f"{len(self.parts)} packed GEMMs")


class SpectralConv1d(nn.Module):
    """A frozen wide 1-D convolution with zero padding (stride 1, any groups), channels last, as
    products in the frequency domain: overlap-save with a fixed FFT length N. The input, padded, is
    cut into blocks of N frames that overlap by K - 1; each block's spectrum (N/2 + 1 frequencies) is
    multiplied, per group and frequency, by the kernel's spectrum (a C_out/G x C_in/G complex matrix,
    one batched matrix product for all blocks and utterances), and of each block's inverse transform
    the last N - K + 1 frames are the convolution's output there.

    Why: wav2vec2's positional convolution (768 channels, 16 groups, kernel 128) costs 2.4 GFLOP for
    5 s of audio, which oneDNN's grouped convolution runs at ~150 GFLOP/s (15-20 ms); in the
    frequency domain it is ~80 MFLOP, bound by reading the kernel's spectrum once (38 MB for N=256,
    twice the kernel itself). Equal to F.conv1d up to float rounding (~1e-6 relative)."""

    def __init__(self, conv: nn.Conv1d, n_fft: int = 256) -> None:
        super().__init__()
        weight = conv.weight.detach().float()  # (C_out, C_in / G, K)
        c_out, c_group, k = weight.shape
        if (conv.stride[0] != 1 or conv.dilation[0] != 1 or not isinstance(conv.padding, tuple)
                or conv.padding_mode != "zeros" or n_fft < k):
            raise ValueError("SpectralConv1d takes a stride-1, undilated convolution with explicit zero padding "
                             f"and a kernel no longer than the FFT ({n_fft})")
        g = conv.groups
        self.kernel, self.padding, self.groups, self.n_fft = k, conv.padding[0], g, n_fft
        self.in_channels, self.out_channels = c_group * g, c_out
        #: the kernel's spectrum, (G, N/2 + 1, C_in/G, C_out/G): flipped (a correlation as a convolution)
        spectrum = torch.fft.rfft(weight.flip(-1), n=n_fft)  # (C_out, C_in / G, F)
        spectrum = spectrum.view(g, c_out // g, c_group, -1).permute(0, 3, 2, 1).contiguous()
        self.register_buffer("spectrum", spectrum)
        bias = conv.bias.detach().float() if conv.bias is not None else torch.zeros(c_out)
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, C_in) float32 -> (B, T', C_out), T' = T + 2 padding - K + 1 (as the convolution's)."""
        b, t, c_in = x.shape
        k, p, n, g = self.kernel, self.padding, self.n_fft, self.groups
        t_out = t + 2 * p - k + 1
        if t_out < 1:
            raise ValueError(f"a convolution of kernel {k} with padding {p} needs at least {k - 2 * p} frames, got {t}")
        step = n - k + 1  # output frames per block
        blocks = -(-t_out // step)
        padded = x.new_zeros((b, (blocks - 1) * step + n, c_in))
        padded[:, p:p + t] = x
        spectra = torch.fft.rfft(padded.unfold(1, n, step), dim=-1)  # (B, blocks, C_in, F)
        f = spectra.shape[-1]
        spectra = spectra.view(b * blocks, g, c_in // g, f).permute(1, 3, 0, 2)  # (G, F, B blocks, C_in / G)
        out = torch.matmul(spectra, self.spectrum)  # (G, F, B blocks, C_out / G)
        out = out.permute(2, 0, 3, 1).reshape(b, blocks, self.out_channels, f)
        frames = torch.fft.irfft(out, n=n, dim=-1)[..., k - 1:]  # (B, blocks, C_out, step)
        frames = frames.transpose(2, 3).reshape(b, blocks * step, self.out_channels)
        return frames[:, :t_out] + self.bias

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel}, padding={self.padding}, "
                f"groups={self.groups}, n_fft={self.n_fft}")
