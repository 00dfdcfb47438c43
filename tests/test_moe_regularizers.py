"""MoE regularizers and the frozen vision side, on the real tiny DeepSeek-OCR-2.

Everything here runs the real transformers ``DeepseekOcr2ForConditionalGeneration`` (tiny,
built by DeepSynth's registry), real PEFT adapters and real AdamW steps; gradients, weights and
optimizer moments are compared bit for bit where the regularizers promise that nothing moves.
"""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from deepsynth.config.training import training_config
from deepsynth.errors import ConfigError
from deepsynth.models.registry import LoadedModel, load_model
from deepsynth.models.tiny import NAME as TINY
from deepsynth.training.data import IGNORE, pixel_values
from deepsynth.training.moe import RouterMonitor, expert_slices, router_parameters
from deepsynth.training.regularizers import (
    BiDrop, ExpertGradientDropout, GateGradientDropout, RouterLosses, drop_choice,
)
from deepsynth.training.setup import build_hooks, build_optimizer, load_base_model, make_trainable

# The vision side of the model, spelled out here (not taken from the library's prefix table).
VISION = ("model.vision_tower.", "model.multi_modal_projector.", "model.view_separator")
MOE = "model.language_model.layers.1.mlp"
EXPERTS = f"{MOE}.experts"
ROUTER = f"{MOE}.gate.weight"
NUM_EXPERTS = 8
TEXT = 40  # text tokens in the expert-dropout batches: enough to reach most experts


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A data root whose cache holds the tiny model, built once per session."""
    root = tmp_path_factory.getbasetemp() / "deepsynth-tiny-root"
    load_model(TINY, root=root)
    return root


def fresh(root: Path, **kwargs) -> LoadedModel:
    """A new copy of the tiny model, loaded from the cached folder."""
    return load_model(TINY, root=root, **kwargs)


def config(**fields):
    return training_config({"dataset": "d", "out": "o", **fields})


def plain(name: str) -> str:
    return name.removeprefix("base_model.model.")


def on_vision_side(name: str) -> bool:
    return plain(name).startswith(VISION)


def make_batch(loaded: LoadedModel, size: int = 1, text: int = 10, seed: int = 0) -> dict:
    """[bos] + one page of image tokens + text; labels on the text only; random pages."""
    generator = torch.Generator().manual_seed(seed)
    words = torch.randint(10, len(loaded.tokenizer), (size, text), generator=generator)
    input_ids = torch.cat([
        torch.full((size, 1), loaded.tokenizer.bos_token_id),
        torch.full((size, loaded.image_tokens_per_page), loaded.image_token_id), words], 1)
    labels = input_ids.clone()
    labels[:, :1 + loaded.image_tokens_per_page] = IGNORE
    pages = torch.randint(0, 256, (size, 1, loaded.image_size, loaded.image_size),
                          generator=generator, dtype=torch.uint8)
    return {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
            "labels": labels, "pixel_values": pixel_values(pages, torch.float32)}


def backward(model, batch: dict, scale: float = 1.0) -> torch.Tensor:
    loss = model(**batch).loss
    (loss * scale).backward()
    return loss


def snapshot(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def grads(model) -> dict[str, torch.Tensor | None]:
    return {n: None if p.grad is None else p.grad.detach().clone()
            for n, p in model.named_parameters()}


def full_finetuning(loaded: LoadedModel, **fields):
    cfg = config(peft="full", learning_rate=1e-3, weight_decay=0.1, **fields)
    return make_trainable(loaded, cfg, 10), cfg


# --- 1. the vision side never trains -------------------------------------------------------

def check_vision_untouched(model, before: dict[str, torch.Tensor]) -> int:
    vision = [(n, p) for n, p in model.named_parameters() if on_vision_side(n)]
    for name, parameter in vision:
        assert not parameter.requires_grad, name
        assert parameter.grad is None, name
        assert torch.equal(parameter.detach(), before[name]), f"{name} moved"
    return len(vision)


def test_no_gradient_reaches_vision_side_full_finetuning(tiny_root):
    loaded = fresh(tiny_root)
    model, cfg = full_finetuning(loaded)
    names = [plain(n) for n, _ in model.named_parameters()]
    # The check below must see all three parts of the vision side.
    assert any(n.startswith("model.vision_tower.sam_encoder.") for n in names)
    assert any(n.startswith("model.vision_tower.vision_encoder.") for n in names)
    assert "model.multi_modal_projector.weight" in names and "model.view_separator" in names
    optimizer = build_optimizer(model, cfg)
    before = snapshot(model)

    backward(model, make_batch(loaded))
    optimizer.step()

    vision_count = check_vision_untouched(model, before)
    assert vision_count > 0
    decoder = [(n, p) for n, p in model.named_parameters() if not on_vision_side(n)]
    assert len(decoder) + vision_count == len(names)
    for name, parameter in decoder:
        assert parameter.requires_grad, name
        assert parameter.grad is not None, name
        assert not torch.equal(parameter.detach(), before[name]), f"{name} did not train"


def test_no_gradient_reaches_vision_side_lora(tiny_root):
    loaded = fresh(tiny_root)
    cfg = config(peft="lora", lora_preset="balanced", learning_rate=1e-3)
    model = make_trainable(loaded, cfg, 10)
    optimizer = build_optimizer(model, cfg)
    before = snapshot(model)
    adapters = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert adapters, "LoRA added no parameter"
    assert not [n for n in adapters if on_vision_side(n)]
    assert all(".language_model.layers." in n for n in adapters)

    backward(model, make_batch(loaded))
    optimizer.step()

    assert check_vision_untouched(model, before) > 0
    for name, parameter in model.named_parameters():
        if "lora_" in name:
            assert parameter.requires_grad and parameter.grad is not None, name
            assert not torch.equal(parameter.detach(), before[name]), f"{name} did not train"
        else:
            assert not parameter.requires_grad, name
            assert torch.equal(parameter.detach(), before[name]), f"{name} moved under LoRA"


# --- 2./3. expert gradient dropout ---------------------------------------------------------

def moments(optimizer, parameter) -> dict[str, torch.Tensor]:
    state = optimizer.state[parameter]
    return {k: state[k].clone() for k in ("exp_avg", "exp_avg_sq")}


def test_expert_gradient_dropout_full_finetuning(tiny_root):
    loaded = fresh(tiny_root)
    model, cfg = full_finetuning(loaded)
    experts = model.get_submodule(EXPERTS)
    fused = {"gate_up_proj": experts.gate_up_proj, "down_proj": experts.down_proj}
    assert experts.gate_up_proj.shape[0] == experts.down_proj.shape[0] == NUM_EXPERTS
    optimizer = build_optimizer(model, cfg)
    layers = expert_slices(model)
    assert [layer.layer for layer in layers] == [EXPERTS]
    hook = ExpertGradientDropout(layers, rate=0.5, min_keep=1, seed=7)

    # Step 1 without dropout, so AdamW's moments are non-zero when dropout acts.
    backward(model, make_batch(loaded, text=TEXT, seed=0))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

    # Step 2 with dropout.
    backward(model, make_batch(loaded, text=TEXT, seed=1))
    grads_before = {k: p.grad.clone() for k, p in fused.items()}
    hook.before_optimizer_step(optimizer)
    dropped = hook.last_dropped[EXPERTS]
    assert list(hook.last_dropped) == [EXPERTS]
    assert 0 < len(dropped) < NUM_EXPERTS, dropped
    kept = [e for e in range(NUM_EXPERTS) if e not in dropped]
    # Only experts routed at labelled positions (the last layer's text tokens) get gradient.
    assert any(torch.count_nonzero(grads_before["down_proj"][e]) for e in dropped)
    for key, parameter in fused.items():
        for e in dropped:
            assert torch.count_nonzero(parameter.grad[e]) == 0, (key, e)
        for e in kept:
            assert torch.equal(parameter.grad[e], grads_before[key][e]), (key, e)

    weights = {k: p.detach().clone() for k, p in fused.items()}
    state = {k: moments(optimizer, p) for k, p in fused.items()}
    optimizer.step()
    hook.after_optimizer_step(optimizer)

    moved = 0
    for key, parameter in fused.items():
        after = moments(optimizer, parameter)
        for e in dropped:
            assert torch.equal(parameter.detach()[e], weights[key][e]), f"dropped {key}[{e}] moved"
            for moment in ("exp_avg", "exp_avg_sq"):
                assert torch.equal(after[moment][e], state[key][moment][e]), (key, e, moment)
        for e in kept:
            if torch.count_nonzero(grads_before[key][e]):
                moved += 1
                assert not torch.equal(parameter.detach()[e], weights[key][e]), (key, e)
                assert not torch.equal(after["exp_avg"][e], state[key]["exp_avg"][e]), (key, e)
    assert moved > 0


def lora_wrappers(model) -> dict[str, torch.nn.Module]:
    found = {}
    for name, module in model.named_modules():
        if type(module).__name__ == "ParamWrapper" and name.startswith(
                f"base_model.model.{EXPERTS}"):
            found[module.parameter_name] = module
    return found


def test_expert_gradient_dropout_lora_on_experts(tiny_root):
    loaded = fresh(tiny_root)
    cfg = config(peft="lora", lora_preset="high_capacity_moe", learning_rate=1e-3,
                 weight_decay=0.1)
    model = make_trainable(loaded, cfg, 10)
    optimizer = build_optimizer(model, cfg)
    wrappers = lora_wrappers(model)
    assert set(wrappers) == {"gate_up_proj", "down_proj"}
    rank = wrappers["down_proj"].r["default"]
    assert rank == 32

    layers = expert_slices(model)
    assert len(layers) == 1 and layers[0].num_experts == NUM_EXPERTS
    # Expert e owns rows e*r:(e+1)*r of each A and columns e::E of each B, and nothing else.
    for e, pairs in enumerate(layers[0].slices):
        expected = []
        for wrapper in wrappers.values():
            expected.append((wrapper.lora_A["default"].weight, (slice(e * rank, (e + 1) * rank),)))
            expected.append((wrapper.lora_B["default"].weight,
                             (slice(None), slice(e, None, NUM_EXPERTS))))
        assert len(pairs) == len(expected), e
        for parameter, index in expected:
            assert any(p is parameter and i == index for p, i in pairs), (e, index)

    owned = [(p, i) for pairs in layers[0].slices for p, i in pairs]
    hook = ExpertGradientDropout(layers, rate=0.5, min_keep=1, seed=7)

    # Step 1 without dropout: lora_B starts at zero, so A gets no gradient until B moved.
    backward(model, make_batch(loaded, text=TEXT, seed=0))
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

    backward(model, make_batch(loaded, text=TEXT, seed=1))
    grads_before = {id(p): p.grad.clone() for p, _ in owned}
    hook.before_optimizer_step(optimizer)
    dropped = hook.last_dropped[layers[0].layer]
    assert 0 < len(dropped) < NUM_EXPERTS, dropped
    kept = [e for e in range(NUM_EXPERTS) if e not in dropped]
    assert any(torch.count_nonzero(grads_before[id(p)][i])
               for e in dropped for p, i in layers[0].slices[e])
    for e in dropped:
        for parameter, index in layers[0].slices[e]:
            assert torch.count_nonzero(parameter.grad[index]) == 0, (e, index)
    for e in kept:
        for parameter, index in layers[0].slices[e]:
            assert torch.equal(parameter.grad[index], grads_before[id(parameter)][index])

    weights = {id(p): p.detach().clone() for p, _ in owned}
    state = {id(p): moments(optimizer, p) for p, _ in owned}
    with torch.no_grad():
        deltas = {k: w.get_delta_weight("default").clone() for k, w in wrappers.items()}
    base = {k: w.get_param().detach().clone() for k, w in wrappers.items()}
    optimizer.step()
    hook.after_optimizer_step(optimizer)

    for e in dropped:
        for parameter, index in layers[0].slices[e]:
            assert torch.equal(parameter.detach()[index], weights[id(parameter)][index]), (e, index)
            after = moments(optimizer, parameter)
            for moment, value in state[id(parameter)].items():
                assert torch.equal(after[moment][index], value[index]), (e, index, moment)
    for e in kept:
        for parameter, index in layers[0].slices[e]:
            assert not torch.equal(parameter.detach()[index], weights[id(parameter)][index])
    with torch.no_grad():
        for key, wrapper in wrappers.items():
            delta = wrapper.get_delta_weight("default")
            assert delta.shape[0] == NUM_EXPERTS
            for e in dropped:
                assert torch.equal(delta[e], deltas[key][e]), f"dropped expert {e} {key} moved"
            for e in kept:
                assert not torch.equal(delta[e], deltas[key][e]), f"kept expert {e} {key}"
            assert torch.equal(wrapper.get_param().detach(), base[key])  # base stays frozen


# --- 4. which experts drop -----------------------------------------------------------------

@pytest.mark.parametrize("min_keep", range(1, NUM_EXPERTS + 1))
def test_drop_choice_rate_one_keeps_exactly_min_keep(min_keep):
    for seed in range(20):
        dropped = drop_choice(random.Random(seed), NUM_EXPERTS, 1.0, min_keep)
        assert len(dropped) == NUM_EXPERTS - min_keep
        assert len(set(dropped)) == len(dropped)
        assert dropped == sorted(dropped) and all(0 <= e < NUM_EXPERTS for e in dropped)


def test_drop_choice_rate_zero_and_determinism():
    for seed in range(20):
        assert drop_choice(random.Random(seed), NUM_EXPERTS, 0.0, 1) == []
    # min_keep above the expert count keeps them all
    assert drop_choice(random.Random(0), NUM_EXPERTS, 1.0, NUM_EXPERTS + 5) == []
    first, second = random.Random(123), random.Random(123)
    runs = [[drop_choice(rng, NUM_EXPERTS, 0.5, 2) for _ in range(30)] for rng in (first, second)]
    assert runs[0] == runs[1]
    assert len({tuple(d) for d in runs[0]}) > 1  # the choice changes from step to step
    assert all(len(d) <= NUM_EXPERTS - 2 for d in runs[0])


# --- 5. gate gradient dropout --------------------------------------------------------------

def test_gate_gradient_dropout_touches_only_the_router(tiny_root):
    loaded = fresh(tiny_root)
    model, cfg = full_finetuning(loaded)
    router = model.get_parameter(ROUTER)
    assert len(router_parameters(model)) == 1 and router_parameters(model)[0] is router
    optimizer = build_optimizer(model, cfg)
    backward(model, make_batch(loaded))
    before = grads(model)
    for name in ("model.language_model.layers.0.mlp.gate_proj.weight",
                 f"{MOE}.shared_experts.gate_proj.weight", ROUTER):
        assert before[name] is not None and torch.count_nonzero(before[name]) > 0, name

    GateGradientDropout(router_parameters(model), rate=0.5, seed=3).before_optimizer_step(
        optimizer)

    after = grads(model)
    old, new = before[ROUTER], after[ROUTER]
    zeroed = (new == 0) & (old != 0)
    kept = new != 0
    assert int(zeroed.sum()) > 0 and int(kept.sum()) > 0
    assert 0.3 < float(zeroed.float().mean()) < 0.7
    assert torch.all((new == 0) | (new == old * 2.0))  # 1 / (1 - 0.5), exactly
    assert torch.equal(new[kept], old[kept] * 2.0)
    for name, grad in after.items():
        if name == ROUTER:
            continue
        if grad is None:
            assert before[name] is None, name
        else:
            assert torch.equal(grad, before[name]), f"{name}'s gradient changed"


def test_gate_dropout_at_the_configs_maximum_rate_keeps_gradients_finite(tiny_root):
    """gate_dropout_rate 1.0 is within the option's range: it must drop every router gradient
    entry (or be refused), never turn the router's gradient into NaN."""
    try:
        cfg = config(peft="full", gate_dropout_rate=1.0, learning_rate=1e-3)
    except ConfigError as error:  # refusing the value is a fine answer too
        assert error.field == "gate_dropout_rate"
        return
    loaded = fresh(tiny_root)
    model = make_trainable(loaded, cfg, 10)
    monitor = RouterMonitor(model)
    try:
        hooks = build_hooks(cfg, model, monitor)
    finally:
        monitor.close()
    assert [type(h).__name__ for h in hooks] == ["GateGradientDropout"]
    optimizer = build_optimizer(model, cfg)
    router = model.get_parameter(ROUTER)
    before = router.detach().clone()
    backward(model, make_batch(loaded))
    assert torch.count_nonzero(router.grad) > 0
    hooks[0].before_optimizer_step(optimizer)
    assert torch.isfinite(router.grad).all(), "gate dropout at rate 1.0 made NaN gradients"
    assert torch.count_nonzero(router.grad) == 0
    optimizer.step()
    assert torch.isfinite(router).all()
    assert torch.allclose(router.detach(), before, rtol=1e-2)


