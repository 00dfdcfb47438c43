#!/usr/bin/env bash
# Start DeepSynth on this machine: the dataset generation service (role cpu, port 5000) and the
# training service (role gpu, port 5001) in the background, over one data root (./data), with
# a demo dataset rendered from the built-in corpus. Sets up .venv on first use, waits for
# /api/health, prints the URLs and returns.
#   ./start-all.sh [start|stop|restart|status] [--docker] [-- EXTRA deepsynth serve OPTIONS]
# ./start-all.sh stop (or ./stop-all.sh) stops both. Settings: docs/deployment.md.
set -euo pipefail
# shellcheck source=scripts/services.sh
source "$(dirname "$0")/scripts/services.sh"
ds_main "cpu gpu" "$@"
