"""DeepSeek-OCR-2 at full size on one GPU: DeepSynth's trainer against a hand-written loop and
against the estimator, for five training configurations.

    .venv/bin/python benchmarks/bench_gpu.py > bench_gpu.json       # a CUDA machine, offline
    .venv/bin/python benchmarks/bench_gpu.py --tiny                 # the same, tiny, on a CPU

``random:deepseek-ocr-2`` (3,389,119,360 parameters, random weights) is built once through
``load_model`` in bfloat16 and saved as a model folder that every configuration then loads
through the same ``load_model`` (QLoRA quantizes weights as they load, so it needs weights on
disk; the others load the same numbers). For each configuration (``CONFIGS``: LoRA
``balanced``; ``high_capacity_moe`` with expert and gate gradient dropout; Bi-Drop with 2
passes; QLoRA; full fine-tuning) at batch 1 and 4, one 1024 px page and a 128-token summary
per example, bf16 autocast:

- ``deepsynth``: the project's Trainer (``Trainer._prepare``, then the loop's
  ``_optimizer_step``, as ``bench_memory_estimate.py`` drives it);
- ``hand_written``: forward, loss, backward, AdamW step on the same model (DeepSynth's
  builders load it and choose its trainable parameters) and the same batches (gpu_loops.py);
- ``estimate``: ``deepsynth.training.estimate`` for the same config on CUDA, the step time
  for the GPU of its table that this one is (H100 when none matches);

with steps/s, tokens/s (attention-mask tokens: the page's image tokens and the text) and peak
memory, and their ratios. A configuration that does not fit is reported "did not fit" with the
peak it reached. Runs that would start after ``--budget`` seconds are reported skipped, which
is meant to keep the whole benchmark under 8 minutes on an H100-class GPU (sized, not yet
measured there). Progress goes to stderr; one JSON document to stdout.

``--tiny``: the tiny model, 256 px pages, 16-token summaries, batch 1 and 2, float32, one
warm-up and one timed step, on the CPU (or the GPU, when there is one); QLoRA is skipped
there with the project's own reason.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a GPU machine without network: never wait on it

import torch
from gpu_loops import Bench, MiB, hand_written_runs, trainer_run
from training_bench import make_dataset

CONFIGS: dict[str, dict] = {
    "lora_balanced": {"peft": "lora", "lora_preset": "balanced"},
    "high_capacity_moe_expert_gate_dropout": {
        "peft": "lora", "lora_preset": "high_capacity_moe", "expert_dropout_rate": 0.2,
        "gate_dropout_rate": 0.1},
    "bidrop_2_passes": {"peft": "lora", "lora_preset": "balanced", "bidrop_passes": 2,
                        "hidden_dropout": 0.1},
    "qlora": {"peft": "qlora", "lora_preset": "balanced"},
    "full_fine_tuning": {"peft": "full"},
}
COMMON = {"gradient_accumulation_steps": 1, "max_pages": 1,
          "learning_rate": 1e-4, "max_steps": 1000, "eval_steps": 100_000,
          "save_steps": 100_000}
# model, page size, summary tokens, batch sizes, mixed precision, warm-up steps, timed
# steps, seconds of timed steps per run, budget of the whole run in seconds. The tiny run
# computes in float32: a CPU without AVX-512 BF16 multiplies bf16 matrices with PyTorch's
# slow reference kernel.
SIZES = {
    "full": ("random:deepseek-ocr-2", "base", 128, (1, 4), "bf16", 2, 6, 10.0, 420.0),
    "tiny": ("tiny-deepseek-ocr-2", "256x256", 16, (1, 2), "no", 1, 1, 2.0, 300.0),
}


def log(bench_started: float, text: str) -> None:
    print(f"[{time.perf_counter() - bench_started:7.1f} s] {text}", file=sys.stderr, flush=True)


def materialize(spec: str, folder: Path, root: Path) -> Path:
    """``spec`` built by ``load_model`` in bfloat16 and saved as a model folder (with its
    tokenizer and DeepSynth's model info, labeled randomly initialized)."""
    from deepsynth.models.model_info import write_info
    from deepsynth.models.registry import load_model

    loaded = load_model(spec, root=root, dtype=torch.bfloat16)
    loaded.model.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    write_info(folder, {"family": loaded.family, "image_size": loaded.image_size,
                        "randomly_initialized": True, "built_from": spec})
    return folder


def text_tokens(folder: Path, summary_tokens: int) -> int:
    """``max_length`` for summaries of exactly ``summary_tokens`` tokens: the prompt, the
    summary and EOS (the encoder truncates the summary to what is left)."""
    from transformers import AutoTokenizer

    from deepsynth.config.training_presets import DEFAULT_PROMPT
    from deepsynth.training.data import ExampleEncoder

    tokenizer = AutoTokenizer.from_pretrained(folder)
    prompt = ExampleEncoder(tokenizer, 0, 0, DEFAULT_PROMPT, 10**6).prompt_ids
    return len(prompt) + summary_tokens + 1


def table_gpu(device: torch.device):
    """The estimator's GPU that ``device`` is (by name, then by memory), or its H100 row as
    the reference when none matches (a CPU, an unlisted GPU)."""
    from deepsynth.training.estimate_time import GPUS

    if device.type != "cuda":
        return GPUS["H100"], False
    props = torch.cuda.get_device_properties(device)
    words = set(re.split(r"[^A-Z0-9]+", props.name.upper()))
    found = [g for g in GPUS.values() if set(g.name.upper().split("-")) <= words]
    if not found:
        return GPUS["H100"], False
    return min(found, key=lambda g: abs(g.memory_gib * 2**30 - props.total_memory)), True


def estimated(config, device: torch.device, root: Path) -> dict:
    """The estimator's figures for ``config`` on this kind of device (a failure of the
    estimator is reported, the measurements kept)."""
    from deepsynth.training.estimate import estimate

    gpu, matched = table_gpu(device)
    try:
        result = estimate(config, "cuda" if device.type == "cuda" else "cpu", gpus=[gpu],
                          root=root)
    except Exception as exc:  # noqa: BLE001 - in the JSON: a finding about the estimator
        traceback.print_exc(file=sys.stderr)
        return {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:500]}
    seconds = result.step_time[0]["seconds"]
    tokens = result.sequence_tokens * result.micro_batch
    return {"status": "ok", "device": result.device, "gpu": gpu.name, "gpu_is_this_device": matched,
            "parameters": result.parameters,
            "trainable_parameters": result.trainable_parameters,
            "peak_memory_mib": round(result.peak_bytes / MiB, 1),
            "peak_phase": result.peak_phase,
            "needed_on_gpu_mib": round(result.needed_on_gpu / MiB, 1),
            "step_seconds": seconds, "steps_per_second": round(1 / seconds, 4),
            "tokens_per_step": tokens, "tokens_per_second": round(tokens / seconds, 1)}


