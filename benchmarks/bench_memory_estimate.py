"""The memory estimator against measured memory of real training steps.

    .venv/bin/python benchmarks/bench_memory_estimate.py            # tiny, 2 and 4 layers, bf16 and fp32
    .venv/bin/python benchmarks/bench_memory_estimate.py --full     # + the full 12 layers
    .venv/bin/python benchmarks/bench_memory_estimate.py --only full-fp32   # ~17 GiB of RAM
    .venv/bin/python benchmarks/bench_memory_estimate.py --only tiny-bf16 --glibc-defaults

Each configuration runs in a fresh process through the trainer itself (``Trainer._prepare``:
the builders of ``training.setup``, accelerate, the data loader; then the loop's
``_optimizer_step``): LoRA ``balanced``, batch 1, one page per example, summaries long
enough to fill ``max_length``, in bf16 and float32 (see ``CONFIGS``). First a warm-up step
of the tiny model in the same precision, freed, pays the one-time costs (imports, kernel
caches, the data loader's first batch). Then the configuration loads, takes one step
(AdamW's states appear, as in every later step) and the next step is measured: on the CPU
its peak RSS (``VmHWM``, reset before the step) minus the RSS before loading, less what
loading added besides the model's tensors (the tokenizer, the data reader, module objects,
a weights file left mapped: the process's, not the step's; reported). The child runs with
glibc's mmap threshold at one page, so freed memory goes back to the OS and RSS follows
what is allocated (``--glibc-defaults``: as glibc comes; its kept memory is reported as the
difference). A third step under a tracker counts the tensor storages alive at once
(``live_tensors_peak_mib``, what ``max_memory_allocated`` counts on a GPU). With CUDA it
measures ``torch.cuda.max_memory_allocated``. Either is compared with
``deepsynth.training.estimate`` for the same configuration on the same device. Target:
within 15 %.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
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
    "full-fp32": (REAL, "no", 256),
    "full-bf16": (REAL, "bf16", 64),
}
# glibc keeps freed memory in its heaps (and raises its mmap threshold as large blocks are
# freed), so RSS stays above what is allocated, by as much as the tensors themselves at the
# tiny model's scale. Every block of a page or more mapped on its own goes back to the OS
# when freed: RSS then follows what is allocated, as max_memory_allocated does on a GPU.
RETURN_FREED = {"MALLOC_MMAP_THRESHOLD_": "4096"}
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


def mib(value: float) -> int:
    return round(value / 2**20)


def _rss() -> int:
    return _status("VmRSS")


def _warm_up(name: str, data: Path, root: Path) -> None:
    """One step of the tiny model in the measured configuration's precision, in this
    process, then freed: it pays the one-time costs (imports, kernel and primitive caches,
    the data loader's first batch) so that the measured configuration does not."""
    warm = "tiny-bf16" if CONFIGS[name][1] == "bf16" else "tiny-fp32"
    _, trainer = _trainer(warm, data / "ds-256x256", root)
    _steps(TrainerSteps(trainer), 1)
    del trainer
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


def _steps(steps: TrainerSteps, count: int) -> list[float]:
    took = []
    for _ in range(count):
        started = time.perf_counter()
        steps.step()
        took.append(round(time.perf_counter() - started, 1))
    return took


def _measure(trainer, cuda: bool) -> dict:
    """Load, one step (AdamW's states appear), the measured step (peak RSS, or peak CUDA
    memory), then one more under the live-tensor tracker (kept out of the RSS figure: its
    own bookkeeping is Python objects)."""
    import torch

    before = torch.cuda.memory_allocated() if cuda else _rss()
    steps = TrainerSteps(trainer)  # prepares the trainer
    loaded = (torch.cuda.memory_allocated() if cuda else _rss()) - before
    model = [*trainer.model.parameters(), *trainer.model.buffers()]
    tensors = sum(t.untyped_storage().nbytes() for t in {t.untyped_storage().data_ptr(): t
                                                        for t in model}.values())
    took = _steps(steps, 1)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from VmRSS
    took += _steps(steps, 1)
    peak = (torch.cuda.max_memory_allocated() if cuda else _status("VmHWM")) - before
    live = LiveTensors(trainer.model)
    with live.mode:
        took += _steps(steps, 1)
    return {"peak": peak, "loaded": loaded, "tensors": tensors, "live": live.peak,
            "took": took}


def child(name: str, dataset: Path, data: Path, root: Path) -> dict:
    """One configuration in this (fresh) process: warm up, measure, estimate."""
    import torch

    from deepsynth.training.estimate import estimate

    cuda = torch.cuda.is_available()
    _warm_up(name, data, root)
    config, trainer = _trainer(name, dataset, root)
    got = _measure(trainer, cuda)
    result = estimate(config, "cuda" if cuda else "cpu", gpus=[], root=root)
    # What loading adds besides the model's tensors (the tokenizer, the data reader, module
    # objects, a weights file left mapped) is the process's, not the step's: left out.
    measured = got["peak"] - (got["loaded"] - got["tensors"])
    return {"config": name, "model": config.task.model, "device": result.device,
            "mixed_precision": config.schedule.mixed_precision,
            "tokens": result.sequence_tokens, "malloc": os.environ.get(
                "MALLOC_MMAP_THRESHOLD_", "glibc defaults"),
            "estimate_mib": mib(result.peak_bytes), "measured_mib": mib(measured),
            "error": round(result.peak_bytes / measured - 1, 3),
            "peak_minus_before_mib": mib(got["peak"]),
            "error_against_peak_minus_before": round(result.peak_bytes / got["peak"] - 1, 3),
            "loading_outside_tensors_mib": mib(got["loaded"] - got["tensors"]),
            "model_tensors_mib": mib(got["tensors"]), "live_tensors_peak_mib": mib(got["live"]),
            "live_tensors_error": round(result.peak_bytes / got["live"] - 1, 3),
            "estimate_phase": result.peak_phase, "step_seconds": got["took"],
            "estimate_parts_mib": {k: mib(v) for k, v in result.memory.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also the full-depth model "
                        "(about 9 GiB of RAM in bf16, 17 in float32)")
    parser.add_argument("--only", choices=tuple(CONFIGS), action="append")
    parser.add_argument("--glibc-defaults", action="store_true", help="leave glibc's "
                        "allocator as it is (it keeps freed memory: RSS above what is "
                        "allocated)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        data = Path(args.data)
        dataset = data / ("ds-256x256" if args.child.startswith("tiny") else "ds-base")
        print(json.dumps(child(args.child, dataset, data, data / "root")))
        return
    names = args.only or [n for n in CONFIGS if not n.startswith("full") or args.full]
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        make_dataset(data, "256x256")
        make_dataset(data, "base")
        rows = []
        for name in names:
            env = dict(os.environ) if args.glibc_defaults else {**os.environ, **RETURN_FREED}
            done = subprocess.run([sys.executable, __file__, "--child", name, "--data",
                                   str(data)], capture_output=True, text=True, check=False,
                                  env=env)
            if done.returncode:
                raise SystemExit(f"{name} failed:\n{done.stderr[-3000:]}")
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
