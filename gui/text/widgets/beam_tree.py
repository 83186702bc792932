"""Beam search as a tree: one column per decoding step, one row per beam (best first), so that each
column holds that step's live beams; a box is a sequence prefix that was a live beam at that step
(its last token and its score written in it) and a line joins it to the beam it extended. Branches
still live at the last step are drawn in colour, the chosen output's path in green, pruned
branches (beams that fell out of the best K) greyed. Hover a box: its step, token, score (the sum
of log-probabilities so far), its beam so far and its fate.

Built from each step's live beams (``GenerationStep.beams``: their new token ids and scores, best
first), as the engine records them; the final output may end on a token no live beam holds (the
end of text finishes a hypothesis and leaves the beams), which is added to its path.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QColor, QFont, QFontMetricsF, QPainter, QPainterPath, QPen
from PySide6.QtWidgets import QSizePolicy, QWidget

from gui.text.widgets.tooltip import tooltip_event

#: node states, in drawing priority
CHOSEN, LIVE, PRUNED = "chosen", "live", "pruned"
#: a beam scored at or below this is no live beam: at a step where every candidate finished (the
#: length limit) the decoder still records K beams, with a score of about -1e9
DEAD_SCORE = -1.0e8
COLOURS = {CHOSEN: QColor(40, 170, 110), LIVE: QColor(70, 140, 230), PRUNED: QColor(150, 150, 150)}


@dataclass
class BeamNode:
    prefix: tuple[int, ...]  # the new tokens up to and with this one
    score: float | None  # the beam's score at the step it was live (None: only on the final path)
    rank: int = -1  # its place among that step's live beams (0: best; -1: never a live beam)
    state: str = PRUNED
    children: list[BeamNode] = field(default_factory=list)
    row: int = 0  # layout: its rank, or the row below the beams

    @property
    def step(self) -> int:
        return len(self.prefix)  # 1-based

    @property
    def token(self) -> int:
        return self.prefix[-1]


def build_tree(beams_per_step: Sequence[Sequence[tuple[Sequence[int], float]]],
               final: Sequence[int] | None = None) -> tuple[list[BeamNode], list[BeamNode]]:
    """(roots, every node) of the tree of ``beams_per_step`` (per step, the live beams' new tokens and
    scores); ``final``: the chosen output's new tokens (its path is marked chosen)."""
    nodes: dict[tuple[int, ...], BeamNode] = {}
    beams_per_step = [tuple(b for b in beams if float(b[1]) > DEAD_SCORE) for beams in beams_per_step]
    for beams in beams_per_step:
        for rank, (tokens, score) in enumerate(beams):
            prefix = tuple(int(t) for t in tokens)
            if not prefix:
                continue
            for k in range(1, len(prefix)):  # a parent a step did not record (not expected): add it
                nodes.setdefault(prefix[:k], BeamNode(prefix[:k], None))
            node = nodes.get(prefix)
            if node is None:
                nodes[prefix] = BeamNode(prefix, float(score), rank)
            elif node.score is None:
                node.score, node.rank = float(score), rank
    last = next((beams for beams in reversed(beams_per_step) if beams), ())
    if last:
        for tokens, _ in last:
            prefix = tuple(int(t) for t in tokens)
            for k in range(1, len(prefix) + 1):
                if prefix[:k] in nodes:
                    nodes[prefix[:k]].state = LIVE
    if final:
        path = tuple(int(t) for t in final)
        for k in range(1, len(path) + 1):
            node = nodes.setdefault(path[:k], BeamNode(path[:k], None))
            node.state = CHOSEN
    roots = []
    for prefix, node in nodes.items():
        if len(prefix) == 1:
            roots.append(node)
        else:
            nodes[prefix[:-1]].children.append(node)

    def order(n: BeamNode):  # the chosen path first, then the best scores
        return (n.state != CHOSEN, n.state != LIVE, -(n.score if n.score is not None else -1e30))

    for node in nodes.values():
        node.children.sort(key=order)
    roots.sort(key=order)
    return roots, list(nodes.values())


