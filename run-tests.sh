#!/usr/bin/env bash
# Set up everything on a fresh machine (virtual environment, packages, fonts, Chromium), then run the
# test suite. Extra arguments go to pytest, for example: ./run-tests.sh -k render
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh --browser
exec .venv/bin/python -m pytest "$@"
