#!/usr/bin/env bash
# Idempotent set-up on a fresh Debian/Ubuntu machine: system libraries (apt) and a virtualenv (.venv) with
# robotrl and its test tools. Safe to run again; it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# EGL/OSMesa for headless MuJoCo rendering, libusb for pyrealsense2, g++ and Python's headers for torch.compile
# (the SAC learner's compile: true builds its kernels in C++).
APT_PACKAGES="libegl1 libgl1 libegl-mesa0 libgles2 libosmesa6 libusb-1.0-0 g++"
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
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e ".[dev,learn,hardware,ros]"
echo "robotrl installed in .venv (activate with: source .venv/bin/activate)"
