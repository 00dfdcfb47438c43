#!/usr/bin/env bash
# Start the training service alone (role gpu, port $DEEPSYNTH_GPU_PORT or 5001) in the
# background; it trains on the GPU when torch sees one, else on the CPU with tiny models only.
# Same commands and settings as start-all.sh (docs/deployment.md).
set -euo pipefail
# shellcheck source=scripts/services.sh
source "$(dirname "$0")/scripts/services.sh"
ds_main gpu "$@"
