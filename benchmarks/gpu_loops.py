"""The measured loops of ``bench_gpu.py``: DeepSynth's trainer and a minimal hand-written
PyTorch loop, on the same model, batches and device, timed and measured the same way.

Both run warm-up steps first (excluded from the timing), then timed steps until ``steps``
are done or ``run_seconds`` have passed (at least one), between ``torch.cuda.synchronize``
calls. Peak memory is what the run allocates above what was allocated before its model
loaded: ``torch.cuda.max_memory_allocated`` on a GPU (reset before the warm-up, so loading
is not counted; timed steps are); on the CPU, which keeps no allocator statistics, the peak
of live tensor storages during the warm-up steps (``LiveTensors``, what the CUDA figure
counts; the timed steps run without its tracking, which would slow them).

A CUDA out-of-memory error is a result ("did not fit", with the peak reached and the
device's memory), not a crash; any other error is reported as "failed" with its message,
so one broken configuration does not lose a GPU session's other figures.
"""

from __future__ import annotations

import gc
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import torch
from training_bench import LiveTensors, TrainerSteps, make_trainer

MiB = 2**20


@dataclass
class Bench:
    """What every run of one benchmark shares."""

    device: torch.device
    root: Path  # the data root (the tokenizer cache; run folders, never written)
    warmup: int
    steps: int
    run_seconds: float  # timed steps stop after this long (at least one runs)
    deadline: float  # time.perf_counter() value after which no run starts
    budget: float  # the whole benchmark's seconds (for the skip reason)


def free(device: torch.device) -> None:
    """The previous run's tensors released before the next one measures. Only on a GPU: a
    full collection costs most of a second with transformers loaded, and the CPU's figure
    (live storages) does not count what waits for the collector."""
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Memory:
    """A run's peak allocation above what was allocated before its model loaded."""

    def __init__(self, device: torch.device):
        free(device)
        self.device = device
        self.cuda = device.type == "cuda"
        self.base = torch.cuda.memory_allocated(device) if self.cuda else 0
        self.live: LiveTensors | None = None

    def warm_up(self, model, run) -> None:
        if self.cuda:
            free(self.device)  # what an earlier run at another batch size left
            torch.cuda.reset_peak_memory_stats()
            run()
            return
        self.live = LiveTensors(model)
        with self.live.mode:
            run()

    def before(self) -> dict:
        """What was allocated before the model loaded (a leak of earlier runs shows here)."""
        return {"allocated_before_mib": round(self.base / MiB, 1)} if self.cuda else {}

    def peak(self) -> int:
        if self.cuda:
            return torch.cuda.max_memory_allocated() - self.base
        return self.live.peak if self.live else 0


def measure(step, model, bench: Bench, memory: Memory) -> dict:
    """Warm-up steps, then timed ones; ``step()`` does one optimizer step and returns the
    tokens it trained on (attention-mask tokens: image and text)."""
    memory.warm_up(model, lambda: [step() for _ in range(bench.warmup)])
    sync(bench.device)
    count = tokens = 0
    started = time.perf_counter()
    while count < bench.steps and (not count or time.perf_counter() - started
                                   < bench.run_seconds):
        tokens += step()
        count += 1
    sync(bench.device)
    seconds = time.perf_counter() - started
    return {"status": "ok", "warmup_steps": bench.warmup, "timed_steps": count,
            "timed_seconds": round(seconds, 3),
            "steps_per_second": round(count / seconds, 4),
            "tokens_per_second": round(tokens / seconds, 1),
            "tokens_per_step": tokens // count,
            "peak_memory_mib": round(memory.peak() / MiB, 1), **memory.before()}


