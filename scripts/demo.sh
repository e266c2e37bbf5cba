#!/usr/bin/env bash
# The main job: set up (idempotent), then run the twin. Extra arguments go to `robotrl rollout`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
mkdir -p out
.venv/bin/robotrl rollout --env robotrl/ArmPickCube-v0 --policy scripted --episodes 20 \
    --video out/pick_cube.mp4 --video-episodes 3 "$@"
