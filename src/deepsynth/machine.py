"""What the service uses of the machine, for the monitor's resource view: this process's CPU
and memory, the machine's memory, and per NVIDIA GPU its memory and utilization.

GPUs are read with ``nvidia-smi`` (device-wide figures, as the driver reports them) rather
than through torch, which would open a CUDA context on every device in the web process.
Without ``nvidia-smi`` (no CUDA, or a CPU machine) the list is empty.
"""

from __future__ import annotations

import shutil
import subprocess

import psutil

_PROCESS = psutil.Process()  # one object: cpu_percent() measures since the previous call
_QUERY = "index,name,memory.used,memory.total,utilization.gpu"
NVIDIA_SMI_SECONDS = 5


def process_usage() -> dict:
    """This process's CPU share since the previous call (100 = one core) and resident
    memory; the machine's cores and memory."""
    machine = psutil.virtual_memory()
    return {"cpu_percent": _PROCESS.cpu_percent(interval=None),
            "cpu_count": psutil.cpu_count() or 1,
            "machine_cpu_percent": psutil.cpu_percent(interval=None),
            "rss_bytes": _PROCESS.memory_info().rss,
            "machine_memory_total_bytes": machine.total,
            "machine_memory_available_bytes": machine.available}


def parse_nvidia_smi(text: str) -> list[dict]:
    """The rows of ``nvidia-smi --query-gpu=<_QUERY> --format=csv,noheader,nounits``
    (memory in MiB); a figure the driver does not report ("[N/A]") is None."""
    def number(value: str) -> float | None:
        try:
            return float(value)
        except ValueError:
            return None

    gpus = []
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.split(",")]
        if len(cells) != 5 or not cells[0].isdigit():
            continue
        used, total, busy = (number(c) for c in cells[2:])
        gpus.append({"index": int(cells[0]), "name": cells[1],
                     "memory_used_bytes": None if used is None else int(used * 2**20),
                     "memory_total_bytes": None if total is None else int(total * 2**20),
                     "utilization_percent": busy})
    return gpus


def gpu_usage() -> list[dict]:
    """Each NVIDIA GPU's memory and utilization; [] without ``nvidia-smi`` or when it
    fails (a driver problem must not break the page that shows jobs)."""
    command = shutil.which("nvidia-smi")
    if command is None:
        return []
    try:
        done = subprocess.run([command, f"--query-gpu={_QUERY}", "--format=csv,noheader,nounits"],
                              capture_output=True, text=True, timeout=NVIDIA_SMI_SECONDS,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return parse_nvidia_smi(done.stdout) if done.returncode == 0 else []
