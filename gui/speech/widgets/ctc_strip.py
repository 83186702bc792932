"""The CTC emission strip: what wav2vec2's CTC head heard, frame by frame (20 ms).

Top: the probability of the blank token per frame (grey area: "nothing new here").
Bottom: the most likely non-blank token where it wins, as a coloured tick with its letter.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget


class CTCStrip(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.internals = None
        self.blank_id: int | None = None
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFixedHeight(64)
        self.setToolTip("CTC emissions per 20 ms frame: grey = blank probability; "
                        "letters = the most likely token where it beats blank")

    def sizeHint(self) -> QSize:
        return QSize(400, 64)

    def set_internals(self, internals) -> None:
        """``internals``: an engine CTCInternals (frame_s, top_ids, top_probs, blank_prob, vocab) or None."""
        self.internals = internals
        self.blank_id = None
        if internals is not None:
            for i, tok in enumerate(internals.vocab):
                if tok in ("<pad>", "<blank>", "[PAD]", "<s>"):
                    self.blank_id = i
                    break
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt API
        p = QPainter(self)
        r = QRectF(self.rect()).adjusted(0, 0, -1, -1)
        p.fillRect(r, QColor(24, 24, 28))
        it = self.internals
        if it is None or len(it.blank_prob) == 0:
            p.setPen(QColor(150, 150, 150))
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, "CTC emissions appear here after a transcript")
            p.end()
            return
        t = len(it.blank_prob)
        w = r.width() / t
        top_h = r.height() * 0.5
        path = QPainterPath(QPointF(r.left(), top_h))
        for i, b in enumerate(np.asarray(it.blank_prob, np.float32)):
            path.lineTo(r.left() + (i + 0.5) * w, top_h - float(b) * (top_h - 2))
        path.lineTo(r.right(), top_h)
        path.closeSubpath()
        p.fillPath(path, QColor(120, 120, 130))
        p.setPen(QPen(QColor(60, 60, 66)))
        p.drawLine(QPointF(r.left(), top_h), QPointF(r.right(), top_h))
        p.setPen(QColor(170, 170, 175))
        p.drawText(QRectF(r.left() + 4, r.top() + 1, 200, 14), Qt.AlignmentFlag.AlignLeft,
                   f"CTC · P(blank) per {1000 * it.frame_s:.0f} ms frame")
        fm = p.fontMetrics()
        last_x = -1e9
        for i in range(t):
            tid = int(it.top_ids[i])
            if tid == self.blank_id:
                continue
            tok = it.vocab[tid] if 0 <= tid < len(it.vocab) else "?"
            if tok in ("<pad>", "<s>", "</s>", "<unk>"):
                continue
            prob = float(it.top_probs[i])
            hue = (tid * 47) % 360
            color = QColor.fromHsv(hue, 170, 90 + int(160 * prob))
            x = r.left() + i * w
            p.fillRect(QRectF(x, top_h + 2, max(1.0, w), r.height() * 0.18), color)
            label = "␣" if tok == "|" else tok
            if x - last_x >= fm.horizontalAdvance("W"):
                p.setPen(color.lighter(150))
                p.drawText(QRectF(x - 6, top_h + 4 + r.height() * 0.18, 14, fm.height()), Qt.AlignmentFlag.AlignCenter, label)
                last_x = x
        p.end()
