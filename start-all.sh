#!/usr/bin/env bash
# Set up on a fresh machine, then run DeepSynth's main job on the built-in defaults.
# Today that job is dataset generation from the built-in SciTLDR corpus; the web services
# (ports 5000 and 5001) take this script over when the REST API and UI land.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
root="${DEEPSYNTH_DATA_ROOT:-./data}"
out="$root/datasets/scitldr-demo"
.venv/bin/deepsynth generate --source builtin:scitldr --out "$out" --max-samples 200
.venv/bin/deepsynth datasets list "$root/datasets"
echo "Pages are in $out/data/*.parquet; load them with datasets.load_dataset(\"$out\")."
