#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite headless, plus the linters.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export QT_QPA_PLATFORM=offscreen
.venv/bin/ruff check engines widgets playground tests
.venv/bin/lint-imports
.venv/bin/python -m pytest -q "$@"
