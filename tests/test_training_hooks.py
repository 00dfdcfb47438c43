"""The step hooks' protocol: every hook's state round-trips through ``state_dict`` (also
through a real checkpoint), the chain keys states by hook name, and a checkpoint written in
the older positional format still restores them."""

from __future__ import annotations

import json
import random

import pytest
import torch

from deepsynth.training.checkpoint import TrainerState, load_checkpoint, save_checkpoint
from deepsynth.training.hooks import AdaLoraBudget, HookChain, NullHook
from deepsynth.training.regularizers import (
    BiDrop, ExpertGradientDropout, GateGradientDropout, RouterLosses,
)


class _Budget:
    def __init__(self):
        self.steps = []

    def update_and_allocate(self, step):
        self.steps.append(step)


class _AdaLoraModel:
    def __init__(self):
        self.base_model = _Budget()


def expert(seed=1):
    return ExpertGradientDropout([], 0.5, 1, seed)


def gate(seed=1):
    return GateGradientDropout([], 0.5, seed)


def advance(hook) -> None:
    """Use the hook's random state (or counter) the way steps do."""
    if isinstance(hook, ExpertGradientDropout):
        [hook.rng.random() for _ in range(5)]
    elif isinstance(hook, GateGradientDropout):
        torch.rand(5, generator=hook.generator)
    elif isinstance(hook, AdaLoraBudget):
        for _ in range(3):
            hook.after_optimizer_step(None)


def draw(hook):
    """What the hook would do next: equal draws mean equal states."""
    if isinstance(hook, ExpertGradientDropout):
        return [hook.rng.random() for _ in range(3)]
    if isinstance(hook, GateGradientDropout):
        return torch.rand(3, generator=hook.generator).tolist()
    if isinstance(hook, AdaLoraBudget):
        hook.after_optimizer_step(None)
        return hook.model.base_model.steps[-1]
    return hook.state_dict()


FACTORIES = {
    "expert_dropout": lambda seed: expert(seed),
    "gate_dropout": lambda seed: gate(seed),
    "router_losses": lambda seed: RouterLosses(None, 0.01, 0.001),
    "bidrop": lambda seed: BiDrop(2, True, []),
    "adalora_budget": lambda seed: AdaLoraBudget(_AdaLoraModel()),
}


@pytest.mark.parametrize("name", list(FACTORIES))
def test_each_hook_state_round_trips(name):
    hook = FACTORIES[name](1)
    assert hook.name == name
    advance(hook)
    state = hook.state_dict()
    other = FACTORIES[name](99)
    other.load_state_dict(state)
    assert draw(other) == draw(hook)


def test_random_state_survives_json_lists():
    hook = expert(3)
    advance(hook)
    other = expert(4)
    other.load_state_dict(json.loads(json.dumps(hook.state_dict())))
    assert draw(other) == draw(hook)


def test_the_chain_asks_for_passes_and_router_outputs():
    assert (HookChain([]).passes, HookChain([]).wants_router_outputs) == (1, False)
    chain = HookChain([expert(), BiDrop(3, False, []), RouterLosses(None, 0.1, 0.0)])
    assert (chain.passes, chain.wants_router_outputs) == (3, True)
    with pytest.raises(ValueError):
        HookChain([expert(), expert()])


def chain(seed):
    return HookChain([expert(seed), gate(seed), RouterLosses(None, 0.1, 0.0),
                      BiDrop(2, False, []), AdaLoraBudget(_AdaLoraModel())])


def test_the_chain_keys_states_by_name():
    first = chain(1)
    for hook in first:
        advance(hook)
    state = first.state_dict()
    assert list(state) == ["expert_dropout", "gate_dropout", "router_losses", "bidrop",
                           "adalora_budget"]
    second = chain(2)
    second.load_state_dict(state)
    assert [draw(h) for h in second] == [draw(h) for h in first]


def old_format(hooks: HookChain) -> list[dict]:
    """States as DeepSynth saved them before hooks had names: one dict per hook of the hook
    list (Bi-Drop was not in it), holding the attributes it had (``rng``, ``generator``,
    ``step``)."""
    states = []
    for hook in hooks:
        if isinstance(hook, BiDrop):
            continue
        state = {}
        if hasattr(hook, "rng"):
            state["rng"] = hook.rng.getstate()
        if hasattr(hook, "generator"):
            state["generator"] = hook.generator.get_state()
        if hasattr(hook, "step"):
            state["step"] = hook.step
        states.append(state)
    return states


def test_an_old_positional_checkpoint_restores_hook_states(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    first = chain(1)
    for hook in first:
        advance(hook)
    folder = save_checkpoint(tmp_path / "step-000004", model, optimizer, scheduler,
                             TrainerState(step=4), {"hooks": old_format(first)})
    random.seed(0)
    _, extra = load_checkpoint(folder, model, optimizer, scheduler)
    assert isinstance(extra["hooks"], list)
    resumed = chain(2)
    resumed.load_state_dict(extra["hooks"])
    assert [draw(h) for h in resumed] == [draw(h) for h in first]


def test_null_hook_does_nothing_everywhere():
    hook = NullHook()
    hook.start_batch()
    hook.pass_done()
    hook.finish_batch()
    hook.before_optimizer_step(None)
    hook.after_optimizer_step(None)
    assert hook.extra_loss(None) is None and hook.state_dict() == {} and hook.passes == 1
