"""How much accelerator memory (and roughly how much time) a training config needs, before
anyone rents a GPU: ``deepsynth estimate``, ``POST /api/training/estimate``, the Train page.

The parameters are counted exactly on the model built on the meta device and made trainable
by the trainer's own builder (:mod:`estimate_model`); the activations follow the layers'
shapes (:mod:`estimate_memory`); the step time is an order of magnitude
(:mod:`estimate_time`). The peak is the largest of the step's phases, in the steady state
(from the second optimizer step, when AdamW's states exist):

- the frozen vision tower's forward (nothing kept, but a large transient per page);
- the start of backward (every layer's saved tensors, the loss's vocabulary-sized tensors);
- backward layer by layer (gradients appear as saved tensors are freed);
- the optimizer step (gradients, AdamW's work buffers, regularizers' snapshots).

``device`` "cuda" describes a GPU run (``torch.cuda.max_memory_allocated``); "cpu" a run on
this machine's CPU, whose dropout and attention keep more (the figure to compare with RSS).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from deepsynth.config.training import TrainingConfig
from deepsynth.config.training_checks import lora_dropout_of
from deepsynth.errors import ConfigError, ConfigRefused, DeepSynthError
from deepsynth.training import estimate_memory as mem
from deepsynth.training.estimate_model import ModelFacts, dtype_bytes, model_facts
from deepsynth.training.estimate_time import GPUS, Gpu, custom_gpu, step_times
from deepsynth.training.estimate_work import step_work
from deepsynth.training.setup import uses_4bit

GiB = 2**30
FIT_SIZES_GIB = (16, 24, 40, 48, 80, 141)
CUDA_CONTEXT = int(0.6 * GiB)  # CUDA context, cuBLAS workspace: outside max_memory_allocated
ALLOCATOR_SLACK = 0.10  # the caching allocator's fragmentation over the allocated peak
DEVICES = ("cuda", "cpu")


@dataclass
class Estimate:
    model: str
    device: str
    parameters: int
    trainable_parameters: int
    sequence_tokens: int  # per example: image tokens of every page and max_length text tokens
    micro_batch: int
    pages_per_example: int
    memory: dict[str, int]  # bytes: the parts of the peak (activations: at their largest)
    peak_bytes: int
    peak_phase: str
    phases: dict[str, int]  # bytes of every phase's peak
    fits: dict[str, bool]  # "24": fits a 24 GiB GPU (with the CUDA context and slack)
    step_time: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def needed_on_gpu(self) -> int:
        """What a GPU must have: the allocated peak, the allocator's slack, the context."""
        return int(self.peak_bytes * (1 + ALLOCATOR_SLACK)) + CUDA_CONTEXT

    def to_dict(self) -> dict:
        data = asdict(self)
        data["peak_gib"] = round(self.peak_bytes / GiB, 2)
        data["needed_on_gpu_gib"] = round(self.needed_on_gpu / GiB, 2)
        data["memory_gib"] = {k: round(v / GiB, 3) for k, v in self.memory.items()}
        return data


def numerics(config: TrainingConfig, facts: ModelFacts, device: str) -> mem.Numerics:
    full = config.adapter.peft == "full"
    autocast = config.schedule.mixed_precision != "no"
    weights = dtype_bytes(facts.base_dtype)
    return mem.Numerics(
        compute=2 if autocast or weights == 2 else 4,
        residual=4 if full else weights, weights=weights, autocast=autocast,
        cpu=device == "cpu", lora_dropout=not full and bool(lora_dropout_of(config)),
        hidden_dropout=config.schedule.hidden_dropout > 0,
        attention_dropout=config.schedule.attention_dropout > 0, full=full,
        quantized=uses_4bit(config))


def sequence_tokens(config: TrainingConfig, facts: ModelFacts) -> int:
    """The longest example: BOS, every page's image tokens, then max_length text tokens (the
    collator pads a batch to its longest, so the peak is set by the worst example)."""
    if facts.family == "causal_lm":
        return config.task.max_length
    return 1 + config.task.max_pages * facts.tokens_per_page + config.task.max_length


