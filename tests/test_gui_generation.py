"""The Text tab's decoding tasks in the real window (offscreen): text generation on the random-weight
GPT-2 checkpoint (hub layout) and summarization on the random-weight BART one. What the window
shows equals ``load_task(...).run`` on the same checkpoint and options (greedy, seeded sampling,
beam search); partial results stream in before the final one; Stop leaves the partial text and the
app usable (made deterministic by holding the engine after its first token until Stop is pressed);
hovering a token shows its step's alternatives; the beam tree and the cross-attention view are
checked on hand-made results too; an empty prompt or an engine error never takes away what is
shown; the controls are remembered across windows. No sleeps: every wait is qtbot.waitUntil."""
from __future__ import annotations

import functools
import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest
from PySide6.QtCore import QMimeData, Qt, QUrl
from PySide6.QtGui import QGuiApplication, QTextCursor

from engine import load_task
from engine.types.text import GenerationStep, TextGenerationInternals, TextGenerationResult
from gui.text.presenters import presenter_class
from gui.text.presenters.seq2seq import (FALLBACK_TARGETS, SummarizationPresenter, TranslationPresenter, output_text,
                                         target_choices)
from gui.text.widgets.beam_tree import CHOSEN, DEAD_SCORE, LIVE, PRUNED, BeamTree, build_tree
from gui.text.widgets.token_stream import token_spans
from tests.test_bart import ARTICLE, _summarizer_folder

TIMEOUT_MS = 60_000
PROMPT = "Once upon a time there was"


@functools.cache
def engine_task(name: str, folder: str):
    return load_task(name, folder, device="cpu")


@pytest.fixture(scope="module")
def bart_checkpoint(tmp_path_factory):
    folder, _ = _summarizer_folder(tmp_path_factory.mktemp("bart-gui") / "cnn", True)
    return folder


@pytest.fixture
def window(open_window, gpt2_checkpoint, bart_checkpoint, t5small):
    """The window on the Text tab, text generation chosen, the fixture checkpoints picked."""
    settings = {"models/text-generation": str(gpt2_checkpoint), "models/summarization": str(bart_checkpoint),
                "models/translation": str(t5small), "text/task": "text-generation"}
    opened = []

    def make():
        w = open_window(None if opened else settings)
        opened.append(w)
        w.tabs.setCurrentWidget(w.text_tab)
        return w
    make.folders = {"text-generation": gpt2_checkpoint, "summarization": bart_checkpoint, "translation": t5small}
    return make


def record_partials(presenter) -> list:
    """Every partial result the tab hands the presenter, in order."""
    seen = []
    original = presenter.set_progress

    def spy(fraction, partial, text):
        if partial is not None:
            seen.append(partial)
        original(fraction, partial, text)
    presenter.set_progress = spy
    return seen


def generate(qtbot, tab):
    """Press the presenter's run button and wait for the job to end."""
    sent = tab.requests_sent
    tab.presenter().run_button.click()
    assert tab.requests_sent == sent + 1 and tab.is_running()
    qtbot.waitUntil(lambda: not tab.is_running() and tab.result_is_current(), timeout=TIMEOUT_MS)
    return tab.presenter().result


def set_generation(p, max_new=20, beams=1, sample=False, temperature=1.0, top_k=50, top_p=1.0, seed=-1,
                   repetition=1.0):
    p.max_new_spin.setValue(max_new)
    p.beams_spin.setValue(beams)
    p.sample_check.setChecked(sample)
    p.temperature_spin.setValue(temperature)
    p.top_k_spin.setValue(top_k)
    p.top_p_spin.setValue(top_p)
    p.seed_spin.setValue(seed)
    p.repetition_spin.setValue(repetition)


def focus(qtbot, w, tab):
    w.activateWindow()
    qtbot.waitUntil(lambda: QGuiApplication.focusWindow() is not None)
    tab.editor.setFocus()


# ---------------------------------------------------------------------------- text generation

