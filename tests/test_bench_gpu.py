"""The GPU benchmark (``benchmarks/bench_gpu.py``) run end to end with ``--tiny`` on this CPU,
as a subprocess, so the script a GPU session runs cannot rot: every configuration is in its
JSON, measured by DeepSynth's trainer and by the hand-written loop on the same batches, with
the estimator's figures beside them; what cannot run here (QLoRA: CUDA) is skipped with the
project's reason. No figure is checked for speed, only for being a real measurement.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIGURATIONS = {"lora_balanced", "high_capacity_moe_expert_gate_dropout",
                  "bidrop_2_passes", "qlora", "full_fine_tuning"}
FIGURES = ("steps_per_second", "tokens_per_second", "peak_memory_mib")


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TMPDIR": str(tmp_path_factory.mktemp("b"))}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_gpu.py"), "--tiny"],
                          capture_output=True, text=True, timeout=600, cwd=REPO, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "lora_balanced batch 1 deepsynth" in done.stderr  # progress goes to stderr
    return json.loads(done.stdout)  # stdout is the JSON document and nothing else


def _runs(report: dict):
    for name, configuration in report["configurations"].items():
        if "skipped" not in configuration:
            for batch in report["batch_sizes"]:
                yield name, batch, configuration[f"batch_{batch}"]


def test_every_configuration_is_reported(report):
    assert set(report["configurations"]) == CONFIGURATIONS
    assert report["size"] == "tiny" and report["batch_sizes"] == [1, 2]
    assert report["warmup_steps_excluded"] >= 1
    measured = {name for name, _, _ in _runs(report)}
    assert measured >= CONFIGURATIONS - {"qlora"}


@pytest.mark.skipif(torch.cuda.is_available(), reason="QLoRA runs where CUDA is")
def test_qlora_is_skipped_with_the_reason(report):
    qlora = report["configurations"]["qlora"]
    assert qlora["field"] == "peft" and "CUDA" in qlora["skipped"]
    assert qlora["options"]["peft"] == "qlora"


def test_both_loops_measured_on_the_same_batches(report):
    for name, batch, run in _runs(report):
        ours, hand = run["deepsynth"], run["hand_written"]
        for loop in (ours, hand):
            assert loop["status"] == "ok", (name, batch, loop)
            assert loop["timed_steps"] >= 1 and loop["warmup_steps"] >= 1
            assert all(loop[figure] > 0 for figure in FIGURES), (name, batch, loop)
        # identical batches: every example truncated to max_length, as the estimate assumes
        assert ours["tokens_per_step"] == hand["tokens_per_step"] \
            == run["estimate"]["tokens_per_step"]
        assert hand["passes"] == (2 if name == "bidrop_2_passes" else 1)
    full = report["configurations"]["full_fine_tuning"]["batch_1"]["estimate"]
    lora = report["configurations"]["lora_balanced"]["batch_1"]["estimate"]
    assert full["trainable_parameters"] > lora["trainable_parameters"] > 0


def test_estimates_and_comparisons_present(report):
    for name, batch, run in _runs(report):
        estimate = run["estimate"]
        assert estimate["status"] == "ok", (name, estimate)
        assert estimate["device"] == "cpu" and estimate["gpu"] == "H100"
        assert not estimate["gpu_is_this_device"]
        assert all(estimate[figure] > 0 for figure in FIGURES)
        compare = run["compare"]
        for figure in FIGURES:
            assert compare[figure]["deepsynth_over_hand_written"] > 0
        # the CPU's memory figure is the live tensors: the estimator's CPU figure is its
        # like; the H100's step time is no comparison for a CPU
        assert 0.5 < compare["peak_memory_mib"]["deepsynth_over_estimate"] < 2, (name, batch)
        assert compare["steps_per_second"]["deepsynth_over_estimate"] is None
