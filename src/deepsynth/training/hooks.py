"""The one extension point of the training step: hooks called at fixed points of it.

One optimizer step is, for each of ``gradient_accumulation_steps`` micro-batches::

    start_batch()
    passes x (forward, + extra_loss(), backward, pass_done())
    finish_batch()

then ``before_optimizer_step``, clipping, the optimizer step, ``after_optimizer_step``.
The number of passes is the largest any hook asks for (Bi-Drop), 1 by default. A hook keeps
whatever state it needs to resume exactly in ``state_dict()``; checkpoints store it under
the hook's stable ``name``. Hooks derive from :class:`NullHook` and implement only the points
they use, so the loop calls every hook everywhere and never asks whether one is enabled.
"""

from __future__ import annotations

from typing import Protocol

import torch


class StepHook(Protocol):
    name: str  # stable: the key of its state in checkpoints
    passes: int  # forward/backward passes it needs per micro-batch
    wants_router_outputs: bool  # whether the router monitor must keep logits for it

    def start_batch(self) -> None:
        """A micro-batch starts (before its first pass)."""

    def extra_loss(self, token_mask: torch.Tensor | None) -> torch.Tensor | None:
        """A loss term added to this pass's loss (after its forward pass)."""

    def pass_done(self) -> None:
        """A backward pass of the micro-batch is done."""

    def finish_batch(self) -> None:
        """The micro-batch's passes are done."""

    def before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Edit gradients before clipping and the optimizer step."""

    def after_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Undo what must not move this step, or act on the updated weights."""

    def state_dict(self) -> dict:
        """What exact resume needs (random generators, counters)."""

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`'s output."""


class NullHook:
    """Does nothing at every point: hooks derive from it and override what they use."""

    name = "null"
    passes = 1
    wants_router_outputs = False
    # Checkpoints written before hooks had names stored their states as a list, in build
    # order, of the hooks that existed then; Bi-Drop (not a hook then) sets this False.
    in_positional_checkpoints = True

    def start_batch(self) -> None:
        """Nothing to prepare."""

    def extra_loss(self, token_mask):
        return None

    def pass_done(self) -> None:
        """Nothing to record."""

    def finish_batch(self) -> None:
        """Nothing to combine."""

    def before_optimizer_step(self, optimizer) -> None:
        """Nothing to edit."""

    def after_optimizer_step(self, optimizer) -> None:
        """Nothing to undo."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """No state."""


class HookChain(NullHook):
    """A run's hooks as one: each point calls every hook, in build order."""

    name = "chain"

    def __init__(self, hooks: list[StepHook]):
        self.hooks = list(hooks)
        names = [hook.name for hook in self.hooks]
        if len(set(names)) != len(names):
            raise ValueError(f"hook names must be unique: {names}")
        self.passes = max((hook.passes for hook in self.hooks), default=1)
        self.wants_router_outputs = any(hook.wants_router_outputs for hook in self.hooks)

    def __iter__(self):
        return iter(self.hooks)

    def __len__(self) -> int:
        return len(self.hooks)

    def __getitem__(self, index: int) -> StepHook:
        return self.hooks[index]

    def start_batch(self) -> None:
        for hook in self.hooks:
            hook.start_batch()

    def add_extra_losses(self, loss: torch.Tensor, token_mask) -> torch.Tensor:
        """``loss`` plus every hook's extra term, added one by one (in build order)."""
        for hook in self.hooks:
            extra = hook.extra_loss(token_mask)
            if extra is not None:
                loss = loss + extra
        return loss

    def pass_done(self) -> None:
        for hook in self.hooks:
            hook.pass_done()

    def finish_batch(self) -> None:
        for hook in self.hooks:
            hook.finish_batch()

    def before_optimizer_step(self, optimizer) -> None:
        for hook in self.hooks:
            hook.before_optimizer_step(optimizer)

    def after_optimizer_step(self, optimizer) -> None:
        for hook in self.hooks:
            hook.after_optimizer_step(optimizer)

    def state_dict(self) -> dict:
        return {hook.name: hook.state_dict() for hook in self.hooks}

    def load_state_dict(self, state: dict | list) -> None:
        """By name; a list is the older positional format (see ``in_positional_checkpoints``)."""
        if isinstance(state, list):
            positional = [h for h in self.hooks if h.in_positional_checkpoints]
            for hook, hook_state in zip(positional, state, strict=False):
                hook.load_state_dict(hook_state)
            return
        for hook in self.hooks:
            if hook.name in state:
                hook.load_state_dict(state[hook.name])


class AdaLoraBudget(NullHook):
    """AdaLoRA re-allocates ranks after every optimizer step (it needs the gradients); its
    step counter drives PEFT's rank schedule, so it is part of the resumable state."""

    name = "adalora_budget"

    def __init__(self, model):
        self.model = model
        self.step = 0

    def after_optimizer_step(self, optimizer) -> None:
        self.step += 1
        self.model.base_model.update_and_allocate(self.step)

    def state_dict(self) -> dict:
        return {"step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.step = state.get("step", self.step)