def estimate(config: TrainingConfig, device: str = "cuda", gpus: list[Gpu] | None = None,
             root: Path | None = None) -> Estimate:
    """The peak memory of ``config``'s steps on ``device`` and its step time on ``gpus``
    (default: every GPU of the table)."""
    if device not in DEVICES:
        raise ConfigError("device", f"must be one of {', '.join(DEVICES)}; got {device!r}",
                          ", ".join(DEVICES))
    if device == "cpu" and uses_4bit(config):
        raise ConfigRefused("peft", "qlora runs on CUDA only (bitsandbytes' 4-bit layers); "
                            "estimate it with device cuda", "lora, dora, adalora or full")
    facts = model_facts(config, root)
    num = numerics(config, facts, device)
    tokens, batch = sequence_tokens(config, facts), config.schedule.batch_size
    phases, notes = _phases(config, facts, num, tokens, batch)
    if facts.quantized:
        notes.append(_quantized_note(facts))
    totals = {name: sum(parts.values()) for name, parts in phases.items()}
    phase = max(totals, key=totals.get)
    result = Estimate(config.task.model, device, facts.parameters, facts.trainable, tokens,
                      batch, config.task.max_pages if facts.family != "causal_lm" else 0,
                      phases[phase], totals[phase], phase, totals, {}, notes=notes)
    result.fits = {str(size): result.needed_on_gpu <= size * GiB for size in FIT_SIZES_GIB}
    work = step_work(config, facts, tokens, batch)
    result.step_time = step_times(work, gpus if gpus is not None else list(GPUS.values()))
    return result


def _phases(config: TrainingConfig, facts: ModelFacts, num: mem.Numerics, tokens: int,
            batch: int) -> tuple[dict[str, dict[str, int]], list[str]]:
    """Each phase's peak, in parts: weights, optimizer state, gradients, activations (saved
    for backward), regularizer copies, transient (freed within the phase)."""
    n = tokens * batch
    schedule, moe = config.schedule, config.moe
    grads = facts.trainable_bytes
    base = {"weights": facts.weight_bytes,
            "optimizer_state": 2 * facts.trainable_bytes}  # AdamW: 2 states per parameter
    notes: list[str] = []
    if config.adapter.peft == "adalora":  # PEFT's rank allocator keeps two averages a weight
        base["adalora_importance"] = 2 * facts.trainable_bytes
    # Accumulation and Bi-Drop's passes run forward with the gradients of earlier ones alive.
    held = grads if schedule.gradient_accumulation_steps > 1 or moe.bidrop_passes > 1 else 0
    tapes = [mem.layer_tape(facts, i, tokens, batch, num) for i in range(facts.layers)]
    head = mem.head_tape(facts, n, num) + _router_outputs(config, facts, n)
    kept = mem.checkpointed_tape(facts, tokens, batch, num) if schedule.gradient_checkpointing \
        else sum(tapes)
    pages = batch * config.task.max_pages if facts.vision else 0
    phases = {
        "vision forward": {**base, "gradients": held,
                           "transient": mem.vision_transient(facts, pages, num)},
        "start of backward": {**base, "gradients": held, "activations": kept + head,
                              "transient": mem.loss_transient(facts, n, num)},
        "decoder backward": {**base, **_backward(facts, tapes, num, n, held,
                                                 schedule.gradient_checkpointing)}}
    snapshot = _expert_snapshot(config, facts)
    if snapshot:
        notes.append("expert dropout: the dropped experts' snapshot is sized for the mean "
                     "count plus three standard deviations")
    agreement = 4 * grads if moe.bidrop_passes > 1 and moe.bidrop_agreement else 0
    adamw = grads if not num.cpu else 2 * facts.largest_trainable  # its temporaries
    phases["optimizer step"] = {**base, "gradients": grads, "regularizer_copies": snapshot,
                                "transient": adamw}
    if agreement:  # after each pass, with the activations freed
        phases["bi-drop agreement"] = {**base, "gradients": grads,
                                       "regularizer_copies": agreement}
    return phases, notes


def _quantized_note(facts: ModelFacts) -> str:
    """QLoRA's real saving: bitsandbytes quantizes linear layers only."""
    rest = facts.weight_bytes - facts.quantized_bytes
    return (f"qlora: {facts.quantized:,} of {facts.parameters:,} weights are 4-bit NF4 "
            f"({facts.quantized_bytes / GiB:.1f} GiB); the others (the routed experts, fused "
            f"3-D tensors and not linear layers, the output head, convolutions, norms) stay "
            f"{facts.base_dtype} ({rest / GiB:.1f} GiB). Computed, not measured: "
            f"bitsandbytes' 4-bit layers need CUDA")


