#!/usr/bin/env bash
# Start the dataset generation service alone (role cpu, port $DEEPSYNTH_CPU_PORT or 5000) in
# the background; same commands and settings as start-all.sh (docs/deployment.md).
set -euo pipefail
# shellcheck source=scripts/services.sh
source "$(dirname "$0")/scripts/services.sh"
ds_main cpu "$@"
