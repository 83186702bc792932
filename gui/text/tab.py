"""Text tab: only the frame for now. Text tasks arrive in a later release."""
from __future__ import annotations

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from gui.core.task_tab import TaskTab

PLANNED = ("text classification", "named-entity recognition", "question answering", "fill-mask",
           "text generation", "summarization", "translation")


class TextTab(TaskTab):
    domain = "text"

    def __init__(self, engine, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(engine, settings, parent)
        title = QLabel("Text tasks are not available in this version")
        f = title.font()
        f.setPointSizeF(f.pointSizeF() * 1.35)
        f.setBold(True)
        title.setFont(f)
        body = QLabel(
            "Text tasks — " + ", ".join(PLANNED) + " — arrive in a later release, running BERT, GPT-2, "
            "BART and T5 from their real checkpoints.\n\nFor now, use the Vision tab (object detection and "
            "image classification on a camera, video or image) and the Speech tab (speech recognition and "
            "audio classification).")
        body.setWordWrap(True)
        body.setMaximumWidth(560)
        for w in (title, body):
            w.setAlignment(Qt.AlignmentFlag.AlignCenter)
            w.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addStretch(1)
        layout.addWidget(title, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addSpacing(12)
        layout.addWidget(body, 0, Qt.AlignmentFlag.AlignHCenter)
        layout.addStretch(2)
