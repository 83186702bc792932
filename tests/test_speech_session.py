"""Endpointing (gui/speech_session.py) on synthetic audio: pure numpy, no Qt, no model."""
from __future__ import annotations

import numpy as np
import pytest

from gui.speech.session import EndpointConfig, SlidingWindow, SpeechSession
from tests.conftest import unavailable

SR = 16_000
rng = np.random.default_rng(0)


def tone(seconds: float, amp: float = 0.3, freq: float = 220.0) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    # a vowel-like buzz: harmonics with a slow amplitude wobble
    x = sum(np.sin(2 * np.pi * freq * k * t) / k for k in range(1, 5)) * (0.8 + 0.2 * np.sin(2 * np.pi * 4 * t))
    return (amp * x / 2).astype(np.float32)


def noise(seconds: float, amp: float = 0.001) -> np.ndarray:
    return (amp * rng.standard_normal(int(seconds * SR))).astype(np.float32)


def run(x: np.ndarray, block: int = 1024, config: EndpointConfig | None = None, flush: bool = True):
    s = SpeechSession(config)
    events = []
    for i in range(0, len(x), block):
        events += s.feed(x[i:i + block])
    if flush:
        events += s.flush()
    return s, events


def finals(events):
    return [e for e in events if e.kind == "final"]


def test_three_bursts_give_three_utterances_with_right_times():
    x = np.concatenate([noise(1.0), tone(1.0), noise(1.0), tone(0.8), noise(1.2), tone(1.5), noise(1.0)])
    _, events = run(x)
    f = finals(events)
    assert [e.reason for e in f] == ["pause", "pause", "pause"]
    assert [e.index for e in f] == [0, 1, 2]
    onsets, ends = [1.0, 3.0, 5.0], [2.0, 3.8, 6.5]
    for e, on, off in zip(f, onsets, ends):
        assert on - 0.35 <= e.start_s <= on  # pre-roll: starts before the onset, never after
        assert off <= e.end_s <= off + 0.25  # keeps a short tail
        assert len(e.audio) == pytest.approx((e.end_s - e.start_s) * SR, abs=1)
    starts = [e for e in events if e.kind == "start"]
    assert len(starts) == 3


def test_pre_roll_keeps_the_first_phoneme():
    burst = tone(0.6)
    x = np.concatenate([noise(1.0), burst, noise(1.0)])
    _, events = run(x)
    (f,) = finals(events)
    # the whole burst is inside the utterance audio
    offset = int(round((1.0 - f.start_s) * SR))
    assert offset > 0
    np.testing.assert_allclose(f.audio[offset:offset + len(burst)], burst, atol=1e-6)


def test_partial_cadence_every_400ms_of_speech():
    x = np.concatenate([noise(0.5), tone(3.0), noise(1.0)])
    _, events = run(x, block=800)
    partials = [e for e in events if e.kind == "partial"]
    assert 5 <= len(partials) <= 8  # ~3 s of speech / 0.4 s
    gaps = np.diff([p.end_s for p in partials])
    assert np.all(np.abs(gaps - 0.4) < 0.05)
    lengths = [len(p.audio) for p in partials]
    assert lengths == sorted(lengths)  # each partial is the utterance so far
    assert all(p.index == 0 for p in partials)
    # no partial during the closing pause
    assert partials[-1].end_s <= 3.5 + 0.05


def test_flush_finalizes_the_utterance_in_progress():
    x = np.concatenate([noise(0.5), tone(1.2)])  # Stop pressed while still speaking
    s, events = run(x, flush=False)
    assert not finals(events) and s.in_speech
    f = finals(s.flush())
    assert len(f) == 1 and f[0].reason == "flush"
    assert f[0].end_s == pytest.approx(1.7, abs=0.03)
    assert not s.in_speech and s.flush() == []  # a second flush has nothing left


def test_flush_keeps_a_short_onset_too():
    x = np.concatenate([noise(0.5), tone(0.1)])  # speech just started when Stop was pressed
    _, events = run(x)
    f = finals(events)
    assert len(f) == 1 and f[0].reason == "flush"


def test_silence_and_steady_noise_give_nothing():
    for x in (np.zeros(3 * SR, np.float32), noise(3.0), noise(4.0, amp=0.02)):
        _, events = run(x)
        assert events == []


def test_short_click_is_not_speech():
    click = tone(0.08, amp=0.5)
    x = np.concatenate([noise(1.0), click, noise(1.5)])
    _, events = run(x)
    assert events == []


