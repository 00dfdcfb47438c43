"""Training configuration: presets, LoRA presets on the real tiny model, refused conflicts and
the ``deepsynth train`` CLI's flags and errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from conftest import run_cli

from deepsynth.config import to_dict, validate
from deepsynth.config.spec import build
from deepsynth.config.training import (
    LORA_PRESETS, OCR_LORA_PRESETS, TRAINING_PRESETS, TrainingConfig, training_config,
)
from deepsynth.errors import ConfigError
from deepsynth.models.registry import load_model
from deepsynth.models.tiny import NAME as TINY
from deepsynth.training.moe import expert_slices, router_parameters
from deepsynth.training.setup import make_trainable

BASE = {"dataset": "d", "out": "o"}
VISION = ("model.vision_tower.", "model.multi_modal_projector.", "model.view_separator")
ATTENTION = {"q_proj", "k_proj", "v_proj", "o_proj"}
CUDA = torch.cuda.is_available()


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A data root whose cache holds the tiny model, built once per session."""
    root = tmp_path_factory.getbasetemp() / "deepsynth-tiny-root"
    load_model(TINY, root=root)
    return root


def refused(data: dict) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        training_config({**BASE, **data})
    return caught.value


# --- 1. training presets -------------------------------------------------------------------

@pytest.mark.parametrize("name", list(TRAINING_PRESETS))
def test_training_preset_applies_its_values(name):
    config = training_config({**BASE, "preset": name})
    assert config.task.preset == name
    values = TRAINING_PRESETS[name]
    assert values, name
    flat = to_dict(config)
    for field, value in values.items():
        assert flat[field] == value, (name, field)
    # Fields the preset does not set keep the dataclass defaults.
    defaults = to_dict(build(TrainingConfig, BASE))
    for field in ("seed", "max_pages", "keep_last"):
        if field not in values:
            assert flat[field] == defaults[field]


@pytest.mark.parametrize("name", list(TRAINING_PRESETS))
def test_explicit_fields_override_the_preset(name):
    config = training_config({**BASE, "preset": name, "learning_rate": 0.1, "batch_size": 3,
                              "seed": 7})
    schedule = config.schedule
    assert (schedule.learning_rate, schedule.batch_size, schedule.seed) == (0.1, 3, 7)
    # The rest of the preset still applies.
    for field, value in TRAINING_PRESETS[name].items():
        if field not in ("learning_rate", "batch_size", "seed"):
            assert to_dict(config)[field] == value, (name, field)


def test_preset_values_differ_from_defaults_where_documented():
    assert training_config({**BASE, "preset": "quick_test"}).schedule.max_steps == 10
    assert training_config({**BASE, "preset": "low_memory"}).schedule.gradient_checkpointing \
        is True
    assert training_config({**BASE, "preset": "cpu_demo"}).schedule.mixed_precision == "no"
    assert training_config({**BASE, "preset": "high_quality"}).moe.bidrop_passes == 3
    assert training_config({**BASE, "preset": "cpu_demo", "max_steps": 5}).schedule.max_steps == 5


@pytest.mark.parametrize("data", [
    {"peft": "qlora"},
    {"peft": "lora", "lora_preset": "qlora_4bit"},
    {"preset": "default", "peft": "qlora"},
    {"preset": "fast_iteration", "lora_preset": "qlora_4bit"},
])
def test_qlora_needs_cuda(data):
    if CUDA:  # accepted where bitsandbytes can run
        assert training_config({**BASE, **data})
        return
    error = refused(data)
    assert error.field == "peft"
    assert "CUDA" in error.message
    assert str(error).startswith("peft ")


# --- 2. LoRA presets on the real model -----------------------------------------------------

def adapted(model) -> tuple[list[str], dict[str, str]]:
    """Names of adapted nn.Linear modules, and ParamWrapper module name -> parameter name."""
    linear, wrapped = [], {}
    for name, module in model.named_modules():
        if not hasattr(module, "lora_A") or not len(module.lora_A):
            continue
        plain = name.removeprefix("base_model.model.")
        if type(module).__name__ == "ParamWrapper":
            wrapped[plain] = module.parameter_name
        else:
            linear.append(plain)
    return linear, wrapped


