"""Our Wav2Vec2 against transformers on small random-weight checkpoints (fp32, atol 1e-4)."""
from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from engine.errors import CheckpointError
from engine.hub import load_weights, read_json
from engine.models import conv1d
from engine.models import wav2vec2 as w2v


def _wave(n: int = 16000 + 123, seed: int = 0) -> torch.Tensor:
    g = np.random.default_rng(seed)
    x = g.standard_normal(n).astype(np.float32)
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    return torch.from_numpy(x)[None]


def _ours(folder, head):
    cfg = w2v.Wav2Vec2Config.from_hf(read_json(folder, "config.json"))
    return w2v.build(cfg, load_weights(folder), head)


def _theirs(folder, head):
    from transformers import Wav2Vec2ForCTC, Wav2Vec2ForSequenceClassification
    cls = Wav2Vec2ForCTC if head == "ctc" else Wav2Vec2ForSequenceClassification
    return cls.from_pretrained(folder).eval()


@pytest.mark.parametrize("name", ["w2v_base_ctc", "w2v_large_ctc", "w2v_legacy_ctc", "w2v_pretraining_ctc"])
def test_ctc_logits_match_transformers(name, request, caplog):
    folder = request.getfixturevalue(name)
    with caplog.at_level(logging.INFO, logger="engine.models.wav2vec2"):
        ours = _ours(folder, "ctc")
    if name == "w2v_pretraining_ctc":
        assert "pre-training" in caplog.text and "quantizer" in caplog.text
    ref_folder = {"w2v_legacy_ctc": request.getfixturevalue("w2v_base_ctc"),
                  "w2v_pretraining_ctc": request.getfixturevalue("w2v_large_ctc")}.get(name, folder)
    theirs = _theirs(ref_folder, "ctc")
    for n in (16000 + 123, 5000):
        x = _wave(n)
        with torch.inference_mode():
            a = ours(x)
            b = theirs(x).logits
        assert a.shape == b.shape
        assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
        assert a.shape[1] == ours.config.num_frames(n)
    fast = w2v.optimize_for_inference(ours, torch.device("cpu"), torch.float32)  # fused q/k/v, packed GEMMs
    with torch.inference_mode():
        x = _wave(7000)
        assert torch.allclose(fast(x), theirs(x).logits, atol=1e-4)


def test_legacy_keys_really_legacy(w2v_legacy_ctc, w2v_base_ctc):
    keys = set(load_weights(w2v_legacy_ctc))
    assert any(k.endswith("pos_conv_embed.conv.weight_g") for k in keys)
    assert not any("parametrizations" in k for k in keys)
    assert any("parametrizations.weight.original0" in k for k in load_weights(w2v_base_ctc))


@pytest.mark.parametrize("name", ["w2v_cls_weighted", "w2v_cls_plain"])
def test_classification_logits_match_transformers(name, request):
    folder = request.getfixturevalue(name)
    ours, theirs = _ours(folder, "classification"), _theirs(folder, "classification")
    assert ours.config.use_weighted_layer_sum == (name == "w2v_cls_weighted")
    x = _wave(12000, seed=3)
    with torch.inference_mode():
        a, b = ours(x), theirs(x).logits
        assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
        fast = w2v.optimize_for_inference(ours, torch.device("cpu"), torch.float32)
        assert torch.allclose(fast(x), b, atol=1e-4)


def test_attention_mask_path_matches_transformers(w2v_large_ctc):
    """Padded batch with a frame mask (large layout) gives transformers' logits on the valid frames."""
    ours, theirs = _ours(w2v_large_ctc, "ctc"), _theirs(w2v_large_ctc, "ctc")
    x = torch.cat([_wave(8000), _wave(8000, seed=1)])
    x[1, 5000:] = 0.0
    am = torch.ones(2, 8000, dtype=torch.long)
    am[1, 5000:] = 0
    n = ours.config.num_frames(8000)
    valid = torch.arange(n)[None] < torch.tensor([n, ours.config.num_frames(5000)])[:, None]
    with torch.inference_mode():
        a = ours(x, valid)
        b = theirs(x, attention_mask=am).logits
    assert torch.allclose(a[0], b[0], atol=1e-4)
    k = ours.config.num_frames(5000)
    assert torch.allclose(a[1, :k], b[1, :k], atol=1e-4)


def test_config_errors_and_unknown_keys(w2v_base_ctc):
    cfg = read_json(w2v_base_ctc, "config.json")
    c = w2v.Wav2Vec2Config.from_hf({**cfg, "some_future_key": 1})
    assert c.inputs_to_logits_ratio == 320
    bad = dict(cfg)
    del bad["hidden_size"]
    with pytest.raises(CheckpointError, match="hidden_size"):
        w2v.Wav2Vec2Config.from_hf(bad)


