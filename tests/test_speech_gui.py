"""The real Speech tab with a real EngineClient and tiny random-weight wav2vec2 checkpoints, fed by
a WAV played as a microphone (and once through PortAudio + a private PulseAudio virtual mic).

Random weights give arbitrary (possibly empty) text: the tests check the events, times, widgets
and files, never the words.
"""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QSettings

from gui.core.engine_client import EngineClient
from gui.sources.audio_file import AudioFileSource
from gui.sources.microphone import AudioSource, list_input_devices
from gui.speech.tab import S_CANDIDATE, S_CLASSIFY, S_FILE, S_FINAL, S_PARTIAL, SpeechTab

pytestmark = pytest.mark.gui

SR = 16_000


@pytest.fixture
def engine(qtbot):
    client = EngineClient()
    yield client
    assert client.shutdown(10_000)


@pytest.fixture
def settings(tmp_path):
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def tab(qtbot, engine, settings, w2v_base_ctc, w2v_cls_weighted, monkeypatch):
    t = SpeechTab(engine, settings)
    t.asr_picker.set_model(str(w2v_base_ctc))
    t.cls_picker.set_model(str(w2v_cls_weighted))
    qtbot.addWidget(t)
    t.resize(1000, 700)
    t.show()
    outcomes = []  # every result of every request the tab submits (each request has its own signals)
    real_submit = engine.submit

    def submit(*a, **kw):
        request = real_submit(*a, **kw)
        request.result.connect(outcomes.append)
        return request

    monkeypatch.setattr(engine, "submit", submit)
    t.outcomes = outcomes
    yield t
    t.shutdown()


@pytest.fixture(scope="module")
def two_sentences(tmp_path_factory, request):
    """Two spoken sentences with a 1 s pause between them, 16 kHz mono."""
    from tests.fixtures_wav2vec2 import make_speech_wav

    folder = tmp_path_factory.mktemp("speech-gui")
    parts = []
    for i, text in enumerate(["Hello, this is the first sentence.", "And here is another one."]):
        y, rate = sf.read(str(make_speech_wav(folder / f"s{i}.wav", text)), dtype="float32")
        if rate != SR:
            from scipy.signal import resample_poly
            y = resample_poly(y, SR, rate).astype(np.float32)
        parts += [np.zeros(int(0.6 * SR), np.float32), 0.8 * y]
    x = np.concatenate(parts + [np.zeros(int(0.3 * SR), np.float32)])
    path = folder / "two.wav"
    sf.write(str(path), x, SR)
    return path, len(x) / SR


def by_stream(outcomes, stream):
    return [o for o in outcomes if o.stream == stream]


def test_live_transcription_from_wav_mic(qtbot, tab, two_sentences):
    path, duration = two_sentences
    source = AudioFileSource(path, speed=2.0, tail_s=1.0)
    tab.set_source(source)
    with qtbot.waitSignal(tab.recordingChanged, timeout=5000):
        tab.record_btn.click()
    assert tab.record_btn.text().endswith("Stop")
    # the file ends -> the tab stops itself and the last final arrives
    qtbot.waitUntil(lambda: not tab.is_recording(), timeout=20_000)
    qtbot.waitUntil(lambda: len(tab.segments) == 2 and tab._finals_pending == 0, timeout=20_000)

    kinds = [e[0] for e in tab.events]
    assert kinds.count("final") == 2 and kinds.count("start") == 2
    assert kinds.count("partial") >= 3
    assert kinds.count("candidate") >= 2
    assert by_stream(tab.outcomes, S_PARTIAL), "partial transcripts arrive while speaking"
    # both sentences end with a pause: their finals come from the speculative candidate decodes
    assert not by_stream(tab.outcomes, S_FINAL) and tab.finals_from_candidates == 2
    finals = {o.meta["key"]: o for o in by_stream(tab.outcomes, S_CANDIDATE)}
    assert [s[0] for s in tab.segments] == [0, 1]
    for index, start, end, text in tab.segments:
        o = finals[(tab._recording, index, end)]
        assert o.result.text == text and o.meta["start_s"] == start
        assert 0.0 <= start < end <= duration + 1.0
        assert o.result.internals is not None  # the CTC strip's data
    assert tab.segments[0][2] <= tab.segments[1][1]
    # the first sentence starts at 0.6 s: the pre-roll keeps it, the end is before the pause ends
    assert 0.2 < tab.segments[0][1] < 0.7
    # widgets: table rows, level meter, waveform, spectrogram, CTC strip
    assert tab.table.rowCount() == 2
    assert tab.table.item(0, 0).text().startswith("0:00.")
    assert tab.level.updates > 20 and tab.level.peak_db > -30
    assert tab.waveform.pushed >= int(duration * SR)
    assert tab.spectrogram.columns_pushed > 100
    assert tab.ctc.internals is not None
    assert tab.record_btn.text().endswith("Start")


