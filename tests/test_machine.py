"""The resource view's figures (deepsynth.machine): this process, the machine, and the
GPUs as nvidia-smi reports them. This machine has no CUDA: the GPU list is empty here, and
nvidia-smi's output is parsed from a sample of its CSV."""

from __future__ import annotations

import shutil

from deepsynth.machine import gpu_usage, parse_nvidia_smi, process_usage

SAMPLE = ("0, NVIDIA H200, 10240, 143771, 37\n"
          "1, NVIDIA H200, [N/A], 143771, [N/A]\n")


def test_nvidia_smi_rows_become_bytes_and_percentages():
    first, second = parse_nvidia_smi(SAMPLE)
    assert first == {"index": 0, "name": "NVIDIA H200", "memory_used_bytes": 10240 * 2**20,
                     "memory_total_bytes": 143771 * 2**20, "utilization_percent": 37.0}
    assert second["memory_used_bytes"] is None and second["utilization_percent"] is None
    assert parse_nvidia_smi("No devices were found\n") == []


def test_this_process_and_machine():
    usage = process_usage()
    assert usage["rss_bytes"] > 0 and usage["cpu_count"] >= 1
    assert 0 < usage["machine_memory_available_bytes"] <= usage["machine_memory_total_bytes"]
    if shutil.which("nvidia-smi") is None:
        assert gpu_usage() == []
