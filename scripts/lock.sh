#!/usr/bin/env bash
# Regenerate requirements.lock: resolve pyproject.toml's ranges afresh in a throwaway venv and freeze the result.
# Upgrading is a deliberate commit: rerun `bash scripts/test.sh` and the benchmarks on the new lock before it lands.
# torch stays the CPU build these machines carry (an unpinned torch resolves to a multi-GB CUDA build).
set -euo pipefail
cd "$(dirname "$0")/.."
TORCH="${TORCH:-torch==2.13.0}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install -q --upgrade pip
"$tmp/venv/bin/python" -m pip install -q "$TORCH" -e ".[dev,learn,hardware,ros,bench,ui]"
{
    sed -n '1,3p' requirements.lock
    "$tmp/venv/bin/python" -m pip freeze --all --exclude-editable | grep -v '^#' | sort -f
} > "$tmp/lock"
mv "$tmp/lock" requirements.lock
git --no-pager diff --stat requirements.lock || true