def test_generation_streams_token_by_token_and_equals_load_task(qtbot, window):
    w = window()
    tab = w.text_tab
    assert tab.task == "text-generation" and tab.editor_label.text() == "Prompt"
    p = tab.presenter()
    assert p.inputs.isVisibleTo(tab) and p.run_button.text() == "Generate" and not p.stop_button.isEnabled()
    folder = str(window.folders["text-generation"])
    tab.editor.setPlainText(PROMPT)
    assert tab.requests_sent == 0 and not tab._timer.isActive()  # typing sends nothing: Generate does
    partials = record_partials(p)

    set_generation(p, max_new=24)
    r = generate(qtbot, tab)
    ref = engine_task("text-generation", folder).run(PROMPT, p.options(True, True))
    assert isinstance(r, TextGenerationResult) and r.done
    assert r.generated_ids.tolist() == ref.generated_ids.tolist() and r.text == ref.text
    assert p.stream.toPlainText() == PROMPT + ref.text  # the prompt, then what the model wrote
    assert p.stream.prompt_length == len(PROMPT)
    # streamed: partial results came first, each one token more than the last, each a prefix of the final
    assert partials and all(not x.done for x in partials)
    lengths = [len(x) for x in partials]
    assert lengths == sorted(set(lengths)) and lengths[-1] <= len(ref)
    assert all(ref.generated_ids.tolist()[:len(x)] == x.generated_ids.tolist() for x in partials)
    assert "tokens/s" in p.state_label.text() and f"{len(ref)} new tokens" in p.state_label.text()
    assert "tokens/s" in tab.status_label.text()
    # one stream token per generated token, tinted, with its probability
    steps = ref.internals.steps
    assert len(p.stream.tokens) == len(ref)
    np.testing.assert_allclose([t.prob for t in p.stream.tokens], [s.prob for s in steps], atol=1e-6)
    assert "".join(p.stream.toPlainText()[t.start:t.end] for t in p.stream.tokens) == ref.text

    # copy: the prompt and its continuation, and the JSON the CLI writes
    assert tab.copy_text() == PROMPT + ref.text and QGuiApplication.clipboard().text() == PROMPT + ref.text
    assert json.loads(tab.copy_json()) == ref.to_json()

    # seeded sampling: the same draw as the engine's with the same seed
    set_generation(p, max_new=16, sample=True, temperature=0.8, top_k=30, top_p=0.9, seed=1234, repetition=1.3)
    r = generate(qtbot, tab)
    options = p.options(True, True)
    assert options.do_sample and options.seed == 1234 and options.top_k == 30
    ref = engine_task("text-generation", folder).run(PROMPT, options)
    assert r.generated_ids.tolist() == ref.generated_ids.tolist()
    assert p.stream.toPlainText() == PROMPT + ref.text


def test_ctrl_enter_generates_and_esc_stops_within_one_token(qtbot, window, monkeypatch):
    """The engine is held after its first token until Stop is pressed (a gate in the task's steps),
    so the test does not depend on how fast the model runs: exactly one token was written."""
    from engine.tasks.text_generation import TextGeneration

    gate = threading.Event()
    held = []
    original = TextGeneration.steps

    def gated(self, inputs, options=None, *, cancel=None):
        it = original(self, inputs, options, cancel=cancel)
        yield next(it)
        if not held:
            held.append(True)
            gate.wait(30)  # until the test has pressed Stop
        yield from it
    monkeypatch.setattr(TextGeneration, "steps", gated)

    w = window()
    tab = w.text_tab
    p = tab.presenter()
    set_generation(p, max_new=40)
    tab.editor.setPlainText(PROMPT)
    focus(qtbot, w, tab)
    qtbot.keyClick(tab.editor, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)  # Ctrl+Enter
    assert tab.requests_sent == 1 and tab.is_running() and p.stop_button.isEnabled()
    assert tab.editor.toPlainText() == PROMPT  # Ctrl+Enter did not type a line break
    qtbot.waitUntil(lambda: tab.partials_received >= 1, timeout=TIMEOUT_MS)
    first = p.result
    assert len(first) == 1 and not first.done and p.stream.toPlainText() == PROMPT + first.text
    qtbot.keyClick(tab.editor, Qt.Key.Key_Escape)  # Esc: Stop
    gate.set()
    qtbot.waitUntil(lambda: not tab.is_running(), timeout=TIMEOUT_MS)
    assert tab.result_is_current() and not p.stop_button.isEnabled()
    assert p.result is first and len(p.result) == 1 < 40  # what was written stays
    assert p.stream.toPlainText() == PROMPT + first.text
    assert "Stopped after 1 token" in p.state_label.text()
    assert tab.copy_text() == PROMPT + first.text  # a stopped text can be copied

    # still usable: the next Generate runs to the end and equals the engine's
    r = generate(qtbot, tab)
    ref = engine_task("text-generation", str(window.folders["text-generation"])).run(PROMPT, p.options(True, True))
    assert r.done and r.generated_ids.tolist() == ref.generated_ids.tolist() and len(r) == 40


