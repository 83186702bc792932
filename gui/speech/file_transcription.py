"""The Speech tab's file transcription: one audio file at a time on the engine stream
"speech-file" (keep_all: never dropped; long: it runs chunk by chunk, live speech and video run
between its chunks), with progress, cancel, the result with word timestamps, and export. Only the
file's header is read on the UI thread; the engine thread decodes it."""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from pathlib import Path

from engine.types.audio import TranscriptionOptions, TranscriptionResult

from gui.speech.transcript_export import ask_export_path, write_transcript

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
        self.request = None  # the engine request of the file being transcribed (or the last one)
        self._chunks = 1  # how many chunks the engine cuts the file into (for progress it cannot tell)
        self._partials = 0

    def open(self, path) -> bool:
        """Start transcribing ``path``; False with a message if it is not a readable audio file."""
        from engine.io.audio import probe_audio
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
        options = TranscriptionOptions(internals=True)
        self._chunks, self._partials = expected_chunks(duration, options), 0
        request = self.request = self.engine.submit(STREAM, TASK, str(path), options, item_id=self._id,
                                                    meta={"path": str(path), "duration_s": duration},
                                                    keep_all=True, long=True)
        request.result.connect(self._on_outcome)
        request.progress.connect(self.on_progress)
        request.error.connect(self._on_error)
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

    def _on_outcome(self, outcome) -> None:
        if isinstance(outcome.result, TranscriptionResult):
            self.on_result(outcome.item_id, outcome.result)

    def _on_error(self, message: str) -> None:
        self.on_error()
        self._say(message, error=True)

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
        if fraction < 0:  # the engine cannot tell: one more chunk of the ones the file is cut into
            self._partials += 1
            fraction = min(self._partials / self._chunks, 0.99)
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


def expected_chunks(duration_s: float, options: TranscriptionOptions) -> int:
    """How many overlapping chunks speech recognition cuts ``duration_s`` of audio into (its
    chunk plan: ``chunk_s`` long, consecutive chunks ``chunk_s - 2 * stride_s`` apart)."""
    step = options.chunk_s - 2 * options.stride_s
    if duration_s <= options.chunk_s or step <= 0:
        return 1
    return 1 + math.ceil((duration_s - options.chunk_s) / step)
