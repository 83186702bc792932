"""Which checkpoints each task offers: the default first, then alternatives."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ModelEntry:
    id: str  # Hugging Face repo id
    size_mb: int  # download size of the weights, approximately
    licence: str
    note: str = ""


CATALOG: dict[str, tuple[ModelEntry, ...]] = {
    "object-detection": (
        ModelEntry("facebook/detr-resnet-50", 167, "apache-2.0", "DETR, ResNet-50 backbone, COCO 91 ids"),
        ModelEntry("facebook/detr-resnet-101", 243, "apache-2.0", "DETR, ResNet-101 backbone, more accurate"),
    ),
    "speech-recognition": (
        ModelEntry("facebook/wav2vec2-base-960h", 378, "apache-2.0", "English, LibriSpeech 960 h"),
        ModelEntry("facebook/wav2vec2-large-960h-lv60-self", 1262, "apache-2.0", "English, large, more accurate"),
    ),
    "audio-classification": (
        ModelEntry("superb/wav2vec2-base-superb-ks", 378, "apache-2.0", "keyword spotting (Speech Commands)"),
        ModelEntry("superb/wav2vec2-base-superb-er", 378, "apache-2.0", "emotion recognition (IEMOCAP)"),
    ),
}


def models_for(task: str) -> tuple[ModelEntry, ...]:
    return CATALOG.get(task, ())


def default_model(task: str) -> str:
    entries = models_for(task)
    if not entries:
        from .errors import EngineError
        raise EngineError(f"No default model for task {task!r}.")
    return entries[0].id
