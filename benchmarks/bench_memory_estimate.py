"""The memory estimator against measured memory of real training steps.

    .venv/bin/python benchmarks/bench_memory_estimate.py            # tiny, 2 and 4 layers, bf16 and fp32
    .venv/bin/python benchmarks/bench_memory_estimate.py --full     # + the full 12 layers
    .venv/bin/python benchmarks/bench_memory_estimate.py --only tiny-bf16

Each configuration runs in a fresh process through the trainer itself (``Trainer._prepare``:
the builders of ``training.setup``, accelerate, the data loader; then the loop's
``_optimizer_step`` twice, so the second step has AdamW's states, as every later step does):
LoRA ``balanced``, batch 1, one page per example, summaries long enough to fill
``max_length``, in bf16 and float32 (see ``CONFIGS``). On the CPU it measures the peak RSS of the two steps (``VmHWM``, reset
after loading) minus the RSS before the model was loaded; a warm-up step of the tiny model
in the same process first pays the one-time costs (imports, kernel caches, the data
loader), so the difference is what the configuration allocates. With CUDA it measures
``torch.cuda.max_memory_allocated``. Either is compared with ``deepsynth.training.estimate``
for the same configuration on the same device. Target: within 15 %.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from training_bench import LiveTensors, TrainerSteps, make_dataset, make_trainer

TINY, REAL = "tiny-deepseek-ocr-2", "random:deepseek-ocr-2"
# name: (model, mixed precision, max_length). bf16 at the real width runs at a shorter
# max_length: on a CPU without AVX-512 BF16, PyTorch multiplies bf16 matrices with its
# reference kernel (about 1 GFLOP/s; 46 s for one output-head product at 770 tokens).
CONFIGS = {
    "tiny-bf16": (TINY, "bf16", 512),
    "tiny-fp32": (TINY, "no", 512),
    "layers-2-fp32": (f"{REAL}?layers=2", "no", 512),
    "layers-4-fp32": (f"{REAL}?layers=4", "no", 512),
    "layers-2-bf16": (f"{REAL}?layers=2", "bf16", 64),
    "layers-4-bf16": (f"{REAL}?layers=4", "bf16", 64),
    "full-bf16": (REAL, "bf16", 64),
}
OPTIONS = {"peft": "lora", "lora_preset": "balanced", "batch_size": 1,
           "gradient_accumulation_steps": 1, "max_pages": 1, "max_steps": 10,
           "eval_steps": 1000, "save_steps": 1000}
def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def _trainer(name: str, dataset: Path, root: Path):
    model, precision, max_length = CONFIGS[name]
    return make_trainer({**OPTIONS, "model": model, "dataset": str(dataset),
                         "mixed_precision": precision, "max_length": max_length,
                         "out": str(root / "runs" / name)}, root)


def _steps(steps: TrainerSteps, count: int) -> list[float]:
    took = []
    for _ in range(count):
        started = time.perf_counter()
        steps.step()
        took.append(round(time.perf_counter() - started, 1))
    return took


def child(name: str, dataset: Path, warmup: Path, root: Path, steps: int) -> dict:
    """One configuration in this (fresh) process: warm up, measure, estimate."""
    import torch

    from deepsynth.training.estimate import estimate

    cuda = torch.cuda.is_available()
    _, warm = _trainer("tiny-bf16", warmup, root)
    _steps(TrainerSteps(warm), 1)
    del warm
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    config, trainer = _trainer(name, dataset, root)
    before = torch.cuda.memory_allocated() if cuda else _status("VmRSS")
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from VmRSS
    stepper = TrainerSteps(trainer)  # prepares the trainer
    prepared = (torch.cuda.memory_allocated() if cuda else _status("VmRSS")) - before
    tensors = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    live = LiveTensors(trainer.model)
    with live.mode:
        took = _steps(stepper, steps)
    peak = torch.cuda.max_memory_allocated() if cuda else _status("VmHWM")
    result = estimate(config, "cuda" if cuda else "cpu", gpus=[], root=root)
    measured = peak - before
    return {"config": name, "model": config.task.model, "device": result.device,
            "mixed_precision": config.schedule.mixed_precision,
            "tokens": result.sequence_tokens,
            "measured_mib": round(measured / 2**20), "estimate_mib": round(
                result.peak_bytes / 2**20), "error": round(result.peak_bytes / measured - 1, 3),
            "estimate_phase": result.peak_phase, "step_seconds": took,
            "after_loading_mib": round(prepared / 2**20), "weights_mib": round(tensors / 2**20),
            "live_tensors_peak_mib": round(live.peak / 2**20),
            "live_tensors_error": round(result.peak_bytes / live.peak - 1, 3),
            "estimate_parts_mib": {k: round(v / 2**20) for k, v in result.memory.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also the full-depth model "
                        "(about 9 GiB of RAM)")
    parser.add_argument("--only", choices=tuple(CONFIGS), action="append")
    parser.add_argument("--steps", type=int, default=2, help="optimizer steps measured "
                        "(the second and later have AdamW's states, as the estimate assumes)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        data = Path(args.data)
        dataset = data / ("ds-256x256" if args.child.startswith("tiny") else "ds-base")
        print(json.dumps(child(args.child, dataset, data / "ds-256x256", data / "root",
                               args.steps)))
        return
    names = args.only or [n for n in CONFIGS if n != "full-bf16" or args.full]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        make_dataset(data, "256x256")
        make_dataset(data, "base")
        rows = []
        for name in names:
            done = subprocess.run([sys.executable, __file__, "--child", name, "--data",
                                   str(data), "--steps", str(args.steps)],
                                  capture_output=True, text=True, check=False)
            if done.returncode:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
