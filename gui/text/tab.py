"""Text tab: one text task at a time (classification, named entities, question answering, fill-mask,
sentence similarity) on the text in the editor, as you type; and the decoding tasks (text
generation, summarization, translation), on an explicit action.

Every edit (of the text, or of the task's own inputs and options) restarts a very short timer
(DEBOUNCE_MS, it merges bursts of edits); when it fires the text goes to the engine on stream "text" with ``item_id`` the
request's number. The engine keeps only the newest pending request (latest wins) and a result is
shown only if no newer one has been shown, so a slow old result never overwrites a newer one;
switching task or emptying the text makes every earlier request stale. What is asked for, shown
and explained belongs to the active task's presenter (gui/text/presenters/<task>.py), found by the
task's name: this tab knows no task. "Inside the model" (a side panel) shows the tokens as the model
read them and its attention, as the presenter describes them — or the presenter's own panel
(``inside_view``).

A presenter with ``explicit`` set runs only when asked (its run button, Ctrl+Enter), never as you
type; with ``long`` set its request is a long engine job (``submit(long=True)``) whose partial
results reach the presenter as they come (``set_progress``) and which Stop (Esc) cancels — within
one step — keeping what was shown (``stopped``). For those, a refusal or an error never takes away
what is shown: it is said above it (``show_problem``) and in the message area.
"""
from __future__ import annotations

import functools
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (QComboBox, QFrame, QHBoxLayout, QLabel, QMenu, QSizePolicy, QSplitter, QStackedWidget,
                               QToolButton, QVBoxLayout, QWidget)

import engine
from engine.errors import InputError
from engine.io.export import dumps
from engine.io.text import check_text, read_text_file
from gui.common.perf_panel import short_description
from gui.common.pickers import ModelPicker
from gui.core.engine_client import EngineClient, Outcome, is_load_cancelled_message
from gui.core.settings import as_bool, remember_splitter
from gui.core.task_tab import TaskTab
from gui.text.presenters import presenter_class
from gui.text.presenters.base import ATTENTION_MAX_CHARS, TextPresenter, setting_int
from gui.text.widgets.editor import TextEditor
from gui.text.widgets.inside_panel import MEAN, InsidePanel

STREAM = "text"
#: edits closer together than this go as one request. 0 = the edits of one pass of the event loop
#: (an undo of several characters, a burst of key repeats queued together): the engine keeps only
#: the newest pending request of a stream, so sending as you type costs at most one model run at a
#: time, and the result follows the last key by the model's own time (`python main.py bench
#: text-typing`; a 250 ms pause was the whole budget on its own, 15 ms cost 15 ms for nothing)
DEBOUNCE_MS = 0
SUFFIXES = {".txt", ".md"}
#: the editor's text is remembered across runs up to this length
REMEMBER_CHARS = 20_000
#: folder names that say nothing about the model (the parent's name is shown with them)
GENERIC_FOLDERS = {"model", "models", "checkpoint", "snapshot"}
EMPTY_HINT = "Type or paste a text above, or drop a .txt file on the window."


