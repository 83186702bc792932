"""The Speech tab: live transcription / audio classification from a microphone, and file
transcription with word timestamps and export.

Live data flow (UI thread unless stated):

    microphone callback thread --blockReady--> _on_block: level meter, waveform, spectrogram,
        SpeechSession (endpointing) --partial--> engine stream "speech-partial" (latest wins)
                                    --final----> engine stream "speech-final"  (keep_all)
        SlidingWindow (1 s every 250 ms)  -----> engine stream "speech-classify" (latest wins)
    engine thread --resultReady--> _on_result: grey partial text / final rows / top-5 bars

A file goes to stream "speech-file" (keep_all) with progress and cancel. The engine thread
runs every model; this module imports no torch.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut, QTextCursor
from PySide6.QtWidgets import (QAbstractItemView, QComboBox, QFileDialog, QFrame, QGridLayout, QGroupBox,
                               QHBoxLayout, QHeaderView, QLabel, QProgressBar, QPushButton, QSplitter,
                               QStackedWidget, QTableWidget, QTableWidgetItem, QTextBrowser, QToolButton,
                               QVBoxLayout, QWidget)

from engine.results import (AudioClassificationOptions, AudioClassificationResult, TranscriptionOptions,
                            TranscriptionResult)

from ..sources.audio_file import AudioFileSource
from ..sources.microphone import AudioSource, MicrophoneSource, list_input_devices, rescan_devices
from ..speech_session import SlidingWindow, SpeechEvent, SpeechSession
from ..widgets.bars import BarsView
from ..widgets.ctc_strip import CTCStrip
from ..widgets.level_meter import LevelMeter
from ..widgets.pickers import ModelPicker
from ..widgets.spectrogram import SpectrogramView
from ..widgets.waveform import WaveformView

log = logging.getLogger(__name__)

ASR = "speech-recognition"
CLS = "audio-classification"
S_PARTIAL, S_FINAL, S_CLASSIFY, S_FILE = "speech-partial", "speech-final", "speech-classify", "speech-file"
STREAMS = (S_PARTIAL, S_FINAL, S_CLASSIFY, S_FILE)
SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aiff", ".aif", ".au", ".caf", ".w64"}
FAKE_MIC_ENV = "TASKSCOPE_FAKE_MIC"  # a WAV path offered as an extra "microphone" (demos)
_FILE_PREFIX = "file:"


def _fmt_t(t: float) -> str:
    m, s = divmod(max(0.0, t), 60.0)
    return f"{int(m)}:{s:05.2f}"


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SpeechTab(QWidget):
    """Live speech (microphone) and audio files through the engine's speech tasks."""

    recordingChanged = Signal(bool)
    message = Signal(str)  # what the tab shows in its message line (also for tests)

    def __init__(self, engine, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("SpeechTab")
        self.engine = engine
        self.settings = settings
        self.source: AudioSource | None = None
        self._source_override: AudioSource | None = None
        self.session = SpeechSession()
        self.window = SlidingWindow(1.0, 0.25)
        self.segments: list[tuple[int, float, float, str]] = []  # (utterance, start, end, text) finals
        self.events: list[tuple[str, int, float, float]] = []  # (kind, index, start, end) sent to the engine
        self.partial_text = ""
        self.file_result: TranscriptionResult | None = None
        self.file_path: Path | None = None
        self._file_id = 0
        self._finals_pending = 0
        self._finalized: set[int] = set()
        self._build()
        self._restore()
        for name, slot in (("resultReady", self._on_result), ("errorOccurred", self._on_error),
                           ("progressChanged", self._on_progress), ("modelLoading", self._on_model_loading),
                           ("modelLoaded", self._on_model_loaded), ("modelFailed", self._on_model_failed)):
            getattr(engine, name).connect(slot)

    # ================================================================== UI

    def _build(self) -> None:
        root = QVBoxLayout(self)

        # --- controls
        controls = QGridLayout()
        self.mode = QComboBox()
        self.mode.addItem("Transcribe", "transcribe")
        self.mode.addItem("Classify", "classify")
        self.mode.setToolTip("Live: speech recognition (wav2vec2 + CTC) or audio classification (1 s windows)")
        self.mic = QComboBox()
        self.mic.setMinimumContentsLength(24)
        self.mic.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.refresh_btn = QToolButton()
        self.refresh_btn.setText("⟳")
        self.refresh_btn.setToolTip("Look for microphones again")
        self.record_btn = QPushButton("● Start")
        self.record_btn.setCheckable(True)
        self.record_btn.setToolTip("Start / stop listening (Space)")
        self.open_btn = QPushButton("Open audio file…")
        self.asr_picker = ModelPicker(ASR)
        self.cls_picker = ModelPicker(CLS)
        controls.addWidget(QLabel("Mode"), 0, 0)
        controls.addWidget(self.mode, 0, 1)
        controls.addWidget(QLabel("Microphone"), 0, 2)
        mic_row = QHBoxLayout()
        mic_row.addWidget(self.mic, 1)
        mic_row.addWidget(self.refresh_btn)
        controls.addLayout(mic_row, 0, 3)
        controls.addWidget(self.record_btn, 0, 4)
        controls.addWidget(self.open_btn, 0, 5)
        controls.addWidget(QLabel("Speech model"), 1, 0)
        controls.addWidget(self.asr_picker, 1, 1)
        controls.addWidget(QLabel("Classifier"), 1, 2)
        controls.addWidget(self.cls_picker, 1, 3)
        self.model_status = QLabel("")
        self.model_status.setStyleSheet("color: gray")
        controls.addWidget(self.model_status, 1, 4, 1, 2)
        controls.setColumnStretch(3, 1)
        root.addLayout(controls)

        # --- live signal views
        signal = QHBoxLayout()
        self.level = LevelMeter()
        signal.addWidget(self.level)
        views = QVBoxLayout()
        self.waveform = WaveformView(seconds=5.0)
        self.spectrogram = SpectrogramView(seconds=5.0)
        views.addWidget(self.waveform, 2)
        views.addWidget(self.spectrogram, 3)
        signal.addLayout(views, 1)
        signal_box = QFrame()
        signal_box.setLayout(signal)

        # --- results: transcript page / classification page
        self.pages = QStackedWidget()
        tpage = QWidget()
        tl = QVBoxLayout(tpage)
        tl.setContentsMargins(0, 0, 0, 0)
        self.transcript = QTextBrowser()
        self.transcript.setPlaceholderText("Press Start (Space) and speak, or open / drop an audio file.")
        self.transcript.setOpenLinks(False)
        self.ctc = CTCStrip()
        self.table = QTableWidget(0, 3)
        self.table.setHorizontalHeaderLabels(["Start", "End", "Text"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        split = QSplitter(Qt.Orientation.Horizontal)
        left = QWidget()
        ll = QVBoxLayout(left)
        ll.setContentsMargins(0, 0, 0, 0)
        ll.addWidget(self.transcript, 1)
        ll.addWidget(self.ctc)
        split.addWidget(left)
        split.addWidget(self.table)
        split.setSizes([600, 380])
        tl.addWidget(split, 1)
        file_row = QHBoxLayout()
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setVisible(False)
        self.cancel_btn = QPushButton("Cancel")
        self.cancel_btn.setVisible(False)
        file_row.addWidget(self.progress, 1)
        file_row.addWidget(self.cancel_btn)
        file_row.addStretch(0)
        self.export_btns = {}
        for fmt in ("txt", "srt", "vtt"):
            b = QPushButton(f"Export {fmt.upper()}")
            b.setEnabled(False)
            b.clicked.connect(lambda _=False, f=fmt: self._export_dialog(f))
            self.export_btns[fmt] = b
            file_row.addWidget(b)
        tl.addLayout(file_row)
        self.pages.addWidget(tpage)
        cpage = QGroupBox("Live audio classification — last 1 s, updated every 250 ms")
        cl = QVBoxLayout(cpage)
        self.bars = BarsView(rows=5)
        self.bars.placeholder = "Press Start: the top-5 classes of the last second appear here."
        cl.addWidget(self.bars)
        cl.addStretch(1)
        self.pages.addWidget(cpage)

        main_split = QSplitter(Qt.Orientation.Vertical)
        main_split.addWidget(signal_box)
        main_split.addWidget(self.pages)
        main_split.setSizes([260, 420])
        root.addWidget(main_split, 1)

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
        self.mic.currentIndexChanged.connect(self._on_mic_changed)
        self.asr_picker.modelChosen.connect(lambda ref: self._model_chosen(ASR, ref))
        self.cls_picker.modelChosen.connect(lambda ref: self._model_chosen(CLS, ref))
        sc = QShortcut(QKeySequence(Qt.Key.Key_Space), self)
        sc.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        sc.activated.connect(self.record_btn.toggle)
        self._space = sc

    def _restore(self) -> None:
        s = self.settings
        self.asr_picker.set_model(s.value("speech/asr_model", None) or self.asr_picker.current_model(), emit=False)
        self.cls_picker.set_model(s.value("speech/cls_model", None) or self.cls_picker.current_model(), emit=False)
        mode = s.value("speech/mode", "transcribe")
        self.mode.setCurrentIndex(max(0, self.mode.findData(mode)))
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
        self.mode.setCurrentIndex(max(0, self.mode.findData(mode)))

    def set_source(self, source: AudioSource | None) -> None:
        """Use ``source`` (e.g. an AudioFileSource) instead of the picked microphone on the next
        Start; None goes back to the picker."""
        if self.is_recording():
            self.stop()
        self._source_override = source

    def is_recording(self) -> bool:
        return self.source is not None and self.source.is_running()

    def start(self) -> bool:
        """Start live listening; False (with a message) if no source could be opened."""
        if self.is_recording():
            return True
        source = self._source_override or self._make_source()
        if source is None:
            self._set_record_button(False)
            return False
        self.source = source
        source.blockReady.connect(self._on_block)
        source.levelChanged.connect(self.level.set_level)
        source.errorOccurred.connect(self._on_source_error)
        if isinstance(source, AudioFileSource):
            source.finished.connect(self.stop)
        self.session.reset()
        self.window.reset()
        self.spectrogram.mel.reset()
        self.partial_text = ""
        self._finalized.clear()
        if hasattr(self.engine, "reset_dropped"):
            for stream in (S_PARTIAL, S_CLASSIFY):
                self.engine.reset_dropped(stream)
        task = self.live_task
        picker = self.asr_picker if task == ASR else self.cls_picker
        if self.engine.loaded_model(task) != picker.current_model():
            self.engine.load(task, picker.current_model())
        if not source.start():
            self._disconnect_source()
            self._set_record_button(False)
            return False
        self._set_record_button(True)
        self._say(f"Listening ({source.description}) — {'transcribing' if task == ASR else 'classifying'}.")
        self.recordingChanged.emit(True)
        return True

    def stop(self) -> None:
        """Stop listening; the utterance in progress is finalized (nothing heard is dropped)."""
        source = self.source
        if source is None:
            self._set_record_button(False)
            return
        source.stop()
        self._disconnect_source()
        self.engine.cancel(S_PARTIAL)
        self.engine.cancel(S_CLASSIFY)
        if self.live_task == ASR:
            self._handle_events(self.session.flush())
        else:
            self.session.flush()
        self._set_record_button(False)
        self._say("Stopped." + (" Finishing the last utterance…" if self._finals_pending else ""))
        self.recordingChanged.emit(False)

    def open_file(self, path) -> bool:
        """Transcribe an audio file (also the drop target). False with a message if unreadable."""
        from engine.audio import probe_audio
        from engine.errors import EngineError

        path = Path(path)
        if self.is_recording():
            self.stop()
        try:  # the header only: the engine thread decodes the file, so a long one never blocks the UI
            duration = probe_audio(path)
        except EngineError as e:
            self._say(str(e), error=True)
            return False
        except Exception as e:  # noqa: BLE001 - never crash the app on a file
            log.exception("reading %s", path)
            self._say(f"Cannot read {path.name}: {e}", error=True)
            return False
        self.set_mode("transcribe")
        self.engine.cancel(S_FILE)
        self._file_id += 1
        self.file_path = path
        self.file_result = None
        for b in self.export_btns.values():
            b.setEnabled(False)
        if self.engine.loaded_model(ASR) != self.asr_picker.current_model():
            self.engine.load(ASR, self.asr_picker.current_model())
        self.engine.submit(S_FILE, ASR, str(path), TranscriptionOptions(internals=True), item_id=self._file_id,
                           meta={"path": str(path), "duration_s": duration}, keep_all=True)
        self.progress.setValue(0)
        self.progress.setFormat(f"{path.name}: %p%")
        self.progress.setVisible(True)
        self.cancel_btn.setVisible(True)
        self.transcript.setHtml(f"<p style='color:gray'><i>Transcribing {_esc(path.name)} "
                                f"({duration:.1f} s)…</i></p>")
        self._say(f"Transcribing {path.name}…")
        return True

    def cancel_file(self) -> None:
        self.engine.cancel(S_FILE)
        self._file_id += 1  # a result still on its way is ignored
        self.progress.setVisible(False)
        self.cancel_btn.setVisible(False)
        self._say("File transcription cancelled.")

    def export(self, path, fmt: str | None = None) -> Path:
        """Write the last file transcript as txt / srt / vtt / json (from the suffix by default)."""
        from engine import export as ex

        if self.file_result is None:
            raise RuntimeError("Nothing to export: transcribe a file first.")
        path = Path(path)
        fmt = (fmt or path.suffix.lstrip(".") or "txt").lower()
        text = getattr(ex, f"to_{fmt}")(self.file_result)
        path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        return path

    def refresh_devices(self, rescan: bool = True) -> None:
        """List the microphones again (PortAudio re-scans only when re-initialised)."""
        if rescan and not self.is_recording():
            rescan_devices()
        wanted = self.mic.currentData() or self.settings.value("speech/device", None)
        self.mic.blockSignals(True)
        self.mic.clear()
        devices = list_input_devices()
        for d in devices:
            self.mic.addItem(d.label, d.name)
            self.mic.setItemData(self.mic.count() - 1, f"{d.name} · {d.hostapi} · device {d.index}",
                                 Qt.ItemDataRole.ToolTipRole)
        fake = os.environ.get(FAKE_MIC_ENV)
        if fake:
            self.mic.addItem(f"WAV as microphone: {Path(fake).name}", _FILE_PREFIX + fake)
        if self.mic.count() == 0:
            self.mic.addItem("No microphone found", None)
        index = self.mic.findData(wanted) if wanted else -1
        if index < 0:
            index = next((i for i, d in enumerate(devices) if d.is_default), 0)
        self.mic.setCurrentIndex(index)
        self.mic.blockSignals(False)
        if not devices and not fake:
            self._say("No microphone found. Connect one and press ⟳, or open an audio file.")

    def shutdown(self) -> None:
        """Stop the source and the tab's engine streams (the app shuts the engine down)."""
        if self.source is not None:
            self.source.stop()
            self._disconnect_source()
        for s in STREAMS:
            try:
                self.engine.cancel(s)
            except Exception:  # noqa: BLE001 - engine already gone
                pass
        self.settings.setValue("speech/mode", self.mode.currentData())

    # ================================================================== sources and endpointing

    def _make_source(self) -> AudioSource | None:
        data = self.mic.currentData()
        if isinstance(data, str) and data.startswith(_FILE_PREFIX):
            return AudioFileSource(data[len(_FILE_PREFIX):], tail_s=1.0, parent=self)
        if data is None:
            self._say("No microphone found. Connect one and press ⟳, or open an audio file.", error=True)
            return None
        return MicrophoneSource(device=data, parent=self)

    def _disconnect_source(self) -> None:
        src = self.source
        if src is None:
            return
        for sig, slot in ((src.blockReady, self._on_block), (src.levelChanged, self.level.set_level),
                          (src.errorOccurred, self._on_source_error)):
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

    def _on_block(self, block: np.ndarray, t_s: float) -> None:
        if self.source is None:
            return  # a block queued before Stop
        self.waveform.push(block)
        self.spectrogram.push(block)
        if self.live_task == ASR:
            self._handle_events(self.session.feed(block, t_s))
        else:
            win = self.window.push(block)
            if win is not None:
                end = t_s + len(block) / 16000.0
                self.engine.submit(S_CLASSIFY, CLS, win, AudioClassificationOptions(top_k=5),
                                   meta={"start_s": end - len(win) / 16000.0, "end_s": end})

    def _handle_events(self, events: list[SpeechEvent]) -> None:
        for ev in events:
            self.events.append((ev.kind, ev.index, ev.start_s, ev.end_s))
            meta = {"start_s": ev.start_s, "end_s": ev.end_s, "reason": ev.reason}
            if ev.kind == "start":
                self.partial_text = ""
                self._render_transcript()
            elif ev.kind == "partial":
                self.engine.submit(S_PARTIAL, ASR, ev.audio, TranscriptionOptions(), item_id=ev.index, meta=meta)
            elif ev.kind == "final":
                self.engine.cancel(S_PARTIAL)
                self._finals_pending += 1
                self.engine.submit(S_FINAL, ASR, ev.audio, TranscriptionOptions(internals=True),
                                   item_id=ev.index, meta=meta, keep_all=True)

    def _on_source_error(self, message: str) -> None:
        self._say(message, error=True)
        if self.source is not None:
            self.stop()

    # ================================================================== engine results

    def _on_result(self, outcome) -> None:
        stream = outcome.stream
        if stream not in STREAMS:
            return
        r = outcome.result
        if stream == S_PARTIAL and isinstance(r, TranscriptionResult):
            if outcome.item_id not in self._finalized:
                self.partial_text = r.text
                self._render_transcript()
        elif stream == S_FINAL and isinstance(r, TranscriptionResult):
            self._finals_pending = max(0, self._finals_pending - 1)
            self._finalized.add(outcome.item_id)
            meta = outcome.meta or {}
            self.segments.append((outcome.item_id, meta.get("start_s", 0.0), meta.get("end_s", 0.0), r.text))
            self.segments.sort(key=lambda s: s[1])
            self.partial_text = ""
            self._add_row(meta.get("start_s", 0.0), meta.get("end_s", 0.0), r.text or "…")
            self._render_transcript()
            self.ctc.set_internals(r.internals)
            if not self.is_recording() and not self._finals_pending:
                self._say(f"{len(self.segments)} utterance(s) transcribed.")
        elif stream == S_CLASSIFY and isinstance(r, AudioClassificationResult):
            if self.is_recording():
                self.bars.set_results(r.labels, [float(s) for s in r.scores])
        elif stream == S_FILE and isinstance(r, TranscriptionResult):
            if outcome.item_id != self._file_id:
                return
            self.file_result = r
            self.progress.setVisible(False)
            self.cancel_btn.setVisible(False)
            self._show_file_result(r)
            self.ctc.set_internals(r.internals)
            for b in self.export_btns.values():
                b.setEnabled(True)
            ms = r.timings.total_ms if r.timings else 0.0
            self._say(f"{self.file_path.name if self.file_path else 'File'}: {r.duration_s:.1f} s of audio, "
                      f"{len(r.words)} words, transcribed in {ms / 1000:.1f} s.")

    def _on_progress(self, stream: str, fraction: float, partial) -> None:
        if stream != S_FILE or not self.progress.isVisible():
            return
        self.progress.setValue(int(1000 * max(0.0, min(1.0, fraction))))
        if isinstance(partial, TranscriptionResult) and partial.text:
            self.transcript.setHtml(f"<p style='color:gray'><i>{_esc(partial.text)}</i></p>")

    def _on_error(self, stream: str, message: str) -> None:
        if stream in STREAMS or stream in (ASR, CLS):
            if stream == S_FILE:
                self.progress.setVisible(False)
                self.cancel_btn.setVisible(False)
            if stream == S_FINAL:
                self._finals_pending = max(0, self._finals_pending - 1)
            self._say(message, error=True)

    def _on_model_loading(self, task: str, ref: str, done, total) -> None:
        if task not in (ASR, CLS):
            return
        name = Path(ref).name or ref
        if done is not None and total:
            self.model_status.setText(f"Downloading {name}: {100 * done / total:.0f}%")
        else:
            self.model_status.setText(f"Loading {name}…")

    def _on_model_loaded(self, task: str, description: str) -> None:
        if task in (ASR, CLS):
            self.model_status.setText(description)
            self.model_status.setToolTip(description)

    def _on_model_failed(self, task: str, message: str) -> None:
        if task in (ASR, CLS):
            self.model_status.setText("Model not loaded")
            if message:
                self._say(message, error=True)

    # ================================================================== drawing

    def _render_transcript(self) -> None:
        parts = [_esc(s[3]) for s in self.segments if s[3]]
        html = " ".join(parts)
        if self.partial_text:
            html += f" <span style='color:#888888'><i>{_esc(self.partial_text)}</i></span>"
        elif self.session.in_speech:
            html += " <span style='color:#888888'><i>…</i></span>"
        self.transcript.setHtml(f"<p style='font-size:15pt'>{html}</p>")
        self.transcript.moveCursor(QTextCursor.MoveOperation.End)

    def _add_row(self, start: float, end: float, text: str) -> None:
        row = self.table.rowCount()
        self.table.insertRow(row)
        for col, value in enumerate((_fmt_t(start), _fmt_t(end), text)):
            item = QTableWidgetItem(value)
            if col < 2:
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            self.table.setItem(row, col, item)
        self.table.scrollToBottom()

    def _show_file_result(self, r: TranscriptionResult) -> None:
        self.table.setRowCount(0)
        for w in r.words:
            self._add_row(w.start, w.end, w.text)
        words = " ".join(f"<span title='{w.start:.2f}–{w.end:.2f} s'>{_esc(w.text)}</span>" for w in r.words)
        body = words or _esc(r.text) or "<span style='color:gray'><i>(no speech recognised)</i></span>"
        self.transcript.setHtml(f"<p style='color:gray'>{_esc(self.file_path.name if self.file_path else '')} · "
                                f"{r.duration_s:.1f} s · {len(r.words)} words (hover a word for its time)</p>"
                                f"<p style='font-size:15pt'>{body}</p>")

    # ================================================================== small handlers

    def _say(self, text: str, error: bool = False) -> None:
        self.msg.setStyleSheet("color: #c0392b" if error else "")
        self.msg.setText(text)
        (log.warning if error else log.info)("speech tab: %s", text)
        self.message.emit(text)

    def _set_record_button(self, on: bool) -> None:
        self.record_btn.blockSignals(True)
        self.record_btn.setChecked(on)
        self.record_btn.blockSignals(False)
        self.record_btn.setText("■ Stop" if on else "● Start")
        self.mic.setEnabled(not on)
        self.mode.setEnabled(not on)
        self.refresh_btn.setEnabled(not on)

    def _on_record_toggled(self, on: bool) -> None:
        if on:
            self.start()
        else:
            self.stop()

    def _on_mode(self, *_args) -> None:
        classify = self.mode.currentData() == "classify"
        self.pages.setCurrentIndex(1 if classify else 0)
        self.cls_picker.setEnabled(True)
        self.settings.setValue("speech/mode", self.mode.currentData())

    def _on_mic_changed(self, *_args) -> None:
        data = self.mic.currentData()
        if data:
            self.settings.setValue("speech/device", data)

    def _model_chosen(self, task: str, ref: str) -> None:
        self.settings.setValue("speech/asr_model" if task == ASR else "speech/cls_model", ref)
        if self.engine.loaded_model(task) is not None or (task == self.live_task and self.is_recording()):
            self.engine.load(task, ref)

    def _open_dialog(self) -> None:
        pats = " ".join(f"*{s}" for s in sorted(SUFFIXES))
        path, _ = QFileDialog.getOpenFileName(self, "Open an audio file", self.settings.value("speech/last_dir", ""),
                                              f"Audio ({pats});;All files (*)")
        if path:
            self.settings.setValue("speech/last_dir", str(Path(path).parent))
            self.open_file(path)

    def _export_dialog(self, fmt: str) -> None:
        if self.file_result is None:
            return
        base = self.file_path.with_suffix(f".{fmt}") if self.file_path else Path(f"transcript.{fmt}")
        path, _ = QFileDialog.getSaveFileName(self, f"Export {fmt.upper()}", str(base), f"{fmt.upper()} (*.{fmt})")
        if not path:
            return
        try:
            self._say(f"Saved {self.export(path, fmt)}")
        except Exception as e:  # noqa: BLE001
            log.exception("export")
            self._say(f"Could not export: {e}", error=True)
