"""Model picker (catalog checkpoints + a local folder) and device / precision picker.

The device list comes from ``engine.available_devices()``, which imports torch (1-2 s): it is asked
once per process, on a worker thread (:class:`DeviceLister`), never on the UI thread; a picker shows
the remembered choice at once and fills in the real list when it arrives."""
from __future__ import annotations

import logging
import threading
from pathlib import Path

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QFileDialog, QHBoxLayout, QLabel, QWidget

import engine

log = logging.getLogger(__name__)

_LOCAL = "__local__"


class ModelPicker(QComboBox):
    """The catalog's checkpoints for one task, local folders used before, and "Local folder…".

    Emits ``modelChosen(ref)`` (a repo id or a folder path) when the user picks one.
    """

    modelChosen = Signal(str)

    def __init__(self, task: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.task = task
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.setMinimumContentsLength(16)
        self._current: str | None = None
        self._updating = False
        for entry in engine.models_for(task):
            short = entry.id.replace("\\", "/").split("/")[-1]
            if Path(entry.id).is_absolute():  # a model bundled with a package: its note names it
                short = f"{entry.note.split(':')[0]} (bundled)" if entry.note else f"{short} (bundled)"
            self.addItem(short, entry.id)
            tip = f"{entry.id}\n{entry.note}\n~{entry.size_mb} MB download on first use · licence {entry.licence}"
            self.setItemData(self.count() - 1, tip, Qt.ItemDataRole.ToolTipRole)
        self.insertSeparator(self.count())
        self.addItem("Local folder…", _LOCAL)
        self.setItemData(self.count() - 1, "Use a checkpoint folder on disk (config.json + weights)",
                         Qt.ItemDataRole.ToolTipRole)
        if engine.models_for(task):
            self._current = self.itemData(0)
        self.activated.connect(self._on_activated)

    def current_model(self) -> str | None:
        return self._current

    def set_model(self, ref: str | None, emit: bool = True, force: bool = False) -> None:
        """Select ``ref`` (adding it as a local folder entry if needed); emits modelChosen."""
        if not ref:
            return
        index = self.findData(ref)
        if index < 0:
            index = self.count() - 1  # before "Local folder…"
            name = Path(ref).name or ref
            self._updating = True
            self.insertItem(index, f"{name} (local)", ref)
            self.setItemData(index, ref, Qt.ItemDataRole.ToolTipRole)
            self._updating = False
        self._updating = True
        self.setCurrentIndex(index)
        self._updating = False
        changed = ref != self._current
        self._current = ref
        self.setToolTip(ref)
        if emit and (changed or force):
            self.modelChosen.emit(ref)

    def _on_activated(self, index: int) -> None:
        data = self.itemData(index)
        if data == _LOCAL:
            folder = QFileDialog.getExistingDirectory(self, "Choose a checkpoint folder",
                                                      str(Path(self._current).parent) if self._current
                                                      and Path(self._current).is_dir() else str(Path.home()))
            if folder:
                self.set_model(folder, force=True)
            else:  # back to what was selected
                self.set_model(self._current, emit=False)
            return
        if data:
            self.set_model(data, force=True)  # picking the same model again retries a failed load


class DeviceLister(QObject):
    """Asks ``engine.available_devices()`` once per process on a worker thread (it imports torch)
    and announces the answer on the UI thread: ``listed(devices)``, a list of DeviceInfo ([] when
    listing failed). ``devices`` is the answer once it has arrived (None before)."""

    listed = Signal(object)

    _instance: DeviceLister | None = None

    def __init__(self) -> None:
        super().__init__()
        self.devices: list | None = None
        self._thread: threading.Thread | None = None
        # the worker emits _found from its own thread; the queued connection brings it to this
        # object's (the UI) thread, where ``devices`` is set and ``listed`` emitted
        self._found.connect(self._on_found, Qt.ConnectionType.QueuedConnection)

    _found = Signal(object)

    @classmethod
    def instance(cls) -> DeviceLister:
        """The process's lister (create it on the UI thread); it lives as long as the process."""
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def start(self) -> None:
        """Start listing (once); returns at once."""
        if self._thread is not None or self.devices is not None:
            return
        # not a daemon (Python waits for it at exit, at most the torch import); see also wait()
        self._thread = threading.Thread(target=self._list, name="taskscope-devices")
        self._thread.start()

    def wait(self, timeout_s: float | None = None) -> bool:
        """Wait for the worker (if it runs); True when it is not running any more. The app waits
        before it exits: an interpreter that shuts down while a thread imports torch breaks that
        import half way (errors at exit)."""
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout_s)
        return not thread.is_alive()

    def _list(self) -> None:  # worker thread
        try:
            devices = list(engine.available_devices())
        except Exception:  # noqa: BLE001 - the picker keeps its placeholders
            log.exception("could not list devices")
            devices = []
        try:
            self._found.emit(devices)
        except RuntimeError:  # the app is gone (the process is ending): nobody to tell
            pass

    def _on_found(self, devices) -> None:
        if self.devices is None:
            self.devices = list(devices)
            self.listed.emit(self.devices)