class TextTab(TaskTab):
    domain = "text"
    #: a result (final or partial) has just been put on screen (its paint follows on the event loop)
    resultShown = Signal()

    def __init__(self, engine_client: EngineClient, settings: QSettings, parent: QWidget | None = None) -> None:
        super().__init__(engine_client, settings, parent)
        self.presenters: dict[str, TextPresenter] = {}
        self.pickers: dict[str, ModelPicker] = {}
        self._gen = 0  # the newest request's number (also its item_id)
        self._shown_gen = 0  # the request whose result (or error) is shown
        self._floor_gen = 0  # results of requests numbered below this are stale (task switched, text emptied)
        self._input_problem = False  # the text is unusable (too long, binary): said once in the message area
        self._running: tuple[int, str] | None = None  # (gen, task) of the long job running
        self._sent_text = ""  # the text of the newest explicit request
        self.partials_received = 0  # partial results shown (long jobs)
        self._last_outcome: Outcome | None = None
        self._shown_once = False
        self.requests_sent = 0
        self.results_received = 0
        self.stale_results = 0  # results that arrived after a newer one was shown (dropped)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(DEBOUNCE_MS)
        self._timer.timeout.connect(self.run_now)
        self._build()
        self._restore()

    # ------------------------------------------------------------------ layout

    def _build(self) -> None:
        self.task_combo = QComboBox()
        self.task_combo.setToolTip("What the model does with the text (Ctrl+T: next task)")
        for cls in engine.tasks_for_domain("text"):
            if presenter_class(cls.name) is None:
                continue
            self.task_combo.addItem(cls.title, cls.name)
            self.task_combo.setItemData(self.task_combo.count() - 1, cls.summary, Qt.ItemDataRole.ToolTipRole)
        self.model_stack = QStackedWidget()  # one model picker per task
        self.model_stack.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
        self.task_toolbar = QHBoxLayout()  # the presenters' own controls (only the active one's shown)
        self.task_toolbar.setContentsMargins(0, 0, 0, 0)
        self.inside_button = QToolButton()
        self.inside_button.setText("Inside the model")
        self.inside_button.setCheckable(True)
        self.inside_button.setToolTip("Show the tokens as the model reads them and its attention, layer by layer")
        self.copy_button = QToolButton()
        self.copy_button.setText("Copy")
        self.copy_button.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        # the shortcuts are the tab's own (QShortcut below); the menu only names them
        self.copy_text_action = QAction("Copy the result as text\tCtrl+Shift+C", self)
        self.copy_json_action = QAction("Copy the result as JSON (as transformers' pipeline returns it)\tCtrl+Shift+J",
                                        self)
        menu = QMenu(self.copy_button)
        menu.addAction(self.copy_text_action)
        menu.addAction(self.copy_json_action)
        self.copy_button.setMenu(menu)
        self.copy_button.setToolTip("Copy the result as text (Ctrl+Shift+C); the arrow: as JSON (Ctrl+Shift+J)")

        bar = QHBoxLayout()
        bar.setSpacing(8)
        bar.addWidget(_caption("Task"))
        bar.addWidget(self.task_combo)
        bar.addWidget(_caption("Model"))
        bar.addWidget(self.model_stack)
        bar.addLayout(self.task_toolbar)
        bar.addStretch(1)
        bar.addWidget(self.inside_button)
        bar.addWidget(self.copy_button)

        # the input block: the task's inputs above / below the editor
        self.inputs_above = QVBoxLayout()
        self.inputs_below = QVBoxLayout()
        self.editor_label = QLabel("Text")
        self.editor = TextEditor()
        self.editor.setMinimumHeight(60)
        self.input_count = QLabel()
        self.input_count.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        label_row = QHBoxLayout()
        label_row.addWidget(self.editor_label)
        label_row.addStretch(1)
        label_row.addWidget(self.input_count)
        block = QWidget()
        block_layout = QVBoxLayout(block)
        block_layout.setContentsMargins(0, 0, 0, 0)
        block_layout.addLayout(self.inputs_above)
        block_layout.addLayout(label_row)
        block_layout.addWidget(self.editor, 1)
        block_layout.addLayout(self.inputs_below)

        # the result: a hint (nothing to show yet, or why not) or the presenter's view
        self.result_stack = QStackedWidget()
        self.hint = QLabel(EMPTY_HINT)
        self.hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.hint.setWordWrap(True)
        self.hint.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.hint.setMargin(16)
        self.result_stack.addWidget(self.hint)
        results = QWidget()
        results_layout = QVBoxLayout(results)
        results_layout.setContentsMargins(0, 0, 0, 0)
        self.result_label = QLabel("Result")
        results_layout.addWidget(self.result_label)
        results_layout.addWidget(self.result_stack, 1)

        self.input_splitter = QSplitter(Qt.Orientation.Vertical)
        self.input_splitter.addWidget(block)
        self.input_splitter.addWidget(results)
        self.input_splitter.setStretchFactor(0, 2)
        self.input_splitter.setStretchFactor(1, 3)
        self.input_splitter.setChildrenCollapsible(False)
        self.input_splitter.setSizes([240, 460])
        remember_splitter(self.input_splitter, self.settings, "text/input_splitter")

        self.inside_panel = InsidePanel()
        self.inside_panel.setMinimumWidth(300)
        self.inside_stack = QStackedWidget()  # the shared panel, or the active presenter's own (inside_view)
        self.inside_stack.addWidget(self.inside_panel)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.input_splitter)
        self.splitter.addWidget(self.inside_stack)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setCollapsible(0, False)
        self.splitter.setSizes([700, 480])
        remember_splitter(self.splitter, self.settings, "text/splitter")
        remember_splitter(self.inside_panel.splitter, self.settings, "text/inside_splitter")

        self.status_label = QLabel("")
        self.status_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status_label.setToolTip("The last result: what it found, how long it took from the request to the "
                                     "result, and the model that computed it")

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(bar)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(_hline())
        layout.addWidget(self.status_label)

        self.task_combo.activated.connect(lambda i: self.set_task(self.task_combo.itemData(i)))
        self.editor.textChanged.connect(self._on_text_changed)
        self.editor.filesDropped.connect(self._on_files_dropped)
        self.inside_button.toggled.connect(self._on_inside_toggled)
        self.inside_panel.choiceChanged.connect(self._remember_attention_choice)
        self.copy_button.clicked.connect(lambda: self.copy_text())
        self.copy_text_action.triggered.connect(lambda: self.copy_text())
        self.copy_json_action.triggered.connect(lambda: self.copy_json())
        QShortcut(QKeySequence("Ctrl+T"), self, activated=self._next_task)
        QShortcut(QKeySequence("Ctrl+Shift+C"), self, activated=lambda: self.copy_text())
        QShortcut(QKeySequence("Ctrl+Shift+J"), self, activated=lambda: self.copy_json())
        for keys in ("Ctrl+Return", "Ctrl+Enter"):
            QShortcut(QKeySequence(keys), self, activated=self.run_now)
        QShortcut(QKeySequence("Esc"), self, activated=self.stop)

    def _restore(self) -> None:
        s = self.settings
        self.editor.blockSignals(True)
        self.editor.setPlainText(str(s.value("text/text", "") or ""))
        self.editor.blockSignals(False)
        self._count_chars()
        inside = as_bool(s.value("text/inside", True))
        self.inside_button.blockSignals(True)
        self.inside_button.setChecked(inside)
        self.inside_button.blockSignals(False)
        self.inside_stack.setVisible(inside)
        self.inside_panel.set_choice(setting_int(s, "text/attention_layer", 0),
                                     setting_int(s, "text/attention_head", MEAN))
        names = self.task_names()
        task = str(s.value("text/task", names[0] if names else ""))
        self.set_task(task if task in names else names[0])

    def save_settings(self) -> None:
        s = self.settings
        s.setValue("text/task", self.task)
        text = self.editor.toPlainText()
        s.setValue("text/text", text if len(text) <= REMEMBER_CHARS else "")
        s.setValue("text/inside", self.inside_button.isChecked())
        self._remember_attention_choice()
        for presenter in self.presenters.values():
            presenter.save_settings()
        for task, picker in self.pickers.items():
            if picker.current_model():
                s.setValue(f"models/{task}", picker.current_model())

    def _remember_attention_choice(self) -> None:
        layer, head = self.inside_panel.choice()
        self.settings.setValue("text/attention_layer", layer)
        self.settings.setValue("text/attention_head", head)

    # ------------------------------------------------------------------ tasks

    def presenter(self, task: str | None = None) -> TextPresenter:
        """The presenter of ``task`` (the active one by default), created on first use."""
        task = task or self.task
        if task not in self.presenters:
            presenter = presenter_class(task)(self.settings, self)
            presenter.inputsChanged.connect(lambda task=task: self._on_inputs_changed(task))
            presenter.insertText.connect(self._insert_text)
            presenter.replaceText.connect(self._replace_text)
            presenter.problem.connect(self.errorMessage)
            if hasattr(presenter, "runRequested"):
                presenter.runRequested.connect(self.run_now)
                presenter.stopRequested.connect(self.stop)
            if getattr(presenter, "inside_view", None) is not None:
                self.inside_stack.addWidget(presenter.inside_view)
            self.presenters[task] = presenter
            self.result_stack.addWidget(presenter.view)
            self.task_toolbar.addWidget(presenter.toolbar)
            (self.inputs_above if presenter.inputs_above else self.inputs_below).addWidget(presenter.inputs)
            presenter.toolbar.setVisible(False)
            presenter.inputs.setVisible(False)
            picker = self.pickers[task] = ModelPicker(task)
            picker.setToolTip("The checkpoint for this task (downloaded on first use) or a local folder")
            model = self.settings.value(f"models/{task}", None)
            if model:
                picker.set_model(str(model), emit=False)
            picker.modelChosen.connect(lambda ref, task=task: self._on_model_chosen(task, ref))
            self.model_stack.addWidget(picker)
            if hasattr(presenter, "set_model"):  # choices that depend on the checkpoint (translation targets)
                presenter.set_model(picker.current_model())
        return self.presenters[task]

    @property
    def model_picker(self) -> ModelPicker:
        return self.pickers[self.task]

    def task_names(self) -> list[str]:
        return [self.task_combo.itemData(i) for i in range(self.task_combo.count())]

    def set_task(self, task: str) -> None:
        """Make ``task`` the active one: its presenter shows the results of the text from now on."""
        if task == getattr(self, "task", None):
            return
        previous = getattr(self, "task", None)
        self.task = task
        presenter = self.presenter(task)
        self.engine.cancel(STREAM)  # a result of the previous task must not reach this presenter
        self._floor_gen = self._gen + 1
        self.settings.setValue("text/task", task)
        i = self.task_combo.findData(task)
        if i >= 0 and self.task_combo.currentIndex() != i:
            self.task_combo.setCurrentIndex(i)
        for name, p in self.presenters.items():
            p.toolbar.setVisible(name == task and p.toolbar.layout().count() > 0)
            p.inputs.setVisible(name == task and p.inputs.layout().count() > 0)
        self.model_stack.setCurrentWidget(self.pickers[task])
        self.editor_label.setText(presenter.text_label)
        self.editor.setPlaceholderText(presenter.placeholder)
        self.inside_stack.setCurrentWidget(getattr(presenter, "inside_view", None) or self.inside_panel)
        explicit = _explicit(presenter)
        if presenter.result is not None and (explicit or presenter.text == self.editor.toPlainText()):
            self.result_stack.setCurrentWidget(presenter.view)  # the same text (or asked for): it still holds
        else:
            presenter.clear()
            self._show_hint(self._idle_hint(presenter))
        self.inside_panel.clear("")
        self._update_inside()
        self.status_label.setText(self._model_line(task))
        if previous is not None and (self.isVisible() or self._shown_once):
            self._rerun()

    def _next_task(self) -> None:
        if self.task_combo.count() > 1:
            i = (self.task_combo.currentIndex() + 1) % self.task_combo.count()
            self.set_task(self.task_combo.itemData(i))

    # ------------------------------------------------------------------ files

    def handled_suffixes(self) -> set[str]:
        return set(SUFFIXES)

    def open_file(self, path: str | Path) -> bool:
        """Put a text file's text in the editor (one undoable edit) and run the task on it. A file that
        cannot be read as text (not UTF-8, binary, too long) is a message; the editor keeps its text."""
        path = Path(path)
        try:
            text = read_text_file(path)
        except InputError as exc:
            self.errorMessage.emit(str(exc))
            return False
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        self.editor.replace_all(text)
        presenter = self.presenter()
        ask = f" {getattr(presenter, 'run_label', 'Run')} (Ctrl+Enter) runs the model on it." \
            if _explicit(presenter) else ""
        self.statusMessage.emit(f"Opened {path.name}: {len(text):,} characters.{ask}")
        if _explicit(presenter) and self.result_stack.currentWidget() is self.hint:
            self._show_hint(self._idle_hint(presenter))
        self._rerun()
        return True

    def _on_files_dropped(self, paths: list) -> None:
        """Files dropped (or pasted) on the editor: a text file opens here; others go to the window,
        which opens them in the tab for their type."""
        first = next((p for p in paths if Path(p).suffix.lower() in SUFFIXES), paths[0])
        if Path(first).suffix.lower() in SUFFIXES or not hasattr(self.window(), "open_path"):
            self.open_file(first)
        else:
            self.window().open_path(first)

    # ------------------------------------------------------------------ requests

    def showEvent(self, event) -> None:  # noqa: N802 - Qt override
        super().showEvent(event)
        if not self._shown_once:
            self._shown_once = True
            if self.editor.toPlainText().strip() and not _explicit(self.presenter()):
                self._timer.start()  # the remembered text: once the window has painted

    def _on_text_changed(self) -> None:
        self._count_chars()
        presenter = self.presenter()
        if not _explicit(presenter):
            self._timer.start()  # (re)started: the request goes once typing pauses
        elif self.result_stack.currentWidget() is self.hint and self._running is None:
            self._show_hint(self._idle_hint(presenter))

    def _on_inputs_changed(self, task: str) -> None:
        if task == self.task and not _explicit(self.presenter()):
            self._timer.start()

    def _rerun(self) -> None:
        """Run again because something changed (task, model, inside the model): not for explicit tasks."""
        if not _explicit(self.presenter()):
            self.run_now()

    def _idle_hint(self, presenter: TextPresenter) -> str:
        has_text = bool(self.editor.toPlainText().strip())
        if _explicit(presenter) and hasattr(presenter, "hint"):
            return presenter.hint(has_text)
        return "" if has_text else EMPTY_HINT

    def _count_chars(self) -> None:
        n = len(self.editor.toPlainText())
        self.input_count.setText(f"{n:,} characters" if n else "")

    def schedule(self) -> None:
        """Run the task once the edits queued now are done (DEBOUNCE_MS after the last call)."""
        self._timer.start()

    def run_now(self) -> None:
        """Send the text to the engine now (instead of when the debounce timer fires)."""
        self._timer.stop()
        text = self.editor.toPlainText()
        presenter = self.presenter()
        if _explicit(presenter):
            self._run_explicit(presenter, text)
            return
        self._gen += 1
        if not text.strip():
            self._nothing_to_run(EMPTY_HINT)
            self._input_problem = False
            return
        try:
            check_text(text)
        except InputError as exc:
            self._nothing_to_run(str(exc), error=True)
            if not self._input_problem:  # said once in the message area; the hint follows the typing
                self.errorMessage.emit(str(exc))
            self._input_problem = True
            return
        self._input_problem = False
        missing = presenter.missing(text)
        if missing:
            self._nothing_to_run(missing)
            return
        inside = self.inside_button.isChecked()
        options = presenter.options(inside, inside and len(text) <= ATTENTION_MAX_CHARS)
        self.ensure_model(self.task, self.model_picker.current_model())
        gen = self._gen
        request = self.engine.submit(STREAM, self.task, text, options, item_id=gen, meta={"gen": gen, "text": text})
        request.result.connect(self._on_result)  # this request's own signals; it is freed when finished
        request.error.connect(functools.partial(self._on_request_error, gen))
        self.requests_sent += 1
        if self.result_stack.currentWidget() is self.hint:
            loaded = self.engine.loaded_model(self.task) is not None
            self._show_hint("Working…" if loaded else "Loading the model…")

    def _run_explicit(self, presenter: TextPresenter, text: str) -> None:
        """Run an explicit task on ``text`` now (a running job of this tab is stopped first). What is
        shown stays when the text cannot be sent: the reason is said above it."""
        problem = ""
        if not text.strip():
            problem = getattr(presenter, "empty_problem", "") or EMPTY_HINT
        else:
            try:
                check_text(text)
            except InputError as exc:
                problem = str(exc)
            problem = problem or presenter.missing(text)
        if problem:
            if presenter.result is None:
                self._show_hint(problem, error=bool(text.strip()))
            else:
                presenter.show_problem(problem)
            self.statusMessage.emit(problem)
            return
        if self._running is not None:
            self.engine.cancel(STREAM)  # the running job ends; this one starts after it
        self._gen += 1
        gen = self._gen
        options = presenter.options(True, True)
        self.ensure_model(self.task, self.model_picker.current_model())
        long = bool(getattr(presenter, "long", False))
        request = self.engine.submit(STREAM, self.task, text, options, item_id=gen, meta={"gen": gen, "text": text},
                                     long=long)
        request.result.connect(self._on_result)
        request.error.connect(functools.partial(self._on_request_error, gen))
        request.progress.connect(functools.partial(self._on_progress, gen, self.task))
        request.finished.connect(functools.partial(self._on_finished, gen, self.task))
        self.requests_sent += 1
        self._running = (gen, self.task)
        self._sent_text = text
        if hasattr(presenter, "set_running"):
            presenter.set_running(True)
        if self.result_stack.currentWidget() is self.hint:
            loaded = self.engine.loaded_model(self.task) is not None
            self._show_hint("Working…" if loaded else "Loading the model…")

    def is_running(self) -> bool:
        """A long job of this tab (generation, summarization, translation) is running."""
        return self._running is not None

    def stop(self) -> None:
        """Stop the running job (Stop, Esc): it ends within one step; what it wrote stays."""
        if self._running is None:
            return
        self.engine.cancel(STREAM)
        self.statusMessage.emit("Stopping…")

    def _on_progress(self, gen: int, task: str, fraction: float, partial) -> None:
        if task != self.task or gen != self._gen or gen < self._floor_gen:
            return  # a job stopped meanwhile, or of another task
        presenter = self.presenter()
        if hasattr(presenter, "set_progress"):
            presenter.set_progress(fraction, partial, self._sent_text)
        if partial is not None:
            self.partials_received += 1
            self.result_stack.setCurrentWidget(presenter.view)
            line = self._model_line(task)
            self.status_label.setText(" · ".join(p for p in (presenter.summary(), line) if p))

    def _on_finished(self, gen: int, task: str) -> None:
        """A long request ended (result, error, stopped or dropped)."""
        if self._running is None or self._running[0] != gen:
            return
        self._running = None
        presenter = self.presenters.get(task)
        if presenter is not None and hasattr(presenter, "set_running"):
            presenter.set_running(False)
        if gen > self._shown_gen and gen == self._gen:  # no result and no error: stopped
            self._shown_gen = gen
            if presenter is not None and hasattr(presenter, "stopped"):
                presenter.stopped()
            if task == self.task:
                if presenter is not None and presenter.result is not None:
                    self.result_stack.setCurrentWidget(presenter.view)
                    self.status_label.setText(" · ".join(p for p in (presenter.summary(), self._model_line(task))
                                                         if p))
                elif self.result_stack.currentWidget() is self.hint:
                    self._show_hint("Stopped. " + self._idle_hint(presenter))
                self.statusMessage.emit("Stopped.")

    def _nothing_to_run(self, hint: str, error: bool = False) -> None:
        """No request for this text: every earlier one is stale; the hint says why."""
        self.engine.cancel(STREAM)
        self._floor_gen = self._gen + 1
        self._shown_gen = self._gen
        self.presenter().clear()
        self._show_hint(hint, error)
        self.inside_panel.clear("")

    def result_is_current(self) -> bool:
        """The result (or message) shown belongs to the newest request, and no new one is waiting to go."""
        return self._shown_gen == self._gen and not self._timer.isActive()

    def last_outcome(self) -> Outcome | None:
        return self._last_outcome

    def _on_result(self, outcome: Outcome) -> None:
        meta = outcome.meta if isinstance(outcome.meta, dict) else {}
        gen = int(meta.get("gen", -1))
        if outcome.task != self.task or gen < self._floor_gen or gen <= self._shown_gen:
            self.stale_results += 1  # a newer request's result (or hint) is shown already
            return
        self._shown_gen = gen
        self._last_outcome = outcome
        self.results_received += 1
        presenter = self.presenter()
        if self._running is not None and self._running[0] == gen and hasattr(presenter, "set_running"):
            presenter.set_running(False)  # before the result, so that it is shown as finished
        presenter.set_result(outcome.result, meta.get("text", ""))
        self.result_stack.setCurrentWidget(presenter.view)
        self._update_inside()
        self._show_status(outcome)
        self.resultShown.emit()

    def _on_request_error(self, gen: int, message: str) -> None:
        if gen != self._gen or gen < self._floor_gen:
            return  # a newer request is on its way
        self._shown_gen = gen
        presenter = self.presenter()
        keep = _explicit(presenter) and presenter.result is not None  # what is shown stays
        if is_load_cancelled_message(message):  # the user cancelled the load: no error
            cancelled = "Loading the model was cancelled: choose the model again to load it."
            if keep:
                presenter.show_problem(cancelled)
            else:
                self._show_hint(cancelled)
            return
        if keep:
            presenter.show_problem(message)
            self.result_stack.setCurrentWidget(presenter.view)
        else:
            self._show_hint(message, error=True)
        self.errorMessage.emit(message)  # the window's one error handler

    def _show_hint(self, text: str, error: bool = False) -> None:
        self.hint.setText(text)
        self.hint.setStyleSheet("color: #c03b3b;" if error else "")
        self.result_stack.setCurrentWidget(self.hint)

    def hint_text(self) -> str:
        """The hint shown in place of a result ("" when a result is shown)."""
        return self.hint.text() if self.result_stack.currentWidget() is self.hint else ""

    # ------------------------------------------------------------------ what is shown

    def _update_inside(self) -> None:
        if not self.inside_button.isChecked():
            return
        presenter = self.presenter()
        if getattr(presenter, "inside_view", None) is not None:
            return  # the presenter keeps its own panel up to date
        if presenter.result is None:
            self.inside_panel.clear("")
            return
        parts, current, description = presenter.inside()
        if parts:
            self.inside_panel.set_parts(parts, current, description)
        else:
            self.inside_panel.clear("Waiting for a result with the model's internals…")

    def _on_inside_toggled(self, on: bool) -> None:
        self.settings.setValue("text/inside", on)
        self.inside_stack.setVisible(on)
        if on:
            self._update_inside()
            result = self.presenter().result
            if result is not None and getattr(result, "internals", None) is None:
                self._rerun()  # the shown result was computed without them

    def _show_status(self, outcome: Outcome) -> None:
        presenter = self.presenter()
        timings = getattr(outcome.result, "timings", None)
        parts = [presenter.summary()]
        took = f"{1000 * outcome.latency_s:.0f} ms"
        if timings is not None and timings.total_ms:
            took += f" (model {timings.model_ms:.0f} ms)"
        parts.append(took)
        parts.append(self._model_line(outcome.task))
        self.status_label.setText(" · ".join(p for p in parts if p))

    def _model_line(self, task: str) -> str:
        """The loaded model, short: "distilbert-sst2 · cpu · exact (float32)"."""
        description = self._descriptions.get(task)
        if not description:
            return ""
        parts = description.split(" · ")
        if len(parts) >= 2 and parts[0] == task:
            parts[1] = _model_name(parts[1])
            return " · ".join(parts[1:])
        return short_description(description, task)

    # ------------------------------------------------------------------ editing from presenters

    def _insert_text(self, text: str) -> None:
        self.editor.insertPlainText(text)
        self.editor.setFocus()

    def _replace_text(self, start: int, end: int, text: str) -> None:
        """Replace [start, end) of the analysed text (a fill-mask candidate clicked), if it is still
        the editor's text."""
        if self.presenter().text != self.editor.toPlainText():
            self.statusMessage.emit("The text changed since this result: wait for the new one, then click again.")
            return
        self.editor.replace_range(start, end, text)
        self.editor.setFocus()

    # ------------------------------------------------------------------ copy

    def copy_text(self) -> str:
        """Copy the result as plain text; returns what was copied ("" when there is no result)."""
        text = self.presenter().result_text() if self.presenter().result is not None else ""
        return self._copy(text, "as text")

    def copy_json(self) -> str:
        """Copy the result as JSON, as transformers' pipeline gives it for this task."""
        presenter = self.presenter()
        text = dumps(presenter.result_json()) if presenter.result is not None else ""
        return self._copy(text, "as JSON")

    def _copy(self, text: str, how: str) -> str:
        if not text:
            self.statusMessage.emit("Nothing to copy yet: no result is shown.")
            return ""
        QGuiApplication.clipboard().setText(text)
        self.statusMessage.emit(f"Copied the result {how} ({len(text):,} characters).")
        return text

    # ------------------------------------------------------------------ models

    def _on_model_chosen(self, task: str, ref: str) -> None:
        self.settings.setValue(f"models/{task}", ref)
        if hasattr(self.presenters.get(task), "set_model"):
            self.presenters[task].set_model(ref)
        self.load_model(task, ref)
        if task == self.task:
            self.status_label.setText(f"Loading {_model_name(ref)}…")
            self._rerun()

    def on_model_loading(self, task: str, model: str, done, total) -> None:
        if task != self.task:
            return
        progress = f" {100 * done / total:.0f}%" if done is not None and total else ""
        self.status_label.setText(f"Loading {_model_name(model)}…{progress}")

    def on_model_loaded(self, task: str, description: str) -> None:
        if hasattr(self.presenters.get(task), "set_model"):  # downloaded now: its own choices
            self.presenters[task].set_model(self.pickers[task].current_model())
        if task != self.task:
            return
        self.status_label.setText(self._model_line(task))
        if self.result_is_current() and self.presenter().result is not None:
            self._rerun()  # the result shown came from the model this one replaces

    def on_model_failed(self, task: str, message: str) -> None:
        if task != self.task:
            return
        if message:  # retried when the model is picked again (or the device/offline setting changes)
            self.status_label.setText("Model not loaded.")
            presenter = self.presenter()
            if _explicit(presenter) and presenter.result is not None:
                presenter.show_problem(message)  # what is shown stays
            else:
                self._show_hint(message, error=True)
            self._shown_gen = self._gen
        elif self._descriptions.get(task):  # cancelled, but the previous model still runs
            self.status_label.setText(self._model_line(task))
        else:
            self.status_label.setText("Model not loaded (loading was cancelled).")

    def shutdown(self, timeout_ms: int = 3000) -> bool:
        self._timer.stop()
        self.engine.cancel(STREAM)
        return super().shutdown(timeout_ms)


def _explicit(presenter) -> bool:
    """The presenter's task runs only when asked (Generate...), not as you type."""
    return bool(getattr(presenter, "explicit", False))


def _model_name(ref: str) -> str:
    """A model reference, short: a folder's name (with its parent's when it is just "model")."""
    if ("/" in ref or "\\" in ref) and Path(ref).is_dir():
        p = Path(ref)
        return f"{p.parent.name}/{p.name}" if p.name.lower() in GENERIC_FOLDERS else p.name
    return ref


def _caption(text: str) -> QLabel:
    label = QLabel(text)
    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return label


def _hline() -> QFrame:
    line = QFrame()
    line.setFrameShape(QFrame.Shape.HLine)
    line.setFrameShadow(QFrame.Shadow.Sunken)
    return line
