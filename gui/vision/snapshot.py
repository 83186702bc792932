"""Writing a snapshot: the annotated frame as PNG and what is drawn on it as JSON next to it."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

from PySide6.QtGui import QImage

from engine.io.export import dumps


class SnapshotError(Exception):
    """A file could not be written; the message is meant for the user."""


def png_path(path: str | Path) -> Path:
    """``path`` with a .png suffix (any other suffix is replaced)."""
    path = Path(path)
    return path if path.suffix.lower() == ".png" else path.with_suffix(".png")


def write_snapshot(image: QImage, path: Path, meta: dict, drawn: dict) -> Path:
    """Save ``image`` at ``path`` (PNG) and a JSON description at ``path`` with .json; return its path.

    The JSON holds ``"image"`` (the PNG's name), then ``meta``'s items in order, then the image size,
    the time saved, then what the task drew (``drawn``: the presenter's snapshot, e.g. the
    detections). Raises SnapshotError if either file cannot be written.
    """
    if not image.save(str(path), "PNG"):
        raise SnapshotError(f"Could not write {path}.")
    data = {
        "image": path.name,
        **meta,
        "image_size": {"width": image.width(), "height": image.height()},
        "saved_at": datetime.now().isoformat(timespec="seconds"),
        **drawn,
    }
    json_path = path.with_suffix(".json")
    try:
        json_path.write_text(dumps(data) + "\n", encoding="utf-8")
    except OSError as exc:
        raise SnapshotError(f"Could not write {json_path}: {exc.strerror or exc}") from exc
    return json_path
