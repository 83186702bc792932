"""The Text tab in the real window (offscreen), on the random-weight BERT / DistilBERT checkpoints:
for every task what is shown equals the engine's own result for the same text and options (the
test loads the same checkpoint with engine.load_task), and "Inside the model" shows the tokens,
attention, NER tags and QA logits; fill-mask candidates fill the text when clicked; files that are
not UTF-8 text are a message and the editor keeps its text; empty text sends nothing; newer
requests win; the choices are remembered across windows. No sleeps: every wait is qtbot.waitUntil."""
from __future__ import annotations

import functools
import json

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, QPoint, Qt, QUrl
from PySide6.QtGui import QGuiApplication, QTextCursor

from engine import (AGGREGATIONS, FillMaskResult, QuestionAnsweringResult, SentenceSimilarityResult,
                    TextClassificationResult, TokenClassificationResult, load_task)
from gui.core.requests import Outcome
from gui.text.presenters.base import ATTENTION_MAX_CHARS, NO_ATTENTION
from gui.text.presenters.fill_mask import MASK, fill_for
from gui.text.tab import EMPTY_HINT
from gui.text.widgets.highlighted_text import Positions
from gui.text.widgets.legend import entity_type

LOAD_TIMEOUT_MS = 60_000
TASKS = ("text-classification", "token-classification", "question-answering", "fill-mask", "sentence-similarity")


@functools.cache
def engine_task(name: str, folder: str):
    return load_task(name, folder, device="cpu")


@pytest.fixture
def window(open_window, sst2_checkpoint, ner_checkpoint, squad_checkpoint, pretraining_checkpoint,
           bare_bert_checkpoint):
    """The window with each text task's fixture checkpoint chosen, on the Text tab."""
    folders = dict(zip(TASKS, (sst2_checkpoint, ner_checkpoint, squad_checkpoint, pretraining_checkpoint,
                               bare_bert_checkpoint)))
    settings = {f"models/{task}": str(folder) for task, folder in folders.items()}
    opened = []

    def make():  # the settings are written before the first window only; later ones find what it remembered
        w = open_window(None if opened else settings)
        opened.append(w)
        w.tabs.setCurrentWidget(w.text_tab)
        return w
    make.folders = folders
    return make


def run(qtbot, tab, text: str | None = None):
    """Put ``text`` in the editor (if given), run the task now and wait for its result (or message)."""
    if text is not None:
        tab.editor.setPlainText(text)
    tab.run_now()
    qtbot.waitUntil(tab.result_is_current, timeout=LOAD_TIMEOUT_MS)
    return tab.presenter().result


def reference(window, tab, text: str):
    """The engine's own result for ``text`` with the options the tab sent."""
    presenter = tab.presenter()
    inside = tab.inside_button.isChecked()
    options = presenter.options(inside, inside and len(text) <= ATTENTION_MAX_CHARS)
    return engine_task(tab.task, str(window.folders[tab.task]))(text, options)


def char_point(view, index: int) -> QPoint:
    """A viewport point inside character ``index`` of a HighlightedText."""
    cursor = QTextCursor(view.document())
    cursor.setPosition(Positions(view.text).to_qt(index))
    rect = view.cursorRect(cursor)
    return QPoint(rect.x() + 3, rect.center().y())


def background_at(view, index: int):
    cursor = QTextCursor(view.document())
    cursor.setPosition(Positions(view.text).to_qt(index) + 1)  # the format of the character before the cursor
    return cursor.charFormat().background().color()


def close_json(ours, theirs) -> None:
    if isinstance(theirs, dict):
        assert set(ours) == set(theirs)
        for k in theirs:
            close_json(ours[k], theirs[k])
    elif isinstance(theirs, list):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            close_json(a, b)
    elif isinstance(theirs, float):
        assert ours == pytest.approx(theirs, abs=1e-5)
    else:
        assert ours == theirs


