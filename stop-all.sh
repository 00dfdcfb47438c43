#!/usr/bin/env bash
# Stop the services started by start-all.sh (or the per-service scripts): SIGTERM by pid, so
# that running jobs are paused and checkpointed first; waits up to $DEEPSYNTH_STOP_TIMEOUT
# (75) seconds. --docker stops the containers instead.
set -euo pipefail
# shellcheck source=scripts/services.sh
source "$(dirname "$0")/scripts/services.sh"
ds_main "cpu gpu" stop "$@"