@pytest.mark.parametrize("preset", [p for p in OCR_LORA_PRESETS if p != "qlora_4bit"])
def test_lora_preset_builds_a_peft_model(tiny_root, preset):
    from peft import PeftModel

    loaded = load_model(TINY, root=tiny_root)
    config = training_config({**BASE, "peft": "lora", "lora_preset": preset})
    model = make_trainable(loaded, config, 10)
    assert isinstance(model, PeftModel)
    spec = LORA_PRESETS[preset]
    linear, wrapped = adapted(model)

    # Adapted nn.Linear modules: exactly the preset's module names, in the decoder only.
    assert linear
    assert {name.rsplit(".", 1)[1] for name in linear} == set(spec["modules"])
    assert all(name.startswith("model.language_model.layers.") for name in linear), linear
    if set(spec["modules"]) == ATTENTION:
        assert not [name for name in linear if ".mlp." in name]
    # Every decoder layer gets its attention adapted.
    for layer in (0, 1):
        for projection in ATTENTION:
            assert f"model.language_model.layers.{layer}.self_attn.{projection}" in linear

    # Adapted parameters (router, routed experts) through PEFT's ParamWrapper.
    expected = {f"{module}.{wrapped[module]}".replace(".base_layer", "") for module in wrapped}
    assert expected == {f"model.language_model.layers.1.{p}" for p in spec["parameters"]}
    has_experts = "mlp.experts.gate_up_proj" in spec["parameters"]
    has_router = "mlp.gate.weight" in spec["parameters"]
    assert bool(expert_slices(model)) == has_experts
    assert bool(router_parameters(model)) == has_router

    # Rank as in the preset (per expert for the fused expert tensors).
    for name, module in model.named_modules():
        if hasattr(module, "lora_A") and len(module.lora_A):
            assert module.r["default"] == spec["r"], name
            rows = spec["r"] * getattr(module, "num_experts", 1)
            assert module.lora_A["default"].weight.shape[0] == rows, name
    # Nothing trainable outside the adapters or on the vision side.
    for name, parameter in model.named_parameters():
        plain = name.removeprefix("base_model.model.")
        if plain.startswith(VISION):
            assert not parameter.requires_grad, name
            assert "lora_" not in name, name
        if parameter.requires_grad:
            assert "lora_" in name, name
    assert config.adapter.lora_dropout == (0.0 if spec["parameters"] else 0.05)


def test_high_capacity_moe_wraps_experts_and_router(tiny_root):
    loaded = load_model(TINY, root=tiny_root)
    model = make_trainable(loaded, training_config(
        {**BASE, "peft": "lora", "lora_preset": "high_capacity_moe"}), 10)
    wrappers = {n.removeprefix("base_model.model."): m for n, m in model.named_modules()
                if type(m).__name__ == "ParamWrapper"}
    by_parameter = {m.parameter_name: (n, m) for n, m in wrappers.items()}
    assert set(by_parameter) == {"gate_up_proj", "down_proj", "weight"}
    assert by_parameter["weight"][0] == "model.language_model.layers.1.mlp.gate"
    for parameter in ("gate_up_proj", "down_proj"):
        name, wrapper = by_parameter[parameter]
        assert name.startswith("model.language_model.layers.1.mlp.experts")
        assert wrapper.num_experts == 8
        assert wrapper.lora_A["default"].weight.shape[0] == 32 * 8
    # The base fused tensors stay frozen; only their adapters train.
    experts = model.get_submodule("base_model.model.model.language_model.layers.1.mlp.experts")
    base = experts.get_base_layer() if hasattr(experts, "get_base_layer") else experts
    assert not base.gate_up_proj.requires_grad and not base.down_proj.requires_grad


def test_qlora_4bit_lora_preset_is_refused_without_cuda():
    assert not CUDA, "this test is about machines without CUDA"
    error = refused({"peft": "lora", "lora_preset": "qlora_4bit"})
    assert error.field == "peft"
    # A config built in Python is refused by validation too (the training loop validates).
    with pytest.raises(ConfigError) as caught:
        validate(build(TrainingConfig, {**BASE, "lora_preset": "qlora_4bit"}))
    assert caught.value.field == "peft"


# --- 3. conflicts and bad values -----------------------------------------------------------

@pytest.mark.parametrize("data, field", [
    ({"peft": "lora", "lora_preset": "standard", "expert_dropout_rate": 0.2},
     "expert_dropout_rate"),
    ({"peft": "lora", "lora_preset": "router_focused", "expert_dropout_rate": 0.2},
     "expert_dropout_rate"),
    ({"peft": "lora", "lora_preset": "balanced", "gate_dropout_rate": 0.1},
     "gate_dropout_rate"),
    ({"peft": "full", "bidrop_passes": 2, "attention_dropout": 0.0}, "bidrop_passes"),
    ({"peft": "lora", "lora_preset": "high_capacity_moe", "bidrop_passes": 2},
     "bidrop_passes"),
    ({"peft": "lora", "lora_preset": "high_capacity_moe", "lora_dropout": 0.1},
     "lora_dropout"),
    ({"peft": "lora", "lora_preset": "router_focused", "lora_dropout": 0.1}, "lora_dropout"),
    ({"trainer_type": "generic", "augment": True}, "augment"),
    ({"trainer_type": "generic", "model": "tiny-deepseek-ocr-2"}, "model"),
    ({"trainer_type": "generic", "lora_preset": "balanced"}, "lora_preset"),
    ({"trainer_type": "generic", "peft": "full", "expert_dropout_rate": 0.1},
     "expert_dropout_rate"),
    ({"lora_preset": "all_linear"}, "lora_preset"),
    ({"model": "tiny-chat-lm"}, "model"),
    ({"preset": "turbo"}, "preset"),
])
def test_conflicts_are_refused_naming_the_field(data, field):
    error = refused(data)
    assert error.field == field
    assert str(error).startswith(f"{field} ")