def _ratio(a, b):
    return round(a / b, 3) if isinstance(a, int | float) and isinstance(b, int | float) \
        and b > 0 else None


def compare(ours: dict, hand: dict, estimate: dict) -> dict:
    """Each figure three ways, with DeepSynth's over the hand-written loop's and over the
    estimate's (speed only where the estimate's GPU is this device)."""
    rows = {}
    for key in ("steps_per_second", "tokens_per_second", "peak_memory_mib"):
        row = {"deepsynth": ours.get(key), "hand_written": hand.get(key),
               "estimate": estimate.get(key)}
        row["deepsynth_over_hand_written"] = _ratio(row["deepsynth"], row["hand_written"])
        comparable = key == "peak_memory_mib" or estimate.get("gpu_is_this_device")
        row["deepsynth_over_estimate"] = _ratio(row["deepsynth"], row["estimate"]) \
            if comparable else None
        rows[key] = row
    return rows


def missing_package(config) -> str | None:
    """What the configuration needs that this machine lacks, beyond what the config check
    refuses (it refuses QLoRA without CUDA, not without bitsandbytes)."""
    import importlib.util

    from deepsynth.training.setup import uses_4bit

    if uses_4bit(config) and importlib.util.find_spec("bitsandbytes") is None:
        return "qlora needs bitsandbytes (pip install bitsandbytes), which is not installed"
    return None