def test_hover_shows_the_alternatives_at_that_step_and_a_click_lists_them(qtbot, window):
    w = window()
    tab = w.text_tab
    p = tab.presenter()
    set_generation(p, max_new=12)
    tab.editor.setPlainText(PROMPT)
    generate(qtbot, tab)
    ref = engine_task("text-generation", str(window.folders["text-generation"])).run(PROMPT, p.options(True, True))
    for i in (0, 3, len(ref) - 1):
        step = ref.internals.steps[i]
        tip = p.stream.hover_text_at(p.stream.token_point(i))
        assert f"token {i + 1} of {len(ref)}" in tip and f"{100 * step.prob:.2f}%" in tip
        assert len(step.top_texts) == 10
        for text, prob in zip(step.top_texts, step.top_probs):
            assert f"{100 * float(prob):6.2f}%  {text!r}" in tip
        assert "▶" in tip  # greedy: the token written is the best of them
    assert p.stream.hover_text_at(p.stream.cursorRect(QTextCursor(p.stream.document())).center()) == ""  # prompt

    # inside the model: a click on a token lists its step's candidates, the chosen one selected
    assert tab.inside_stack.currentWidget() is p.inside_view
    p.select_token(3)
    step = ref.internals.steps[3]
    assert [row.score for row in p.choices.rows] == pytest.approx([float(x) for x in step.top_probs], abs=1e-6)
    assert p.choices.selected == [int(t) for t in step.top_ids].index(step.token_id)
    assert "Token 4</b> of 12" in p.choice_caption.text()
    assert not p.inside_tabs.isTabEnabled(1)  # no beams: no beam tree

    # beam search: the same as the engine's, and its beam tree
    set_generation(p, max_new=10, beams=3)
    r = generate(qtbot, tab)
    ref = engine_task("text-generation", str(window.folders["text-generation"])).run(PROMPT, p.options(True, True))
    assert r.generated_ids.tolist() == ref.generated_ids.tolist() and r.score == pytest.approx(ref.score)
    assert p.inside_tabs.isTabEnabled(1)
    tree = p.beam_tree
    beams = [[(tuple(t), sc) for t, sc in s.beams if sc > DEAD_SCORE] for s in ref.internals.steps]
    beams = [b for b in beams if b]  # the last step's beams all finished (the length limit): none live
    assert len(beams) < len(ref.internals.steps) and ref.stopped_by == "length"
    assert tree.steps == max(len(ref), len(beams))
    chosen = [n.prefix for n in tree.nodes if n.state == CHOSEN]
    ids = tuple(ref.generated_ids.tolist())
    assert sorted(chosen, key=len) == [ids[:k] for k in range(1, len(ids) + 1)]
    assert all(tree.node(t).state in (LIVE, CHOSEN) for t, _ in beams[-1])
    every = {t for b in beams for t, _ in b}
    assert {n.prefix for n in tree.nodes} == every | set(chosen)
    assert all(tree.node(t).row == rank for b in beams for rank, (t, _) in enumerate(b))
    assert {n.state for n in tree.nodes if n.prefix not in every} <= {CHOSEN}