def test_noise_floor_adapts_to_a_loud_room():
    room = 0.03  # ~-36 dBFS: louder than the absolute threshold
    x = np.concatenate([noise(7.3, room), tone(1.0, amp=0.5) + noise(1.0, room), noise(1.5, room)])
    s, events = run(x)
    f = finals(events)
    # the noise that starts at t=0 is background, only the loud burst is an utterance
    assert len(f) == 1 and f[0].reason == "pause"
    assert 6.95 < f[0].start_s < 7.3
    assert s.noise_floor_db == pytest.approx(20 * np.log10(room), abs=4)


def test_a_noise_that_starts_later_becomes_background():
    x = np.concatenate([noise(1.0), noise(14.0, 0.03)])  # a fan switched on: not 15 s of speech
    _, events = run(x, flush=False)
    f = finals(events)
    assert len(f) == 1 and f[0].reason == "pause" and f[0].end_s < 14.0  # before the 15 s split
    assert events[-1].kind == "final"  # and no new utterance starts in the steady noise


def test_max_length_forces_a_split():
    cfg = EndpointConfig(max_utterance_s=2.0)
    x = np.concatenate([noise(0.5), tone(5.0), noise(1.0)])
    _, events = run(x, config=cfg)
    f = finals(events)
    assert [e.reason for e in f] == ["max-length", "max-length", "pause"]
    for a, b in zip(f, f[1:]):
        assert b.start_s == pytest.approx(a.end_s, abs=1e-6)  # contiguous: nothing lost at a split
    assert all(e.duration_s <= 2.0 + cfg.pre_roll_s + 0.02 for e in f)


def test_end_silence_is_tunable():
    x = np.concatenate([noise(0.5), tone(0.8), noise(0.35), tone(0.8), noise(1.0)])
    assert len(finals(run(x)[1])) == 1  # a 350 ms gap is inside a 500 ms end-of-utterance pause
    assert len(finals(run(x, config=EndpointConfig(end_silence_s=0.25))[1])) == 2


def test_block_size_does_not_change_the_result():
    x = np.concatenate([noise(0.7), tone(1.0), noise(1.0), tone(0.5), noise(0.8)])
    ref = [(e.kind, e.index, round(e.start_s, 4), round(e.end_s, 4)) for e in run(x, block=1600)[1]]
    for block in (37, 320, 999, 4000):
        got = [(e.kind, e.index, round(e.start_s, 4), round(e.end_s, 4)) for e in run(x, block=block)[1]]
        assert got == ref


def test_source_time_offset_is_used():
    s = SpeechSession()
    x = np.concatenate([noise(0.5), tone(0.6), noise(1.0)])
    events = s.feed(x[:1000], t_s=10.0) + s.feed(x[1000:], t_s=10.0 + 1000 / SR)
    (f,) = finals(events)
    assert 10.1 < f.start_s < 10.5 and f.end_s < 11.4


def test_espeak_sentences_are_utterances(tmp_path):
    import shutil
    import subprocess

    import soundfile as sf
    from scipy.signal import resample_poly

    if shutil.which("espeak-ng") is None:
        unavailable("espeak-ng is not installed")
    parts = []
    for i, text in enumerate(["Hello there.", "This is the second sentence."]):
        wav = tmp_path / f"s{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(wav), text], check=True, capture_output=True)
        y, rate = sf.read(str(wav), dtype="float32")
        parts += [noise(0.8), resample_poly(y, SR, rate).astype(np.float32) * 0.8]
    parts.append(noise(1.0))
    x = np.concatenate(parts)
    _, events = run(x)
    f = finals(events)
    assert len(f) == 2, [(e.start_s, e.end_s) for e in f]
    assert all(0 <= e.start_s < e.end_s <= len(x) / SR for e in f)
    assert any(e.kind == "partial" for e in events)


def test_sliding_window():
    w = SlidingWindow(window_s=1.0, hop_s=0.25, min_fill_s=0.5)
    x = np.arange(3 * SR, dtype=np.float32)
    outs = [w.push(x[i:i + 800]) for i in range(0, len(x), 800)]
    got = [o for o in outs if o is not None]
    assert len(got) == pytest.approx(3 / 0.25 - 1, abs=1)  # from 0.5 s on, every 0.25 s
    assert len(got[0]) == SR // 2
    last = got[-1]
    assert len(last) == SR
    np.testing.assert_array_equal(last, x[-SR:])  # the newest second, oldest first


def candidates(events):
    return [e for e in events if e.kind == "candidate"]


