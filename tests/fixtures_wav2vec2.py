"""Small random-weight Wav2Vec2 checkpoints built with transformers (the oracle), once per session,
in the real hub layouts, plus a spoken sentence made with espeak-ng (``speech_wav``).

Checkpoint folders hold ``config.json``, ``model.safetensors``, ``vocab.json``,
``tokenizer_config.json`` and ``preprocessor_config.json`` (or only ``processor_config.json``,
as transformers 5's processor writes it).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from tests.conftest import unavailable

#: the character vocabulary of facebook/wav2vec2-base-960h
VOCAB = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3, "|": 4, "E": 5, "T": 6, "A": 7, "O": 8, "N": 9, "I": 10,
         "H": 11, "S": 12, "R": 13, "D": 14, "L": 15, "U": 16, "M": 17, "W": 18, "C": 19, "F": 20, "G": 21,
         "Y": 22, "P": 23, "B": 24, "V": 25, "K": 26, "'": 27, "X": 28, "J": 29, "Q": 30, "Z": 31}
KS_LABELS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_silence_", "_unknown_"]
SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
            conv_dim=(16,) * 7, conv_kernel=(10, 3, 3, 3, 3, 2, 2), conv_stride=(5, 2, 2, 2, 2, 2, 2),
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4, vocab_size=len(VOCAB),
            hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
            layerdrop=0.0, mask_time_prob=0.0)
LAYOUTS = {
    "base": dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False),
    "large": dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True),
}


def _save_side_files(folder: Path, return_attention_mask: bool, processor_only: bool = False) -> None:
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2Processor

    (folder / "vocab.json").write_text(json.dumps(VOCAB))
    tok = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), unk_token="<unk>", pad_token="<pad>",
                               word_delimiter_token="|", do_lower_case=False)
    fe = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                  return_attention_mask=return_attention_mask)
    if processor_only:
        Wav2Vec2Processor(feature_extractor=fe, tokenizer=tok).save_pretrained(folder)
        (folder / "preprocessor_config.json").unlink(missing_ok=True)
    else:
        tok.save_pretrained(folder)
        fe.save_pretrained(folder)
        if not (folder / "preprocessor_config.json").is_file():  # hub name
            shutil.copy(folder / "processor_config.json", folder / "preprocessor_config.json")


def _build_ctc(folder: Path, layout: str, seed: int, processor_only: bool = False) -> Path:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    torch.manual_seed(seed)
    cfg = Wav2Vec2Config(**TINY, **LAYOUTS[layout], pad_token_id=0)
    model = Wav2Vec2ForCTC(cfg).eval()
    with torch.no_grad():  # make the logits decisive and varied: several tokens win, blanks too
        model.lm_head.weight.normal_(0.0, 1.0)
        model.lm_head.bias.normal_(0.0, 1.0)
        model.lm_head.bias[0] += 1.0
    model.save_pretrained(folder)
    _save_side_files(folder, return_attention_mask=layout == "large", processor_only=processor_only)
    return folder


def _build_cls(folder: Path, weighted: bool, seed: int) -> Path:
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    torch.manual_seed(seed)
    cfg = Wav2Vec2Config(**TINY, **LAYOUTS["base"], use_weighted_layer_sum=weighted, classifier_proj_size=24,
                         id2label=dict(enumerate(KS_LABELS)), label2id={l: i for i, l in enumerate(KS_LABELS)})
    model = Wav2Vec2ForSequenceClassification(cfg).eval()
    with torch.no_grad():
        model.classifier.weight.normal_(0.0, 1.0)
        if weighted:
            model.layer_weights.copy_(torch.randn(cfg.num_hidden_layers + 1))
    model.save_pretrained(folder)
    _save_side_files(folder, return_attention_mask=False)
    return folder


def _rewrite(src: Path, dst: Path, fn) -> Path:
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    state = fn(load_file(str(src / "model.safetensors")))
    save_file({k: v.contiguous() for k, v in state.items()}, str(dst / "model.safetensors"), metadata={"format": "pt"})
    return dst


def _legacy_weight_norm(state):
    out = {}
    for k, v in state.items():
        k = k.replace("parametrizations.weight.original0", "weight_g").replace("parametrizations.weight.original1", "weight_v")
        out[k] = v
    return out


def _with_pretraining_parts(state):
    import torch

    g = torch.Generator().manual_seed(0)
    out = dict(state)
    out["quantizer.codevectors"] = torch.randn(1, 640, 16, generator=g)
    out["quantizer.weight_proj.weight"] = torch.randn(640, 16, generator=g)
    out["quantizer.weight_proj.bias"] = torch.zeros(640)
    out["project_q.weight"] = torch.randn(8, 16, generator=g)
    out["project_q.bias"] = torch.zeros(8)
    out["project_hid.weight"] = torch.randn(8, 32, generator=g)
    out["project_hid.bias"] = torch.zeros(8)
    out["wav2vec2.masked_spec_embed"] = torch.rand(32, generator=g)
    return out


@pytest.fixture(scope="session")
def w2v_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("wav2vec2")


@pytest.fixture(scope="session")
def w2v_base_ctc(w2v_root) -> Path:
    """base layout (group-norm feature encoder, post-LN), CTC head, no attention mask"""
    return _build_ctc(w2v_root / "base-ctc", "base", seed=0)


@pytest.fixture(scope="session")
def w2v_large_ctc(w2v_root) -> Path:
    """large-lv60 layout (layer-norm feature encoder, stable layer norm), CTC, attention mask;
    only processor_config.json (as transformers 5 writes it)"""
    return _build_ctc(w2v_root / "large-ctc", "large", seed=1, processor_only=True)


@pytest.fixture(scope="session")
def w2v_legacy_ctc(w2v_root, w2v_base_ctc) -> Path:
    """base CTC rewritten to the legacy weight_g / weight_v positional-conv keys"""
    return _rewrite(w2v_base_ctc, w2v_root / "legacy-ctc", _legacy_weight_norm)


@pytest.fixture(scope="session")
def w2v_pretraining_ctc(w2v_root, w2v_large_ctc) -> Path:
    """large CTC with pre-training parts (quantizer, project_q, project_hid, masked_spec_embed)"""
    return _rewrite(w2v_large_ctc, w2v_root / "pretraining-ctc", _with_pretraining_parts)


@pytest.fixture(scope="session")
def w2v_cls_weighted(w2v_root) -> Path:
    """base classification, use_weighted_layer_sum true (as superb/wav2vec2-base-superb-ks)"""
    return _build_cls(w2v_root / "cls-weighted", weighted=True, seed=2)


@pytest.fixture(scope="session")
def w2v_cls_plain(w2v_root) -> Path:
    """base classification, use_weighted_layer_sum false"""
    return _build_cls(w2v_root / "cls-plain", weighted=False, seed=3)


def make_speech_wav(path: Path, text: str = SENTENCE) -> Path:
    """A spoken sentence (espeak-ng, 22050 Hz mono 16-bit)."""
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True, timeout=60)
    return path


@pytest.fixture(scope="session")
def speech_wav(tmp_path_factory) -> Path:
    """Path to a WAV of a real spoken English sentence (espeak-ng, 22050 Hz); the sentence is SENTENCE."""
    if shutil.which("espeak-ng") is None:
        unavailable("espeak-ng is not installed (Debian: espeak-ng)")
    return make_speech_wav(tmp_path_factory.mktemp("speech") / "sentence.wav")


@pytest.fixture(scope="session")
def speech_wav_16k(speech_wav, tmp_path_factory) -> Path:
    """``speech_wav`` resampled to 16 kHz (sox when available, else scipy)."""
    out = tmp_path_factory.mktemp("speech16k") / "sentence_16k.wav"
    if shutil.which("sox"):
        subprocess.run(["sox", str(speech_wav), "-r", "16000", str(out)], check=True, capture_output=True, timeout=60)
    else:
        import soundfile as sf
        from scipy.signal import resample_poly
        x, sr = sf.read(str(speech_wav), dtype="float32")
        sf.write(str(out), resample_poly(x, 16000, sr).astype(np.float32), 16000)
    return out