def test_speculative_final_decode_needs_no_second_decode(qtbot, tab, two_sentences, monkeypatch):
    """A pause's final is decoded from its candidate (submitted tail_s after the last voiced frame,
    ~0.35 s before the pause is confirmed): no decode on the final stream, the same text as a fresh
    decode of the final's audio."""
    path, _ = two_sentences
    submitted = []  # (stream, meta) of every submission
    real_submit = tab.engine.submit
    monkeypatch.setattr(tab.engine, "submit", lambda stream, task, inputs, *a, **kw: (
        submitted.append((stream, kw.get("meta"))), real_submit(stream, task, inputs, *a, **kw))[-1])
    final_events = []
    real_feed = tab.session.feed

    def feed(block, t_s=None):
        events = real_feed(block, t_s)
        final_events.extend(e for e in events if e.kind == "final")
        return events

    monkeypatch.setattr(tab.session, "feed", feed)
    tab.set_source(AudioFileSource(path, speed=1.0, tail_s=1.0))
    tab.start()
    qtbot.waitUntil(lambda: not tab.is_recording(), timeout=20_000)
    qtbot.waitUntil(lambda: len(tab.segments) == 2 and tab._finals_pending == 0, timeout=20_000)

    assert [e.reason for e in final_events] == ["pause", "pause"]
    assert not [s for s in submitted if s[0] == S_FINAL], "no second decode for a pause final"
    cands = [m for s, m in submitted if s == S_CANDIDATE]
    assert len(cands) >= 2 and tab.finals_from_candidates == 2
    # the final text is the text of a fresh decode of the final's audio
    from engine.types.audio import TranscriptionOptions
    fresh = []
    for e in final_events:
        real_submit("test-fresh", "speech-recognition", e.audio, TranscriptionOptions(), item_id=e.index,
                    keep_all=True).result.connect(fresh.append)
    qtbot.waitUntil(lambda: len(fresh) == 2, timeout=20_000)
    assert [o.item_id for o in fresh] == [0, 1]
    assert [o.result.text for o in fresh] == [s[3] for s in tab.segments]
    assert [(e.index, e.start_s, e.end_s) for e in final_events] == [s[:3] for s in tab.segments]
    assert tab.table.rowCount() == 2


def test_stop_finalizes_the_last_utterance(qtbot, tab, two_sentences):
    path, _ = two_sentences
    tab.set_source(AudioFileSource(path, speed=1.0))
    tab.start()
    qtbot.waitUntil(lambda: tab.session.in_speech, timeout=10_000)  # speaking now
    tab.stop()  # Stop in the middle of the first sentence
    assert not tab.is_recording()
    qtbot.waitUntil(lambda: len(by_stream(tab.outcomes, S_FINAL)) == 1, timeout=15_000)
    (final,) = by_stream(tab.outcomes, S_FINAL)
    assert final.meta["reason"] == "flush"
    assert tab.table.rowCount() == 1