# ---------------------------------------------------------------------------- every task

def test_text_classification_bars_tokens_attention_and_copy(qtbot, window):
    w = window()
    tab = w.text_tab
    tab.set_task("text-classification")
    tab.inside_button.setChecked(True)
    text = "A good movie, really fun!"
    r = run(qtbot, tab, text)
    ref = reference(window, tab, text)
    p = tab.presenter()
    assert isinstance(r, TextClassificationResult) and tab.results_received >= 1
    assert p.bars.labels == ref.labels
    np.testing.assert_allclose(p.bars.scores, ref.scores, atol=1e-6)
    assert ref.labels[0] in tab.status_label.text() and " ms" in tab.status_label.text()

    panel = tab.inside_panel
    tokens = ref.internals.tokens
    assert [c.text for c in panel.strip.cells] == list(tokens.tokens)
    assert panel.strip.cells[0].text == "[CLS]" and panel.strip.cells[-1].text == "[SEP]"
    assert all(c.lines[0] == "seg 0" for c in panel.strip.cells)
    assert "token 1" in panel.strip.hover_text(1) and "segment 0" in panel.strip.hover_text(1)
    maps = tokens.attentions
    assert panel.layer_combo.count() == len(maps) and panel.head_combo.count() == maps[0].shape[0] + 1
    np.testing.assert_allclose(panel.matrix.matrix, maps[0].mean(axis=0), atol=1e-6)
    panel.layer_combo.setCurrentIndex(1)
    panel.layer_combo.activated.emit(1)
    panel.head_combo.setCurrentIndex(3)
    panel.head_combo.activated.emit(3)
    np.testing.assert_allclose(panel.matrix.matrix, maps[1][2], atol=1e-6)
    hover = panel.matrix.hover_text_at(panel.matrix.cell_center(1, 2))
    assert "(token 1)" in hover and "(token 2)" in hover and f"{maps[1][2][1, 2]:.3f}" in hover
    assert "layer 2, head 3" in hover

    copied = tab.copy_json()
    assert QGuiApplication.clipboard().text() == copied
    close_json(json.loads(copied), ref.to_json())
    assert ref.labels[0] in tab.copy_text()


def test_named_entities_for_every_aggregation_highlighted_with_tags_inside(qtbot, window):
    w = window()
    tab = w.text_tab
    tab.set_task("token-classification")
    tab.inside_button.setChecked(True)
    p = tab.presenter()
    text = "Mary ☃ lives in 😀 New York; John Smith works for Microsoft in Paris."  # an emoji: two UTF-16 units
    tab.editor.setPlainText(text)
    for aggregation in AGGREGATIONS:
        p.set_aggregation(aggregation)
        r = run(qtbot, tab)
        ref = reference(window, tab, text)
        assert isinstance(r, TokenClassificationResult) and r.aggregation == aggregation
        close_json(r.to_json(), ref.to_json())
        assert len(ref.entities) > 0, aggregation
        view = p.text_view
        assert view.toPlainText() == text
        assert [(s.start, s.end) for s in view.spans] == [(e.start, e.end) for e in ref.entities]
        for span, e in zip(view.spans, ref.entities):  # the right characters are coloured, after the emoji too
            assert background_at(view, e.start) == span.colour
            assert span.colour == p.text_view.spans[[x.label for x in ref.entities].index(e.label)].colour
        types = {entity_type(e.label) if aggregation != "none" else e.label for e in ref.entities}
        assert {label for label, _ in p.legend.items} == types
        assert [row.label.split("   ")[1] for row in p.list.rows] == [text[e.start:e.end] for e in ref.entities]
        # inside: every token's raw tag beside the entities
        inside = ref.internals
        assert [c.text for c in tab.inside_panel.strip.cells] == list(inside.tokens.tokens)
        assert [c.lines[1] for c in tab.inside_panel.strip.cells] == list(inside.tags)
    first = ref.entities[0]
    tip = p.text_view.hover_text_at(char_point(p.text_view, first.start))
    assert first.label in tip and f"{100 * first.score:.1f}%" in tip
    assert str(tab.settings.value("text/token-classification/aggregation")) == AGGREGATIONS[-1]


