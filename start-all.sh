#!/usr/bin/env bash
# Set up on a fresh machine, then run DeepSynth on the built-in defaults: the REST API
# (role all, http://127.0.0.1:5000) over a data root holding a demo dataset rendered from the
# built-in SciTLDR corpus; training jobs use the tiny demo model, built on first use.
# Runs in the foreground; Ctrl-C stops it cleanly. (Issue 7 turns this into the two-service
# launcher with pid files and health checks.)
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
root="${DEEPSYNTH_DATA_ROOT:-./data}"
demo="$root/datasets/scitldr-demo"
if [ ! -f "$demo/deepsynth-manifest.json" ]; then
    .venv/bin/deepsynth generate --source builtin:scitldr --out "$demo" --max-samples 200 \
        --page-size 256x256 --font-size 12 --margin 8
fi
exec .venv/bin/deepsynth serve --data-root "$root" "$@"
