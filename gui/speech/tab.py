"""The Speech tab: live transcription / audio classification from a microphone, and file
transcription with word timestamps and export.

Live data flow (UI thread unless stated):

    microphone callback thread --blockReady--> _on_block: level meter, waveform, spectrogram,
        SpeechSession (endpointing) --partial--> engine stream "speech-partial" (latest wins)
                                    --candidate> engine stream "speech-candidate" (keep_all)
                                    --final----> engine stream "speech-final"  (keep_all),
                                                 unless its candidate's decode serves it
        SlidingWindow (1 s every 250 ms)  -----> engine stream "speech-classify" (latest wins)
    engine thread --each request's own result--> _on_result: grey partial text / final rows / top-5 bars

Speculative finals (gui/speculative_finals.py): a pause's "candidate" is decoded before the pause
is confirmed, and its result serves the matching "final" without a second decode. Finals without a
candidate (Stop, forced split) are decoded on "speech-final". Files: gui/file_transcription.py.
The engine thread runs every model; this module imports no torch.

Device loss: a microphone that fails while listening is stopped as Stop does (the utterance in
progress is finalized from what was heard; what is final stays), its message stays shown, and it
is opened again every couple of seconds (a single-shot QTimer) until it is back; listening then
goes on as a new recording after the earlier ones. The button shows Stop meanwhile: pressing it,
another source or a file ends the attempts.
"""
from __future__ import annotations

import bisect
import functools
import logging
from collections import deque
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtWidgets import QFileDialog, QLabel, QSplitter, QVBoxLayout, QWidget

from engine.types.audio import (AudioClassificationOptions, AudioClassificationResult, TranscriptionOptions,
                            TranscriptionResult)

from gui.sources.audio_file import AudioFileSource
from gui.sources.microphone import AudioSource, BlockRelay, rescan_devices
from gui.core.task_tab import TaskTab
from gui.core.settings import OPEN_DIR_KEY, remember_splitter
from gui.speech.speculative_finals import SpeculativeFinals
from gui.speech.session import SlidingWindow, SpeechEvent, SpeechSession
from gui.speech.file_transcription import STREAM as S_FILE
from gui.speech.file_transcription import FileTranscription
from gui.speech.widgets.live_signal import LiveSignalView
from gui.speech.widgets.space_toggle import SpaceToggle
from gui.speech.widgets.speech_controls import SpeechControls
from gui.speech.widgets.speech_pages import SpeechPages

log = logging.getLogger(__name__)

ASR = "speech-recognition"
CLS = "audio-classification"
S_PARTIAL, S_FINAL, S_CLASSIFY = "speech-partial", "speech-final", "speech-classify"
S_CANDIDATE = "speech-candidate"
STREAMS = (S_PARTIAL, S_FINAL, S_CLASSIFY, S_FILE, S_CANDIDATE)
SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64"}
NO_MIC = "No microphone found. Connect one and press ⟳, or open an audio file."
MAX_EVENTS = 1000  # SpeechTab.events keeps the latest ones (a long session would grow it without bound)
RECONNECT_INTERVAL_MS = 2000  # how often a lost microphone is opened again


