#!/usr/bin/env bash
# The main job: set up (idempotent), then the twin learns to pick up a cube from 10 scripted demos with SAC in
# the RLPD / HIL-SERL recipe (10-20 minutes on 2 CPU cores), is evaluated, and filmed.
# Extra arguments go to `robotrl train sac` (e.g. --steps 30000, --human scripted, --processes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
export PATH="$PWD/.venv/bin:$PATH"  # the venv's robotrl
mkdir -p out
[ -d out/demos/pick.zarr ] || robotrl record --env robotrl/ArmPickCube-v0 --policy scripted --episodes 10 --out out/demos/pick.zarr
robotrl train sac --env robotrl/ArmPickCube-v0 --demos out/demos/pick.zarr --config sac_pick \
    --out out/runs/pick --steps 15000 --eval-every 1000 "$@"
robotrl eval --run out/runs/pick --episodes 50
robotrl rollout --env robotrl/ArmPickCube-v0 --policy out/runs/pick --episodes 3 --video out/pick_learned.mp4 --quiet
echo "learning curve: out/runs/pick/learning_curve.png   video: out/pick_learned.mp4"
