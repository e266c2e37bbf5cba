#!/usr/bin/env bash
# Set up (idempotent), then run the whole test suite on the real MuJoCo twin. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/python -m pytest -q "$@"