class SpeechTab(TaskTab):
    """Live speech (microphone) and audio files through the engine's speech tasks."""

    domain = "audio"
    recordingChanged = Signal(bool)
    message = Signal(str)  # what the tab shows in its message line (also for tests)

    def __init__(self, engine, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(engine, settings, parent)
        self.setObjectName("SpeechTab")
        self.source: AudioSource | None = None
        self._source_override: AudioSource | None = None
        self.session = SpeechSession()
        self.sliding = SlidingWindow(1.0, 0.25)  # the classifier's 1 s window (not QWidget.window())
        self.segments: list[tuple[int, float, float, str]] = []  # (utterance, start, end, text) finals
        self._segment_order: list[tuple[int, float]] = []  # (recording, start) of each segment, sorted
        self.events: deque[tuple[str, int, float, float]] = deque(maxlen=MAX_EVENTS)  # (kind, index, start, end)
        self.partial_text = ""
        self._live = False  # recordingChanged(True) was emitted and no matching False yet
        self._source_failed = False  # the live source reported an error: its message stays shown
        self._relay: BlockRelay | None = None
        self._finals_pending = 0
        self._finalized: set[int] = set()
        # speculative finals, keyed (recording, utterance index, end_s):
        self._recording = 0  # bumped on each Start: indexes and times restart with the session
        self.speculative = SpeculativeFinals()
        self.finals_from_candidates = 0  # finals shown from a candidate's decode (for tests/stats)
        # device loss: the live microphone failed; it is opened again until it is back
        self.reconnect_interval_ms = RECONNECT_INTERVAL_MS
        self.reconnect_attempts = 0
        self._reconnecting = False
        self._retrying = False  # inside one attempt: its failures are not shown (the loss message stays)
        self._lost_device = None  # the picker's device that was lost (None: the set_source override)
        self._reconnect_timer = QTimer(self)
        self._reconnect_timer.setSingleShot(True)
        self._reconnect_timer.timeout.connect(self._try_reconnect)
        self._build()
        self._restore()
        for name, slot in (("modelLoading", self._on_model_loading), ("modelLoaded", self._on_model_loaded),
                           ("modelFailed", self._on_model_failed)):
            getattr(engine, name).connect(slot)

    # ================================================================== UI

    def _build(self) -> None:
        root = QVBoxLayout(self)

        # --- controls; their widgets are the tab's attributes too (tab.mode, tab.mic, tab.record_btn…)
        c = self.controls = SpeechControls(ASR, CLS)
        self.mode, self.mic_picker, self.mic, self.refresh_btn = c.mode, c.mic_picker, c.mic, c.refresh_btn
        self.record_btn, self.open_btn, self.model_status = c.record_btn, c.open_btn, c.model_status
        self.asr_picker, self.cls_picker = c.asr_picker, c.cls_picker
        root.addWidget(c)

        # --- live signal views
        sv = self.signal_view = LiveSignalView(seconds=5.0)
        self.level, self.waveform, self.spectrogram = sv.level, sv.waveform, sv.spectrogram

        # --- results: transcript page (with the file job row) / classification page
        p = self.pages = SpeechPages()
        tv, fb = self.transcript_view, self.file_bar = p.transcript_view, p.file_bar
        self.transcript, self.ctc, self.table, self.bars = tv.transcript, tv.ctc, tv.table, p.bars
        self.progress, self.cancel_btn, self.export_btns = fb.progress, fb.cancel_btn, fb.export_btns

        main_split = QSplitter(Qt.Orientation.Vertical)
        main_split.addWidget(self.signal_view)
        main_split.addWidget(self.pages)
        main_split.setSizes([260, 420])
        root.addWidget(main_split, 1)
        remember_splitter(main_split, self.settings, "speech/splitter")
        remember_splitter(tv.splitter, self.settings, "speech/transcript_splitter")

        self.msg = QLabel("")
        self.msg.setWordWrap(True)
        self.msg.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        root.addWidget(self.msg)

        # --- signals
        self.mode.currentIndexChanged.connect(self._on_mode)
        self.refresh_btn.clicked.connect(self.refresh_devices)
        self.record_btn.toggled.connect(self._on_record_toggled)
        self.open_btn.clicked.connect(self._open_dialog)
        self.cancel_btn.clicked.connect(self.cancel_file)
        self.file_bar.exportRequested.connect(self._export_dialog)
        self.file = FileTranscription(self.engine, self.file_bar, tv, self.ctc, self._say, self._ensure_asr_model)
        self.mic.currentIndexChanged.connect(self._on_mic_changed)
        self.asr_picker.modelChosen.connect(lambda ref: self._model_chosen(ASR, ref))
        self.cls_picker.modelChosen.connect(lambda ref: self._model_chosen(CLS, ref))
        self._space_toggle = SpaceToggle(self, self.record_btn)  # Space: Start/Stop
        self._space = self._space_toggle.shortcut

    def _restore(self) -> None:
        s = self.settings
        self.asr_picker.set_model(s.value(f"models/{ASR}", None) or self.asr_picker.current_model(), emit=False)
        self.cls_picker.set_model(s.value(f"models/{CLS}", None) or self.cls_picker.current_model(), emit=False)
        mode = s.value("speech/mode", "transcribe")
        self.controls.set_mode(mode)
        self._on_mode()
        self.refresh_devices(rescan=False)

    # ================================================================== public API

    def handled_suffixes(self) -> set[str]:
        return set(SUFFIXES)

    @property
    def live_task(self) -> str:
        return CLS if self.mode.currentData() == "classify" else ASR

    def set_mode(self, mode: str) -> None:
        """"transcribe" or "classify"."""
        self.controls.set_mode(mode)

    def set_source(self, source: AudioSource | None) -> None:
        """Use ``source`` (e.g. an AudioFileSource) instead of the picked microphone on the next
        Start; None goes back to the picker."""
        if self.is_recording() or self._reconnecting:
            self.stop()
        self._source_override = source

    @property
    def reconnecting(self) -> bool:
        """The live microphone was lost and is being opened again every ``reconnect_interval_ms``."""
        return self._reconnecting

    def is_recording(self) -> bool:
        return self.source is not None and self.source.is_running()

    def start(self) -> bool:
        """Start live listening; False (with a message) if no source could be opened."""
        if self.is_recording():
            return True
        if not self._retrying:  # a Start of the person's own ends reconnecting (this one tries now)
            self._cancel_reconnect()
        source = self._source_override or self._make_source()
        if source is None:
            self.controls.set_recording(False)
            return False
        self.source = source
        self._relay = BlockRelay(source, self._on_block, self)
        source.blockReady.connect(self._relay.on_block)
        source.levelChanged.connect(self.level.set_level)
        source.errorOccurred.connect(self._on_source_error)
        if isinstance(source, AudioFileSource):
            source.finished.connect(self.stop)
        self.session.reset()
        self.sliding.reset()
        self.signal_view.reset()
        self.partial_text = ""
        self._finalized.clear()
        self._recording += 1
        self._source_failed = False
        # per-recording state: the new session's utterance indexes and times start at 0 again
        self._finals_pending = 0
        self.speculative.new_recording()
        if hasattr(self.engine, "reset_dropped"):
            for stream in (S_PARTIAL, S_CLASSIFY):
                self.engine.reset_dropped(stream)
        if not source.start():  # it said why (errorOccurred): that message stays shown
            self._disconnect_source()
            if source is not self._source_override:
                source.deleteLater()  # made for this Start (one per reconnect attempt): not kept
            self.controls.set_recording(False)
            return False
        task = self.live_task  # the model loads only once the source is open (no download for no mic)
        picker = self.asr_picker if task == ASR else self.cls_picker
        if self.engine.loaded_model(task) != picker.current_model():
            self.engine.load(task, picker.current_model())
        self.controls.set_recording(True)
        self._say(f"Listening ({source.description}) — {'transcribing' if task == ASR else 'classifying'}.")
        self._live = True
        self.recordingChanged.emit(True)
        return True

    def stop(self, quiet: bool = False) -> None:
        """Stop listening; the utterance in progress is finalized (nothing heard is dropped).
        ``quiet``: the message line is left as it is (e.g. showing the source's error)."""
        self._cancel_reconnect()
        source = self.source
        if source is None:
            self.controls.set_recording(False)
            self._end_live()
            return
        source.stop()
        self._disconnect_source()
        self.engine.cancel(S_PARTIAL)
        self.engine.cancel(S_CLASSIFY)
        if self.live_task == ASR:
            self._handle_events(self.session.flush())
        else:
            self.session.flush()
        self.controls.set_recording(False)
        if not quiet:
            self._say("Stopped." + (" Finishing the last utterance…" if self._finals_pending else ""))
        self._end_live()

    def _end_live(self) -> None:
        """recordingChanged(False), once, and only after a recordingChanged(True)."""
        if self._live:
            self._live = False
            self.recordingChanged.emit(False)

    def open_file(self, path) -> bool:
        """Transcribe an audio file (also the drop target). False with a message if unreadable."""
        if self.is_recording() or self._reconnecting:
            self.stop()
        if not self.file.open(path):
            return False
        self.set_mode("transcribe")
        return True

    def cancel_file(self) -> None:
        self.file.cancel()

    def export(self, path, fmt: str | None = None) -> Path:
        """Write the last file transcript as txt / srt / vtt / json (from the suffix by default)."""
        return self.file.export(path, fmt)

    @property
    def file_result(self) -> TranscriptionResult | None:
        return self.file.result

    @property
    def file_path(self) -> Path | None:
        return self.file.path

    def refresh_devices(self, rescan: bool = True) -> None:
        """List the microphones again (PortAudio re-scans only when re-initialised)."""
        remembered = self.settings.value("speech/device", None)
        if not self.mic_picker.refresh(remembered, rescan=rescan and not self.is_recording()):
            self._say(NO_MIC)

    def shutdown(self, timeout_ms: int = 3000) -> bool:
        """Stop the source and the tab's engine streams (the app shuts the engine down)."""
        self._reconnect_timer.stop()
        self._reconnecting = False
        if self.source is not None:
            self.source.stop()
            self._disconnect_source()
        self._live = False
        self._space_toggle.detach()
        for s in STREAMS:
            try:
                self.engine.cancel(s)
            except Exception:  # noqa: BLE001 - engine already gone
                pass
        self.settings.setValue("speech/mode", self.mode.currentData())
        return True

    # ================================================================== sources and endpointing

    def _make_source(self) -> AudioSource | None:
        source = self.mic_picker.make_source(parent=self)
        if source is None:
            self._say(NO_MIC, error=True)
        return source

    def _disconnect_source(self) -> None:
        src = self.source
        if src is None:
            return
        relay, self._relay = self._relay, None
        pairs = [(src.levelChanged, self.level.set_level), (src.errorOccurred, self._on_source_error)]
        if relay is not None:
            pairs.append((src.blockReady, relay.on_block))
            relay.deleteLater()  # with it go the blocks still posted to it (those would be ignored anyway)
        for sig, slot in pairs:
            try:
                sig.disconnect(slot)
            except (RuntimeError, TypeError):
                pass
        if isinstance(src, AudioFileSource):
            try:
                src.finished.disconnect(self.stop)
            except (RuntimeError, TypeError):
                pass
        self.source = None

    def _on_block(self, block: np.ndarray, t_s: float, source: AudioSource | None = None) -> None:
        if self.source is None or source is not self.source:
            return  # a block queued before Stop (possibly from the previous session's source)
        self.signal_view.push(block)
        if self.live_task == ASR:
            self._handle_events(self.session.feed(block, t_s))
        else:
            win = self.sliding.push(block)
            if win is not None:
                end = t_s + len(block) / 16000.0
                self._submit(S_CLASSIFY, CLS, win, AudioClassificationOptions(top_k=5),
                             meta={"start_s": end - len(win) / 16000.0, "end_s": end})

    def _handle_events(self, events: list[SpeechEvent]) -> None:
        for ev in events:
            self.events.append((ev.kind, ev.index, ev.start_s, ev.end_s))
            meta = {"start_s": ev.start_s, "end_s": ev.end_s, "reason": ev.reason, "recording": self._recording}
            if ev.kind == "start":
                self.partial_text = ""
                self._render_partial()
            elif ev.kind == "partial":
                self._submit(S_PARTIAL, ASR, ev.audio, TranscriptionOptions(), item_id=ev.index, meta=meta)
            elif ev.kind == "candidate":
                key = (self._recording, ev.index, ev.end_s)
                self.speculative.submitted(key)
                self._submit(S_CANDIDATE, ASR, ev.audio, TranscriptionOptions(internals=True), item_id=ev.index,
                             meta={**meta, "candidate": True, "key": key}, keep_all=True)
            elif ev.kind == "final":
                self.engine.cancel(S_PARTIAL)
                action, result = self.speculative.final((self._recording, ev.index, ev.end_s), meta)
                if action == "show":  # the speculative decode already finished: show it now
                    self._show_final(ev.index, meta, result, from_candidate=True)
                elif action == "wait":  # ...is still running: wait for it, no second decode
                    self._finals_pending += 1
                else:
                    self._finals_pending += 1
                    self._submit(S_FINAL, ASR, ev.audio, TranscriptionOptions(internals=True),
                                 item_id=ev.index, meta=meta, keep_all=True)

    def _on_source_error(self, message: str) -> None:
        """The source failed: its message stays shown. While recording, stop quietly (the utterance in
        progress is still finalized); during start() the source only says why it could not open.
        A microphone lost while recording is then opened again until it is back."""
        if self._retrying:  # one more reconnect attempt failed: the loss message stays shown
            log.debug("speech tab: reconnect attempt: %s", message)
            return
        self._say(message, error=True)
        if self.source is not None and self._live:
            self._source_failed = True
            reconnect = bool(getattr(self.source, "reconnectable", False))
            self.stop(quiet=True)
            if reconnect:
                self._begin_reconnect(message)

    # ------------------------------------------------------------------ device loss

    def _begin_reconnect(self, message: str) -> None:
        self._reconnecting = True
        self._lost_device = self.mic.currentData() if self._source_override is None else None
        self.controls.set_recording(True)  # Stop ends the attempts
        seconds = self.reconnect_interval_ms / 1000.0
        self._show_line(f"{message} Trying to open it again every {seconds:g} s…", error=True)
        self._reconnect_timer.start(max(0, int(self.reconnect_interval_ms)))

    def _cancel_reconnect(self) -> None:
        self._reconnect_timer.stop()
        if self._reconnecting:
            self._reconnecting = False
            self.controls.set_recording(False)

    def _try_reconnect(self) -> None:
        """One attempt: PortAudio lists the devices again (it sees a device plugged back in only
        then) and, if the lost one is there, listening starts on it."""
        if not self._reconnecting or self.is_recording():
            return
        self.reconnect_attempts += 1
        self._retrying = True
        try:
            if self._source_override is None:
                self.mic_picker.refresh(self._lost_device, rescan=True)
                i = self.mic.findData(self._lost_device) if self._lost_device is not None else -1
                if i >= 0:
                    self.mic.setCurrentIndex(i)
                ok = i >= 0 and self.start()
            else:
                rescan_devices()
                ok = self.start()
        finally:
            self._retrying = False
        if not self._reconnecting:  # ended meanwhile (a slot called stop)
            return
        if ok:
            self._reconnecting = False
            self._say(f"The microphone is back: listening again ({self.source.description}).")
            return
        self._source_failed = True  # the loss message stays until the person acts
        self.controls.set_recording(True)
        self._reconnect_timer.start(max(0, int(self.reconnect_interval_ms)))

    # ================================================================== engine results

    def _submit(self, stream: str, task: str, inputs, options, **kw) -> None:
        """Submit on one of the tab's live streams; the request's own signals come back here."""
        request = self.engine.submit(stream, task, inputs, options, **kw)
        request.result.connect(self._on_result)
        request.error.connect(functools.partial(self._on_error, stream, kw.get("meta")))

    def _on_result(self, outcome) -> None:
        stream = outcome.stream
        if stream not in STREAMS:
            return
        r = outcome.result
        if stream == S_PARTIAL and isinstance(r, TranscriptionResult):
            if outcome.item_id not in self._finalized:
                self.partial_text = r.text
                self._render_partial()
        elif stream == S_FINAL and isinstance(r, TranscriptionResult):
            if (outcome.meta or {}).get("recording", self._recording) == self._recording:
                self._finals_pending = max(0, self._finals_pending - 1)
            self._show_final(outcome.item_id, outcome.meta or {}, r)
        elif stream == S_CANDIDATE and isinstance(r, TranscriptionResult):
            key = (outcome.meta or {}).get("key")
            waiting = self.speculative.result(key, r, self._recording, self.session.utterance_count)
            if waiting is not None:  # its final came while it ran
                if key[0] == self._recording:
                    self._finals_pending = max(0, self._finals_pending - 1)
                self._show_final(outcome.item_id, waiting, r, from_candidate=True)
        elif stream == S_CLASSIFY and isinstance(r, AudioClassificationResult):
            if self.is_recording():
                self.bars.set_results(r.labels, [float(s) for s in r.scores])

    def _show_final(self, index: int, meta: dict, r: TranscriptionResult, from_candidate: bool = False) -> None:
        """Utterance ``index`` is final with text ``r``: a row, the transcript, the CTC strip."""
        self._finalized.add(index)
        if from_candidate:
            self.finals_from_candidates += 1
        start, end = meta.get("start_s", 0.0), meta.get("end_s", 0.0)
        # ordered by (recording, start): each Start restarts the stream times at 0
        order = (meta.get("recording", self._recording), start)
        row = bisect.bisect_right(self._segment_order, order)
        self._segment_order.insert(row, order)
        self.segments.insert(row, (index, start, end, r.text))
        self.partial_text = ""
        self.transcript_view.add_row(start, end, r.text or "…", row=row)
        tv = self.transcript_view
        if row == len(self.segments) - 1 and tv.is_live():  # the usual case: one more at the end
            tv.append_final(r.text)
            self._render_partial()
        else:  # a late final of an earlier recording (or the view showed a file): redraw it all
            self._render_transcript()
        self.ctc.set_internals(r.internals)
        if not self.is_recording() and not self._finals_pending and not self._source_failed:
            self._say(f"{len(self.segments)} utterance(s) transcribed.")

    def _render_transcript(self) -> None:
        self.transcript_view.show_live((seg[3] for seg in self.segments), self.partial_text, self.session.in_speech)

    def _render_partial(self) -> None:
        """Only the trailing grey span (the finals are drawn as they come)."""
        if self.transcript_view.is_live():
            self.transcript_view.set_partial(self.partial_text, self.session.in_speech)
        else:
            self._render_transcript()

    def _on_error(self, stream: str, meta: dict | None, message: str) -> None:
        """An error of one of the tab's live requests (file transcription handles its own)."""
        if stream in STREAMS:
            if stream == S_FINAL:
                self._finals_pending = max(0, self._finals_pending - 1)
            key = (meta or {}).get("key")
            if stream == S_CANDIDATE and self.speculative.failed(key) is not None:  # a final waited for it
                self._finals_pending = max(0, self._finals_pending - 1)
            self._say(message, error=True)

    def _on_model_loading(self, task: str, ref: str, done, total) -> None:
        if task in (ASR, CLS):
            self.controls.show_model_loading(ref, done, total)

    def _on_model_loaded(self, task: str, description: str) -> None:
        if task in (ASR, CLS):
            self.controls.show_model_loaded(description)

    def _on_model_failed(self, task: str, message: str) -> None:
        if task in (ASR, CLS):
            self.controls.show_model_failed()
            if message:
                self._say(message, error=True)

    # ================================================================== small handlers

    def _say(self, text: str, error: bool = False) -> None:
        if self._retrying:  # inside a reconnect attempt: the loss message stays shown
            log.debug("speech tab (reconnecting): %s", text)
            return
        self._show_line(text, error)
        (log.warning if error else log.info)("speech tab: %s", text)
        if error:
            self.errorMessage.emit(text)

    def _show_line(self, text: str, error: bool = False) -> None:
        """The tab's message line (and ``message``), without the window's error handler."""
        self.msg.setStyleSheet("color: #c0392b" if error else "")
        self.msg.setText(text)
        self.message.emit(text)

    def _on_record_toggled(self, on: bool) -> None:
        if on:
            self.start()
        else:
            self.stop()

    def _on_mode(self, *_args) -> None:
        self.pages.show_classification(self.mode.currentData() == "classify")
        self.cls_picker.setEnabled(True)
        self.settings.setValue("speech/mode", self.mode.currentData())

    def _on_mic_changed(self, *_args) -> None:
        data = self.mic.currentData()
        if data:
            self.settings.setValue("speech/device", data)

    def _model_chosen(self, task: str, ref: str) -> None:
        self.settings.setValue(f"models/{task}", ref)  # one key per task, as the Vision tab
        if self.engine.loaded_model(task) is not None or (task == self.live_task and self.is_recording()):
            self.engine.load(task, ref)

    def _ensure_asr_model(self) -> None:
        if self.engine.loaded_model(ASR) != self.asr_picker.current_model():
            self.engine.load(ASR, self.asr_picker.current_model())

    def _open_dialog(self) -> None:
        pats = " ".join(f"*{s}" for s in sorted(SUFFIXES))
        path, _ = QFileDialog.getOpenFileName(self, "Open an audio file", self.settings.value(OPEN_DIR_KEY, ""),
                                              f"Audio ({pats});;All files (*)")
        if path:
            self.settings.setValue(OPEN_DIR_KEY, str(Path(path).parent))
            self.open_file(path)

    def _export_dialog(self, fmt: str) -> None:
        self.file.export_dialog(self, fmt)