def test_wrong_weights_are_a_clear_error(w2v_base_ctc, w2v_cls_plain):
    cfg = w2v.Wav2Vec2Config.from_hf(read_json(w2v_base_ctc, "config.json"))
    state = load_weights(w2v_base_ctc)
    state.pop("lm_head.bias")
    with pytest.raises(CheckpointError, match="missing keys: lm_head.bias"):
        w2v.build(cfg, state, "ctc")
    with pytest.raises(CheckpointError, match="unexpected keys"):
        w2v.build(cfg, {**load_weights(w2v_base_ctc), **{"projector.weight": torch.zeros(1)}}, "ctc")


def test_remap_is_pure(w2v_legacy_ctc):
    state = load_weights(w2v_legacy_ctc)
    before = set(state)
    out = w2v.remap(state)
    assert set(state) == before
    assert "wav2vec2.encoder.pos_conv_embed.conv.weight" in out
    assert not any(k.endswith(("weight_g", "weight_v")) for k in out)
    json.dumps(sorted(out))


def test_weights_of_the_wrong_size_are_a_checkpoint_error(w2v_base_ctc):
    """A config that does not fit the weights (here: a CTC head for another vocabulary size) is
    reported as a CheckpointError naming the mis-sized tensor, not a raw RuntimeError."""
    from engine.errors import CheckpointError
    from engine.hub import load_weights, read_json
    from engine.models import wav2vec2
    cfg = wav2vec2.Wav2Vec2Config.from_hf(dict(read_json(w2v_base_ctc, "config.json"), vocab_size=7))
    with pytest.raises(CheckpointError, match="size mismatch.*lm_head"):
        wav2vec2.build(cfg, load_weights(w2v_base_ctc), "ctc")


@pytest.mark.parametrize("batch,length,c_in,c_out,k,stride,bias", [
    (1, 50, 8, 6, 3, 2, False), (2, 51, 8, 6, 3, 2, True), (1, 9, 4, 5, 2, 2, True), (2, 3, 3, 4, 3, 1, False),
    (1, 40, 1, 7, 10, 5, True), (3, 17, 5, 5, 4, 3, False)])
def test_feature_encoder_convolution_as_gemms_equals_conv1d(batch, length, c_in, c_out, k, stride, bias):
    """The feature encoder's convolutions run as strided GEMMs (no per-length oneDNN primitive):
    equal to F.conv1d on every shape, odd lengths and the shortest input included."""
    g = torch.Generator().manual_seed(length)
    x = torch.randn(batch, c_in, length, generator=g)
    w = torch.randn(c_out, c_in, k, generator=g)
    b = torch.randn(c_out, generator=g) if bias else None
    want = torch.nn.functional.conv1d(x, w, b, stride=stride)  # (B, C_out, L')
    got = conv1d.conv1d_gemm(x.transpose(1, 2).contiguous(), w, b, stride)  # channels last
    assert got.shape == (batch, want.shape[2], c_out)
    torch.testing.assert_close(got, want.transpose(1, 2), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="at least"):
        conv1d.conv1d_gemm(x[:, :, : k - 1].transpose(1, 2), w, b, stride)


@pytest.mark.parametrize("batch,length,c_in,c_out,k,stride,bias", [
    (1, 50, 8, 6, 3, 2, False), (2, 51, 8, 6, 3, 2, True), (1, 9, 4, 5, 2, 2, True), (1, 700, 8, 6, 3, 2, True),
    (1, 3, 3, 4, 3, 1, False), (3, 17, 5, 5, 4, 3, False), (1, 64, 4, 3, 5, 2, True), (1, 33, 4, 3, 2, 3, True),
    (1, 4100, 4, 6, 3, 2, False)])
