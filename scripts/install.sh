#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine: system libraries (apt) and a virtualenv (.venv) with
# robotrl and its test tools. Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# EGL/OSMesa for headless MuJoCo rendering, libusb for pyrealsense2, g++ and Python's headers for torch.compile
# (the SAC learner's compile: true builds its kernels in C++), chromium for the operator page's browser tests
# (playwright drives Debian's build; nothing is downloaded).
APT_PACKAGES="libegl1 libgl1 libegl-mesa0 libgles2 libosmesa6 libusb-1.0-0 g++ chromium"
python3 -c "import venv, ensurepip" 2>/dev/null || APT_PACKAGES="$APT_PACKAGES python3-venv"
python3 -c "import os, sysconfig; assert os.path.exists(os.path.join(sysconfig.get_paths()['include'], 'Python.h'))" 2>/dev/null \
    || APT_PACKAGES="$APT_PACKAGES python3-dev"
missing=""
for pkg in $APT_PACKAGES; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing Debian packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
# Exact versions from requirements.lock (what CI ran). A robot with its own CUDA torch keeps it:
# ROBOTRL_KEEP_TORCH=1 drops the lock's CPU torch pin, and pyproject's range (torch 2.x) accepts the installed one.
LOCK=requirements.lock
if [ "${ROBOTRL_KEEP_TORCH:-0}" = 1 ]; then
    LOCK="$(mktemp)"
    grep -v '^torch==' requirements.lock > "$LOCK"
fi
.venv/bin/python -m pip install -q -c "$LOCK" pip
# setuptools announces every editable install ("Editable installation ... be careful with folders"): not a problem.
PYTHONWARNINGS="ignore:Editable installation" \
    .venv/bin/python -m pip install -q -c "$LOCK" -e ".[dev,learn,hardware,ros,bench,ui]"
# robotrl's ROS messages (ros_ws/src/robotrl_interfaces), generated and compiled with the rosidl wheels just installed.
bash scripts/build_interfaces.sh
echo "robotrl installed in .venv (activate with: source .venv/bin/activate)"