def test_question_answering_long_context_answers_windows_and_logits(qtbot, window):
    w = window()
    tab = w.text_tab
    tab.set_task("question-answering")
    tab.inside_button.setChecked(True)
    p = tab.presenter()
    assert p.question_edit.isVisible()
    assert tab.editor_label.text() == "Context"
    p.question_edit.setText("Where does the river flow?")
    p.top_k_spin.setValue(3)
    context = " ".join(["The river flows through the old city, built by John many years ago."] * 40)
    r = run(qtbot, tab, context)
    ref = reference(window, tab, context)
    assert isinstance(r, QuestionAnsweringResult) and r.num_windows == ref.num_windows > 1
    close_json(r.to_json(), ref.to_json())
    assert [row.label for row in p.list.rows] == [a.answer for a in ref.answers]
    best = [s for s in p.text_view.spans if s.bold]
    assert [(s.start, s.end) for s in best] == [(ref.answers[0].start, ref.answers[0].end)]

    panel = tab.inside_panel
    windows = ref.internals.windows
    assert panel.part_combo.count() == len(windows) and panel.part_row.isVisibleTo(panel)
    assert panel.part_combo.currentIndex() == ref.internals.best_window
    part = panel.current_part()
    shown = windows[ref.internals.best_window]
    assert [c.text for c in panel.strip.cells] == list(shown.tokens.tokens)
    assert [c.lines[0] for c in panel.strip.cells] == [f"seg {int(s)}" for s in shown.tokens.segment_ids]
    names = [row.name for row in part.rows]
    assert names == ["start logit", "end logit"]
    np.testing.assert_allclose(part.rows[0].values, shown.start_logits, atol=1e-5)
    np.testing.assert_allclose(part.rows[1].values, shown.end_logits, atol=1e-5)
    i = int(np.flatnonzero(shown.answerable)[0])
    assert f"start logit: {float(shown.start_logits[i]):.3f}" in panel.strip.hover_text(i)
    assert not panel.matrix.isVisibleTo(panel) and panel.attention_label.text() == NO_ATTENTION  # long context
    other = (ref.internals.best_window + 1) % len(windows)
    panel.part_combo.setCurrentIndex(other)
    assert [c.text for c in panel.strip.cells] == list(windows[other].tokens.tokens)

    p.select_answer(1)  # the second answer, as a click on its row does
    assert [(s.start, s.end) for s in p.text_view.spans if s.bold] == [(ref.answers[1].start, ref.answers[1].end)]

    short = "The river flows through the old city. John built the bridge."
    r = run(qtbot, tab, short)
    ref = reference(window, tab, short)
    close_json(r.to_json(), ref.to_json())
    maps = ref.internals.windows[ref.internals.best_window].tokens.attentions
    assert maps is not None and panel.matrix.isVisibleTo(panel)
    np.testing.assert_allclose(panel.matrix.matrix, maps[0].mean(axis=0), atol=1e-6)


