"""Test set-up shared by every test: no network, offscreen Qt, an empty model cache.

Random-weight checkpoints are built with transformers (a dev-only dependency) by the fixture
modules listed in ``pytest_plugins``, once per session.
"""
import os
import tempfile

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="taskscope-hf-home-")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ["TASKSCOPE_SETTINGS_DIR"] = tempfile.mkdtemp(prefix="taskscope-settings-")

pytest_plugins = [
    "tests.fixtures_detr",
    "tests.fixtures_wav2vec2",
    "tests.fixtures_convnext",
    "tests.fixtures_vit",
    "tests.fixtures_segformer",
    "tests.fixtures_glpn",
    "tests.fixtures_mask2former",
    "tests.fixtures_bert",
    "tests.fixtures_gpt2",
    "tests.fixtures_t5",
    "tests.fixtures_media",
    "tests.fixtures_gui",
    "tests.fixtures_pulse",
]


def unavailable(reason: str) -> None:
    """Skip a test whose system tool is missing (espeak-ng, pulseaudio, PortAudio) — or, in CI
    (TASKSCOPE_STRICT=1, set by .ci/run, which installs them), fail: a CI run must not skip them."""
    import pytest
    if os.environ.get("TASKSCOPE_STRICT") == "1":
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)
