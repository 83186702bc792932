"""The "Performance" group: source and model frame rates, latency, frames skipped and the model in use."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QWidget


class Rate:
    """Events per second, smoothed."""

    def __init__(self) -> None:
        self.last: float | None = None
        self.value = 0.0

    def tick(self, now: float) -> None:
        if self.last is not None and now > self.last:
            inst = 1.0 / (now - self.last)
            self.value = inst if self.value == 0 else 0.8 * self.value + 0.2 * inst
        self.last = now

    def reset(self) -> None:
        self.last, self.value = None, 0.0


class PerfPanel(QGroupBox):
    """Counts frames and results as they arrive; ``refresh`` shows the numbers (call it on a timer)."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Performance", parent)
        self.camera_rate, self.model_rate = Rate(), Rate()
        self.latency_ms = 0.0
        self.dropped = 0
        self.camera_fps_label, self.model_fps_label = QLabel("–"), QLabel("–")
        self.latency_label, self.dropped_label = QLabel("–"), QLabel("0")
        self.model_label = QLabel("not loaded")
        self.model_label.setWordWrap(True)
        for lab in (self.camera_fps_label, self.model_fps_label, self.latency_label, self.dropped_label):
            lab.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        form = QFormLayout(self)
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
        form.addRow("Source FPS", self.camera_fps_label)
        form.addRow("Model FPS", self.model_fps_label)
        form.addRow("Latency", self.latency_label)
        form.addRow("Frames skipped", self.dropped_label)
        form.addRow(self.model_label)

    def frame_arrived(self, captured: float) -> None:
        self.camera_rate.tick(captured)

    def result_arrived(self, now: float, submitted_at: float) -> None:
        self.model_rate.tick(now)
        latency = (now - submitted_at) * 1000.0
        self.latency_ms = latency if self.latency_ms == 0 else 0.7 * self.latency_ms + 0.3 * latency

    def source_stopped(self) -> None:
        self.camera_rate.reset()

    def reset(self) -> None:
        """A new source: start the rates and the latency afresh (frames skipped come from the engine)."""
        self.camera_rate.reset()
        self.model_rate.reset()
        self.latency_ms = 0.0

    def refresh(self, running: bool) -> None:
        self.camera_fps_label.setText(f"{self.camera_rate.value:.1f}" if running and self.camera_rate.value else "–")
        self.model_fps_label.setText(f"{self.model_rate.value:.1f}" if self.model_rate.value else "–")
        self.latency_label.setText(f"{self.latency_ms:.0f} ms" if self.latency_ms else "–")
        self.dropped_label.setText(str(self.dropped))

    def show_model(self, description: str, task: str) -> None:
        """The loaded model, short (the full description in the tooltip)."""
        self.model_label.setText(short_description(description, task))
        self.model_label.setToolTip(description)


def short_description(description: str, task: str) -> str:
    """"object-detection · /long/path/detr-resnet-50 · cpu · exact (float32)" -> "detr-resnet-50 · cpu · exact (float32)"."""
    parts = description.split(" · ")
    if len(parts) >= 2 and parts[0] == task:
        parts = parts[1:]
    if parts and ("/" in parts[0] or "\\" in parts[0]) and Path(parts[0]).is_dir():
        parts[0] = Path(parts[0]).name
    return " · ".join(parts)