def test_empty_prompt_errors_and_files_never_lose_what_is_shown(qtbot, window, tmp_path):
    w = window()
    tab = w.text_tab
    p = tab.presenter()
    # nothing shown yet: the hint says what to do
    tab.editor.setPlainText("   ")
    p.run_button.click()
    assert tab.requests_sent == 0 and tab.hint_text() == p.empty_problem and "prompt is empty" in tab.hint_text()

    set_generation(p, max_new=8)
    tab.editor.setPlainText(PROMPT)
    shown = generate(qtbot, tab)
    text = p.stream.toPlainText()
    tab.editor.setPlainText("")
    p.run_button.click()
    assert tab.requests_sent == 1 and p.result is shown and p.stream.toPlainText() == text
    assert "prompt is empty" in p.state_label.text() and tab.hint_text() == ""

    # an engine error (a prompt longer than the context window leaves): said, and the text stays
    w.message_area.dismiss()
    set_generation(p, max_new=120)
    tab.editor.setPlainText("The quick brown fox jumps over the lazy dog. " * 6)
    p.run_button.click()
    qtbot.waitUntil(lambda: not tab.is_running() and tab.result_is_current(), timeout=TIMEOUT_MS)
    assert "prompt is" in w.message_area.text() and "tokens long" in w.message_area.text()
    assert p.result is shown and p.stream.toPlainText() == text and tab.hint_text() == ""
    assert "tokens long" in p.state_label.text()

    # a dropped .txt file becomes the prompt; nothing runs until asked
    path = tmp_path / "prompt.txt"
    path.write_text("In the beginning was the word", encoding="utf-8")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(path))])
    assert w.handle_drop(mime) is True
    assert tab.editor.toPlainText() == "In the beginning was the word" and tab.requests_sent == 2
    assert not tab._timer.isActive() and p.result is shown
    set_generation(p, max_new=8)
    r = generate(qtbot, tab)
    assert r.prompt == "In the beginning was the word"


def test_summarization_streams_progress_and_equals_load_task(qtbot, window):
    w = window()
    tab = w.text_tab
    tab.set_task("summarization")
    p = tab.presenter()
    assert isinstance(p, SummarizationPresenter) and p.run_button.text() == "Summarize"
    assert tab.inside_stack.currentWidget() is p.inside_view
    partials = record_partials(p)
    progress = []
    original = p.progress_text
    p.progress_text = lambda r, f: progress.append(original(r, f)) or progress[-1]
    tab.editor.setPlainText(ARTICLE)
    assert tab.requests_sent == 0
    r = generate(qtbot, tab)
    options = p.options(True, True)
    assert options.num_beams is None and options.max_length is None  # the checkpoint's settings
    ref = engine_task("summarization", str(window.folders["summarization"])).run(ARTICLE, options)
    assert r.done and r.output_ids.tolist() == ref.output_ids.tolist()
    assert output_text(r) == ref.summary_text and p.stream.toPlainText() == ref.summary_text
    assert partials and [x.step for x in partials] == sorted({x.step for x in partials})
    assert all(x.max_steps == ref.max_steps for x in partials)
    assert progress and progress[0].startswith("Summarizing… Beam step ") and f"/ {ref.max_steps}" in progress[0]
    assert f"{len(ref.output_ids)} tokens in {ref.step} steps" in p.state_label.text()
    assert json.loads(tab.copy_json()) == ref.to_json() and tab.copy_text() == ref.summary_text
    # the checkpoint's beam search (4 beams): its tree
    assert p.inside_tabs.isTabEnabled(1) and p.beam_tree.counts()[CHOSEN] == len(ref.output_ids) - 1
    # its own settings: greedy, shorter
    p.beams_spin.setValue(1)
    p.max_spin.setValue(10)
    p.min_spin.setValue(0)
    r = generate(qtbot, tab)
    options = p.options(True, True)
    assert (options.num_beams, options.max_length, options.min_length) == (1, 10, 0)
    ref = engine_task("summarization", str(window.folders["summarization"])).run(ARTICLE, options)
    assert r.output_ids.tolist() == ref.output_ids.tolist() and p.stream.toPlainText() == ref.summary_text
    # greedy: every token has its step's probability
    assert [t.prob for t in p.stream.tokens] == pytest.approx([s.prob for s in ref.internals.steps], abs=1e-6)


