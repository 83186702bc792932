"""Frame producers that run off the UI thread: a camera, a video file, a still image.

Each source is a QThread that emits ``frameReady(frame_id, rgb, capture_time)`` for every frame
(``rgb``: (H, W, 3) uint8, ``capture_time``: time.monotonic()), ``opened(description, fps, w, h)``
once the input is open, ``failed(message)`` with a message for the user, and ``ended()`` when a
non-looping file is done. ``request_stop()`` asks the loop to end without waiting; ``stop()``
also joins the thread (no terminate).

Every emitted frame is a read-only array (``rgb.flags.writeable`` is False): the view and the
engine share it without a copy, and none of them may change it.

Back-pressure: after ``require_ack()``, a source emits its next frame only once the UI has taken
the previous one (``frame_taken()``, called by the UI-side slot); frames produced meanwhile are
dropped and counted (``dropped``). A camera keeps reading meanwhile, so what it emits next is fresh;
a file keeps its pace. Queued frame signals therefore never pile up on a slow UI thread.
"""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import numpy as np
from PySide6.QtCore import QThread, Signal

log = logging.getLogger(__name__)

#: the pace of a video file whose frame rate is unknown or implausible (webm, variable rate)
FALLBACK_FPS = 30.0

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff", ".gif", ".ppm", ".pgm"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv"})


def available_cameras() -> list[int]:
    """Camera indices to offer. On Linux, the /dev/video* devices that exist (without opening them);
    elsewhere, where there is no cheap way to ask, 0-2. Camera 0 is always offered: opening a camera
    that is not there gives a clear message."""
    import sys
    if sys.platform.startswith("linux"):
        import glob
        found = sorted({int(p[len("/dev/video"):]) for p in glob.glob("/dev/video*") if p[len("/dev/video"):].isdigit()})
        return found or [0]
    return [0, 1, 2]


class FrameSource(QThread):
    frameReady = Signal(int, object, float)  # (frame_id, rgb uint8 (H, W, 3), capture time monotonic)
    opened = Signal(str, float, int, int)  # (description, fps or 0, width, height)
    failed = Signal(str)  # user-facing message
    ended = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._stop = threading.Event()
        self._next_id = 0
        self._ack = False  # back-pressure on (require_ack)
        self._taken = threading.Event()  # set: the UI took the last frame emitted
        self._taken.set()
        self._dropped = 0

    @property
    def description(self) -> str:
        return ""

    def require_ack(self, on: bool = True) -> None:
        """Emit a frame only after the previous one was taken (``frame_taken``). Call before start()."""
        self._ack = bool(on)

    def frame_taken(self) -> None:
        """The UI took the last frame: the next one may be emitted. Thread-safe."""
        self._taken.set()

    @property
    def dropped(self) -> int:
        """Frames not emitted because the UI had not taken the previous one yet."""
        return self._dropped

    def request_stop(self) -> None:
        """Ask the producer to end; does not wait (``finished`` is emitted when it has)."""
        self._stop.set()
        self._taken.set()

    def stop(self, timeout_ms: int = 3000) -> bool:
        """Ask the producer to end and wait for it. True when the thread has finished."""
        self.request_stop()
        if not self.isRunning():
            return True
        ok = self.wait(timeout_ms)
        if not ok:
            log.warning("%s did not stop within %d ms", type(self).__name__, timeout_ms)
        return bool(ok)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _ready(self) -> bool:
        """May a frame be emitted now? Counts a drop when not (back-pressure)."""
        if not self._ack or self._taken.is_set():
            return True
        self._dropped += 1
        return False

    def _emit(self, rgb: np.ndarray, captured: float) -> None:
        # one array goes, uncopied, to the view and to the engine: read-only, so that no consumer
        # can change what another one sees (a write raises ValueError instead)
        rgb.setflags(write=False)
        if self._ack:
            self._taken.clear()
        self.frameReady.emit(self._next_id, rgb, captured)
        self._next_id += 1

    def run(self) -> None:  # QThread entry point
        try:
            self._produce()
        except Exception as exc:  # noqa: BLE001 - a source error never kills the app
            log.exception("%s failed", type(self).__name__)
            self.failed.emit(f"The video source stopped: {type(exc).__name__}: {exc}")

    def _produce(self) -> None:
        raise NotImplementedError


