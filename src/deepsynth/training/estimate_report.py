"""The estimate as the CLI prints it: the peak's parts, every phase, the GPUs it fits, the
step time per GPU."""

from __future__ import annotations

from deepsynth.training.estimate import ALLOCATOR_SLACK, CUDA_CONTEXT, GiB, Estimate

_PART_NAMES = {"weights": "weights", "optimizer_state": "AdamW state",
               "adalora_importance": "AdaLoRA importance", "gradients": "gradients",
               "activations": "activations (saved for backward)",
               "regularizer_copies": "regularizer copies", "transient": "transient"}


def _gib(value: float) -> str:
    return f"{value / GiB:8.2f} GiB"


def format_estimate(result: Estimate) -> str:
    lines = [f"model {result.model} on {result.device}: {result.parameters:,} parameters, "
             f"{result.trainable_parameters:,} trainable",
             f"micro-batch {result.micro_batch} x {result.sequence_tokens} tokens"
             + (f" ({result.pages_per_example} page(s) per example)"
                if result.pages_per_example else ""), "",
             f"peak at {result.peak_phase}:"]
    lines += [f"  {_PART_NAMES.get(k, k):<34}{_gib(v)}" for k, v in result.memory.items() if v]
    lines.append(f"  {'peak (allocated)':<34}{_gib(result.peak_bytes)}")
    if result.device == "cuda":
        lines.append(f"  {'needed on a GPU':<34}{_gib(result.needed_on_gpu)}  (+"
                     f"{ALLOCATOR_SLACK:.0%} allocator slack, +{CUDA_CONTEXT / GiB:.1f} GiB "
                     f"CUDA context)")
        lines.append("fits: " + "  ".join(f"{size} GB {'yes' if ok else 'no'}"
                                         for size, ok in result.fits.items()))
    lines += ["", "phases:"]
    lines += [f"  {name:<34}{_gib(value)}" for name, value in result.phases.items()]
    if result.step_time:
        lines += ["", "step time (order of magnitude; one optimizer step):"]
        lines += [f"  {t['gpu']:<12} ~{t['seconds']:g} s ({t['bound']}-bound)"
                  for t in result.step_time]
    lines += [f"note: {note}" for note in result.notes]
    return "\n".join(lines)