def test_translation_targets_of_the_checkpoint_progress_and_cross_attention(qtbot, window):
    w = window()
    tab = w.text_tab
    tab.set_task("translation")
    p = tab.presenter()
    assert isinstance(p, TranslationPresenter) and p.run_button.text() == "Translate"
    # the targets the checkpoint's task_specific_params name, in its order
    assert [p.target_combo.itemData(i) for i in range(p.target_combo.count())] == ["de", "fr", "ro"]
    assert p.target_combo.itemText(1) == "French (fr)"
    p.target_combo.setCurrentIndex(1)
    p.target_combo.activated.emit(1)
    progress = []
    original = p.progress_text
    p.progress_text = lambda r, f: progress.append(original(r, f)) or progress[-1]
    text = "The house is wonderful today."
    tab.editor.setPlainText(text)
    r = generate(qtbot, tab)
    options = p.options(True, True)
    assert options.target == "fr" and options.internals
    ref = engine_task("translation", str(window.folders["translation"])).run(text, options)
    assert r.done and r.output_ids.tolist() == ref.output_ids.tolist() and r.target == "fr"
    assert p.stream.toPlainText() == ref.translation_text == output_text(r)
    assert progress and progress[0].startswith("Translating… Beam step ")  # fr: 3 beams
    assert json.loads(tab.copy_json()) == ref.to_json() and tab.copy_text() == ref.translation_text
    # the decoder's cross-attention: a row per output token after the start, a column per source token
    maps = ref.internals.cross_attention
    assert maps.shape == (len(maps), len(ref.output_ids) - 1, len(ref.internals.prompt_tokens))
    np.testing.assert_allclose(p.cross.maps, maps, atol=1e-6)
    np.testing.assert_allclose(p.cross.matrix.matrix, maps.mean(axis=0), atol=1e-6)
    assert len(p.cross.matrix.rows) == maps.shape[1]
    assert p.cross.matrix.cols == tuple(t if t.strip() else repr(t)[1:-1] or "∅" for t in ref.internals.prompt_tokens)
    assert p.inside_tabs.tabText(2) == "Cross-attention"
    assert str(tab.settings.value("text/translation/target")) == "fr"


def test_translation_targets_come_from_the_checkpoint_config(tmp_path, t5small):
    from engine.tasks.translation import Translation
    config = json.loads((t5small / "config.json").read_text())
    params = config["task_specific_params"]
    config["task_specific_params"] = {k: params[k] for k in ("translation_en_to_ro", "translation_en_to_fr")}
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert target_choices(Translation, tmp_path) == [("ro", "Romanian"), ("fr", "French")]
    assert [c for c, _ in target_choices(Translation, None)] == list(FALLBACK_TARGETS)  # not on this machine


