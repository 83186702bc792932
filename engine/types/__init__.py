"""Options and results that cross from the engine to the app: frozen dataclasses of numpy
arrays and plain Python values, never tensors, one module per domain (vision, audio, text).
No torch here, so the GUI can use them freely. ``Timings`` is shared by all."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timings:
    """Milliseconds spent in each stage of one task call."""

    preprocess_ms: float = 0.0
    model_ms: float = 0.0
    postprocess_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.model_ms + self.postprocess_ms

    def split(self, n: int) -> "Timings":
        """An even share of these timings for each of ``n`` items of one batch."""
        return Timings(self.preprocess_ms / n, self.model_ms / n, self.postprocess_ms / n)

    def to_json(self) -> dict:
        return {"preprocess": round(self.preprocess_ms, 1), "model": round(self.model_ms, 1),
                "postprocess": round(self.postprocess_ms, 1)}