def test_live_classification_bars(qtbot, tab, two_sentences):
    path, _ = two_sentences
    tab.set_mode("classify")
    assert tab.pages.currentIndex() == 1
    tab.set_source(AudioFileSource(path, speed=1.0, loop=True))
    tab.start()
    qtbot.waitUntil(lambda: len(tab.bars.labels) == 5, timeout=15_000)
    tab.stop()
    got = by_stream(tab.outcomes, S_CLASSIFY)
    assert got and abs(float(np.sum(got[-1].result.scores)) - 1.0) < 1.0  # probabilities (top-5 of 12)
    assert all(0.0 <= s <= 1.0 for s in tab.bars.scores)
    assert not by_stream(tab.outcomes, S_FINAL)


def test_file_transcription_and_srt_export(qtbot, tab, speech_wav, tmp_path):
    assert tab.open_file(speech_wav)
    assert tab.progress.isVisible()
    qtbot.waitUntil(lambda: tab.file_result is not None, timeout=20_000)
    r = tab.file_result
    assert not tab.progress.isVisible()
    assert tab.table.rowCount() == len(r.words)
    assert all(tab.export_btns[f].isEnabled() for f in ("txt", "srt", "vtt"))
    assert tab.ctc.internals is not None and len(tab.ctc.internals.blank_prob) > 10
    out = tab.export(tmp_path / "out.srt")
    text = out.read_text(encoding="utf-8")
    if r.words:  # a valid SRT: numbered cues with "hh:mm:ss,mmm --> hh:mm:ss,mmm"
        import re
        blocks = [b for b in text.strip().split("\n\n") if b.strip()]
        assert blocks
        for i, b in enumerate(blocks, 1):
            lines = b.splitlines()
            assert lines[0] == str(i)
            assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3} --> \d\d:\d\d:\d\d,\d{3}", lines[1])
    vtt = tab.export(tmp_path / "out.vtt").read_text(encoding="utf-8")
    assert vtt.startswith("WEBVTT")


def test_corrupt_file_gives_a_message_and_the_tab_stays_usable(qtbot, tab, tmp_path, speech_wav):
    bad = tmp_path / "broken.wav"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt garbage" * 3)
    with qtbot.waitSignal(tab.message, timeout=2000) as sig:
        assert tab.open_file(bad) is False
    assert "broken.wav" in sig.args[0]
    assert "broken.wav" in tab.msg.text()
    assert not tab.progress.isVisible()
    assert tab.open_file(speech_wav)  # still works afterwards
    qtbot.waitUntil(lambda: tab.file_result is not None, timeout=20_000)
    assert by_stream(tab.outcomes, S_FILE)


def test_no_microphone_message(qtbot, engine, settings, monkeypatch):
    monkeypatch.delenv("TASKSCOPE_FAKE_MIC", raising=False)
    if list_input_devices():
        pytest.skip("this machine has an audio input device")
    t = SpeechTab(engine, settings)
    qtbot.addWidget(t)
    assert t.mic.currentText() == "No microphone found"
    assert t.start() is False
    assert "No microphone found" in t.msg.text()
    assert not t.record_btn.isChecked()
    t.shutdown()


def test_settings_are_remembered(qtbot, engine, settings, w2v_base_ctc):
    t = SpeechTab(engine, settings)
    qtbot.addWidget(t)
    t.asr_picker.set_model(str(w2v_base_ctc))
    t.set_mode("classify")
    t.shutdown()
    t2 = SpeechTab(engine, settings)
    qtbot.addWidget(t2)
    assert t2.asr_picker.current_model() == str(w2v_base_ctc)
    assert t2.mode.currentData() == "classify"
    assert t2.handled_suffixes() >= {".wav", ".flac", ".ogg", ".mp3"}
    t2.shutdown()