def _bgr_to_rgb(frame: np.ndarray) -> np.ndarray:
    import cv2
    if frame.ndim == 2:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2RGB)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2RGB)
    return cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class _CaptureSource(FrameSource):
    """Shared loop for cv2.VideoCapture inputs, paced at the file's frame rate where it has one."""

    def __init__(self, target: int | str, *, paced: bool, loop: bool, parent=None) -> None:
        super().__init__(parent)
        self._target = target
        self._paced = paced
        self._loop = loop

    def _open(self):
        import cv2
        cap = cv2.VideoCapture(self._target)
        if not cap.isOpened():
            cap.release()
            return None
        return cap

    def _open_failed_message(self) -> str:
        raise NotImplementedError

    def _produce(self) -> None:
        import cv2
        cap = self._open()
        if cap is None:
            self.failed.emit(self._open_failed_message())
            return
        try:
            fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
            if not (1.0 <= fps <= 240.0):
                fps = 0.0
            ok, frame = cap.read()
            if not ok or frame is None:
                self.failed.emit(self._open_failed_message())
                return
            h, w = frame.shape[:2]
            self.opened.emit(self.description, fps, int(w), int(h))
            period = 1.0 / (fps or FALLBACK_FPS) if self._paced else 0.0
            due = time.monotonic()
            read_failures = 0
            emitted = False
            while not self._stop.is_set():
                if frame is not None:
                    read_failures = 0
                    now = time.monotonic()
                    if self._ready():  # else dropped: the UI has not taken the previous frame
                        self._emit(_bgr_to_rgb(frame), now)
                        emitted = True
                    if period:
                        due = max(due + period, now - period)  # do not race to catch up after a stall
                        if self._stop.wait(max(0.0, due - time.monotonic())):
                            break
                ok, frame = cap.read()
                if not ok or frame is None:
                    frame = None
                    if self._loop and emitted and cap.set(cv2.CAP_PROP_POS_FRAMES, 0):
                        read_failures += 1
                        if read_failures > 3:
                            break
                        continue
                    if isinstance(self._target, int) and not self._paced:  # a camera that went away
                        self.failed.emit(f"Camera {self._target} stopped delivering frames. "
                                         "Check the connection or open a video or image file.")
                        return
                    break
            if not self._stop.is_set():
                self.ended.emit()
        finally:
            cap.release()


class CameraSource(_CaptureSource):
    """A webcam by index (``cv2.VideoCapture(index)``). A video file path may stand in for the
    camera (tests, demos): it is then paced at its frame rate and loops like a live feed."""

    def __init__(self, index: int | str = 0, parent=None) -> None:
        is_file = isinstance(index, str) and not index.isdigit()
        target: int | str = index if is_file else int(index)
        super().__init__(target, paced=is_file, loop=is_file, parent=parent)
        self.index = target

    @property
    def description(self) -> str:
        return f"Camera {self.index}" if isinstance(self.index, int) else f"Camera (file {Path(self.index).name})"

    def _open_failed_message(self) -> str:
        if isinstance(self.index, int):
            return (f"No camera found at index {self.index}. "
                    "Connect a camera or open a video or image file.")
        return f"Cannot open {self.index} as a camera stand-in."


class VideoFileSource(_CaptureSource):
    """A video file played at its own frame rate; loops when ``loop`` is True."""

    def __init__(self, path: str | Path, loop: bool = True, parent=None) -> None:
        super().__init__(str(path), paced=True, loop=loop, parent=parent)
        self.path = Path(path)

    @property
    def description(self) -> str:
        return self.path.name

    def _open_failed_message(self) -> str:
        if not self.path.exists():
            return f"{self.path.name}: file not found."
        if self.path.stat().st_size == 0:
            return f"{self.path.name} is empty."
        return f"{self.path.name} is not a video file OpenCV can read (corrupt or unsupported codec)."


class ImageSource(FrameSource):
    """A still image, read with engine.imageio.read_image and emitted once."""

    def __init__(self, path: str | Path, parent=None) -> None:
        super().__init__(parent)
        self.path = Path(path)

    @property
    def description(self) -> str:
        return self.path.name

    def _produce(self) -> None:
        from engine.errors import EngineError
        from engine.io.image import read_image
        try:
            rgb = read_image(self.path)
        except EngineError as exc:
            self.failed.emit(str(exc))
            return
        except OSError as exc:
            self.failed.emit(f"Cannot read {self.path.name}: {exc.strerror or exc}")
            return
        h, w = rgb.shape[:2]
        self.opened.emit(self.description, 0.0, int(w), int(h))
        self._emit(np.ascontiguousarray(rgb), time.monotonic())
        self.ended.emit()


def source_for_file(path: str | Path, loop: bool = True) -> FrameSource | None:
    """The source that plays ``path`` by its suffix, or None for types it does not handle."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return ImageSource(path)
    if suffix in VIDEO_SUFFIXES:
        return VideoFileSource(path, loop=loop)
    return None