class BeamTree(QWidget):
    COL_W = 80.0
    ROW_H = 40.0
    BOX_H = 32.0
    MARGIN = 8.0
    HEADER = 16.0  # the step numbers

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.roots: list[BeamNode] = []
        self.nodes: list[BeamNode] = []
        self.rows = 0
        self.steps = 0
        self.placeholder = ""
        self.label: Callable[[int], str] = lambda token: f"#{token}"
        self._font = QFont(self.font())
        self._font.setPointSizeF(max(6.5, self.font().pointSizeF() * 0.85))
        self.setMouseTracking(True)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_beams(self, beams_per_step: Sequence[Sequence[tuple[Sequence[int], float]]],
                  final: Sequence[int] | None = None, label: Callable[[int], str] | None = None) -> None:
        """Draw the tree of ``beams_per_step``; ``label(token_id)`` names a token."""
        if label is not None:
            self.label = label
        self.roots, self.nodes = build_tree(beams_per_step, final)
        self.steps = max((n.step for n in self.nodes), default=0)
        beams = max((n.rank + 1 for n in self.nodes), default=0)
        for node in self.nodes:  # each beam on its rank's row; a finished hypothesis below them
            node.row = node.rank if node.rank >= 0 else beams
        self.rows = beams + (1 if any(n.rank < 0 for n in self.nodes) else 0)
        size = self.content_size()
        self.setMinimumSize(size)
        self.updateGeometry()
        self.update()

    def clear(self) -> None:
        self.set_beams(())

    def content_size(self) -> QSize:
        if not self.nodes:
            return QSize(200, 60)
        return QSize(int(2 * self.MARGIN + self.steps * self.COL_W),
                     int(2 * self.MARGIN + self.HEADER + self.rows * self.ROW_H))

    def sizeHint(self) -> QSize:
        return self.content_size()

    def counts(self) -> dict[str, int]:
        """How many boxes are chosen, live and pruned."""
        out = {CHOSEN: 0, LIVE: 0, PRUNED: 0}
        for n in self.nodes:
            out[n.state] += 1
        return out

    # ------------------------------------------------------------------ geometry

    def node_rect(self, node: BeamNode) -> QRectF:
        x = self.MARGIN + (node.step - 1) * self.COL_W
        y = self.MARGIN + self.HEADER + node.row * self.ROW_H + (self.ROW_H - self.BOX_H) / 2
        return QRectF(x, y, self.COL_W - 16, self.BOX_H)

    def node_at(self, pos: QPointF) -> BeamNode | None:
        for node in self.nodes:
            if self.node_rect(node).contains(pos):
                return node
        return None

    def node(self, prefix: Sequence[int]) -> BeamNode | None:
        prefix = tuple(int(t) for t in prefix)
        return next((n for n in self.nodes if n.prefix == prefix), None)

    # ------------------------------------------------------------------ painting

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        pal = self.palette()
        if not self.nodes:
            p.setPen(pal.placeholderText().color())
            p.drawText(self.rect().adjusted(8, 8, -8, -8), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap,
                       self.placeholder)
            p.end()
            return
        clip = QRectF(event.rect()).adjusted(-self.COL_W, -self.ROW_H, self.COL_W, self.ROW_H)
        p.setFont(self._font)
        fm = QFontMetricsF(self._font)
        p.setPen(pal.placeholderText().color())
        for step in range(1, self.steps + 1):  # the step numbers along the top
            x = self.MARGIN + (step - 1) * self.COL_W
            if clip.left() <= x <= clip.right():
                p.drawText(QRectF(x, self.MARGIN, self.COL_W - 16, self.HEADER),
                           Qt.AlignmentFlag.AlignCenter, f"step {step}")
        for state in (PRUNED, LIVE, CHOSEN):  # edges: the chosen path over the others
            for node in self.nodes:
                for child in node.children:
                    if child.state != state:
                        continue
                    a, b = self.node_rect(node), self.node_rect(child)
                    if not clip.intersects(a.united(b)):
                        continue
                    path = QPainterPath(QPointF(a.right(), a.center().y()))
                    mid = (a.right() + b.left()) / 2
                    path.cubicTo(QPointF(mid, a.center().y()), QPointF(mid, b.center().y()),
                                 QPointF(b.left(), b.center().y()))
                    colour = QColor(COLOURS[state])
                    if state == PRUNED:
                        colour.setAlpha(110)
                    p.setPen(QPen(colour, 2.0 if state == CHOSEN else 1.2))
                    p.setBrush(Qt.BrushStyle.NoBrush)
                    p.drawPath(path)
        for node in self.nodes:
            r = self.node_rect(node)
            if not clip.intersects(r):
                continue
            colour = QColor(COLOURS[node.state])
            fill = QColor(colour)
            fill.setAlpha(50 if node.state == PRUNED else 70)
            p.setBrush(fill)
            p.setPen(QPen(colour, 1.5 if node.state == CHOSEN else 1.0))
            p.drawRoundedRect(r, 4, 4)
            p.setPen(pal.placeholderText().color() if node.state == PRUNED else pal.text().color())
            label = self.label(node.token).replace("\n", "⏎")
            text = fm.elidedText(label, Qt.TextElideMode.ElideRight, r.width() - 6)
            top, bottom = QRectF(r.left(), r.top() + 1, r.width(), r.height() / 2), \
                QRectF(r.left(), r.center().y() - 1, r.width(), r.height() / 2)
            p.drawText(top, Qt.AlignmentFlag.AlignCenter, text)
            p.setPen(pal.placeholderText().color())
            p.drawText(bottom, Qt.AlignmentFlag.AlignCenter, f"{node.score:.2f}" if node.score is not None else "done")
        p.end()

    # ------------------------------------------------------------------ pointer

    def hover_text(self, node: BeamNode | None) -> str:
        if node is None:
            return ""
        fate = {CHOSEN: "on the chosen output", LIVE: "still a live beam at the last step",
                PRUNED: "pruned: it fell out of the best beams"}[node.state]
        score = f"score {node.score:.3f} (sum of log-probabilities)" if node.score is not None else \
            "finished the hypothesis (it left the live beams)"
        rank = f", beam {node.rank + 1} at that step" if node.rank >= 0 else ""
        text = "".join(self.label(t) for t in node.prefix)
        return (f"step {node.step}: {self.label(node.token)!r} (id {node.token}){rank}\n{score}\n{fate}\n"
                f"the beam so far: {text!r}")

    def event(self, event) -> bool:
        return tooltip_event(event, lambda pos: self.hover_text(self.node_at(QPointF(pos))), self) or super().event(event)
