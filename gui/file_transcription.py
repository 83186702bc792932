"""The Speech tab's file transcription: one audio file at a time on the engine stream
"speech-file" (keep_all: never dropped), with progress, cancel, the result with word timestamps,
and export. Only the file's header is read on the UI thread; the engine thread decodes it."""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from engine.results import TranscriptionOptions, TranscriptionResult

from .transcript_export import ask_export_path, write_transcript

log = logging.getLogger(__name__)

STREAM = "speech-file"
TASK = "speech-recognition"


class FileTranscription:
    def __init__(self, engine, file_bar, transcript_view, ctc, say: Callable[..., None],
                 ensure_model: Callable[[], None]) -> None:
        self.engine, self.file_bar, self.view, self.ctc = engine, file_bar, transcript_view, ctc
        self._say, self._ensure_model = say, ensure_model
        self.path: Path | None = None
        self.result: TranscriptionResult | None = None
        self._id = 0
        self.running = False  # its progress is shown even while the tab is hidden

    def open(self, path) -> bool:
        """Start transcribing ``path``; False with a message if it is not a readable audio file."""
        from engine.audio import probe_audio
        from engine.errors import EngineError

        path = Path(path)
        try:  # the header only: the engine thread decodes the file, so a long one never blocks the UI
            duration = probe_audio(path)
        except EngineError as e:
            self._say(str(e), error=True)
            return False
        except Exception as e:  # noqa: BLE001 - never crash the app on a file
            log.exception("reading %s", path)
            self._say(f"Cannot read {path.name}: {e}", error=True)
            return False
        self.engine.cancel(STREAM)
        self._id += 1
        self.path, self.result = path, None
        self.file_bar.set_exportable(False)
        self._ensure_model()
        self.engine.submit(STREAM, TASK, str(path), TranscriptionOptions(internals=True), item_id=self._id,
                           meta={"path": str(path), "duration_s": duration}, keep_all=True)
        self.file_bar.begin(path.name)
        self.running = True
        self.view.show_note(f"Transcribing {path.name} ({duration:.1f} s)…")
        self._say(f"Transcribing {path.name}…")
        return True

    def cancel(self) -> None:
        self.engine.cancel(STREAM)
        self._id += 1  # a result still on its way is ignored
        self.running = False
        self.file_bar.end()
        self._say("File transcription cancelled.")

    def on_result(self, item_id: int, r: TranscriptionResult) -> None:
        if item_id != self._id:
            return
        self.result, self.running = r, False
        self.file_bar.end()
        name = self.path.name if self.path else "File"
        self.view.show_file_result(r, name)
        self.ctc.set_internals(r.internals)
        self.file_bar.set_exportable(True)
        ms = r.timings.total_ms if r.timings else 0.0
        self._say(f"{name}: {r.duration_s:.1f} s of audio, {len(r.words)} words, transcribed in {ms / 1000:.1f} s.")

    def on_progress(self, fraction: float, partial) -> None:
        if not self.running:
            return
        self.file_bar.set_fraction(fraction)
        if isinstance(partial, TranscriptionResult) and partial.text:
            self.view.show_note(partial.text)

    def on_error(self) -> None:
        self.running = False
        self.file_bar.end()

    def export(self, path, fmt: str | None = None) -> Path:
        """Write the last transcript as txt / srt / vtt / json (from the suffix by default)."""
        if self.result is None:
            raise RuntimeError("Nothing to export: transcribe a file first.")
        return write_transcript(self.result, path, fmt)

    def export_dialog(self, parent, fmt: str) -> None:
        if self.result is None:
            return
        path = ask_export_path(parent, fmt, self.path)
        if not path:
            return
        try:
            self._say(f"Saved {self.export(path, fmt)}")
        except Exception as e:  # noqa: BLE001
            log.exception("export")
            self._say(f"Could not export: {e}", error=True)