def test_a_candidate_precedes_each_pause_final_with_the_same_audio():
    cfg = EndpointConfig()
    x = np.concatenate([noise(1.0), tone(1.0), noise(1.0), tone(0.8), noise(1.2), tone(1.5), noise(1.0)])
    for block in (320, 1024, 4000):
        _, events = run(x, block=block)
        f, c = finals(events), candidates(events)
        assert len(f) == len(c) == 3
        for cand, fin in zip(c, f):
            assert events.index(cand) < events.index(fin)
            assert (cand.index, cand.start_s, cand.end_s) == (fin.index, fin.start_s, fin.end_s)
            assert np.array_equal(cand.audio, fin.audio)
            assert cand.audio is not fin.audio
        # no other event of the utterance comes between its candidate and its final
        for cand, fin in zip(c, f):
            assert events[events.index(cand) + 1] is fin
    # stream time: the candidate is emitted ~tail_s after the last voiced frame, the final end_silence_s
    s = SpeechSession()
    t_cand = t_fin = None
    for i in range(0, len(x), 320):
        for e in s.feed(x[i:i + 320]):
            if e.kind == "candidate" and t_cand is None:
                t_cand = s.time_s
            if e.kind == "final" and t_fin is None:
                t_fin = s.time_s
    assert t_fin - t_cand == pytest.approx(cfg.end_silence_s - 0.16, abs=0.03)


def test_speech_resuming_after_a_candidate_gives_no_final_for_it():
    # a 300 ms gap: longer than the kept tail (a candidate), shorter than the end-of-utterance pause
    x = np.concatenate([noise(0.5), tone(0.8), noise(0.3), tone(0.8), noise(1.0)])
    _, events = run(x)
    c, f = candidates(events), finals(events)
    assert len(c) == 2 and len(f) == 1
    assert c[0].index == c[1].index == f[0].index == 0
    assert c[0].end_s < c[1].end_s
    # the first guess was wrong: no final carries its end; the final matches the later candidate
    assert all(e.end_s != c[0].end_s for e in f)
    assert f[0].end_s == c[1].end_s and np.array_equal(f[0].audio, c[1].audio)
    assert len(c[0].audio) < len(f[0].audio)
    assert np.array_equal(c[0].audio, f[0].audio[:len(c[0].audio)])  # a prefix of the utterance


def test_flush_and_forced_splits_give_finals_without_candidates():
    x = np.concatenate([noise(0.5), tone(1.2)])  # Stop pressed while still speaking
    s, events = run(x, flush=False)
    assert not candidates(events)
    flushed = s.flush()
    assert [e.kind for e in flushed] == ["final"] and flushed[0].reason == "flush"
    cfg = EndpointConfig(max_utterance_s=2.0)
    _, events = run(np.concatenate([noise(0.5), tone(5.0), noise(1.0)]), config=cfg)
    f, c = finals(events), candidates(events)
    assert [e.reason for e in f] == ["max-length", "max-length", "pause"]
    assert len(c) == 1 and c[0].end_s == f[-1].end_s and np.array_equal(c[0].audio, f[-1].audio)


def test_speculative_finals_bookkeeping():
    """A final is served by its candidate's result (now or when it arrives); others need a decode."""
    from gui.speech.speculative_finals import SpeculativeFinals
    sf = SpeculativeFinals()
    a, b, c = (1, 0, 2.0), (1, 1, 5.0), (1, 1, 6.0)
    sf.submitted(a)
    assert sf.result(a, "text a", recording=1, utterances_done=0) is None  # back before its pause is confirmed
    assert sf.final(a, {"m": "a"}) == ("show", "text a")
    sf.submitted(b)
    assert sf.final(b, {"m": "b"}) == ("wait", None)  # still decoding: no second decode
    assert sf.result(b, "text b", recording=1, utterances_done=1) == {"m": "b"}
    assert sf.final(c, {}) == ("decode", None)  # no candidate (Stop, forced split)
    sf.submitted((1, 2, 7.0))
    sf.result((1, 2, 7.0), "stale", recording=1, utterances_done=2)
    sf.submitted((1, 2, 9.0))  # the utterance went on: a later candidate ends it
    assert sf.final((1, 2, 9.0), {"m": "d"}) == ("wait", None) and (1, 2, 7.0) not in sf.results
    assert sf.failed((1, 2, 9.0)) == (1, 2, 9.0)  # its decode failed: the waiting final is released
    sf.submitted((1, 3, 1.0))
    sf.new_recording()
    assert not sf.inflight and not sf.results


def test_a_failed_candidate_of_an_old_recording_is_not_taken_for_a_new_one():
    """Issue: after a new Start, the old recording's candidate failing released the NEW recording's
    waiting final (the oldest in flight was assumed to be the one that failed)."""
    from gui.speech.speculative_finals import SpeculativeFinals
    sf = SpeculativeFinals()
    old, new = (1, 4, 3.0), (2, 0, 1.5)
    sf.submitted(old)
    sf.new_recording()  # Start again while the old candidate still decodes
    sf.submitted(new)
    assert sf.final(new, {"m": "new"}) == ("wait", None)
    assert sf.failed(old) is None  # nothing waited for the old one
    assert sf.result(new, "text", recording=2, utterances_done=0) == {"m": "new"}  # the new final is served