def test_fill_mask_candidates_and_a_click_fills_the_text(qtbot, window):
    w = window()
    tab = w.text_tab
    tab.set_task("fill-mask")
    tab.inside_button.setChecked(True)
    p = tab.presenter()
    text = f"Paris is the {MASK} of France, said the {MASK}."
    r = run(qtbot, tab, text)
    ref = reference(window, tab, text)
    assert isinstance(r, FillMaskResult) and len(r) == 2
    close_json(r.to_json(), ref.to_json())
    for scores, row in zip(p.lists, ref.masks):
        assert [x.label for x in scores.rows] == [c.token_str for c in row]
        np.testing.assert_allclose([x.score for x in scores.rows], [c.score for c in row], atol=1e-6)
    masks = [int(m) for m in ref.internals.mask_positions]
    cells = tab.inside_panel.strip.cells
    assert [cells[m].text for m in masks] == [MASK, MASK]
    assert cells[masks[0]].lines[1] == f"→ {ref.masks[0][0].token_str}" and cells[masks[0]].colour is not None
    # the best guess: every mask filled by its first candidate
    assert MASK not in p.best_view.toPlainText() and len(p.best_view.spans) == 2

    j = next(i for i, c in enumerate(ref.masks[0]) if not c.token_str.startswith("##"))
    y = int(p.lists[0].row_rect(j).center().y())
    qtbot.mouseClick(p.lists[0], Qt.MouseButton.LeftButton, pos=QPoint(30, y))
    start, end = ref.mask_spans[0]
    token = ref.masks[0][j].token_str
    assert tab.editor.toPlainText() == text[:start] + token + text[end:]
    r = run(qtbot, tab)  # the edit runs the task again: one mask left
    assert len(r) == 1 and tab.presenter().text == tab.editor.toPlainText()
    tab.editor.undo()
    assert tab.editor.toPlainText() == text

    assert fill_for("I like play [MASK] games", 12, 18, "##ing") == (11, 18, "ing")  # a piece joins the word
    assert fill_for("the [MASK].", 4, 10, "cat") == (4, 10, "cat")


def test_sentence_similarity_ranked_list_and_tokens_per_sentence(qtbot, window):
    w = window()
    tab = w.text_tab
    tab.set_task("sentence-similarity")
    tab.inside_button.setChecked(True)
    p = tab.presenter()
    assert p.candidates_edit.isVisible() and tab.editor_label.text() == "Sentence"
    p.candidates_edit.setPlainText("A man eats a meal.\n\n  It is raining today.  \nThe cat sat on the mat.\n")
    assert p.candidates() == ("A man eats a meal.", "It is raining today.", "The cat sat on the mat.")
    text = "A man is eating food."
    r = run(qtbot, tab, text)
    ref = reference(window, tab, text)
    assert isinstance(r, SentenceSimilarityResult)
    np.testing.assert_allclose(r.scores, ref.scores, atol=1e-5)
    assert [row.label for row in p.list.rows] == [ref.candidates[i] for i in ref.ranking]
    assert [row.value for row in p.list.rows] == [f"{float(ref.scores[i]):+.3f}" for i in ref.ranking]
    panel = tab.inside_panel
    assert panel.part_combo.count() == 4
    for i, tokens in enumerate(ref.internals.tokens):
        panel.part_combo.setCurrentIndex(i)
        assert [c.text for c in panel.strip.cells] == list(tokens.tokens)
    assert not panel.matrix.isVisibleTo(panel) and "no attention" in panel.attention_label.text()
    close_json(json.loads(tab.copy_json()), ref.to_json())


# ---------------------------------------------------------------------------- input and requests

def drop(window, path) -> bool:
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    return window.handle_drop(mime)


def test_dropped_files_bad_ones_are_a_message_and_the_text_stays(qtbot, window, tmp_path):
    w = window()
    tab = w.text_tab
    tab.set_task("text-classification")
    kept = "A good movie, really fun!"
    run(qtbot, tab, kept)
    before = tab.presenter().result
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("Un café très agréable.".encode("latin-1"))
    binary = tmp_path / "binary.txt"
    binary.write_bytes(bytes(range(256)) * 4)
    huge = tmp_path / "huge.txt"
    huge.write_text("word " * 100_000, encoding="utf-8")
    for path, words in ((latin1, "not UTF-8"), (binary, "binary"), (huge, "shorter passage")):
        w.message_area.dismiss()
        assert drop(w, path) is False
        assert words in w.message_area.text() and path.name in w.message_area.text()
        assert tab.editor.toPlainText() == kept and tab.presenter().result is before
        assert w.tabs.currentWidget() is tab

    good = tmp_path / "review.txt"
    good.write_text("\ufeffTerrible plot,\r\nboring actors.", encoding="utf-8")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(good))])
    assert tab.editor.canInsertFromMimeData(mime)
    tab.editor.insertFromMimeData(mime)  # dropped on the editor: opened, not inserted as a path
    assert tab.editor.toPlainText() == "Terrible plot,\nboring actors."
    qtbot.waitUntil(tab.result_is_current, timeout=LOAD_TIMEOUT_MS)
    assert tab.presenter().text == "Terrible plot,\nboring actors."
    tab.editor.undo()  # opening a file is one undoable edit
    assert tab.editor.toPlainText() == kept