def test_packed_convolution_equals_conv1d(batch, length, c_in, c_out, k, stride, bias):
    """PackedConv1d (oneDNN GEMMs on packed weights, taps grouped by rows of S frames) equals F.conv1d:
    inputs read in place, too short for the last taps' rows (added from earlier rows, or copied),
    kernels over 1, 2 and 3 rows, a kernel shorter than its stride, and batches."""
    from engine.models.optimize import can_pack
    if not can_pack("cpu", torch.float32):
        pytest.skip("oneDNN packed linears are not in this torch build")
    g = torch.Generator().manual_seed(length)
    x = torch.randn(batch, c_in, length, generator=g)
    conv = torch.nn.Conv1d(c_in, c_out, k, stride=stride, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        if bias:
            conv.bias.copy_(torch.randn(c_out, generator=g))
    packed = conv1d.PackedConv1d(conv)
    with torch.inference_mode():
        want = conv(x).transpose(1, 2)  # (B, L', C_out)
        got = packed(x.transpose(1, 2).contiguous())
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
        # an input whose storage holds extra rows (a packed layer's output): read in place, same result
        roomy = torch.randn(batch, length + 40, c_in, generator=g)
        roomy[:, :length] = x.transpose(1, 2)
        torch.testing.assert_close(packed(roomy[:, :length]), want, atol=1e-4, rtol=1e-4)
        with pytest.raises(ValueError, match="at least"):
            packed(x[:, :, : k - 1].transpose(1, 2).contiguous())


@pytest.mark.parametrize("batch,length,channels,groups,k,padding,n_fft,bias", [
    (1, 249, 32, 4, 128, 64, 256, True),  # wav2vec2's shape (narrower): two blocks
    (2, 1500, 16, 16, 128, 64, 256, True),  # 30 s of frames, a batch: 12 blocks
    (1, 1, 8, 2, 128, 64, 256, False),  # one frame: the output is the padding's two
    (1, 129, 8, 1, 128, 64, 256, True),  # exactly one block's worth of output frames, no groups
    (1, 40, 6, 3, 5, 2, 8, True),  # an odd kernel, a short FFT: many blocks
    (3, 17, 4, 2, 16, 0, 16, True)])  # no padding, the kernel as long as the FFT: one frame a block
def test_spectral_convolution_equals_conv1d(batch, length, channels, groups, k, padding, n_fft, bias):
    """SpectralConv1d (overlap-save in the frequency domain) equals F.conv1d with the convolution's
    zero padding: one block or many, groups or none, odd and even kernels, batches."""
    g = torch.Generator().manual_seed(length + k)
    conv = torch.nn.Conv1d(channels, channels, k, padding=padding, groups=groups, bias=bias)
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g))
        if bias:
            conv.bias.copy_(torch.randn(channels, generator=g))
    x = torch.randn(batch, channels, length, generator=g)
    spectral = conv1d.SpectralConv1d(conv, n_fft=n_fft)
    with torch.inference_mode():
        want = conv(x).transpose(1, 2)  # (B, T', C)
        got = spectral(x.transpose(1, 2))
    assert got.shape == want.shape
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    if k - 2 * padding > 1:
        with pytest.raises(ValueError, match="at least"):
            spectral(x[:, :, : k - 2 * padding - 1].transpose(1, 2))
    with pytest.raises(ValueError, match="stride-1"):
        conv1d.SpectralConv1d(torch.nn.Conv1d(channels, channels, k, stride=2, padding=padding, groups=groups))


def test_positional_convolution_runs_in_the_frequency_domain_on_cpu(w2v_base_ctc):
    """The optimized CPU model's positional convolution is spectral, its weight dropped, and the
    model still equals transformers' (the CTC tests above check the same path on more inputs)."""
    from transformers import Wav2Vec2ForCTC

    from engine.device import resolve
    ours = w2v.from_checkpoint(w2v_base_ctc, resolve("cpu", "exact"), "ctc")
    pos = ours.wav2vec2.encoder.pos_conv_embed
    assert pos.spectral is not None and not hasattr(pos, "conv")
    theirs = Wav2Vec2ForCTC.from_pretrained(w2v_base_ctc).eval()
    x = _wave(16000 + 77)
    with torch.inference_mode():
        torch.testing.assert_close(ours(x), theirs(x).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("samples", [400, 401, 1999, 16000 + 123, 80000, 80321])
def test_packed_feature_encoder_equals_plain(w2v_base_ctc, samples):
    """The feature encoder with its convolutions packed (rows sized by rows_plan so each layer reads
    its input in place, scratch rows past the real frames; the first two layers in chunks, the
    last chunk partly past the utterance) gives the plain encoder's features, batched or not."""
    from engine.models.optimize import can_pack
    if not can_pack("cpu", torch.float32):
        pytest.skip("oneDNN packed linears are not in this torch build")
    cfg = w2v.Wav2Vec2Config.from_hf(dict(read_json(w2v_base_ctc, "config.json"), conv_dim=[32] * 7))
    torch.manual_seed(samples)
    plain = w2v.FeatureEncoder(cfg).eval()
    packed = w2v.FeatureEncoder(cfg).eval()
    packed.load_state_dict(plain.state_dict())
    assert all(layer.pack() for layer in packed.conv_layers[1:]) and packed.conv_layers[0].packed is None
    wave = torch.cat([_wave(samples), _wave(samples, seed=1)])  # a batch of two
    with torch.inference_mode():
        want, got = plain(wave), packed(wave)
        single = packed(wave[1:])
    assert packed._first_two_in_chunks(samples)  # the first two layers in chunks of CHUNK_ROWS
    assert got.shape == want.shape == (2, cfg.num_frames(samples), 32)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(single, want[1:], atol=1e-4, rtol=1e-4)
