"""The memory estimator against measured memory of real training steps.

    .venv/bin/python benchmarks/bench_memory_estimate.py            # tiny, 2 and 4 layers, bf16 and fp32
    .venv/bin/python benchmarks/bench_memory_estimate.py --full     # + the full 12 layers
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
import random
import subprocess
import sys
import tempfile
import time
import weakref
from pathlib import Path

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
# glibc keeps freed memory in its heaps (and raises its mmap threshold as large blocks are
# freed), so RSS stays above what is allocated, by as much as the tensors themselves at the
# tiny model's scale. Every block of a page or more mapped on its own goes back to the OS
# when freed: RSS then follows what is allocated, as max_memory_allocated does on a GPU.
RETURN_FREED = {"MALLOC_MMAP_THRESHOLD_": "4096"}
OPTIONS = {"peft": "lora", "lora_preset": "balanced", "batch_size": 1,
           "gradient_accumulation_steps": 1, "max_pages": 1, "max_steps": 10,
           "eval_steps": 1000, "save_steps": 1000}
WORDS = ("market city report council river energy school police weather budget station "
         "museum festival harbour railway library hospital garden").split()


def make_dataset(folder: Path, page_size: str) -> Path:
    """One page per document; summaries far longer than max_length (truncated to it)."""
    rng = random.Random(0)
    corpus = folder / "corpus.jsonl"
    with corpus.open("w") as handle:
        for i in range(8):
            summary = " ".join(f"{rng.choice(WORDS)}{rng.randint(0, 99)}" for _ in range(900))
            handle.write(json.dumps({"id": f"d{i}", "article": " ".join(
                rng.choice(WORDS) for _ in range(12)), "highlights": summary}) + "\n")
    out = folder / f"ds-{page_size}"
    subprocess.run([sys.executable, "-m", "deepsynth", "generate", "--source", str(corpus),
                    "--out", str(out), "--text-field", "article", "--summary-field",
                    "highlights", "--id-field", "id", "--page-size", page_size,
                    "--font-size", "12", "--margin", "8", "--workers", "1"],
                   check=True, capture_output=True)
    return out


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


class LiveTensors:
    """The peak bytes of tensor storages alive at once (what ``max_memory_allocated`` counts
    on a GPU), on the CPU: every storage an op creates is counted until it is freed."""

    def __init__(self, model):
        from torch.utils._python_dispatch import TorchDispatchMode

        tracker = self

        class Mode(TorchDispatchMode):
            def __torch_dispatch__(self, func, types, args=(), kwargs=None):
                out = func(*args, **(kwargs or {}))
                tracker.saw(out)
                return out

        # the weights exist already: counted once here, never again through their views
        tensors = [*model.parameters(), *model.buffers()]
        self.live = {t.untyped_storage().data_ptr(): 0 for t in tensors}
        self.mode = Mode()
        self.now = self.peak = sum(t.untyped_storage().nbytes() for t in tensors)

    def saw(self, out) -> None:
        import torch
        from torch.utils._pytree import tree_flatten

        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            storage = tensor.untyped_storage()
            key = storage.data_ptr()
            if key and key not in self.live:
                self.live[key] = storage.nbytes()
                self.now += storage.nbytes()
                self.peak = max(self.peak, self.now)
                weakref.finalize(storage, self._freed, key)

    def _freed(self, key: int) -> None:
        self.now -= self.live.pop(key, 0)


def _trainer(name: str, dataset: Path, root: Path):
    from deepsynth.config.training import training_config
    from deepsynth.progress import never_stop, no_progress
    from deepsynth.training.loop import Trainer

    model, precision, max_length = CONFIGS[name]
    config = training_config({**OPTIONS, "model": model, "dataset": str(dataset),
                              "mixed_precision": precision, "max_length": max_length,
                              "out": str(root / "runs" / name)})
    return config, Trainer(config, no_progress, never_stop, root, lambda text: None)


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
    trainer._prepare()
    _Steps(trainer).run(1)
    del trainer
    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)


class _Steps:
    """The loop's optimizer steps on the trainer's own batches."""

    def __init__(self, trainer):
        from deepsynth.training.checkpoint import TrainerState

        self.trainer, self.state = trainer, TrainerState()
        self.batches = trainer._batches(self.state)
        trainer.model.train()

    def run(self, count: int) -> list[float]:
        took = []
        for _ in range(count):
            started = time.perf_counter()
            self.trainer._optimizer_step(self.batches, self.state)
            took.append(round(time.perf_counter() - started, 1))
        return took


def _measure(trainer, cuda: bool) -> dict:
    """Load, one step (AdamW's states appear), the measured step (peak RSS, or peak CUDA
    memory), then one more under the live-tensor tracker (kept out of the RSS figure: its
    own bookkeeping is Python objects)."""
    import torch

    before = torch.cuda.memory_allocated() if cuda else _rss()
    trainer._prepare()
    loaded = (torch.cuda.memory_allocated() if cuda else _rss()) - before
    model = [*trainer.model.parameters(), *trainer.model.buffers()]
    tensors = sum(t.untyped_storage().nbytes() for t in {t.untyped_storage().data_ptr(): t
                                                        for t in model}.values())
    steps = _Steps(trainer)
    took = steps.run(1)
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM starts again from VmRSS
    took += steps.run(1)
    peak = (torch.cuda.max_memory_allocated() if cuda else _status("VmHWM")) - before
    live = LiveTensors(trainer.model)
    with live.mode:
        took += steps.run(1)
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
                        "(about 9 GiB of RAM)")
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
    names = args.only or [n for n in CONFIGS if n != "full-bf16" or args.full]
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
