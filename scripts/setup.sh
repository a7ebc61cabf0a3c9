#!/usr/bin/env bash
# Set up everything Generative Playground needs, from nothing, idempotently:
#   bash scripts/setup.sh          # Python venv in .venv with the app and its test tools
#   bash scripts/setup.sh --gui    # also the system libraries Qt needs to open a real window
# torch is pinned to 2.13.0 first: on a machine without CUDA that is a CPU wheel of a few
# hundred MB, where an unpinned "torch" would pull several GB of CUDA packages.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
want_gui=0
[ "${1:-}" = "--gui" ] && want_gui=1

apt_install() {
  # System packages, only when missing and only where apt-get can run.
  local missing=()
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing system packages: ${missing[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: please install these system packages: ${missing[*]}" >&2
  fi
}

if ! "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  apt_install python3-venv
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
"$PY" -m pip install -q --upgrade pip >/dev/null
if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
  echo "setup: installing $TORCH_SPEC"
  "$PY" -m pip install -q "$TORCH_SPEC"
fi
# Editable install of the app plus the dev extra (pytest, pytest-qt, ruff, import-linter).
"$PY" -m pip install -q -e ".[dev]"

if [ "$want_gui" -eq 1 ] && [ "$(uname -s)" = "Linux" ]; then
  # Qt's xcb platform plugin links these; the offscreen plugin used by tests does not.
  apt_install libegl1 libgl1 libfontconfig1 libdbus-1-3 libglib2.0-0 libxkbcommon0 \
    libxkbcommon-x11-0 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 \
    libxcb-render-util0 libxcb-image0 libxcb-randr0 libxcb-xinerama0 libxcb-xkb1 libx11-xcb1
  if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
    apt_install xvfb xauth
  fi
fi
echo "setup: ready ($("$PY" -c 'import torch, PySide6; print("torch", torch.__version__, "· PySide6", PySide6.__version__)'))"
