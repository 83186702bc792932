"""The command line: every first word is a command, a file to open, or a usage error (exit 2);
inputs and options are checked before any model loads."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run_main(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "main.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=full_env)


def test_unknown_command_is_a_usage_error_with_a_suggestion():
    r = run_main("detetc", "photo.jpg")
    assert r.returncode == 2
    assert "did you mean 'detect'" in r.stderr and "Traceback" not in r.stderr


def test_option_before_the_command_is_a_usage_error():
    r = run_main("--threshold", "0.5", "detect", "photo.jpg")
    assert r.returncode == 2 and "before the command" in r.stderr


def test_no_display_says_so_in_one_line():
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    r = subprocess.run([sys.executable, "main.py"], cwd=ROOT, capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 2
    assert "needs a display" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_help_lists_every_declared_command():
    from engine.tasks import all_tasks
    r = run_main("--help")
    assert r.returncode == 0
    for cls in all_tasks().values():
        if cls.command:  # universal-segmentation runs through `segment` (its cli_task)
            assert cls.command in r.stdout
    assert "models" in r.stdout and "bench" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["classify-image", "{img}", "--top-k", "0"], "at least 1"),
    (["classify-image", "{img}", "--top-k", "-3"], "at least 1"),
    (["detect", "{img}", "--size", "100000"], "between 32 and"),
    (["detect", "{img}", "--threshold", "1.5"], "less than 1"),
    (["detect", "{missing}"], "no such file"),
    (["transcribe", "{img}", "-o", "{dir}"], "is a folder"),
    (["transcribe", "{img}", "-o", "{dir}/no/such/folder/out.txt"], "does not exist"),
])
def test_bad_options_fail_before_any_model_loads(tmp_path, args, message):
    img = tmp_path / "x.png"
    img.write_bytes(b"not really")
    args = [a.format(img=img, missing=tmp_path / "missing.png", dir=tmp_path) for a in args]
    # --model names a folder that does not exist: reaching the loader would be a different error
    r = run_main(*args, "--model", str(tmp_path / "no-model"), "--offline")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


def test_download_offline_refuses_without_network(tmp_path):
    r = run_main("download", "facebook/detr-resnet-50", "--offline")
    assert r.returncode == 2 and "--offline" in r.stderr


def test_task_modules_import_without_torch():
    """The app's UI thread reads the task declarations: that must not import torch."""
    code = ("import sys; from engine.tasks import all_tasks; from engine.cli import build_parser; "
            "all_tasks(); build_parser(); print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"