# --- 6. Bi-Drop ----------------------------------------------------------------------------

SEEDS = (101, 202, 303)


def bidrop_setup(root: Path, agreement: bool):
    cfg = config(peft="full", bidrop_passes=3, attention_dropout=0.3,
                 bidrop_agreement=agreement)
    loaded = load_base_model(cfg, root)
    assert all(layer.self_attn.attention_dropout == 0.3
               for layer in loaded.model.model.language_model.layers)
    model = make_trainable(loaded, cfg, 10)
    model.train()
    monitor = RouterMonitor(model)
    try:
        (bidrop,) = build_hooks(cfg, model, monitor)  # Bi-Drop is the only hook here
    finally:
        monitor.close()
    return loaded, model, bidrop


def run_bidrop(model, bidrop: BiDrop, batch: dict) -> list[torch.Tensor]:
    """One batch as the training loop runs it: each pass backward(loss / passes)."""
    model.zero_grad(set_to_none=True)
    bidrop.start_batch()
    for seed in SEEDS:
        torch.manual_seed(seed)
        backward(model, batch, scale=1 / bidrop.passes)
        bidrop.pass_done()
    bidrop.finish_batch()
    return [p.grad.detach().clone() for p in bidrop.parameters]


def per_pass_grads(model, parameters, batch: dict) -> list[list[torch.Tensor]]:
    passes = []
    for seed in SEEDS:
        model.zero_grad(set_to_none=True)
        torch.manual_seed(seed)
        backward(model, batch)
        passes.append([p.grad.detach().clone() for p in parameters])
    model.zero_grad(set_to_none=True)
    return passes