def test_real_microphone_path_with_pulseaudio(qtbot, tab, pulse_mic, two_sentences):
    import sounddevice as sd

    path, _ = two_sentences
    # the fixture re-initialised PortAudio (it was initialised before the daemon started)
    assert {"pulse", "default"} & {d["name"] for d in sd.query_devices()}
    tab.refresh_devices()
    names = [tab.mic.itemData(i) for i in range(tab.mic.count())]
    assert "pulse" in names or "default" in names, names
    tab.mic.setCurrentIndex(tab.mic.findData("pulse" if "pulse" in names else "default"))
    tab.set_source(None)
    assert tab.start(), tab.msg.text()
    source = tab.source
    pulse_mic.play(path, lead_s=0.3, tail_s=1.0)
    qtbot.waitUntil(lambda: len(tab.segments) >= 1, timeout=25_000)
    assert source.rate in (16_000.0,) or source.rate > 0
    assert tab.level.updates > 10 and tab.level.peak_db > -30
    assert tab.waveform.pushed > SR
    tab.stop()
    _, start, end, _ = tab.segments[0]
    assert 0.0 <= start < end


def test_stream_resampler_is_seamless_across_blocks():
    from engine.processors.audio import Resampler as StreamResampler

    for rate in (48_000, 44_100, 22_050, 8_000):
        t = np.arange(2 * rate) / rate
        x = np.sin(2 * np.pi * 440 * t).astype(np.float32)
        r = StreamResampler(rate)
        blocks = [r.process(x[i:i + 1234]) for i in range(0, len(x), 1234)]
        y = np.concatenate(blocks)
        assert abs(len(y) - 2 * SR) <= 1
        seg = y[SR // 2:]  # after the filter's start-up
        # a clean 440 Hz sine at 16 kHz: rms 0.707, the spectrum peak at 440 Hz, no clicks at block seams
        assert abs(np.sqrt(np.mean(seg ** 2)) - 0.707) < 0.02
        spec = np.abs(np.fft.rfft(seg * np.hanning(len(seg))))
        assert abs(np.argmax(spec) * SR / len(seg) - 440) < 2
        assert np.max(np.abs(np.diff(seg))) < 2 * np.pi * 440 / SR * 1.1


def test_microphone_source_without_devices_reports_it(qtbot, monkeypatch):
    import gui.sources.microphone as mic

    monkeypatch.setattr(mic, "list_input_devices", lambda: [])
    src = mic.MicrophoneSource()
    with qtbot.waitSignal(src.errorOccurred, timeout=1000) as sig:
        assert src.start() is False
    assert "No microphone found" in sig.args[0]
    assert not src.is_running()


# ---------------------------------------------------------------- review fixes

class FailingSource(AudioSource):
    """A source that cannot open: it says why (synchronously, as MicrophoneSource does)."""

    @property
    def description(self) -> str:
        return "failing"

    def start(self) -> bool:
        self.errorOccurred.emit("The microphone exploded.")
        return False


def _spy_loads(tab, monkeypatch):
    loads = []
    real_load = tab.engine.load
    monkeypatch.setattr(tab.engine, "load", lambda task, ref, *a, **kw: (loads.append((task, ref)),
                                                                         real_load(task, ref, *a, **kw))[-1])
    return loads


def test_a_source_that_cannot_open_keeps_its_error_and_loads_no_model(qtbot, tab, monkeypatch):
    loads = _spy_loads(tab, monkeypatch)
    changes, errors, messages = [], [], []
    tab.recordingChanged.connect(changes.append)
    tab.errorMessage.connect(errors.append)
    tab.message.connect(messages.append)
    tab.set_source(FailingSource())
    assert tab.start() is False
    assert tab.msg.text() == "The microphone exploded."
    assert errors == ["The microphone exploded."] and messages == errors  # `message` still carries it
    assert changes == []  # no recordingChanged(False) without a True
    assert not tab.record_btn.isChecked() and not tab.is_recording()
    assert loads == []  # no model load (download) for a source that is not there
    # a source that opens: the model loads after it started
    tab.set_source(AudioFileSource(audio=np.zeros(SR * 5, np.float32), speed=1.0))
    assert tab.start()
    assert loads == [("speech-recognition", tab.asr_picker.current_model())]
    assert changes == [True]
    tab.stop()
    assert changes == [True, False]


def test_a_source_error_while_recording_stops_quietly(qtbot, tab):
    source = AudioFileSource(audio=np.zeros(SR * 5, np.float32), speed=1.0, loop=True)
    tab.set_source(source)
    changes, errors = [], []
    tab.recordingChanged.connect(changes.append)
    tab.errorMessage.connect(errors.append)
    assert tab.start()
    qtbot.waitUntil(lambda: tab.waveform.pushed > 0, timeout=5000)
    source.errorOccurred.emit("The microphone was unplugged.")
    assert not tab.is_recording() and not tab.record_btn.isChecked()
    assert tab.msg.text() == "The microphone was unplugged."  # not "Stopped."
    assert errors == ["The microphone was unplugged."]
    assert changes == [True, False]


def test_a_second_recording_appends_after_the_first(qtbot, tab, two_sentences):
    from types import SimpleNamespace

    from gui.speech.widgets.transcript_view import fmt_t

    path, _ = two_sentences
    for n in (2, 4):  # two recordings of the same file: the stream times restart at 0
        tab.set_source(AudioFileSource(path, speed=4.0, tail_s=1.0))
        assert tab.start()
        qtbot.waitUntil(lambda: not tab.is_recording(), timeout=20_000)
        qtbot.waitUntil(lambda n=n: len(tab.segments) == n and tab._finals_pending == 0, timeout=20_000)
    assert [s[0] for s in tab.segments] == [0, 1, 0, 1]  # recording by recording, not by start time
    assert tab.segments[2][1] < tab.segments[1][1]

    def rows():
        return [(tab.table.item(r, 0).text(), tab.table.item(r, 2).text()) for r in range(tab.table.rowCount())]

    def expected():
        return [(fmt_t(s[1]), s[3] or "…") for s in tab.segments]

    assert rows() == expected()  # the table agrees with the segments
    assert tab.transcript.toPlainText() == " ".join(s[3] for s in tab.segments if s[3])
    # a late final of the first recording goes after that recording's utterances
    late = SimpleNamespace(text="late words", internals=None)
    tab._show_final(7, {"start_s": 9.0, "end_s": 9.5, "recording": tab._recording - 1}, late)
    assert [s[3] for s in tab.segments].index("late words") == 2
    assert rows() == expected()
    assert tab.transcript.toPlainText() == " ".join(s[3] for s in tab.segments if s[3])


def test_space_leaves_other_buttons_alone_and_does_not_repeat(qtbot, tab):
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QApplication

    assert tab._space.autoRepeat() is False
    tab.set_source(FailingSource())  # a toggle to "on" fails at once: nothing records
    toggles, refreshes = [], []
    tab.record_btn.toggled.connect(toggles.append)
    tab.refresh_btn.clicked.connect(lambda *_: refreshes.append(1))
    tab.activateWindow()
    tab.refresh_btn.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is tab.refresh_btn, timeout=5000)
    qtbot.keyClick(tab.refresh_btn, Qt.Key.Key_Space)
    assert toggles == [] and refreshes == [1]  # Space pressed the focused button, no recording toggle
    tab.transcript.setFocus()  # read-only text: Space is the tab's shortcut
    qtbot.waitUntil(lambda: QApplication.focusWidget() is tab.transcript, timeout=5000)
    qtbot.keyClick(tab.transcript, Qt.Key.Key_Space)
    assert toggles == [True]


