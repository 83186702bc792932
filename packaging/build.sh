#!/usr/bin/env bash
# Build a one-folder app in dist/taskscope/ and a tar.gz of it. Run from anywhere.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ -x .venv/bin/python ]] || ./run.sh --help >/dev/null
.venv/bin/python -m pip install -q -e ".[package]"
.venv/bin/pyinstaller --noconfirm --clean --distpath dist --workpath build packaging/taskscope.spec
cp packaging/taskscope.desktop assets/icons/taskscope.svg dist/taskscope/
tar -C dist -czf dist/taskscope-linux-x86_64.tar.gz taskscope
echo "Built dist/taskscope/taskscope and dist/taskscope-linux-x86_64.tar.gz"