def test_empty_or_incomplete_input_sends_nothing_and_says_why(qtbot, window):
    w = window()
    tab = w.text_tab
    tab.set_task("text-classification")
    run(qtbot, tab, "A good movie.")
    sent = tab.requests_sent
    tab.editor.setPlainText("  \n\t ")
    tab.run_now()
    assert tab.requests_sent == sent and tab.hint_text() == EMPTY_HINT and tab.presenter().result is None
    assert tab.result_is_current()

    tab.set_task("fill-mask")
    tab.editor.setPlainText("No mask here.")
    tab.run_now()
    assert tab.requests_sent == sent and MASK in tab.hint_text()
    tab.set_task("question-answering")
    tab.presenter().question_edit.setText("")
    tab.run_now()
    assert tab.requests_sent == sent and "question" in tab.hint_text()
    tab.set_task("sentence-similarity")
    tab.presenter().candidates_edit.setPlainText("")
    tab.run_now()
    assert tab.requests_sent == sent and "compare" in tab.hint_text()

    # text the engine itself refuses: its message in place of the result and in the message area
    tab.set_task("fill-mask")
    run(qtbot, tab, f"{MASK} {MASK}")
    assert tab.requests_sent == sent + 1 and "only" in tab.hint_text() and "only" in w.message_area.text()
    # text too long for any task: said before anything is sent
    w.message_area.dismiss()
    tab.set_task("text-classification")
    sent = tab.requests_sent
    tab.editor.setPlainText("word " * 30_000)
    tab.run_now()
    assert tab.requests_sent == sent and "characters long" in tab.hint_text()
    assert "characters long" in w.message_area.text()


def test_newer_requests_win_and_stale_results_never_overwrite(qtbot, window):
    w = window()
    tab = w.text_tab
    tab.set_task("text-classification")
    first = run(qtbot, tab, "terrible plot and boring actors.")
    old_gen = tab._shown_gen
    tab.editor.setPlainText("A good movie, really fun!")
    tab.run_now()
    tab.editor.setPlainText("A great film.")  # before the first has come back
    tab.run_now()
    qtbot.waitUntil(tab.result_is_current, timeout=LOAD_TIMEOUT_MS)
    p = tab.presenter()
    assert p.text == "A great film."
    shown = p.result
    stale = tab.stale_results
    tab._on_result(Outcome("text", "text-classification", old_gen, first, {"gen": old_gen, "text": "old"}, 0.0, 0.0))
    assert p.result is shown and p.text == "A great film." and tab.stale_results == stale + 1
    # typing schedules one request once it pauses: the timer, not the test, sends it
    sent = tab.requests_sent
    tab.editor.moveCursor(QTextCursor.MoveOperation.End)
    qtbot.keyClicks(tab.editor, " Really.")
    assert tab.requests_sent == sent and not tab.result_is_current()
    qtbot.waitUntil(tab.result_is_current, timeout=LOAD_TIMEOUT_MS)
    assert tab.requests_sent == sent + 1 and p.text == "A great film. Really."
    # switching task: the other task's result never reaches this presenter
    w.activateWindow()
    qtbot.waitUntil(lambda: QGuiApplication.focusWindow() is not None)
    tab.editor.setFocus()
    qtbot.keyClick(tab.editor, Qt.Key.Key_T, Qt.KeyboardModifier.ControlModifier)  # Ctrl+T: the next task
    assert tab.task == "token-classification"
    qtbot.waitUntil(tab.result_is_current, timeout=LOAD_TIMEOUT_MS)
    assert isinstance(tab.presenter().result, TokenClassificationResult)
    tab._on_result(Outcome("text", "text-classification", tab._gen + 1, shown, {"gen": tab._gen + 1, "text": "x"},
                           0.0, 0.0))
    assert isinstance(tab.presenter().result, TokenClassificationResult)


