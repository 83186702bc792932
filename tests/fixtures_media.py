"""Generated media for tests: a short video with moving shapes, a PNG, a corrupt and an empty file."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

WIDTH, HEIGHT, FPS, SECONDS = 320, 240, 20, 2.5


def _frame(i: int, n: int) -> np.ndarray:
    """BGR frame ``i`` of ``n``: a gradient background, a red disc and a green square moving across."""
    import cv2
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    img = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    img[..., 0] = (60 + 80 * x / WIDTH).astype(np.uint8)
    img[..., 1] = (40 + 60 * y / HEIGHT).astype(np.uint8)
    img[..., 2] = 50
    t = i / max(n - 1, 1)
    cx = int(30 + t * (WIDTH - 60))
    cv2.circle(img, (cx, 80), 26, (40, 40, 230), -1)
    sx = int(WIDTH - 70 - t * (WIDTH - 100))
    cv2.rectangle(img, (sx, 140), (sx + 50, 200), (40, 200, 60), -1)
    cv2.putText(img, f"{i:03d}", (8, HEIGHT - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1)
    return img


def write_video(path: Path, seconds: float = SECONDS, fps: int = FPS) -> Path:
    import cv2
    fourcc = "mp4v" if path.suffix == ".mp4" else "MJPG"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (WIDTH, HEIGHT))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {fourcc} video here")
    n = int(seconds * fps)
    for i in range(n):
        writer.write(_frame(i, n))
    writer.release()
    return path


@pytest.fixture(scope="session")
def media_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("media")


@pytest.fixture(scope="session")
def video_file(media_dir) -> Path:
    """~2.5 s, 20 fps, 320x240 mp4v (.mp4); MJPG .avi if mp4v cannot be written."""
    try:
        return write_video(media_dir / "shapes.mp4")
    except RuntimeError:
        return write_video(media_dir / "shapes.avi")


@pytest.fixture(scope="session")
def image_file(media_dir) -> Path:
    import cv2
    path = media_dir / "shapes.png"
    assert cv2.imwrite(str(path), _frame(10, 20))
    return path


@pytest.fixture(scope="session")
def corrupt_image_file(media_dir) -> Path:
    path = media_dir / "corrupt.png"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return path


@pytest.fixture(scope="session")
def empty_file(media_dir) -> Path:
    path = media_dir / "empty.png"
    path.write_bytes(b"")
    return path