def test_bidrop_averages_the_passes_and_agreement_keeps_agreeing_signs(tiny_root):
    loaded, model, bidrop = bidrop_setup(tiny_root, agreement=False)
    assert bidrop.passes == 3 and not bidrop.agreement
    parameters = bidrop.parameters
    assert parameters and all(p.requires_grad for p in parameters)
    batch = make_batch(loaded, text=8)

    passes = per_pass_grads(model, parameters, batch)
    mean = [sum(g) / len(SEEDS) for g in zip(*passes, strict=True)]
    # Dropout is active: the passes' gradients differ.
    differing = sum(not torch.allclose(a, b, atol=1e-6) for a, b in zip(*passes[:2], strict=True))
    assert differing > len(parameters) // 2

    averaged = run_bidrop(model, bidrop, batch)
    for got, want in zip(averaged, mean, strict=True):
        assert (got - want).abs().max() <= 1e-6

    agreeing = BiDrop(3, True, parameters)
    selected = run_bidrop(model, agreeing, batch)
    disagreements = agreements = 0
    for i, (got, want) in enumerate(zip(selected, mean, strict=True)):
        signs = torch.stack([torch.sign(p[i]) for p in passes])
        agree = (signs == signs[0]).all(0) & (signs[0] != 0)
        disagreements += int((~agree & (want != 0)).sum())
        agreements += int(agree.sum())
        assert torch.count_nonzero(got[~agree]) == 0, f"parameter {i}: disagreeing entries kept"
        if agree.any():
            assert (got[agree] - want[agree]).abs().max() <= 1e-6, f"parameter {i}"
    assert disagreements > 0 and agreements > 0


