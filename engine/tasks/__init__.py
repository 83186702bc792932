"""One task per file. The registry maps a task name to ``module:Class`` so that importing
the engine does not import every model."""
from __future__ import annotations

import importlib

REGISTRY: dict[str, str] = {
    "object-detection": "engine.tasks.object_detection:ObjectDetection",
    "speech-recognition": "engine.tasks.speech_recognition:SpeechRecognition",
    "audio-classification": "engine.tasks.audio_classification:AudioClassification",
}


def task_class(name: str):
    from ..errors import EngineError
    try:
        target = REGISTRY[name]
    except KeyError:
        raise EngineError(f"Unknown task {name!r}; known tasks: {', '.join(sorted(REGISTRY))}.") from None
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)