def test_file_progress_is_shown_while_the_tab_is_hidden(qtbot, tab, speech_wav, monkeypatch):
    fractions = []
    real = tab.file_bar.set_fraction
    monkeypatch.setattr(tab.file_bar, "set_fraction", lambda f: (fractions.append(f), real(f))[-1])
    tab.hide()
    assert tab.open_file(speech_wav)
    request = tab.file.request
    assert request.stream == S_FILE and request.long
    request.progress.emit(0.5, None)  # as the engine thread reports it
    assert fractions == [0.5]
    qtbot.waitUntil(lambda: tab.file_result is not None, timeout=20_000)
    request.progress.emit(0.9, None)  # after the result: no file running
    assert fractions[-1] != 0.9


def test_blocks_queued_by_a_stopped_source_do_not_reach_the_next_session(qtbot, tab, monkeypatch):
    import threading

    fed = []
    real_feed = tab.session.feed
    monkeypatch.setattr(tab.session, "feed", lambda block, t_s=None: (fed.append(block), real_feed(block, t_s))[-1])
    old = AudioFileSource(audio=np.zeros(SR * 5, np.float32), speed=1.0)
    tab.set_source(old)
    assert tab.start()
    marker = np.full(1600, 0.25, np.float32)
    # a block posted from the audio thread just before Stop (queued: it is delivered later)
    t = threading.Thread(target=lambda: old.blockReady.emit(marker, 0.0))
    t.start()
    t.join()
    tab.stop()
    new = AudioFileSource(audio=np.zeros(SR * 5, np.float32), speed=1.0)
    tab.set_source(new)
    assert tab.start()
    qtbot.waitUntil(lambda: len(fed) >= 3, timeout=5000)
    assert not any(b is marker for b in fed)
    tab.stop()