# --- 7./8. the router: auxiliary losses and statistics -------------------------------------

def test_router_losses_are_positive_and_train_the_router(tiny_root):
    loaded = fresh(tiny_root)
    model, _ = full_finetuning(loaded)
    monitor = RouterMonitor(model)
    monitor.keep_outputs = True
    batch = make_batch(loaded, size=2)
    batch["attention_mask"][1, -4:] = 0  # some padding: only real tokens count
    try:
        model(**{k: v for k, v in batch.items() if k != "labels"})
        assert len(monitor.outputs) == 1
        loss = RouterLosses(monitor, balance_coef=0.01, z_coef=0.001).extra_loss(
            batch["attention_mask"])
        assert monitor.outputs == []  # taken
        assert loss is not None and loss.dim() == 0
        assert torch.isfinite(loss) and float(loss.detach()) > 0
        assert loss.requires_grad
        model.zero_grad(set_to_none=True)
        loss.backward()
        router = model.get_parameter(ROUTER)
        assert router.grad is not None and torch.count_nonzero(router.grad) > 0
        assert model.lm_head.weight.grad is None  # only the router loss was backpropagated
        # With no forward pass since, there is nothing to regularize.
        assert RouterLosses(monitor, 0.01, 0.001).extra_loss(batch["attention_mask"]) is None
    finally:
        monitor.close()