@pytest.mark.parametrize("regularizer", [
    {"expert_dropout_rate": 0.2}, {"gate_dropout_rate": 0.1},
    {"bidrop_passes": 2, "attention_dropout": 0.1}, {"aux_loss_coef": 0.01},
    {"z_loss_coef": 0.001},
])
def test_moe_regularizers_are_refused_with_trainer_type_deepsynth(regularizer):
    data = {"peft": "full", **regularizer}
    assert training_config({**BASE, **data}).moe_regularized  # fine with production
    error = refused({"trainer_type": "deepsynth", **data})
    assert error.field == "trainer_type"


@pytest.mark.parametrize("data", [
    {"peft": "full", "expert_dropout_rate": 0.2, "gate_dropout_rate": 0.1},
    {"peft": "lora", "lora_preset": "high_capacity_moe", "expert_dropout_rate": 0.2,
     "gate_dropout_rate": 0.1},
    {"peft": "lora", "lora_preset": "router_focused", "gate_dropout_rate": 0.1},
    {"peft": "lora", "lora_preset": "balanced", "bidrop_passes": 2},  # lora_dropout 0.05
    {"peft": "full", "bidrop_passes": 3, "attention_dropout": 0.1, "bidrop_agreement": True},
    {"trainer_type": "generic", "peft": "full"},
])
def test_compatible_settings_are_accepted(data):
    config = training_config({**BASE, **data})
    for key, value in data.items():
        assert to_dict(config)[key] == value


@pytest.mark.parametrize("data, field, allowed", [
    ({"learning_rate": 5}, "learning_rate", "between 1e-08 and 1"),
    ({"batch_size": 0}, "batch_size", "between 1 and 512"),
    ({"scheduler": "step"}, "scheduler", "one of cosine, linear, constant"),
    ({"expert_dropout_rate": 1.5, "peft": "full"}, "expert_dropout_rate", "between 0 and 1"),
    ({"bidrop_passes": 9}, "bidrop_passes", "between 1 and 5"),
    ({"peft": "prefix"}, "peft", "one of lora, qlora, dora, adalora, full"),
    ({"lora_preset": "huge"}, "lora_preset", "one of standard"),
    ({"batch_size": "two"}, "batch_size", "must be an integer"),
    ({"warmup_rate": 0.1}, "warmup_rate", "is not a known field"),
])
def test_bad_values_name_their_field_and_what_is_allowed(data, field, allowed):
    error = refused(data)
    assert error.field == field
    assert allowed in error.message
    assert str(error).startswith(f"{field} ")


def test_missing_required_fields_are_named():
    with pytest.raises(ConfigError) as caught:
        training_config({"out": "o"})
    assert caught.value.field == "dataset"


# --- 4. the CLI ----------------------------------------------------------------------------

FLAGS = ("--trainer-type", "--peft", "--preset", "--lora-preset", "--max-steps", "--num-epochs",
         "--save-steps", "--eval-steps", "--batch-size", "--gradient-accumulation-steps",
         "--learning-rate", "--expert-dropout-rate", "--expert-dropout-min-keep",
         "--gate-dropout-rate", "--bidrop-passes", "--mixed-precision")


def test_train_help_lists_the_flags(tmp_path):
    completed = run_cli("train", "--help", cwd=tmp_path, timeout=120)
    assert completed.returncode == 0, completed.stderr
    words = completed.stdout.replace("[", " ").replace("]", " ").split()
    for flag in FLAGS:
        assert flag in words, flag
    for preset in TRAINING_PRESETS:
        assert preset in completed.stdout


def test_train_conflict_is_one_error_line(tmp_path):
    completed = run_cli("train", "--dataset", "d", "--out", "o", "--peft", "lora",
                        "--lora-preset", "standard", "--expert-dropout-rate", "0.2",
                        cwd=tmp_path, timeout=120)
    assert completed.returncode == 2, (completed.stdout, completed.stderr)
    assert "Traceback" not in completed.stderr
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, completed.stderr
    assert "expert_dropout_rate" in errors[0]
    assert not (tmp_path / "o").exists()  # refused before anything was written
