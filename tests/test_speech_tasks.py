"""Speech recognition and audio classification tasks against transformers; CTC decoding; export."""
from __future__ import annotations

import logging
import re

import numpy as np
import pytest

from engine import (AudioClassificationOptions, CancelToken, Cancelled, InputError, TranscriptionOptions,
                    TranscriptionResult, load_task)
from engine.processors import ctc
from engine.io import export
from engine.io.audio import load_audio
from engine.types.audio import Span
from engine.tasks.speech_recognition import chunk_plan
from tests.fixtures_wav2vec2 import VOCAB


@pytest.fixture(scope="module")
def speech(speech_wav):
    x, _ = load_audio(speech_wav)
    return x


def _reference(folder, x):
    """transformers: feature extractor + model + greedy argmax + processor decode with offsets."""
    import torch
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, Wav2Vec2CTCTokenizer

    fe = Wav2Vec2FeatureExtractor.from_pretrained(folder)
    tok = Wav2Vec2CTCTokenizer.from_pretrained(folder)
    model = Wav2Vec2ForCTC.from_pretrained(folder).eval()
    inp = fe(x, sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        ids = model(**inp).logits.argmax(-1)[0]
    return tok.decode(ids, output_char_offsets=True, output_word_offsets=True), model.config.inputs_to_logits_ratio


def _spans(offsets, key, ratio):
    return [(o[key], round(o["start_offset"] * ratio / 16000, 4), round(o["end_offset"] * ratio / 16000, 4))
            for o in offsets]


@pytest.mark.parametrize("name", ["w2v_base_ctc", "w2v_large_ctc", "w2v_legacy_ctc"])
def test_transcript_and_offsets_equal_transformers(name, request, speech):
    folder = request.getfixturevalue(name)
    task = load_task("speech-recognition", str(folder), device="cpu")
    result = task(speech)
    ref, ratio = _reference(folder, speech)
    assert result.text == ref.text and len(result.text) > 10
    assert [(w.text, w.start, w.end) for w in result.words] == _spans(ref.word_offsets, "word", ratio)
    assert [(c.text, c.start, c.end) for c in result.chars] == _spans(ref.char_offsets, "char", ratio)
    assert result.duration_s == pytest.approx(len(speech) / 16000)
    assert result.timings.model_ms > 0


def test_feature_settings_from_processor_config(w2v_large_ctc, w2v_base_ctc):
    assert not (w2v_large_ctc / "preprocessor_config.json").exists()
    large = load_task("speech-recognition", str(w2v_large_ctc))
    base = load_task("speech-recognition", str(w2v_base_ctc))
    assert large.features.return_attention_mask and not base.features.return_attention_mask
    assert large.features.do_normalize and base.features.do_normalize


def test_pretraining_parts_ignored_with_note(w2v_pretraining_ctc, w2v_large_ctc, speech, caplog):
    with caplog.at_level(logging.INFO):
        task = load_task("speech-recognition", str(w2v_pretraining_ctc))
    assert "quantizer" in caplog.text
    assert task(speech[:32000]).text == load_task("speech-recognition", str(w2v_large_ctc))(speech[:32000]).text


@pytest.mark.parametrize("lower", [False, True])
def test_ctc_decode_equals_tokenizer_on_crafted_ids(tmp_path, lower):
    from transformers import Wav2Vec2CTCTokenizer
    import json

    (tmp_path / "vocab.json").write_text(json.dumps(VOCAB))
    tok = Wav2Vec2CTCTokenizer(str(tmp_path / "vocab.json"), do_lower_case=lower)
    tok.save_pretrained(tmp_path)
    vocab = ctc.CTCVocab.from_folder(tmp_path)
    assert vocab.do_lower_case == lower and vocab.pad_id == 0
    rng = np.random.default_rng(7)
    cases = [[], [0, 0, 0], [4, 4, 0, 4], [5, 5, 0, 5, 4, 6, 6, 4, 4, 0, 7, 3, 3, 8, 0, 0, 4],
             [4, 0, 5, 4, 0, 4, 6, 1, 2, 0]]
    cases += [list(rng.choice(len(VOCAB), size=200, p=_probs(len(VOCAB)))) for _ in range(20)]
    for ids in cases:
        ref = tok.decode(ids, output_char_offsets=True, output_word_offsets=True)
        d = ctc.decode(np.array(ids, dtype=np.int64), vocab)
        assert d.text == ref.text
        assert [(c.text, c.start, c.end) for c in d.chars] == \
            [(o["char"], int(o["start_offset"]), int(o["end_offset"])) for o in ref.char_offsets]
        assert [(w.text, w.start, w.end) for w in d.words] == \
            [(o["word"], int(o["start_offset"]), int(o["end_offset"])) for o in ref.word_offsets]
        stream = ctc.StreamingDecoder(vocab)  # the same, fed in random pieces
        cuts = sorted(rng.choice(len(ids) + 1, size=min(5, len(ids) + 1), replace=False)) if ids else []
        for a, b in zip([0, *cuts], [*cuts, len(ids)]):
            stream.push(np.array(ids[a:b], dtype=np.int64))
        assert stream.result() == d


def _probs(n):
    p = np.ones(n)
    p[0], p[4] = 12, 4  # many blanks, some word delimiters, like real emissions
    return p / p.sum()


def test_chunked_equals_transformers_pipeline(w2v_base_ctc, speech):
    """Chunks as the ASR pipeline's chunk_length_s / stride_length_s: identical text and word times."""
    from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, pipeline

    asr = pipeline("automatic-speech-recognition", model=Wav2Vec2ForCTC.from_pretrained(w2v_base_ctc),
                   tokenizer=Wav2Vec2CTCTokenizer.from_pretrained(w2v_base_ctc),
                   feature_extractor=Wav2Vec2FeatureExtractor.from_pretrained(w2v_base_ctc), device="cpu")
    ref = asr(speech.copy(), chunk_length_s=1.0, stride_length_s=0.25, return_timestamps="word")
    task = load_task("speech-recognition", str(w2v_base_ctc))
    ours = task(speech, TranscriptionOptions(chunk_s=1.0, stride_s=0.25))
    assert len(chunk_plan(len(speech), 320, 16000, 1.0, 0.25)) > 3
    assert ours.text == ref["text"]
    assert [(w.text, w.start, w.end) for w in ours.words] == \
        [(c["text"], round(c["timestamp"][0], 4), round(c["timestamp"][1], 4)) for c in ref["chunks"]]


def test_chunked_equals_unchunked_with_local_emissions(w2v_base_ctc):
    """With emissions that depend only on their own 20 ms (a stand-in model), chunking must
    reproduce the unchunked transcript exactly: no word dropped or doubled at chunk edges."""
    task = load_task("speech-recognition", str(w2v_base_ctc))
    rng = np.random.default_rng(1)
    frames = rng.choice(len(VOCAB), size=1500, p=_probs(len(VOCAB)))  # 30 s of emissions
    audio = np.repeat(frames.astype(np.float32), 320)  # each frame's token id as its samples

    def local_logits(samples):
        import torch
        n = task.model.config.num_frames(len(samples))
        ids = np.rint(samples[: n * 320 : 320]).astype(np.int64)  # (T,) the frame's own token
        return torch.nn.functional.one_hot(torch.from_numpy(ids), len(VOCAB)).float()

    task.logits = local_logits
    whole = task(audio, TranscriptionOptions(chunk_s=60.0))
    seen = []
    chunked = task(audio, TranscriptionOptions(chunk_s=4.0, stride_s=0.7), progress=lambda f, r: seen.append((f, r)))
    assert len(whole.words) > 20
    assert chunked.text == whole.text and chunked.words == whole.words and chunked.chars == whole.chars
    assert len(seen) >= 8 and all(isinstance(r, TranscriptionResult) for _, r in seen)
    assert [f for f, _ in seen] == sorted(f for f, _ in seen) and seen[-1][0] < 1.0
    assert whole.text.startswith(seen[-1][1].text[:20])


def test_cancel_between_chunks(w2v_base_ctc, speech):
    task = load_task("speech-recognition", str(w2v_base_ctc))
    token = CancelToken()
    with pytest.raises(Cancelled):
        task(speech, TranscriptionOptions(chunk_s=1.0, stride_s=0.2), cancel=token, progress=lambda f, r: token.cancel())
    parts = list(task.stream(speech, TranscriptionOptions(chunk_s=1.0, stride_s=0.2)))
    assert len(parts) > 2 and parts[-1].text == task(speech, TranscriptionOptions(chunk_s=1.0, stride_s=0.2)).text


def test_bad_and_degenerate_audio(w2v_base_ctc):
    task = load_task("speech-recognition", str(w2v_base_ctc))
    with pytest.raises(InputError, match="empty"):
        task(np.zeros(0, np.float32))
    with pytest.raises(InputError, match="numpy"):
        task([0.1, 0.2])
    with pytest.raises(InputError, match="NaN"):
        task(np.full(16000, np.nan, np.float32))
    assert task(np.zeros(100, np.float32)).text == ""  # shorter than one frame: nothing said
    silence = task(np.zeros(16000, np.float32))
    assert isinstance(silence, TranscriptionResult) and silence.duration_s == 1.0
    with pytest.raises(TypeError):
        task(np.zeros(16000, np.float32), AudioClassificationOptions())


def test_internals(w2v_base_ctc, speech):
    task = load_task("speech-recognition", str(w2v_base_ctc))
    r = task(speech, TranscriptionOptions(internals=True))
    i = r.internals
    assert i is not None and i.frame_s == pytest.approx(0.02)
    assert i.top_ids.shape == i.top_probs.shape == i.blank_prob.shape == (task.model.config.num_frames(len(speech)),)
    assert ((i.top_probs > 0) & (i.top_probs <= 1)).all() and i.vocab[0] == "<pad>"
    assert task(speech).internals is None


@pytest.mark.parametrize("name", ["w2v_cls_weighted", "w2v_cls_plain"])
def test_classification_topk_equals_transformers(name, request, speech):
    import torch
    from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForSequenceClassification

    folder = request.getfixturevalue(name)
    task = load_task("audio-classification", str(folder))
    clip = speech[8000:24000]
    r = task(clip, AudioClassificationOptions(top_k=4))
    fe = Wav2Vec2FeatureExtractor.from_pretrained(folder)
    model = Wav2Vec2ForSequenceClassification.from_pretrained(folder).eval()
    with torch.inference_mode():
        p = model(**fe(clip, sampling_rate=16000, return_tensors="pt")).logits.softmax(-1)[0]
    top = p.topk(4)
    assert r.labels == tuple(model.config.id2label[int(i)] for i in top.indices)
    np.testing.assert_allclose(r.scores, top.values.numpy(), atol=1e-5)
    assert len(task(clip, AudioClassificationOptions(top_k=100)).labels) == 12
    with pytest.raises(InputError):
        task(np.zeros(0, np.float32))


# ------------------------------------------------------------------------------------- export

def _result():
    words = tuple(Span(w, 0.5 * i, 0.5 * i + 0.4) for i, w in enumerate(
        "THE QUICK BROWN FOX JUMPS OVER THE LAZY DOG AND THEN IT RUNS AWAY VERY FAST".split()))
    words += (Span("LATER", 3700.25, 3700.9),)
    return TranscriptionResult(" ".join(w.text for w in words), words, (), 3701.0)


def test_export_formats():
    r = _result()
    srt = export.to_srt(r)
    blocks = srt.strip().split("\n\n")
    assert blocks[0].splitlines()[0] == "1"
    assert blocks[0].splitlines()[1] == "00:00:00,000 --> 00:00:03,900"
    assert blocks[-1].splitlines()[1] == "01:01:40,250 --> 01:01:40,900"
    for b in blocks:
        assert re.fullmatch(r"\d\d:\d\d:\d\d,\d\d\d --> \d\d:\d\d:\d\d,\d\d\d", b.splitlines()[1])
        assert len(b.splitlines()[2]) <= 42
    for c in export.cues(r):
        assert c.end - c.start <= 5.0 and len(c.text) <= 42
    assert " ".join(c.text for c in export.cues(r)) == r.text
    vtt = export.to_vtt(r)
    assert vtt.startswith("WEBVTT\n\n00:00:00.000 --> 00:00:03.900\n")
    assert "01:01:40.250 --> 01:01:40.900" in vtt
    assert export.to_txt(r) == r.text + "\n"
    import json
    data = json.loads(export.to_json(r))
    assert data["text"] == r.text and data["words"][1] == {"text": "QUICK", "start": 0.5, "end": 0.9}
    assert export.timestamp(59.9996) == "00:01:00,000"
    empty = TranscriptionResult("", (), (), 1.0)
    assert export.to_srt(empty) == "" and export.to_vtt(empty) == "WEBVTT\n\n"
    with pytest.raises(ValueError):
        export.export(r, "doc")


def test_export_save(tmp_path):
    p = export.save(_result(), tmp_path / "t.srt")
    assert p.read_text().startswith("1\n00:00:00,000")


def test_chunk_plan_covers_audio_once():
    for n in (1, 16000, 16000 * 7 + 123, 16000 * 61):
        plan = chunk_plan(n, 320, 16000, 2.0, 0.5)
        assert plan[0][0] == 0 and plan[-1][1] == n and plan[0][2] == 0 and plan[-1][3] == 0
        for (s0, e0, _, r0), (s1, _, l1, _) in zip(plan, plan[1:]):
            assert e0 - r0 == s1 + l1  # what one chunk gives up, the next one keeps
    with pytest.raises(InputError, match="twice the stride"):
        chunk_plan(16000 * 10, 320, 16000, 2.0, 1.0)


def test_wrong_checkpoint_kind_is_named(w2v_base_ctc, w2v_cls_weighted, detr_checkpoint):
    """A checkpoint of another architecture or head gets a message that says what it is."""
    from engine import CheckpointError, load_task
    with pytest.raises(CheckpointError, match="'detr' model.*speech-recognition"):
        load_task("speech-recognition", str(detr_checkpoint), device="cpu")
    with pytest.raises(CheckpointError, match="SequenceClassification.*needs one with a CTC head"):
        load_task("speech-recognition", str(w2v_cls_weighted), device="cpu")
    with pytest.raises(CheckpointError, match="ForCTC.*SequenceClassification head"):
        load_task("audio-classification", str(w2v_base_ctc), device="cpu")
