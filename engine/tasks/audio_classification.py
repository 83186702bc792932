"""Audio classification with Wav2Vec2 (keyword spotting, emotion, ...): samples -> top-k labels.

    task = load_task("audio-classification")     # superb/wav2vec2-base-superb-ks
    result = task(samples)                        # labels best first, softmax scores
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..audio import FeatureSettings, as_samples
from ..cancel import CancelToken, check
from ..device import Placement
from ..errors import InputError
from ..models import wav2vec2
from ..results import AudioClassificationOptions, AudioClassificationResult
from .base import Progress, StageClock, Task, expect_architecture

MAX_SECONDS = 600.0  # one forward pass over the whole clip: keep attention memory bounded


class AudioClassification(Task):
    name = "audio-classification"
    options_type = AudioClassificationOptions

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
        model = wav2vec2.load(folder, placement, "classification")
        return cls(model_ref, folder, placement, model, FeatureSettings.from_folder(folder))

    def scores(self, samples: np.ndarray) -> np.ndarray:
        """(N,) samples -> softmax probabilities over all labels (num_labels,) float32."""
        x = torch.from_numpy(self.features(samples))[None]  # (1, N)
        x = x.to(device=self.placement.device, dtype=self.placement.dtype)
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
