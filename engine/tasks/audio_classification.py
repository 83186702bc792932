"""Audio classification with Wav2Vec2 (keyword spotting, emotion, ...): samples -> top-k labels.

    task = load_task("audio-classification")     # superb/wav2vec2-base-superb-ks
    result = task(samples)                        # labels best first, softmax scores
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..cancel import CancelToken, check
from ..catalog import ModelEntry
from ..errors import EngineError, InputError
from ..io.audio import as_samples
from ..lazy import lazy
from ..processors.audio import FeatureSettings
from ..types.audio import AudioClassificationOptions, AudioClassificationResult
from .base import Progress, StageClock, Task, expect_architecture

if TYPE_CHECKING:
    from ..device import Placement

torch = lazy("torch")
wav2vec2 = lazy("engine.models.wav2vec2")

MAX_SECONDS = 600.0  # one forward pass over the whole clip: keep attention memory bounded


class AudioClassification(Task):
    name = "audio-classification"
    title = "Audio classification"
    domain = "audio"
    summary = "Classify an audio clip (keywords, emotions, … depending on the model) with Wav2Vec2."
    options_type = AudioClassificationOptions
    result_type = AudioClassificationResult
    models = (
        ModelEntry("superb/wav2vec2-base-superb-ks", 378, "apache-2.0", "keyword spotting (Speech Commands)"),
        ModelEntry("superb/wav2vec2-base-superb-er", 378, "apache-2.0", "emotion recognition (IEMOCAP)"),
    )
    command = "classify-audio"
    command_help = "classify an audio clip (Wav2Vec2)"
    bench = "benchmarks.speech:classification"

    @classmethod
    def add_arguments(cls, parser) -> None:
        from ..cliargs import input_file, positive_int
        parser.add_argument("file", type=input_file, nargs="+", metavar="FILE")
        parser.add_argument("--top-k", type=positive_int, default=5, help="how many labels (default 5)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    @classmethod
    def cli_inputs(cls, args) -> list[tuple[str, Any]]:
        from ..io.audio import load_audio
        pairs: list[tuple[str, Any]] = []
        for path in args.file:
            try:
                pairs.append((str(path), load_audio(path)[0]))
            except EngineError as exc:
                pairs.append((str(path), exc))
        return pairs

    @classmethod
    def cli_options(cls, args) -> AudioClassificationOptions:
        return AudioClassificationOptions(top_k=args.top_k)

    @classmethod
    def cli_print(cls, name: str, result: AudioClassificationResult, args) -> str:
        lines = [f"{name} ({result.duration_s:.1f} s):"] if len(args.file) > 1 else []
        lines += [f"  {label:<24} {score:.3f}" for label, score in zip(result.labels, result.scores)]
        return "\n".join(lines)

    @classmethod
    def cli_json(cls, name: str, result: AudioClassificationResult, task) -> dict:
        return {"file": name, "model": task.model_ref, "duration_s": round(result.duration_s, 3),
                "labels": result.to_json()}

    def __init__(self, model_ref: str, folder: Path, placement: Placement,
                 model: wav2vec2.Wav2Vec2ForSequenceClassification, features: FeatureSettings) -> None:
        super().__init__(model_ref, folder, placement)
        self.model = model
        self.features = features
        self.sample_rate = features.sampling_rate
        id2label = model.config.id2label
        self.labels = tuple(id2label.get(i, f"LABEL_{i}") for i in range(len(id2label)))

    @classmethod
    def load(cls, model_ref: str, folder: Path, placement: Placement) -> AudioClassification:
        expect_architecture(folder, model_ref, cls.name, ("wav2vec2",), ("ForSequenceClassification",))
        placement, notice = wav2vec2.fast_placement(placement)  # 'fast' by wav2vec2.FAST_PLAN, or exact with a notice
        model = wav2vec2.from_checkpoint(folder, placement, "classification")
        task = cls(model_ref, folder, placement, model, FeatureSettings.from_folder(folder))
        task.precision_notice = notice  # why 'fast' was asked for and 'exact' runs, if it was
        return task

    def scores(self, samples: np.ndarray) -> np.ndarray:
        """(N,) samples -> softmax probabilities over all labels (num_labels,) float32."""
        x = torch.from_numpy(self.features(samples))[None]  # (1, N)
        x = x.to(device=self.placement.device, dtype=self.model.wav2vec2.input_dtype)  # float32 under the fast plan
        with torch.inference_mode():
            return torch.softmax(self.model(x)[0].float(), dim=-1).cpu().numpy()  # (num_labels,)

    def run(self, inputs: Any, options: AudioClassificationOptions | None = None, *,
            cancel: CancelToken | None = None, progress: Progress | None = None) -> AudioClassificationResult:
        """``inputs``: (N,) float32 samples at 16 kHz (or a file path) -> the top-k labels."""
        opts = self._options(options)
        clock = StageClock(self._sync())
        with clock.stage("preprocess"):
            samples = as_samples(inputs, self.sample_rate)
            duration = samples.shape[0] / self.sample_rate
            if duration > MAX_SECONDS:
                raise InputError(f"The clip is {duration:.0f} s long; audio classification takes up to "
                                 f"{MAX_SECONDS:.0f} s. Trim it first.")
            if self.model.config.num_frames(samples.shape[0]) == 0:
                raise InputError(f"The clip is too short ({samples.shape[0]} samples) to classify.")
        check(cancel)
        with clock.stage("model"):
            probs = self.scores(samples)
        with clock.stage("postprocess"):
            k = max(1, min(int(opts.top_k), probs.shape[0]))
            order = np.argsort(-probs, kind="stable")[:k]
            result = AudioClassificationResult(tuple(self.labels[i] for i in order), probs[order].astype(np.float32),
                                               duration, clock.timings())
        return result