def test_choices_are_remembered_across_windows(qtbot, window):
    w = window()
    tab = w.text_tab
    p = tab.presenter()
    set_generation(p, max_new=77, beams=2, sample=True, temperature=0.7, top_k=0, top_p=0.85, seed=42,
                   repetition=1.25)
    tab.set_task("summarization")
    tab.presenter().beams_spin.setValue(3)
    tab.presenter().max_spin.setValue(40)
    tab.set_task("text-generation")
    tab.editor.setPlainText(PROMPT)
    assert w.shutdown()

    w2 = window()
    tab2 = w2.text_tab
    p2 = tab2.presenter()
    assert tab2.task == "text-generation" and tab2.editor.toPlainText() == PROMPT
    assert (p2.max_new_spin.value(), p2.beams_spin.value(), p2.sample_check.isChecked()) == (77, 2, True)
    assert p2.temperature_spin.value() == pytest.approx(0.7) and p2.top_p_spin.value() == pytest.approx(0.85)
    assert p2.top_k_spin.value() == 0 and p2.top_k_spin.text() == "all" and p2.seed_spin.value() == 42
    assert p2.repetition_spin.value() == pytest.approx(1.25)
    options = p2.options(True, True)
    assert options.top_k == 0 and options.seed == 42 and options.do_sample and options.num_beams == 2
    s2 = tab2.presenter("summarization")
    assert (s2.beams_spin.value(), s2.max_spin.value(), s2.min_spin.text()) == (3, 40, "checkpoint")
    assert tab2.requests_sent == 0  # the remembered prompt does not run by itself


# ---------------------------------------------------------------------------- hand-made results

def _step(token, prob, beams=(), top=None):
    top = top or [(token, prob), (token + 1, prob / 2)]
    return GenerationStep(token, f"t{token}", prob, np.array([t for t, _ in top], np.int64),
                          tuple(f"t{t}" for t, _ in top), np.array([q for _, q in top], np.float32), beams)


BEAMS = (
    (((5,), -0.1), ((7,), -0.5)),
    (((5, 8), -0.3), ((7, 9), -0.6)),
    (((5, 8, 2), -0.4), ((5, 8, 3), -0.9)),
)


def test_beam_tree_marks_live_chosen_and_pruned_branches(qtbot):
    tree = BeamTree()
    qtbot.addWidget(tree)
    final = (5, 8, 2, 0)  # ended on the end of text, which no live beam holds
    tree.set_beams(BEAMS, final, lambda t: f"t{t}")
    state = {n.prefix: n.state for n in tree.nodes}
    assert state == {(5,): CHOSEN, (7,): PRUNED, (5, 8): CHOSEN, (7, 9): PRUNED, (5, 8, 2): CHOSEN,
                     (5, 8, 3): LIVE, (5, 8, 2, 0): CHOSEN}
    assert tree.counts() == {CHOSEN: 4, LIVE: 1, PRUNED: 2}
    assert tree.steps == 4 and tree.rows == 3  # two beams, and the finished hypothesis below them
    assert [tree.node(final[:k]).row for k in range(1, 5)] == [0, 0, 0, 2]  # a row per beam rank
    assert (tree.node((7, 9)).row, tree.node((5, 8, 3)).row) == (1, 1)
    pruned = tree.node((7, 9))
    tip = tree.hover_text(tree.node_at(tree.node_rect(pruned).center()))
    assert "step 2" in tip and "'t9'" in tip and "-0.600" in tip and "pruned" in tip and "beam 2" in tip
    assert "finished the hypothesis" in tree.hover_text(tree.node((5, 8, 2, 0)))
    assert tree.node_at(tree.node_rect(tree.node((5, 8, 3))).center()).prefix == (5, 8, 3)
    assert tree.minimumWidth() >= tree.steps * tree.COL_W
    tree.resize(tree.minimumSize())
    assert not tree.grab().isNull()
    # a step where every candidate finished (the length limit): its beams (score about -1e9) are not live
    _, nodes = build_tree(BEAMS + ((((5, 8, 2, 9), -1e9), ((5, 8, 3, 9), -1e9)),), final)
    assert {n.prefix: n.state for n in nodes} == state
    roots, nodes = build_tree(BEAMS)  # still running: no chosen path yet
    assert {n.state for n in nodes} == {LIVE, PRUNED} and [r.prefix for r in roots] == [(5,), (7,)]