def guarded(run, memory: Memory, bench: Bench) -> dict:
    """``run()``'s result; past the deadline a skip, a CUDA OOM "did not fit", any other
    error "failed" (with its traceback on stderr)."""
    if time.perf_counter() > bench.deadline:
        return {"status": "skipped", "reason": f"the benchmark's time budget "
                f"(--budget {bench.budget:g} s) was spent before this run"}
    try:
        return run()
    except torch.OutOfMemoryError as exc:
        total = torch.cuda.get_device_properties(bench.device).total_memory
        return {"status": "did not fit", "peak_memory_mib": round(memory.peak() / MiB, 1),
                "device_memory_mib": round(total / MiB), **memory.before(),
                "error": str(exc).splitlines()[0]}
    except Exception as exc:  # noqa: BLE001 - reported in the JSON, the run goes on
        traceback.print_exc(file=sys.stderr)
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]}


def trainer_run(options: dict, bench: Bench) -> dict:
    """DeepSynth's Trainer: prepared (loading included), then its optimizer steps."""
    memory = Memory(bench.device)

    def run() -> dict:
        started = time.perf_counter()
        _, trainer = make_trainer(options, bench.root)
        steps = TrainerSteps(trainer)
        loading = time.perf_counter() - started
        result = measure(lambda: steps.step()["tokens"], trainer.model, bench, memory)
        return {**result, "load_seconds": round(loading, 2)}

    return guarded(run, memory, bench)


def batches(data, config, pad_token_id: int):
    """The trainer's batches in the trainer's order (its sampler, its seed), forever."""
    from deepsynth.training.data import Collator
    from deepsynth.training.loop import EpochOrder

    order = EpochOrder(len(data), config.schedule.seed)
    loader = torch.utils.data.DataLoader(data, batch_size=config.schedule.batch_size,
                                         sampler=order, collate_fn=Collator(pad_token_id))
    epoch = 0
    while True:
        order.set_epoch(epoch)
        epoch += 1
        yield from loader


def hand_step(model, optimizer, source, passes: int, device: torch.device,
              autocast: torch.dtype | None) -> int:
    """Forward, loss, backward (``passes`` times: Bi-Drop's work, without its bookkeeping),
    AdamW step: all a training step needs, and nothing else."""
    from deepsynth.training.data import pixel_values

    batch = next(source)
    tokens = int(batch["attention_mask"].sum())  # on the CPU: no synchronization
    inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "labels")}
    pixels = pixel_values(batch["pages"].to(device), next(model.parameters()).dtype)
    for _ in range(passes):
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            loss = model(**inputs, pixel_values=pixels).loss
        (loss / passes).backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return tokens


def hand_written_runs(configs: dict, bench: Bench) -> dict:
    """The hand-written loop at each batch size of ``configs`` (batch: TrainingConfig), on one
    model loaded and made trainable by DeepSynth's builders (the same weights, dtypes and
    trainable parameters as the trainer's), each batch size with its own AdamW."""
    memory = Memory(bench.device)
    loaded = {}

    def load() -> dict:
        from deepsynth.training import setup

        config = next(iter(configs.values()))
        started = time.perf_counter()
        loaded["base"] = base = setup.load_base_model(config, bench.root)
        model = setup.make_trainable(base, config, config.schedule.max_steps)
        if next(model.parameters()).device.type != bench.device.type:  # 4-bit: placed already
            model = model.to(bench.device)
        loaded["model"] = model.train()
        return {"load_seconds": round(time.perf_counter() - started, 2)}

    loading = guarded(load, memory, bench)
    if "model" not in loaded:
        return {batch: loading for batch in configs}
    results = {}
    for batch, config in configs.items():
        results[batch] = guarded(lambda c=config: {**_hand_run(loaded, c, bench, memory),
                                                   **loading}, memory, bench)
    return results


def _hand_run(loaded: dict, config, bench: Bench, memory: Memory) -> dict:
    from deepsynth.training import setup

    base, model = loaded["base"], loaded["model"]
    source = batches(setup.build_data(config, base).train, config, base.tokenizer.pad_token_id)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=config.schedule.learning_rate)
    passes = config.moe.bidrop_passes
    autocast = setup.HALF_PRECISION.get(config.schedule.mixed_precision)
    try:
        result = measure(lambda: hand_step(model, optimizer, source, passes, bench.device,
                                           autocast), model, bench, memory)
    finally:
        model.zero_grad(set_to_none=True)  # the next batch size starts from the weights alone
    return {**result, "passes": passes}
