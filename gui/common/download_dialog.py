"""A non-modal dialog for a model download / load: bytes done of total, speed, Cancel."""
from __future__ import annotations

import time

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QProgressBar, QVBoxLayout, QWidget


def _mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


class DownloadDialog(QDialog):
    """Shows ``EngineClient.modelLoading`` progress; Cancel emits ``cancelRequested``."""

    cancelRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Loading model")
        self.setModal(False)
        self.setMinimumWidth(440)
        self._title = QLabel()
        self._title.setWordWrap(True)
        f = self._title.font()
        f.setBold(True)
        self._title.setFont(f)
        self._bar = QProgressBar()
        self._bar.setTextVisible(True)
        self._detail = QLabel()
        self._detail.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        buttons.rejected.connect(self._cancel)
        layout = QVBoxLayout(self)
        layout.addWidget(self._title)
        layout.addWidget(self._bar)
        layout.addWidget(self._detail)
        layout.addWidget(buttons)
        self._t0 = time.monotonic()
        self._samples: list[tuple[float, int]] = []
        self.task = ""
        self.model = ""

    def start(self, task: str, model: str) -> None:
        self.task, self.model = task, model
        self._t0 = time.monotonic()
        self._samples.clear()
        self._title.setText(f"Loading {model} for {task.replace('-', ' ')}")
        self._bar.setRange(0, 0)  # busy until sizes are known
        self._detail.setText("Preparing…")

    def update_progress(self, done: int | None, total: int | None) -> None:
        if done is None:
            return
        now = time.monotonic()
        self._samples.append((now, int(done)))
        self._samples = [s for s in self._samples if now - s[0] <= 3.0]  # speed over the last 3 s
        speed = 0.0
        if len(self._samples) >= 2 and self._samples[-1][0] > self._samples[0][0]:
            speed = (self._samples[-1][1] - self._samples[0][1]) / (self._samples[-1][0] - self._samples[0][0])
        if total:
            self._bar.setRange(0, 1000)
            self._bar.setValue(int(1000 * min(1.0, done / total)))
            text = f"Downloading: {_mb(done)} of {_mb(total)}"
            if speed > 0:
                eta = (total - done) / speed
                text += f" · {speed / 1e6:.1f} MB/s · {eta:.0f} s left"
        else:
            text = f"Downloading: {_mb(done)}" + (f" · {speed / 1e6:.1f} MB/s" if speed > 0 else "")
        if total and done >= total:
            text = f"Downloaded {_mb(total)}; building the model…"
            self._bar.setRange(0, 0)
        self._detail.setText(text)

    def _cancel(self) -> None:
        self._detail.setText("Cancelling…")
        self.cancelRequested.emit()

    def reject(self) -> None:  # Esc / window close also cancel
        self._cancel()
        super().reject()
