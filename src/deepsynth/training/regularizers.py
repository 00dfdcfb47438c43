"""MoE regularizers: each one a :class:`~deepsynth.training.hooks.StepHook` and a descriptor.

The hooks act on the parameters actually being trained (fused expert tensors, or their LoRA
slices). :data:`REGULARIZERS` drives both building them from the config
(``setup.build_hooks``) and the config's refusals (``config.training_checks``). Adding a
regularizer: a hook class here, its field in ``MoeConfig``, its entry in REGULARIZERS.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from deepsynth.config.training import EXPERTS, ROUTER, MoeConfig, TrainingConfig
from deepsynth.config.training_checks import lora_dropout_of
from deepsynth.errors import ConfigError
from deepsynth.training.hooks import NullHook, StepHook
from deepsynth.training.moe import ExpertSlices, RouterMonitor, expert_slices, router_parameters


def drop_choice(rng: random.Random, experts: int, rate: float, min_keep: int) -> list[int]:
    """Which experts drop: each with probability ``rate``, keeping at least ``min_keep``."""
    dropped = [e for e in range(experts) if rng.random() < rate]
    keep_at_least = min(min_keep, experts)
    while experts - len(dropped) < keep_at_least:
        dropped.remove(rng.choice(dropped))
    return sorted(dropped)


class ExpertGradientDropout(NullHook):
    """Per optimizer step and MoE layer, whole routed experts' gradients are dropped.

    Zeroing a gradient is not enough: AdamW's momentum and weight decay would still move the
    expert. The dropped slices of the weights and of the optimizer's moments are saved before
    the step and put back after it, so a dropped expert does not move at all that step.
    """

    name = "expert_dropout"

    def __init__(self, layers: list[ExpertSlices], rate: float, min_keep: int, seed: int):
        self.layers, self.rate, self.min_keep = layers, rate, min_keep
        self.rng = random.Random(seed)
        self.last_dropped: dict[str, list[int]] = {}
        self._saved: list[tuple[torch.Tensor, tuple, torch.Tensor, dict]] = []

    def before_optimizer_step(self, optimizer):
        self._saved = []
        self.last_dropped = {}
        for layer in self.layers:
            dropped = drop_choice(self.rng, layer.num_experts, self.rate, self.min_keep)
            self.last_dropped[layer.layer] = dropped
            for e in dropped:
                for parameter, index in layer.slices[e]:
                    if parameter.grad is not None:
                        parameter.grad[index] = 0
                    state = optimizer.state.get(parameter, {})
                    moments = {k: v[index].clone() for k, v in state.items()
                               if torch.is_tensor(v) and v.shape == parameter.shape}
                    self._saved.append((parameter, index, parameter.data[index].clone(), moments))

    def after_optimizer_step(self, optimizer):
        with torch.no_grad():
            for parameter, index, weights, moments in self._saved:
                parameter.data[index] = weights
                state = optimizer.state.get(parameter, {})
                for key, value in moments.items():
                    state[key][index] = value
        self._saved = []

    def state_dict(self) -> dict:
        return {"rng": self.rng.getstate()}

    def load_state_dict(self, state: dict) -> None:
        if "rng" in state:
            self.rng.setstate(_as_tuple(state["rng"]))


def _as_tuple(value):
    """random.Random's state is nested tuples; a serialized one may come back as lists."""
    return tuple(_as_tuple(v) for v in value) if isinstance(value, list) else value


class GateGradientDropout(NullHook):
    """Masks entries of the router's gradients (only the router: not the MLPs' gate_proj),
    rescaled by 1/(1-rate) so the expected gradient is unchanged."""

    name = "gate_dropout"

    def __init__(self, parameters: list[torch.nn.Parameter], rate: float, seed: int):
        self.parameters, self.rate = parameters, rate
        self.generator = torch.Generator().manual_seed(seed)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if "generator" in state:
            self.generator.set_state(state["generator"])

    def before_optimizer_step(self, optimizer):
        for parameter in self.parameters:
            if parameter.grad is None:
                continue
            keep = torch.rand(parameter.grad.shape, generator=self.generator) >= self.rate
            parameter.grad.mul_(keep.to(parameter.grad.device, parameter.grad.dtype)
                                / (1.0 - self.rate))


class RouterLosses(NullHook):
    """Load-balancing loss (Switch Transformer: E * sum_e f_e * p_e) and router z-loss (ST-MoE:
    mean of logsumexp(logits)^2) over the real (unpadded) tokens of each MoE layer."""

    name = "router_losses"
    wants_router_outputs = True  # the monitor keeps each forward's router logits for it

    def __init__(self, monitor: RouterMonitor, balance_coef: float, z_coef: float):
        self.monitor, self.balance_coef, self.z_coef = monitor, balance_coef, z_coef

    def extra_loss(self, token_mask):
        total = None
        for logits, indices in self.monitor.take_outputs():
            keep = token_mask.reshape(-1).bool() if token_mask is not None else slice(None)
            logits, indices = logits[keep], indices[keep]
            experts = logits.shape[-1]
            probs = logits.float().softmax(-1)
            share = torch.bincount(indices.flatten(), minlength=experts).float()
            share = share / share.sum().clamp_min(1)
            term = self.balance_coef * experts * (share * probs.mean(0)).sum()
            term = term + self.z_coef * torch.logsumexp(logits.float(), -1).pow(2).mean()
            total = term if total is None else total + term
        return total