def run_configuration(name: str, options: dict, base: dict, batch_sizes, bench: Bench,
                      started: float) -> dict:
    """One configuration at each batch size: DeepSynth, the hand-written loop, the estimate."""
    from deepsynth.config.training import training_config
    from deepsynth.errors import ConfigError

    runs = {b: {**base, **options, "batch_size": b, "out": str(bench.root / "runs" / name)}
            for b in batch_sizes}
    try:
        configs = {b: training_config(o) for b, o in runs.items()}
    except ConfigError as exc:  # what `deepsynth train` would refuse here: the reason
        return {"options": options, "skipped": str(exc), "field": exc.field}
    reason = missing_package(next(iter(configs.values())))
    if reason:
        return {"options": options, "skipped": reason}
    result: dict = {"options": options}
    ours = {}
    for batch in batch_sizes:
        ours[batch] = trainer_run(runs[batch], bench)
        log(started, f"{name} batch {batch} deepsynth: {_brief(ours[batch])}")
    hands = hand_written_runs(configs, bench)
    for batch in batch_sizes:
        log(started, f"{name} batch {batch} hand-written: {_brief(hands[batch])}")
        estimate = estimated(configs[batch], bench.device, bench.root)
        result[f"batch_{batch}"] = {"deepsynth": ours[batch], "hand_written": hands[batch],
                                    "estimate": estimate,
                                    "compare": compare(ours[batch], hands[batch], estimate)}
    return result


def _brief(run: dict) -> str:
    if run.get("status") != "ok":
        return f"{run.get('status')} ({run.get('reason') or run.get('error', '')})"
    return (f"{run['steps_per_second']} steps/s, {run['tokens_per_second']} tokens/s, "
            f"peak {run['peak_memory_mib']} MiB")


def environment(device: torch.device) -> dict:
    import transformers

    info = {"device": "cpu", "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "torch_threads": torch.get_num_threads()}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(device=props.name, device_memory_mib=round(props.total_memory / MiB),
                    cuda=torch.version.cuda)
    return info


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny model on the CPU: the "
                        "whole script in well under a minute")
    parser.add_argument("--model", help="the model to build (default random:deepseek-ocr-2; "
                        "random:deepseek-ocr-2?layers=4 for a quicker run; tiny with --tiny)")
    parser.add_argument("--only", choices=tuple(CONFIGS), action="append",
                        help="only these configurations (repeatable)")
    parser.add_argument("--budget", type=float, help="seconds after which no run starts "
                        "(default 420; 300 with --tiny)")
    parser.add_argument("--steps", type=int, help="timed steps per run (default 6; 2)")
    parser.add_argument("--run-seconds", type=float, help="timed seconds per run at most "
                        "(default 10; 2)")
    return parser.parse_args()


def benchmark(args: argparse.Namespace, work: Path) -> dict:
    started = time.perf_counter()
    size = "tiny" if args.tiny else "full"
    spec, page, summary, batch_sizes, precision, warmup, steps, seconds, budget = SIZES[size]
    spec, budget = args.model or spec, args.budget or budget
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if args.tiny and device.type == "cpu":
        # The tiny model's ops are too small to split, and on shared cores OpenMP's waiting
        # threads cost more than they give (3-5x slower steps on 2 busy cores).
        torch.set_num_threads(1)
    bench = Bench(device, work / "root", warmup, args.steps or steps,
                  args.run_seconds or seconds, started + budget, budget)
    log(started, f"rendering the dataset ({page} pages) and building {spec}")
    dataset = make_dataset(work, page)
    folder = materialize(spec, work / "model", bench.root)
    max_length = text_tokens(folder, summary)
    log(started, f"model folder ready; max_length {max_length}")
    base = {**COMMON, "model": str(folder), "dataset": str(dataset), "max_length": max_length,
            "mixed_precision": precision}
    configurations = {}
    for name in args.only or CONFIGS:
        configurations[name] = run_configuration(name, CONFIGS[name], base, batch_sizes,
                                                 bench, started)
    return {"benchmark": "bench_gpu", "size": size, "model": spec,
            **environment(device), "page": page, "summary_tokens": summary,
            "max_length": max_length, "batch_sizes": list(batch_sizes),
            "mixed_precision": precision, "warmup_steps_excluded": warmup,
            "timed_steps": bench.steps, "run_seconds": bench.run_seconds, "budget": budget,
            "peak_memory": "torch.cuda.max_memory_allocated above the allocation before "
            "loading" if device.type == "cuda" else "live tensor storages at their peak in "
            "the warm-up steps (the CPU keeps no allocator statistics)",
            "tokens": "attention-mask tokens per step: BOS, the page's image tokens, prompt, "
            "summary, EOS, for every example of the batch",
            "configurations": configurations,
            "total_seconds": round(time.perf_counter() - started, 1)}


def main() -> None:
    args = parse_args()
    out = sys.stdout
    with tempfile.TemporaryDirectory(prefix="bench-gpu-") as tmp, \
            contextlib.redirect_stdout(sys.stderr):  # whatever a library prints: not the JSON
        report = benchmark(args, Path(tmp))
    print(json.dumps(report, indent=2), file=out, flush=True)


if __name__ == "__main__":
    main()
