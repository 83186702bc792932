"""Speech recognition with Wav2Vec2 + CTC: 16 kHz mono float32 samples -> TranscriptionResult.

    task = load_task("speech-recognition")
    result = task(samples)                       # text, word and character Spans (seconds)

Long audio is cut into overlapping chunks as transformers' ASR pipeline does with
``chunk_length_s``/``stride_length_s``: every chunk is normalised and run on its own, the logits
of the stride regions (context only) are dropped, the kept frames are joined and then decoded
once, so no word is dropped or doubled at a chunk edge. A progress callback gets the transcript
so far after every chunk; the CancelToken is checked between chunks.
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
import sys
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cancel import CancelToken, check
from ..catalog import ModelEntry
from ..errors import EngineError, InputError
from ..io.audio import as_samples
from ..lazy import lazy
from ..processors import ctc
from ..processors.audio import FeatureSettings
from ..types import Timings
from ..types.audio import CTCInternals, Span, TranscriptionOptions, TranscriptionResult
from .base import Progress, StageClock, Task, expect_architecture

if TYPE_CHECKING:
    from ..device import Placement

torch = lazy("torch")
wav2vec2 = lazy("engine.models.wav2vec2")

log = logging.getLogger(__name__)


def chunk_plan(num_samples: int, align: int, sampling_rate: int, chunk_s: float,
               stride_s: float) -> list[tuple[int, int, int, int]]:
    """Chunks ``(start, end, stride_left, stride_right)`` in samples, as the ASR pipeline makes
    them: lengths rounded to multiples of ``align`` (samples per logit frame), consecutive chunks
    overlapping by ``stride_left + stride_right``. Audio up to ``chunk_s`` is one chunk."""
    chunk_len = int(round(chunk_s * sampling_rate / align) * align)
    left = right = int(round(stride_s * sampling_rate / align) * align)
    if chunk_len <= 0 or num_samples <= chunk_len:
        return [(0, num_samples, 0, 0)]
    step = chunk_len - left - right
    if step <= 0:
        raise InputError(f"The chunk length ({chunk_s} s) must be more than twice the stride ({stride_s} s).")
    plan = []
    for start in range(0, num_samples, step):
        end = min(start + chunk_len, num_samples)
        is_last = start + chunk_len >= num_samples
        s_left, s_right = (0 if start == 0 else left), (0 if is_last else right)
        if end - start > s_left:  # a tail inside the previous chunk's stride adds nothing
            plan.append((start, end, s_left, s_right))
        if is_last:
            break
    return plan


def kept_frames(chunk_samples: int, stride_left: int, stride_right: int, align: int) -> tuple[int, int]:
    """Frame range [first, last) of a chunk's logits to keep (the pipeline's stride rescaling)."""
    n = int(round(chunk_samples / align))
    left = int(round(stride_left / chunk_samples * n))
    right = int(round(stride_right / chunk_samples * n))
    return left, n - right


class SpeechRecognition(Task):
    name = "speech-recognition"
    title = "Speech recognition"
    domain = "audio"
    summary = "Transcribe speech in an audio file (wav, flac, ogg, mp3) with Wav2Vec2 and CTC."
    options_type = TranscriptionOptions
    result_type = TranscriptionResult
    models = (
        ModelEntry("facebook/wav2vec2-base-960h", 378, "apache-2.0", "English, LibriSpeech 960 h"),
        ModelEntry("facebook/wav2vec2-large-960h-lv60-self", 1262, "apache-2.0", "English, large, more accurate"),
    )
    command = "transcribe"
    command_help = "transcribe an audio file (Wav2Vec2)"
    bench = "benchmarks.speech:recognition"

    @classmethod
    def add_arguments(cls, parser) -> None:
        from ..cliargs import input_file, output_file
        from ..io.export import FORMATS
        parser.add_argument("file", type=input_file, metavar="FILE")
        parser.add_argument("--format", choices=FORMATS, default="txt")
        parser.add_argument("-o", "--output", type=output_file, metavar="FILE",
                            help="write to this file instead of standard output")

    @classmethod
    def cli_inputs(cls, args) -> list[tuple[str, Any]]:
        from ..io.audio import load_audio
        return [(str(args.file), load_audio(args.file)[0])]

    def cli_results(self, inputs: list[Any], options: TranscriptionOptions, args) -> list[Any]:
        def progress(fraction: float, partial) -> None:
            print(f"\rTranscribing… {int(fraction * 100):3d}%", end="", file=sys.stderr, flush=True)
        result = self(inputs[0], options, progress=progress)
        print("\r", end="", file=sys.stderr)
        return [result]

    @classmethod
    def cli_print(cls, name: str, result: TranscriptionResult, args) -> str:
        from ..io.export import export
        text = export(result, args.format)
        if not args.output:
            return text.rstrip("\n")
        try:
            args.output.write_text(text, encoding="utf-8")
        except OSError as exc:  # checked before starting, but the disk may still fill up: keep the work
            print(f"error: could not write {args.output} ({exc.strerror or exc}); the transcript follows "
                  f"on standard output instead.", file=sys.stderr)
            return text.rstrip("\n")
        print(f"Wrote {args.output}", file=sys.stderr)
        return ""

    @classmethod
    def cli_json(cls, name: str, result: TranscriptionResult, task) -> dict:
        return {"file": name, "model": task.model_ref, **result.to_json()}

    def __init__(self, model_ref: str, folder: Path, placement: Placement, model: wav2vec2.Wav2Vec2ForCTC,
                 vocab: ctc.CTCVocab, features: FeatureSettings) -> None:
        super().__init__(model_ref, folder, placement)
        self.model = model
        self.vocab = vocab
        self.features = features
        self.sample_rate = features.sampling_rate
        self.align = model.config.inputs_to_logits_ratio  # samples per logit frame (320)
        self.frame_s = self.align / self.sample_rate  # seconds per frame (0.02)

    @classmethod
    def load(cls, model_ref: str, folder: Path, placement: Placement) -> SpeechRecognition:
        expect_architecture(folder, model_ref, cls.name, ("wav2vec2",), ("ForCTC",))
        vocab = ctc.CTCVocab.from_folder(folder)
        placement, notice = wav2vec2.fast_placement(placement)  # 'fast' by wav2vec2.FAST_PLAN, or exact with a notice
        model = wav2vec2.from_checkpoint(folder, placement, "ctc")
        if len(vocab.tokens) > model.config.vocab_size:
            log.warning("vocab.json has %d tokens, the CTC head %d", len(vocab.tokens), model.config.vocab_size)
        task = cls(model_ref, folder, placement, model, vocab, FeatureSettings.from_folder(folder))
        task.precision_notice = notice  # why 'fast' was asked for and 'exact' runs, if it was
        return task

    # ------------------------------------------------------------------------------------------

    def run(self, inputs: Any, options: TranscriptionOptions | None = None, *, cancel: CancelToken | None = None,
            progress: Progress | None = None) -> TranscriptionResult:
        """``inputs``: (N,) float32 samples at 16 kHz (or a file path). Returns the transcript;
        ``progress(fraction, transcript_so_far)`` is called after every chunk but the last."""
        result = None
        for fraction, result in self._steps(inputs, options, cancel, partials=progress is not None):
            if progress is not None and fraction < 1.0:
                progress(fraction, result)
        assert result is not None
        return result

    def stream(self, inputs: Any, options: TranscriptionOptions | None = None, *,
               cancel: CancelToken | None = None) -> Iterator[TranscriptionResult]:
        """Yields the transcript so far after every chunk, the final result last."""
        for _, result in self._steps(inputs, options, cancel, partials=True):
            yield result

    def steps(self, inputs: Any, options: TranscriptionOptions | None = None, *,
              cancel: CancelToken | None = None) -> Iterator[tuple[float, TranscriptionResult]]:
        """One step per chunk: (fraction of the audio done, transcript so far), the final result last."""
        yield from self._steps(inputs, options, cancel, partials=True)

    def logits(self, samples: np.ndarray) -> torch.Tensor:
        """(N,) samples of one chunk -> CTC logits (T, vocab) float32 on the CPU."""
        x = torch.from_numpy(self.features(samples))[None]  # (1, N)
        x = x.to(device=self.placement.device, dtype=self.model.wav2vec2.input_dtype)  # float32 under the fast plan
        with torch.inference_mode():
            return self.model(x)[0].float().cpu()  # (T, vocab)

    def _steps(self, inputs: Any, options: TranscriptionOptions | None, cancel: CancelToken | None,
               partials: bool) -> Iterator[tuple[float, TranscriptionResult]]:
        opts = self._options(options)
        clock = StageClock(self._sync())
        with clock.stage("preprocess"):
            samples = as_samples(inputs, self.sample_rate)
            plan = chunk_plan(samples.shape[0], self.align, self.sample_rate, opts.chunk_s, opts.stride_s)
        duration = samples.shape[0] / self.sample_rate
        ids: list[np.ndarray] = []
        probs: list[np.ndarray] = []
        stream = ctc.StreamingDecoder(self.vocab)  # partial transcripts at a cost per new chunk only
        for i, (start, end, s_left, s_right) in enumerate(plan):
            check(cancel)
            chunk = samples[start:end]
            if self.model.config.num_frames(chunk.shape[0]) == 0:  # shorter than one receptive field
                continue
            with clock.stage("model"):
                logits = self.logits(chunk)  # (T, vocab)
            with clock.stage("postprocess"):
                first, last = kept_frames(chunk.shape[0], s_left, s_right, self.align)
                logits = logits[first:last]  # (kept, vocab): the stride regions were context only
                ids.append(logits.argmax(dim=-1).numpy())
                if opts.internals:
                    probs.append(torch.softmax(logits, dim=-1).numpy())
                partial = None
                if partials and i + 1 < len(plan):
                    stream.push(ids[-1])
                    partial = self._spans(stream.result(), duration)
            if partial is not None:
                yield (i + 1) / len(plan), replace(partial, timings=clock.timings())
        check(cancel)
        with clock.stage("postprocess"):
            result = self._result(ids, probs, duration, opts.internals)  # nothing said if too short for a frame
        yield 1.0, replace(result, timings=clock.timings())

    def _result(self, ids: list[np.ndarray], probs: list[np.ndarray], duration: float, internals: bool) -> TranscriptionResult:
        frames = np.concatenate(ids) if ids else np.zeros(0, np.int64)  # (T,)
        t = self.frame_s
        extra = None
        if internals:
            p = np.concatenate(probs) if probs else np.zeros((0, len(self.vocab.tokens)), np.float32)  # (T, vocab)
            pad = self.vocab.pad_id
            extra = CTCInternals(frame_s=t, top_ids=frames.astype(np.int64),
                                 top_probs=p[np.arange(len(frames)), frames].astype(np.float32),
                                 blank_prob=(p[:, pad] if pad >= 0 else np.zeros(len(frames))).astype(np.float32),
                                 vocab=self.vocab.tokens)
        return self._spans(ctc.decode(frames, self.vocab), duration, extra)

    def _spans(self, d: ctc.Decoded, duration: float, internals: CTCInternals | None = None) -> TranscriptionResult:
        """Frame offsets -> seconds (offset * inputs_to_logits_ratio / sampling_rate)."""
        t = self.frame_s
        spans = lambda offs: tuple(Span(o.text, round(o.start * t, 4), round(o.end * t, 4)) for o in offs)  # noqa: E731
        return TranscriptionResult(d.text, spans(d.words), spans(d.chars), duration, Timings(), internals)
