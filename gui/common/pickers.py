"""Model picker (catalog checkpoints + a local folder) and device / precision picker."""
from __future__ import annotations

import logging
from pathlib import Path

from PySide6.QtCore import Qt, Signal
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
            short = entry.id.split("/")[-1]
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


class DevicePicker(QWidget):
    """A device combo (from engine.available_devices()) and a precision combo (exact / fast).

    "fast" is disabled, with a tooltip saying why, on devices without native bf16/fp16.
    Emits ``changed(device, precision)``.
    """

    changed = Signal(str, str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        try:
            self._devices = list(engine.available_devices())
        except Exception:  # noqa: BLE001 - the picker must still show up
            log.exception("could not list devices")
            self._devices = []
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(6)
        self.device_combo = QComboBox()
        self.device_combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        for d in self._devices:
            self.device_combo.addItem(d.label, d.name)
            self.device_combo.setItemData(self.device_combo.count() - 1, d.label, Qt.ItemDataRole.ToolTipRole)
        if not self._devices:
            self.device_combo.addItem("CPU", "cpu")
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

    def _info(self):
        name = self.device_combo.currentData()
        return next((d for d in self._devices if d.name == name), None)

    def _device_changed(self, *_args, emit: bool = True) -> None:
        info = self._info()
        model = self.precision_combo.model()
        fast_item = model.item(1)
        if info is not None and info.fast_supported:
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
        self.precision_combo.setItemData(0, "float32 everywhere: outputs match the reference implementation",
                                         Qt.ItemDataRole.ToolTipRole)
        self.precision_combo.setToolTip(tip if self.precision() == "fast" or not fast_item.isEnabled()
                                        else "float32 everywhere: outputs match the reference implementation")
        if emit:
            self._emit()

    def _emit(self, *_args) -> None:
        self.changed.emit(self.device(), self.precision())

    def device(self) -> str:
        return self.device_combo.currentData() or "cpu"

    def precision(self) -> str:
        return self.precision_combo.currentData() or "exact"

    def fast_supported(self) -> bool:
        info = self._info()
        return bool(info and info.fast_supported)

    def set_choice(self, device: str | None, precision: str | None) -> None:
        """Select without emitting ``changed``."""
        self.blockSignals(True)
        try:
            i = self.device_combo.findData(device) if device else -1
            if i >= 0:
                self.device_combo.setCurrentIndex(i)
            self._device_changed(emit=False)
            if precision == "fast" and self.fast_supported():
                self.precision_combo.setCurrentIndex(1)
            else:
                self.precision_combo.setCurrentIndex(0)
        finally:
            self.blockSignals(False)
