#!/usr/bin/env bash
# Set up (if needed) and launch Generative Playground. Extra arguments go to `playground`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --gui
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ] && [ "$(uname -s)" = "Linux" ] \
   && [ -z "${QT_QPA_PLATFORM:-}" ]; then
  echo "run-app: no display found; starting the app on a virtual X screen (xvfb-run)." >&2
  echo "run-app: to see it, run this on a machine with a desktop, or use 'playground snapshot'." >&2
  exec xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/playground "$@"
fi
exec .venv/bin/playground "$@"