#: a picker that is not painted by then (its window not shown) starts listing the devices anyway
LIST_LATEST_MS = 1500
#: what the picker offers before the device list has arrived (and when listing failed)
_PLACEHOLDERS = (("auto", "Auto"), ("cpu", "CPU"))
_EXACT_TIP = "float32 everywhere: outputs match the reference implementation"


class DevicePicker(QWidget):
    """A device combo ("auto" and the devices of engine.available_devices()) and a precision
    combo (exact / fast).

    The device list arrives asynchronously (:class:`DeviceLister`): until then the combo holds
    "Auto", "CPU" and the requested device (``set_choice``), and a requested "fast" stays chosen
    tentatively. When the list arrives the choice is checked against it: an unknown device falls
    back to "auto", "fast" on a device without native bf16/fp16 to "exact", and if the choice
    changed that way ``adjusted(device, precision)`` is emitted (not ``changed``: it is not the
    user's choice, and is not to be remembered). "fast" is disabled, with a tooltip saying why, on
    devices without native bf16/fp16. Emits ``changed(device, precision)`` when the user changes
    either; ``devicesListed()`` once the real list is shown.
    """

    changed = Signal(str, str)
    adjusted = Signal(str, str)
    devicesListed = Signal()

    def __init__(self, parent: QWidget | None = None, lister: DeviceLister | None = None) -> None:
        super().__init__(parent)
        self._devices: list | None = None  # None: not listed yet
        self._requested_precision: str | None = None  # set_choice's or the user's; "fast" stays until listed
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.device_combo = QComboBox()
        self.device_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        for name, label in _PLACEHOLDERS:
            self.device_combo.addItem(label, name)
        self.device_combo.setToolTip("Listing the devices…")
        self.precision_combo = QComboBox()
        self.precision_combo.addItem("Exact (fp32)", "exact")
        self.precision_combo.addItem("Fast", "fast")
        label = QLabel("Device")
        label.setBuddy(self.device_combo)
        layout.addWidget(label)
        self.device_combo.setMaximumWidth(420)
        layout.addWidget(self.device_combo)
        plabel = QLabel("Precision")
        plabel.setBuddy(self.precision_combo)
        layout.addWidget(plabel)
        layout.addWidget(self.precision_combo)
        self.device_combo.currentIndexChanged.connect(self._device_changed)
        self.precision_combo.currentIndexChanged.connect(self._emit)
        self._device_changed(emit=False)
        self._lister = lister if lister is not None else DeviceLister.instance()
        self._lister.listed.connect(self._on_listed)  # before looking at what is there: nothing is missed
        self._painted = False
        if self._lister.devices is not None:
            self._on_listed(self._lister.devices)
        else:
            # the torch import would compete with building and painting the window for the GIL (it
            # made the first paint ~0.6 s later): listing starts once this picker has been painted,
            # or after LIST_LATEST_MS if it never is (a window built and not shown)
            QTimer.singleShot(LIST_LATEST_MS, self._lister.start)

    # ------------------------------------------------------------------ the list

    def paintEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().paintEvent(event)
        if not self._painted:
            self._painted = True
            if self._lister.devices is None:
                QTimer.singleShot(0, self._lister.start)  # once this paint (the window's first) is done

    def devices_listed(self) -> bool:
        """Has the real device list arrived?"""
        return self._devices is not None

    def _on_listed(self, devices) -> None:
        if self._devices is not None:
            return
        before = (self.device(), self.precision())
        self._devices = list(devices)
        self.blockSignals(True)
        self.device_combo.blockSignals(True)
        try:
            self.device_combo.clear()
            if self._devices:
                best = self._devices[0]
                self.device_combo.addItem(f"Auto · {best.label}", "auto")
                self.device_combo.setItemData(0, f"The best device here: {best.label}", Qt.ItemDataRole.ToolTipRole)
                for d in self._devices:
                    self.device_combo.addItem(d.label, d.name)
                    self.device_combo.setItemData(self.device_combo.count() - 1, d.label,
                                                  Qt.ItemDataRole.ToolTipRole)
            else:  # listing failed: the placeholders (the engine resolves them itself)
                for name, label in _PLACEHOLDERS:
                    self.device_combo.addItem(label, name)
            self.device_combo.setToolTip("")
            i = self.device_combo.findData(before[0])
            if i < 0:
                log.info("device %r is not available here; using auto", before[0])
            self.device_combo.setCurrentIndex(max(i, 0))
        finally:
            self.device_combo.blockSignals(False)
            self.blockSignals(False)
        self.set_choice(self.device_combo.currentData(), self._requested_precision or before[1])
        after = (self.device(), self.precision())
        self.devicesListed.emit()
        if after != before:
            self.adjusted.emit(*after)

    def _info(self):
        """The DeviceInfo of the chosen device ("auto": the best one); None while not listed."""
        if not self._devices:
            return None
        name = self.device_combo.currentData()
        if name == "auto":
            return self._devices[0]
        return next((d for d in self._devices if d.name == name), None)

    # ------------------------------------------------------------------ precision

    def _device_changed(self, *_args, emit: bool = True) -> None:
        info = self._info()
        model = self.precision_combo.model()
        fast_item = model.item(1)
        if self._devices is None:  # not listed yet: a requested "fast" stays, tentatively
            tentative = self._requested_precision == "fast"
            fast_item.setEnabled(tentative)
            self.precision_combo.setItemText(1, "Fast (checking the device…)")
            tip = "Checking whether this device runs bfloat16/float16 natively…"
            if not tentative and self.precision_combo.currentIndex() == 1:
                self.precision_combo.setCurrentIndex(0)
        elif info is not None and info.fast_supported:
            fast_item.setEnabled(True)
            self.precision_combo.setItemText(1, f"Fast ({info.fast_dtype})")
            tip = (f"{info.fast_dtype} on {info.label}: several times faster; "
                   "results may differ slightly from exact fp32.")
        else:
            fast_item.setEnabled(False)
            self.precision_combo.setItemText(1, "Fast (unavailable)")
            tip = ("Fast precision needs native bfloat16/float16 (a GPU, or a CPU with AMX or AVX512-BF16); "
                   "this device would run it slower than exact, so it is off.")
            if self.precision_combo.currentIndex() == 1:
                self.precision_combo.setCurrentIndex(0)
        self.precision_combo.setItemData(1, tip, Qt.ItemDataRole.ToolTipRole)
        self.precision_combo.setItemData(0, _EXACT_TIP, Qt.ItemDataRole.ToolTipRole)
        self.precision_combo.setToolTip(tip if self.precision() == "fast" or not fast_item.isEnabled()
                                        else _EXACT_TIP)
        if emit:
            self._emit()

    def _emit(self, *_args) -> None:
        if not self.signalsBlocked():  # the user's own choice from now on
            self._requested_precision = self.precision()
        self.changed.emit(self.device(), self.precision())

    def device(self) -> str:
        return self.device_combo.currentData() or "auto"

    def precision(self) -> str:
        return self.precision_combo.currentData() or "exact"

    def fast_supported(self) -> bool:
        info = self._info()
        return bool(info and info.fast_supported)

    def set_choice(self, device: str | None, precision: str | None) -> None:
        """Select without emitting ``changed``. Before the device list has arrived, an unknown
        ``device`` is shown as given (checked when the list arrives)."""
        device = str(device).strip().lower() if device else None
        if device == "cuda":
            device = "cuda:0"
        self._requested_precision = precision
        self.blockSignals(True)
        try:
            i = self.device_combo.findData(device) if device else -1
            if i < 0 and device and self._devices is None:
                self.device_combo.addItem(device, device)
                i = self.device_combo.count() - 1
            if i >= 0:
                self.device_combo.setCurrentIndex(i)
            self._device_changed(emit=False)
            if precision == "fast" and (self.fast_supported() or self._devices is None):
                self.precision_combo.setCurrentIndex(1)
            else:
                self.precision_combo.setCurrentIndex(0)
            self._device_changed(emit=False)  # the tooltips of the final choice
        finally:
            self.blockSignals(False)
