"""Small QSettings helpers: booleans (the INI backend returns them as strings) and splitter layouts."""
from __future__ import annotations


def as_bool(value) -> bool:
    """A QSettings value as a bool: "true"/"1"/"yes"/"on" (any case) are True, other strings False."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def remember_splitter(splitter, settings, key: str) -> None:
    """Restore ``splitter``'s sizes from ``settings[key]`` and save them whenever the user moves it."""
    state = settings.value(key)
    if state is not None:
        splitter.restoreState(state)
    splitter.splitterMoved.connect(lambda *_: settings.setValue(key, splitter.saveState()))

#: the folder the last Open dialog (File > Open, or a tab's own Open button) was in
OPEN_DIR_KEY = "files/open_dir"
