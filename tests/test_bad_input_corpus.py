"""A corpus of bad input — files, devices, models — through the CLI (one line on stderr, exit 2, no
traceback) and through the app (a visible message; what was shown stays; the app stays usable).
Inputs a user may well give that ARE usable (1 px, extreme ratios, 16-bit, RGBA, grey, odd audio
formats, silence) must simply work."""
from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from engine import cli


# ------------------------------------------------------------------------------ the corpus

def _png(path, image) -> None:
    import cv2
    ok, data = cv2.imencode(".png", image)
    assert ok
    path.write_bytes(data.tobytes())


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, speech_wav):
    import cv2
    import soundfile as sf

    d = tmp_path_factory.mktemp("corpus")
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    _png(d / "good.png", photo)
    f = {}
    # images that must be refused
    (d / "empty.png").write_bytes(b"")
    f["empty.png"] = "is empty"
    (d / "truncated.png").write_bytes((d / "good.png").read_bytes()[:100])
    f["truncated.png"] = "or it is corrupt"
    (d / "text.png").write_text("this is not an image\n")
    f["text.png"] = "or it is corrupt"
    shutil.copy(speech_wav, d / "sound.png")
    f["sound.png"] = "or it is corrupt"
    header = bytearray((d / "good.png").read_bytes()[:33])  # a PNG header that claims 100000 x 100000
    header[16:24] = (100000).to_bytes(4, "big") + (100000).to_bytes(4, "big")
    (d / "bomb.png").write_bytes(bytes(header) + b"\0" * 64)
    f["bomb.png"] = "too large"
    (d / "folder.png").mkdir()
    f["folder.png"] = "is a folder"
    writer = cv2.VideoWriter(str(d / "clip.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for _ in range(3):
        writer.write(photo)
    writer.release()
    f["clip.mp4"] = "is a video"
    # images that must work
    ok = {}
    _png(d / "one_px.png", photo[:1, :1])
    _png(d / "wide.png", np.zeros((1, 20000, 3), np.uint8))
    _png(d / "tall.png", np.zeros((20000, 1, 3), np.uint8))
    _png(d / "sixteen_bit.png", (photo.astype(np.uint16) * 257))
    _png(d / "rgba.png", np.concatenate([photo, np.full((48, 64, 1), 128, np.uint8)], -1))
    _png(d / "grey.png", photo[:, :, 0])
    cv2.imwrite(str(d / "photo.jpg"), photo)
    ok.update(dict.fromkeys(["one_px.png", "wide.png", "tall.png", "sixteen_bit.png", "rgba.png", "grey.png",
                             "photo.jpg"]))

    # audio that must be refused
    (d / "empty.wav").write_bytes(b"")
    f["empty.wav"] = "is empty"
    (d / "text.wav").write_text("RIFF? no, words\n")
    f["text.wav"] = "not an audio file"
    shutil.copy(d / "good.png", d / "image.wav")
    f["image.wav"] = "not an audio file"
    sf.write(str(d / "no_samples.wav"), np.zeros(0, np.float32), 16000)
    f["no_samples.wav"] = "no audio samples"
    sf.write(str(d / "nan.wav"), np.full(1600, np.nan, np.float32), 16000, subtype="FLOAT")
    f["nan.wav"] = "NaN"
    long = d / "four_hours.wav"  # 4.1 h of 8-bit 8 kHz mono: a sparse file, the header says how long
    sf.write(str(long), np.zeros(800, np.float32), 8000, subtype="PCM_U8")
    data = bytearray(long.read_bytes())
    frames = int(4.1 * 3600 * 8000)
    at = data.find(b"data")
    data[at + 4:at + 8] = frames.to_bytes(4, "little")
    data[4:8] = (len(data) - 8 + frames - 800).to_bytes(4, "little")
    long.write_bytes(bytes(data))
    os.truncate(long, at + 8 + frames)
    f["four_hours.wav"] = "h long; the limit"
    # audio that must work: odd formats, rates, channels, and silence
    voice, rate = sf.read(str(speech_wav), dtype="float32")
    clip = voice[: rate * 2]
    sf.write(str(d / "u8.wav"), clip, rate, subtype="PCM_U8")
    sf.write(str(d / "pcm24.wav"), clip, rate, subtype="PCM_24")
    sf.write(str(d / "double.wav"), clip.astype(np.float64), rate, subtype="DOUBLE")
    stereo = np.stack([clip, clip * 0.5], -1)
    from scipy.signal import resample_poly
    sf.write(str(d / "stereo44k.wav"), resample_poly(stereo, 441, rate // 100, axis=0).astype(np.float32), 44100)
    sf.write(str(d / "voice48k.flac"), resample_poly(clip, 480, rate // 100).astype(np.float32), 48000)
    sf.write(str(d / "voice.ogg"), clip, rate, format="OGG", subtype="VORBIS")
    sf.write(str(d / "silence.wav"), np.zeros(16000, np.float32), 16000)
    ok.update(dict.fromkeys(["u8.wav", "pcm24.wav", "double.wav", "stereo44k.wav", "voice48k.flac", "voice.ogg",
                             "silence.wav"]))
    return d, f, ok


def _cli(capsys, *args) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _one_clear_line(err: str, expected: str) -> None:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert expected in lines[0] and "Traceback" not in err


# ------------------------------------------------------------------------------ files, CLI

IMAGE_BAD = ["empty.png", "truncated.png", "text.png", "sound.png", "bomb.png", "folder.png", "clip.mp4"]
AUDIO_BAD = ["empty.wav", "text.wav", "image.wav", "no_samples.wav", "nan.wav", "four_hours.wav"]


@pytest.mark.parametrize("name", IMAGE_BAD)
def test_bad_image_files_through_the_cli(corpus, name, vit_checkpoint, capsys):
    d, expected, _ = corpus
    path = d / name
    if name == "folder.png":  # argparse refuses it before the command runs
        with pytest.raises(SystemExit) as info:
            cli.main(["classify-image", str(path), "--model", str(vit_checkpoint)])
        assert info.value.code == 2 and expected[name] in capsys.readouterr().err
        return
    code, out, err = _cli(capsys, "classify-image", path, "--model", vit_checkpoint, "--device", "cpu")
    assert code == 2 and out == ""
    _one_clear_line(err, expected[name])


@pytest.mark.parametrize("name", AUDIO_BAD)
def test_bad_audio_files_through_the_cli(corpus, name, w2v_cls_plain, capsys):
    d, expected, _ = corpus
    code, out, err = _cli(capsys, "classify-audio", d / name, "--model", w2v_cls_plain, "--device", "cpu")
    assert code == 2 and out == ""
    _one_clear_line(err, expected[name])


def test_usable_images_just_work(corpus, vit_checkpoint, capsys):
    d, _, ok = corpus
    names = [n for n in ok if not n.endswith((".wav", ".flac", ".ogg"))]
    code, out, err = _cli(capsys, "classify-image", *[d / n for n in names], "--model", vit_checkpoint,
                          "--device", "cpu", "--json")
    assert code == 0, err
    blocks = json.loads(out)
    assert [b["file"] for b in blocks] == [str(d / n) for n in names]
    assert all(len(b["labels"]) == 5 for b in blocks)


def test_usable_audio_just_works(corpus, w2v_base_ctc, capsys):
    d, _, ok = corpus
    for name in [n for n in ok if n.endswith((".wav", ".flac", ".ogg"))]:
        code, out, err = _cli(capsys, "transcribe", d / name, "--model", w2v_base_ctc, "--device", "cpu",
                              "--format", "json")
        assert code == 0, (name, err)
        result = json.loads(out)
        assert result["duration_s"] > 0.9, name
        if name == "silence.wav":
            assert result["words"] == [] or all(w["text"] for w in result["words"])


# ------------------------------------------------------------------------------ models and devices, CLI

@pytest.fixture(scope="module")
def broken_models(tmp_path_factory, vit_checkpoint):
    d = tmp_path_factory.mktemp("models")
    cases = {}
    no_weights = d / "no_weights"
    no_weights.mkdir()
    shutil.copy(vit_checkpoint / "config.json", no_weights)
    cases["no_weights"] = "No weights"
    corrupt = d / "corrupt"
    shutil.copytree(vit_checkpoint, corrupt)
    (corrupt / "model.safetensors").write_bytes(os.urandom(2048))
    cases["corrupt"] = "Could not read the weights"
    mismatched = d / "mismatched"
    shutil.copytree(vit_checkpoint, mismatched)
    cfg = json.loads((mismatched / "config.json").read_text())
    cfg["intermediate_size"] = cfg["intermediate_size"] * 2
    (mismatched / "config.json").write_text(json.dumps(cfg))
    cases["mismatched"] = "do not fit"
    no_config = d / "no_config"
    no_config.mkdir()
    (no_config / "model.safetensors").write_bytes(b"")
    cases["no_config"] = "has no config.json"
    bad_json = d / "bad_json"
    shutil.copytree(vit_checkpoint, bad_json)
    (bad_json / "config.json").write_text("{not json")
    cases["bad_json"] = "not valid JSON"
    return d, cases


@pytest.mark.parametrize("case", ["no_weights", "corrupt", "mismatched", "no_config", "bad_json"])
def test_broken_checkpoints_through_the_cli(broken_models, case, corpus, capsys):
    d, cases = broken_models
    photo = corpus[0] / "good.png"
    code, out, err = _cli(capsys, "classify-image", photo, "--model", d / case, "--device", "cpu")
    assert code == 2 and out == ""
    _one_clear_line(err, cases[case])


def test_wrong_architecture_and_missing_model_and_device(corpus, detr_timm_checkpoint, vit_checkpoint, capsys):
    photo = corpus[0] / "good.png"
    code, _, err = _cli(capsys, "classify-image", photo, "--model", detr_timm_checkpoint, "--device", "cpu")
    assert code == 2
    _one_clear_line(err, "'detr' model")
    code, _, err = _cli(capsys, "classify-image", photo, "--model", "nobody/not-downloaded", "--offline")
    assert code == 2
    _one_clear_line(err, "not downloaded yet and Taskscope is offline")
    code, _, err = _cli(capsys, "classify-image", photo, "--model", vit_checkpoint, "--device", "cuda:7")
    assert code == 2
    _one_clear_line(err, "not available here")


# ------------------------------------------------------------------------------ the app

@pytest.fixture
def window(open_window, detr_checkpoint):
    from tests.fixtures_gui import detection_settings
    return open_window(detection_settings(detr_checkpoint))


APP_BAD = ["empty.png", "truncated.png", "text.png", "sound.png", "bomb.png", "empty.wav", "text.wav",
           "image.wav", "four_hours.wav", "notes.xyz"]


def test_bad_files_in_the_app_keep_what_is_shown(qtbot, window, corpus):
    d, expected, _ = corpus
    (d / "notes.xyz").write_text("?")
    expected = {**expected, "notes.xyz": "Cannot open notes.xyz"}
    tab = window.vision_tab
    assert window.open_path(d / "good.png")
    qtbot.waitUntil(lambda: tab.last_outcome() is not None, timeout=60_000)
    shown = tab.presenter().current_detections()
    for name in APP_BAD:
        before = len(window.message_area.history)
        window.open_path(d / name)
        qtbot.waitUntil(lambda: len(window.message_area.history) > before, timeout=10_000)
        assert expected[name].split(";")[0] in window.message_area.text() or name in window.message_area.text()
        window.tabs.setCurrentWidget(tab)
        assert tab.view.frame_id == 0 and tab.presenter().current_detections() is not None
        assert len(tab.presenter().current_detections()) == len(shown)
    # still usable: a good file after all that
    for name in ("rgba.png", "wide.png"):
        done = tab.results_received
        assert window.open_path(d / name)
        qtbot.waitUntil(lambda: tab.results_received > done, timeout=60_000)
