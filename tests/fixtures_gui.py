"""The real main window for GUI tests (offscreen): fresh settings per test, the given settings
written first, every window shut down (and checked to shut down) at the end."""
from __future__ import annotations

import pytest


@pytest.fixture
def open_window(qtbot, tmp_path, monkeypatch):
    """``open_window(settings={...}, offline=True) -> MainWindow``; the settings persist across the
    windows of one test (as they do across runs of the app)."""
    from gui.app import MainWindow, make_settings

    monkeypatch.setenv("TASKSCOPE_SETTINGS_DIR", str(tmp_path / "settings"))
    windows: list[MainWindow] = []

    def make(settings: dict | None = None, offline: bool = True) -> MainWindow:
        if settings:
            s = make_settings()
            for key, value in settings.items():
                s.setValue(key, value)
            s.sync()
        w = MainWindow(offline=offline)
        w.show()
        windows.append(w)
        return w

    yield make
    for w in windows:
        assert w.shutdown() is True
        w.close()
        w.deleteLater()


def detection_settings(checkpoint) -> dict:
    """A DETR checkpoint chosen, threshold 0 (random weights give low scores), the fastest input size."""
    return {"models/object-detection": str(checkpoint), "vision/threshold": 0.0, "vision/input_size": 384}
