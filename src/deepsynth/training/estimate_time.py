"""Step time as an order of magnitude: the step's floating-point work and the bytes it moves,
against a GPU's peak bf16 throughput and memory bandwidth.

Nothing here is measured: a step takes at least its work at an assumed share of the peak
(matrix work on a mixture-of-experts decoder at small batches rarely exceeds a third of it)
and at least its memory traffic at an assumed share of the bandwidth. Real steps add the
data loader, kernel launches and Python; read the figure as "about this many seconds, give
or take a factor of two".
"""

from __future__ import annotations

from dataclasses import dataclass

from deepsynth.errors import ConfigError

COMPUTE_EFFICIENCY = 0.35  # share of the peak matrix throughput a training step reaches
BANDWIDTH_EFFICIENCY = 0.7  # share of the peak memory bandwidth


@dataclass(frozen=True)
class Gpu:
    name: str
    memory_gib: float
    tflops: float  # peak dense bf16 (fp16 where the chip has no bf16) tensor TFLOP/s
    bandwidth_gbs: float  # peak memory bandwidth, GB/s


# Vendors' data-sheet figures (dense, no sparsity).
GPUS: dict[str, Gpu] = {g.name: g for g in (
    Gpu("T4", 16, 65, 320),  # no bf16: fp16 tensor cores
    Gpu("A10G", 24, 70, 600),
    Gpu("L4", 24, 121, 300),
    Gpu("RTX-4090", 24, 165, 1008),
    Gpu("A100-40GB", 40, 312, 1555),
    Gpu("L40S", 48, 362, 864),
    Gpu("A100-80GB", 80, 312, 2039),
    Gpu("H100", 80, 989, 3350),
    Gpu("H200", 141, 989, 4800),
)}


@dataclass
class StepWork:
    """What one optimizer step computes and moves, from the memory estimate's model."""

    flops: float
    bytes_moved: float

    def seconds(self, tflops: float, bandwidth_gbs: float) -> dict:
        compute = self.flops / (tflops * 1e12 * COMPUTE_EFFICIENCY)
        memory = self.bytes_moved / (bandwidth_gbs * 1e9 * BANDWIDTH_EFFICIENCY)
        return {"seconds": _round(max(compute, memory)),
                "compute_seconds": _round(compute), "memory_seconds": _round(memory),
                "bound": "compute" if compute >= memory else "memory bandwidth"}


def _round(value: float) -> float:
    return float(f"{value:.2g}")


def custom_gpu(tflops: float | None, bandwidth_gbs: float | None) -> Gpu | None:
    """The user's own figures (--tflops, --bandwidth): both, or neither."""
    if tflops is None and bandwidth_gbs is None:
        return None
    for name, value in (("tflops", tflops), ("bandwidth", bandwidth_gbs)):
        if value is None or not 0 < value <= 1e6:
            raise ConfigError(name, f"must be a number above 0 (with the other of tflops and "
                              f"bandwidth); got {value!r}", "a positive number")
    return Gpu("custom", 0, float(tflops), float(bandwidth_gbs))


def step_times(work: StepWork, gpus: list[Gpu]) -> list[dict]:
    return [{"gpu": g.name, "tflops": g.tflops, "bandwidth_gbs": g.bandwidth_gbs,
             **work.seconds(g.tflops, g.bandwidth_gbs)} for g in gpus]