def _backward(facts: ModelFacts, tapes: list[int], num: mem.Numerics, n: int, held: int,
              checkpointing: bool) -> dict[str, int]:
    """Backward from the last layer to the first: each layer frees its saved tensors as its
    gradients appear; with checkpointing one layer's tensors are rebuilt at a time."""
    inputs = n * facts.text["hidden"] * num.residual
    done = facts.head_trainable_bytes
    worst: dict[str, int] = {}
    for index in reversed(range(len(tapes))):
        done += facts.layer_trainable_bytes.get(index, 0)
        if index == 0:
            done += facts.embed_trainable_bytes
        alive = index * inputs + tapes[index] if checkpointing else sum(tapes[:index + 1])
        point = {"gradients": max(held, done), "activations": alive,
                 "transient": 2 * n * facts.text["hidden"] * 4}  # the gradients flowing
        if sum(point.values()) > sum(worst.values()):
            worst = point
    return worst


def _router_outputs(config: TrainingConfig, facts: ModelFacts, n: int) -> int:
    """The router losses keep each MoE layer's logits with their graph (and softmax them)."""
    if not (config.moe.aux_loss_coef or config.moe.z_loss_coef):
        return 0
    return facts.sparse_layers * n * facts.text["experts"] * 4 * 3


def _expert_snapshot(config: TrainingConfig, facts: ModelFacts) -> int:
    """Expert dropout saves the dropped experts' weights and both AdamW moments before the
    step. How many drop is random: the estimate takes the mean plus three standard
    deviations of the count over all MoE layers, at most all but min_keep per layer."""
    rate = config.moe.expert_dropout_rate
    experts = facts.text["experts"]
    if not rate or not facts.expert_trainable or not experts:
        return 0
    slots = facts.sparse_layers * experts
    dropped = rate * slots + 3 * math.sqrt(slots * rate * (1 - rate))
    dropped = min(dropped, facts.sparse_layers * max(experts - config.moe.expert_dropout_min_keep,
                                                     0))
    per_element = dtype_bytes(facts.trainable_dtype)
    return int(3 * per_element * facts.expert_trainable * dropped / slots)


def gpus_for(names: list[str] | None, tflops: float | None = None,
             bandwidth: float | None = None) -> list[Gpu]:
    """The GPUs to time the step on: named ones of the table (default: all), and the user's
    own figures when given."""
    unknown = [n for n in names or () if n not in GPUS]
    if unknown:
        raise ConfigError("gpu", f"no GPU {unknown[0]!r} in the table", ", ".join(GPUS))
    chosen = [GPUS[n] for n in names] if names else list(GPUS.values())
    mine = custom_gpu(tflops, bandwidth)
    return chosen + [mine] if mine else chosen


@dataclass(frozen=True)
class Accelerator:
    """The GPU a service or command trains on: what the submit check compares with."""

    name: str
    memory_bytes: int


def detected_accelerator() -> Accelerator | None:
    """The first CUDA device, or None (no GPU: nothing to warn about)."""
    import torch

    if not torch.cuda.is_available():
        return None
    props = torch.cuda.get_device_properties(0)
    return Accelerator(props.name, int(props.total_memory))


def fit_warnings(config: TrainingConfig, accelerator: Accelerator | None,
                 root: Path | None = None) -> list[str]:
    """Warnings for a submitted config: it will not fit ``accelerator`` (warned, not refused:
    the estimate is an estimate). No accelerator, or a config the estimator cannot build
    (a model without a local config), gives none."""
    if accelerator is None:
        return []
    try:
        result = estimate(config, "cuda", gpus=[], root=root)
    except (DeepSynthError, ValueError, RuntimeError, OSError):
        return []
    if result.needed_on_gpu <= accelerator.memory_bytes:
        return []
    return [f"the memory estimate for this configuration is {result.needed_on_gpu / GiB:.1f} "
            f"GiB (peak {result.peak_bytes / GiB:.1f} GiB at {result.peak_phase}, with the "
            f"CUDA context and allocator slack) and {accelerator.name} has "
            f"{accelerator.memory_bytes / GiB:.1f} GiB: it will probably run out of memory; "
            f"try gradient_checkpointing, a smaller batch_size or max_length, or the "
            f"low_memory preset (deepsynth estimate shows the breakdown)"]