def test_generation_presenter_on_a_hand_made_beam_result(qtbot, window):
    w = window()
    p = w.text_tab.presenter()
    steps = tuple(_step(b[0][0][-1], 0.5, b) for b in BEAMS) + (_step(0, 0.25),)
    r = TextGenerationResult("Hi", " t5t8t2", np.array([1], np.int64), np.array([5, 8, 2, 0], np.int64), "eos",
                             10.0, internals=TextGenerationInternals(steps, ("Hi",)), score=-0.4)
    p.set_result(r, "Hi")
    w.text_tab.result_stack.setCurrentWidget(p.view)
    assert p.stream.toPlainText() == "Hi t5t8t2"
    assert [(t.start, t.end) for t in p.stream.tokens] == [(2, 5), (5, 7), (7, 9), (9, 9)]  # the end: no text
    assert p.inside_tabs.isTabEnabled(1) and p.beam_tree.counts() == {CHOSEN: 4, LIVE: 1, PRUNED: 2}
    assert "beam search" in p.stream.hover_text_at(p.stream.token_point(1))
    assert "3 steps" not in p.beam_caption.text() and "pruned (2)" in p.beam_caption.text()


def test_cross_attention_and_targets_on_hand_made_results(qtbot, open_window):
    w = open_window()
    tab = w.text_tab
    p = presenter_class("translation")(tab.settings, tab)
    assert isinstance(p, TranslationPresenter)
    assert [p.target_combo.itemData(i) for i in range(p.target_combo.count())] == \
        [code for code, _ in target_choices(next((c for c in __import__("engine").tasks_for_domain("text")
                                                  if c.name == "translation"), None))]
    assert [code for code, _ in target_choices(None)] == list(FALLBACK_TARGETS)
    assert target_choices(SimpleNamespace(targets={"de": "German", "fr": "French"})) == [("de", "German"),
                                                                                          ("fr", "French")]
    assert target_choices(SimpleNamespace(targets=("ro",))) == [("ro", "Romanian")]

    rng = np.random.default_rng(0)
    maps = rng.random((2, 3, 4)).astype(np.float32)
    maps /= maps.sum(-1, keepdims=True)
    steps = (_step(11, 0.9), _step(12, 0.6), _step(1, 0.7))
    internals = SimpleNamespace(steps=steps, prompt_tokens=("▁Hello", "▁world", "!", "</s>"), cross_attention=maps)
    r = SimpleNamespace(text="t11t12", output_ids=np.array([0, 11, 12, 1]), step=3, max_steps=20, stopped_by="eos",
                        done=True, truncated=False, internals=internals, timings=None,
                        to_json=lambda: {"translation_text": "t11t12"})
    p.set_result(r, "Hello world!")
    assert p.stream.toPlainText() == "t11t12" and p.result_text() == "t11t12"
    view = p.cross
    np.testing.assert_allclose(view.matrix.matrix, maps.mean(axis=0), atol=1e-6)
    assert view.matrix.rows == ("t11", "t12", "t1") and view.matrix.cols == ("▁Hello", "▁world", "!", "</s>")
    view.layer_combo.setCurrentIndex(2)
    view.layer_combo.activated.emit(2)
    np.testing.assert_allclose(view.matrix.matrix, maps[1], atol=1e-6)
    assert str(tab.settings.value("text/translation/cross_layer")) == "1"
    view.matrix.resize(400, 300)
    tip = view.matrix.hover_text_at(view.matrix.cell_center(1, 2))
    assert "'t12' (token 1)" in tip and "'!' (token 2)" in tip and f"{maps[1][1, 2]:.3f}" in tip
    p.select_token(1)
    assert view.matrix.selected == 1


def test_token_spans_line_pieces_up_with_the_text():
    assert token_spans(" the cat", [" the", " cat"]) == [(0, 4), (4, 8)]
    assert token_spans(" é ok", [" \ufffd", "\ufffd", " ok"]) == [(0, 2), (0, 2), (2, 5)]  # one character, 2 tokens
    assert token_spans("Hello world", ["Hello", "world"]) == [(0, 5), (5, 11)]  # SentencePiece: the lost space
    assert token_spans(" hi", [" hi", "<|endoftext|>"]) == [(0, 3), (3, 3)]  # a special token writes nothing
    assert token_spans("abc", [None, "c"]) == [(0, 2), (2, 3)]
