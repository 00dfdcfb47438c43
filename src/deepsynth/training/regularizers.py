"""MoE regularizers: small pluggable pieces of the one training step.

Each piece implements :class:`StepHook` and acts on the parameters actually being trained
(fused expert tensors, or their LoRA slices). The loop calls every hook at the same points;
a disabled option is simply absent, never an ``if enabled`` inside the loop.
"""

from __future__ import annotations

import random
from typing import Protocol

import torch

from deepsynth.training.moe import ExpertSlices, RouterMonitor


class StepHook(Protocol):
    def extra_loss(self, token_mask: torch.Tensor | None) -> torch.Tensor | None:
        """A loss term added to this micro-batch's loss (after its forward pass)."""

    def before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Edit gradients before clipping and the optimizer step."""

    def after_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Undo what must not move this step."""


class _NoOp:
    def extra_loss(self, token_mask):
        return None

    def before_optimizer_step(self, optimizer):
        """Nothing to edit."""

    def after_optimizer_step(self, optimizer):
        """Nothing to undo."""


def drop_choice(rng: random.Random, experts: int, rate: float, min_keep: int) -> list[int]:
    """Which experts drop: each with probability ``rate``, keeping at least ``min_keep``."""
    dropped = [e for e in range(experts) if rng.random() < rate]
    keep_at_least = min(min_keep, experts)
    while experts - len(dropped) < keep_at_least:
        dropped.remove(rng.choice(dropped))
    return sorted(dropped)


class ExpertGradientDropout(_NoOp):
    """Per optimizer step and MoE layer, whole routed experts' gradients are dropped.

    Zeroing a gradient is not enough: AdamW's momentum and weight decay would still move the
    expert. The dropped slices of the weights and of the optimizer's moments are saved before
    the step and put back after it, so a dropped expert does not move at all that step.
    """

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


class GateGradientDropout(_NoOp):
    """Masks entries of the router's gradients (only the router: not the MLPs' gate_proj),
    rescaled by 1/(1-rate) so the expected gradient is unchanged."""

    def __init__(self, parameters: list[torch.nn.Parameter], rate: float, seed: int):
        self.parameters, self.rate = parameters, rate
        self.generator = torch.Generator().manual_seed(seed)

    def before_optimizer_step(self, optimizer):
        for parameter in self.parameters:
            if parameter.grad is None:
                continue
            keep = torch.rand(parameter.grad.shape, generator=self.generator) >= self.rate
            parameter.grad.mul_(keep.to(parameter.grad.device, parameter.grad.dtype)
                                / (1.0 - self.rate))


class RouterLosses(_NoOp):
    """Load-balancing loss (Switch Transformer: E * sum_e f_e * p_e) and router z-loss (ST-MoE:
    mean of logsumexp(logits)^2) over the real (unpadded) tokens of each MoE layer."""

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


class BiDrop:
    """Several forward/backward passes per batch with different dropout masks.

    Gradients of the passes are averaged (each pass's loss is divided by the pass count).
    With ``agreement``, only gradient entries whose sign agrees across all passes are kept
    (the Bi-Drop paper's parameter selection); the others are zeroed in this batch's
    contribution (what earlier micro-batches accumulated is left alone).
    """

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