def test_a_model_that_fails_to_load_is_said_and_another_choice_works(qtbot, window, tmp_path):
    w = window()
    tab = w.text_tab
    tab.set_task("text-classification")
    tab.editor.setPlainText("A good movie.")
    empty = tmp_path / "not-a-model"
    empty.mkdir()
    tab.model_picker.set_model(str(empty))
    qtbot.waitUntil(lambda: tab.result_is_current() and "not-a-model" in tab.hint_text(), timeout=LOAD_TIMEOUT_MS)
    assert "not-a-model" in w.message_area.text()
    tab.model_picker.set_model(str(window.folders["text-classification"]))  # chosen again: loaded, and run
    qtbot.waitUntil(lambda: tab.result_is_current() and tab.presenter().result is not None, timeout=LOAD_TIMEOUT_MS)
    assert tab.hint_text() == "" and isinstance(tab.presenter().result, TextClassificationResult)


def test_choices_are_remembered_across_windows(qtbot, window, distil_mlm_checkpoint):
    w = window()
    tab = w.text_tab
    tab.set_task("token-classification")
    tab.presenter().set_aggregation("max")
    tab.set_task("question-answering")
    tab.presenter().question_edit.setText("Who built it?")
    tab.presenter().top_k_spin.setValue(5)
    tab.set_task("sentence-similarity")
    tab.presenter().candidates_edit.setPlainText("one\ntwo")
    tab.set_task("fill-mask")
    tab.pickers["fill-mask"].set_model(str(distil_mlm_checkpoint))
    tab.presenter().top_k_spin.setValue(7)
    tab.inside_button.setChecked(False)
    tab.editor.setPlainText(f"The {MASK} sat on the mat.")
    qtbot.waitUntil(lambda: tab.result_is_current() and tab.presenter().result is not None, timeout=LOAD_TIMEOUT_MS)
    options = tab.presenter().options(False, False)
    ref = engine_task("fill-mask", str(distil_mlm_checkpoint))(tab.editor.toPlainText(), options)
    close_json(tab.presenter().result.to_json(), ref.to_json())  # the model chosen computed it
    assert not tab.inside_panel.isVisibleTo(tab)
    assert w.shutdown()

    w2 = window()
    tab2 = w2.text_tab
    assert tab2.task == "fill-mask" and tab2.editor.toPlainText() == f"The {MASK} sat on the mat."
    assert tab2.model_picker.current_model() == str(distil_mlm_checkpoint)
    assert tab2.presenter().top_k_spin.value() == 7
    assert not tab2.inside_button.isChecked() and not tab2.inside_panel.isVisibleTo(tab2)
    assert tab2.presenter("token-classification").aggregation == "max"
    assert tab2.presenter("question-answering").question == "Who built it?"
    assert tab2.presenter("question-answering").top_k_spin.value() == 5
    assert tab2.presenter("sentence-similarity").candidates() == ("one", "two")
    # the remembered text runs once the tab is shown
    qtbot.waitUntil(lambda: tab2.result_is_current() and tab2.presenter().result is not None, timeout=LOAD_TIMEOUT_MS)
    assert len(tab2.presenter().result.masks[0]) == 7