class BiDrop(NullHook):
    """Several forward/backward passes per batch with different dropout masks.

    Gradients of the passes are averaged (each pass's loss is divided by the pass count).
    With ``agreement``, only gradient entries whose sign agrees across all passes are kept
    (the Bi-Drop paper's parameter selection); the others are zeroed in this batch's
    contribution (what earlier micro-batches accumulated is left alone).
    """

    name = "bidrop"
    in_positional_checkpoints = False  # Bi-Drop was not a hook before hooks had names

    def __init__(self, passes: int, agreement: bool, parameters: list[torch.nn.Parameter]):
        self.passes, self.agreement, self.parameters = passes, agreement, parameters
        self._start: list[torch.Tensor | None] = []
        self._previous: list[torch.Tensor | None] = []
        self._signs: list[torch.Tensor | None] = []

    def _grads(self) -> list[torch.Tensor | None]:
        return [None if p.grad is None else p.grad.detach().clone() for p in self.parameters]

    def start_batch(self) -> None:
        if self.agreement:
            self._start = self._grads()
            self._previous = list(self._start)
            self._signs = [None] * len(self.parameters)

    def pass_done(self) -> None:
        """After each backward pass: fold the sign of this pass's own gradient in."""
        if not self.agreement:
            return
        current = self._grads()
        for i, grad in enumerate(current):
            if grad is None:
                continue
            before = self._previous[i]
            sign = torch.sign(grad - before if before is not None else grad)
            agreed = self._signs[i]
            self._signs[i] = sign if agreed is None else torch.where(
                agreed == sign, sign, torch.zeros_like(sign))
        self._previous = current

    def finish_batch(self) -> None:
        if not self.agreement:
            return
        with torch.no_grad():
            for p, start, sign in zip(self.parameters, self._start, self._signs, strict=True):
                if p.grad is None or sign is None:
                    continue
                base = start if start is not None else torch.zeros_like(p.grad)
                p.grad.copy_(base + (sign != 0).to(p.grad.dtype) * (p.grad - base))


@dataclass(frozen=True)
class Trains:
    """What a LoRA preset must adapt for a regularizer to act (full fine-tuning trains all)."""

    parameter: str  # one of the preset's ``parameters``
    what: str
    advice: str


@dataclass(frozen=True)
class Regularizer:
    """A regularizer's descriptor: the fields that switch it on, its builder, its rules."""

    switches: tuple[str, ...]  # MoeConfig fields; any one off its default turns it on
    build: Callable[[TrainingConfig, Any, RouterMonitor], StepHook]
    routed: bool  # acts on DeepSeek MoE routers or experts: the chat trainer refuses it
    trains: Trains | None = None
    check: Callable[[TrainingConfig], None] | None = None  # its own refusal rule

    def switched_on(self, moe: MoeConfig, name: str) -> bool:
        return getattr(moe, name) != MoeConfig.__dataclass_fields__[name].default

    def active(self, moe: MoeConfig) -> bool:
        return any(self.switched_on(moe, name) for name in self.switches)


def _expert_dropout(config: TrainingConfig, model, monitor: RouterMonitor) -> StepHook:
    layers = expert_slices(model)
    if not layers:
        raise ConfigError("expert_dropout_rate", "no routed expert weights are trainable")
    return ExpertGradientDropout(layers, config.moe.expert_dropout_rate,
                                 config.moe.expert_dropout_min_keep, config.schedule.seed)


def _gate_dropout(config: TrainingConfig, model, monitor: RouterMonitor) -> StepHook:
    parameters = router_parameters(model)
    if not parameters:
        raise ConfigError("gate_dropout_rate", "no router weights are trainable")
    return GateGradientDropout(parameters, config.moe.gate_dropout_rate, config.schedule.seed)


def _router_losses(config: TrainingConfig, model, monitor: RouterMonitor) -> StepHook:
    return RouterLosses(monitor, config.moe.aux_loss_coef, config.moe.z_loss_coef)


def _bidrop(config: TrainingConfig, model, monitor: RouterMonitor) -> StepHook:
    trainable = [p for p in model.parameters() if p.requires_grad]
    return BiDrop(config.moe.bidrop_passes, config.moe.bidrop_agreement, trainable)


def _bidrop_needs_dropout(config: TrainingConfig) -> None:
    schedule = config.schedule
    lora = config.adapter.peft != "full" and lora_dropout_of(config)
    if not (schedule.hidden_dropout or schedule.attention_dropout or lora):
        raise ConfigError("bidrop_passes", "needs dropout to make the passes differ: set "
                          "hidden_dropout > 0 (or attention_dropout, or lora_dropout with "
                          "adapters)")


# In build order (checkpoints of older versions list hook states in this order).
REGULARIZERS: tuple[Regularizer, ...] = (
    Regularizer(("expert_dropout_rate",), _expert_dropout, routed=True,
                trains=Trains(EXPERTS[0], "routed experts",
                              "lora_preset high_capacity_moe or peft full")),
    Regularizer(("gate_dropout_rate",), _gate_dropout, routed=True,
                trains=Trains(ROUTER[0], "the router",
                              "router_focused, high_capacity_moe or peft full")),
    Regularizer(("aux_loss_coef", "z_loss_coef"), _router_losses, routed=True),
    Regularizer(("bidrop_passes",), _bidrop, routed=False, check=_bidrop_needs_dropout),
)