def test_transcript_view_updates_in_place():
    from PySide6.QtWidgets import QTextBrowser

    from gui.speech.widgets.transcript_view import TranscriptView, esc

    def reference(finals, partial="", in_speech=False):  # what show_live used to draw (setHtml)
        html = " ".join(esc(t) for t in finals if t)
        if partial:
            html += f" <span style='color:#888888'><i>{esc(partial)}</i></span>"
        elif in_speech:
            html += " <span style='color:#888888'><i>…</i></span>"
        b = QTextBrowser()
        b.setHtml(f"<p style='font-size:15pt'>{html}</p>")
        return b.toPlainText()

    view = TranscriptView()
    view.show_live([], "", False)
    calls = []
    real = view.transcript.setHtml
    view.transcript.setHtml = lambda html: (calls.append(html), real(html))[-1]
    finals = []
    steps = [("partial", "hel", True), ("partial", "hello w", True), ("final", "hello <world> & co", False),
             ("partial", "", True), ("partial", "next", True), ("final", "", False), ("final", "next one", False),
             ("partial", "", False)]
    for kind, text, in_speech in steps:
        if kind == "final":
            finals.append(text)
            view.append_final(text)
            view.set_partial("", in_speech)
            assert view.transcript.toPlainText() == reference(finals, "", in_speech)
        else:
            view.set_partial(text, in_speech)
            assert view.transcript.toPlainText() == reference(finals, text, in_speech)
    assert calls == []  # no full rebuild for a partial or a final
    view.set_partial("grey", True)
    doc = view.transcript.document()
    last = doc.lastBlock().begin()
    frags = []
    while not last.atEnd():
        frags.append(last.fragment())
        last += 1
    assert frags[-1].text() == " grey" and frags[-1].charFormat().fontItalic()
    assert frags[-1].charFormat().foreground().color().name() == "#888888"
    assert not frags[0].charFormat().fontItalic() and frags[0].charFormat().fontPointSize() == 15
    # a note replaces it; the next update redraws the live transcript
    view.show_note("busy")
    assert not view.is_live()
    view.show_live(finals, "p", True)
    assert view.transcript.toPlainText() == reference(finals, "p", True)


def test_events_are_bounded(tab):
    assert tab.events.maxlen == 1000