def test_router_monitor_statistics_and_reset(tiny_root):
    loaded = fresh(tiny_root)
    model = loaded.model
    model.eval()
    monitor = RouterMonitor(model)
    batch = make_batch(loaded)
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    try:
        with torch.no_grad():
            model(**inputs)
        stats = monitor.read_stats()
        assert list(stats) == [f"{MOE}.gate"]
        layer = stats[f"{MOE}.gate"]
        assert len(layer["expert_share"]) == NUM_EXPERTS
        assert all(0 <= s <= 1 for s in layer["expert_share"])
        assert sum(layer["expert_share"]) == pytest.approx(1.0, abs=1e-3)
        assert 0 < layer["router_entropy"] <= math.log(NUM_EXPERTS) + 1e-4
        assert layer["routed_tokens"] == inputs["input_ids"].numel()  # each position once
        assert monitor.read_stats() == {}  # counters reset by the read

        with torch.no_grad(), monitor.paused():
            model(**inputs)
        assert monitor.read_stats() == {}
        with torch.no_grad():  # recording again after the pause
            model(**inputs)
        assert monitor.read_stats()[f"{MOE}.gate"] == layer
    finally:
        monitor.close()


def test_residual_dropout_changes_training_passes_only(tiny_root):
    """hidden_dropout: two training forward passes differ; in eval mode they are identical,
    and closing the hooks restores the plain model."""
    from deepsynth.training.dropout import residual_dropout

    loaded = load_model("tiny-deepseek-ocr-2", root=tiny_root)
    model = loaded.model
    batch = make_batch(loaded)
    plain = model.eval()(**batch).logits
    dropout = residual_dropout(model, 0.3)
    model.train()
    first, second = model(**batch).logits, model(**batch).logits
    assert not torch.equal(first, second)
    model.eval()
    assert torch.equal(model(**batch).logits, plain)
    dropout.close()
    model.train()
    assert torch.equal(model(**batch).logits, model(**batch).logits)
    assert residual_dropout(model, 0.0) is None
