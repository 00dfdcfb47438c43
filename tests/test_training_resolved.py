"""The training config as sections inside and one flat mapping outside, resolved once into a
complete config (every preset value filled), and the regularizer descriptors that drive the
refusals."""

from __future__ import annotations

import dataclasses
import shlex

import pytest
import torch

from deepsynth.cli.main import build_parser
from deepsynth.cli.model_commands import run_train
from deepsynth.config import from_dict, to_dict
from deepsynth.config.schema import json_schema
from deepsynth.config.spec import build, flat_fields
from deepsynth.config.training import (
    CHAT_LORA_PRESETS, LORA_PRESETS, OCR_LORA_PRESETS, TRAINING_PRESETS, TrainingConfig,
    train_command, training_config,
)
from deepsynth.errors import ConfigError
from deepsynth.training.regularizers import REGULARIZERS

BASE = {"dataset": "d", "out": "o"}
SECTIONS = ("task", "adapter", "schedule", "moe", "evaluation", "chat", "hub")


@pytest.fixture
def pretend_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def parse_command(command: str) -> TrainingConfig:
    """A ``deepsynth train`` command through the real CLI parser, as ``run_train`` reads it."""
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert args.handler is run_train
    return training_config({k: v for k, v in vars(args).items()
                            if k in flat_fields(TrainingConfig) and v is not None})


CONFIGS = [BASE, {**BASE, "trainer_type": "generic"},
           {**BASE, "peft": "full", "expert_dropout_rate": 0.1, "bidrop_passes": 2,
            "hidden_dropout": 0.1, "push_to_hub": True, "hub_model_id": "org/name"}] + [
    {**BASE, "preset": name} for name in TRAINING_PRESETS]


def test_sections_hold_every_field_once():
    assert tuple(f.name for f in dataclasses.fields(TrainingConfig)) == SECTIONS
    config = training_config(BASE)
    names = [f.name for section in SECTIONS
             for f in dataclasses.fields(getattr(config, section))]
    assert len(names) == len(set(names)) == len(flat_fields(TrainingConfig)) == 61
    assert config.schedule.learning_rate == 5e-5 and config.task.dataset == "d"
    assert config.hub.push_to_hub is False and config.evaluation.eval_dataset is None


@pytest.mark.parametrize("data", CONFIGS)
def test_flat_mapping_round_trips(data):
    config = training_config(data)
    flat = to_dict(config)
    assert set(flat) == set(flat_fields(TrainingConfig))
    assert not any(isinstance(v, dict) for v in flat.values())
    assert from_dict(TrainingConfig, flat) == config
    assert build(TrainingConfig, flat) == config


def test_schema_is_one_flat_object():
    schema = json_schema(TrainingConfig, exclude=("out",))
    assert set(schema["properties"]) == set(flat_fields(TrainingConfig)) - {"out"}
    assert schema["required"] == ["dataset"]
    assert all(p.get("type") != "object" for p in schema["properties"].values())


def test_an_older_flat_config_with_null_lora_values_still_parses():
    old = {**to_dict(training_config(BASE)), "lora_r": None, "lora_alpha": None,
           "lora_dropout": None}
    assert from_dict(TrainingConfig, old).adapter.lora_r is None


def test_bad_values_are_named_flat():
    with pytest.raises(ConfigError) as caught:
        training_config({**BASE, "learning_rate": 5})
    assert caught.value.field == "learning_rate"


@pytest.mark.parametrize("preset", OCR_LORA_PRESETS)
def test_every_ocr_lora_preset_is_filled_in(preset, pretend_cuda):
    adapter = training_config({**BASE, "lora_preset": preset}).adapter
    spec = LORA_PRESETS[preset]
    assert (adapter.lora_r, adapter.lora_alpha) == (spec["r"], spec["alpha"])
    assert adapter.lora_dropout == (0.0 if spec["parameters"] else 0.05)


@pytest.mark.parametrize("preset", CHAT_LORA_PRESETS)
@pytest.mark.parametrize("peft", ["lora", "full"])
def test_every_chat_lora_preset_is_filled_in(preset, peft):
    adapter = training_config({**BASE, "trainer_type": "generic", "peft": peft,
                               "lora_preset": preset}).adapter
    assert None not in (adapter.lora_r, adapter.lora_alpha, adapter.lora_dropout)


@pytest.mark.parametrize("trainer_type", ["production", "generic"])
@pytest.mark.parametrize("preset", list(TRAINING_PRESETS))
def test_every_training_preset_resolves_complete(preset, trainer_type):
    data = {**BASE, "preset": preset, "trainer_type": trainer_type}
    if trainer_type == "generic" and any(TRAINING_PRESETS[preset].get(n) for n in ROUTED):
        with pytest.raises(ConfigError):  # MoE presets are for the OCR trainers
            training_config(data)
        return
    config = training_config(data)
    flat = to_dict(config)
    for name in ("lora_r", "lora_alpha", "lora_dropout"):
        assert flat[name] is not None, (preset, name)
    for name, value in TRAINING_PRESETS[preset].items():
        if name != "model" or trainer_type == "production":
            assert flat[name] == value, (preset, name)
    assert parse_command(train_command(config)) == config


@pytest.mark.parametrize("data", CONFIGS + [
    {**BASE, "lora_preset": "high_capacity_moe", "expert_dropout_rate": 0.2,
     "gate_dropout_rate": 0.1},
    {**BASE, "trainer_type": "generic", "peft": "dora", "lora_r": 8, "chat_train_on":
     "last_assistant", "eval_dataset": "e.jsonl"}])
def test_train_command_round_trips_through_the_cli_parser(data):
    config = training_config(data)
    assert parse_command(train_command(config)) == config


def test_task_kind_is_derived_from_trainer_type():
    kinds = {t: training_config({**BASE, "trainer_type": t}).task.kind
             for t in ("production", "deepsynth", "generic")}
    assert kinds == {"production": "ocr", "deepsynth": "ocr", "generic": "chat"}


# --- the regularizer descriptors drive the refusals -----------------------------------------

ROUTED = [name for r in REGULARIZERS if r.routed for name in r.switches]
SWITCHES = [name for r in REGULARIZERS for name in r.switches]


def test_the_descriptors_name_moe_fields():
    moe_fields = {f.name for f in dataclasses.fields(training_config(BASE).moe)}
    assert set(SWITCHES) <= moe_fields
    assert {"expert_dropout_rate", "gate_dropout_rate", "aux_loss_coef", "z_loss_coef"} == set(
        ROUTED)


@pytest.mark.parametrize("name", ROUTED)
def test_the_chat_trainer_refuses_every_routed_regularizer(name):
    with pytest.raises(ConfigError) as caught:
        training_config({**BASE, "trainer_type": "generic", "peft": "full", name: 0.1})
    assert caught.value.field == name


@pytest.mark.parametrize("name", SWITCHES)
def test_every_regularizer_counts_as_moe_regularized(name):
    value = 2 if name == "bidrop_passes" else 0.1
    data = {**BASE, "peft": "full", "hidden_dropout": 0.1, name: value}
    assert training_config(data).moe_regularized
    with pytest.raises(ConfigError) as caught:
        training_config({**data, "trainer_type": "deepsynth"})
    assert caught.value.field == "trainer_type"


# --- the CLI: Hub datasets stay in the config, downloaded for the run only -----------------

class FakeHub:
    def __init__(self):
        self.downloads = []

    def download(self, repo, folder):
        self.downloads.append(repo)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "train.jsonl").write_text("{}\n")


def test_cli_downloads_hub_datasets_for_the_run_only(tmp_path, monkeypatch):
    from deepsynth.cli import model_commands
    from deepsynth.jobs import kinds

    hub = FakeHub()
    monkeypatch.setenv("DEEPSYNTH_DATA_ROOT", str(tmp_path))
    monkeypatch.setattr(kinds, "real_hub", lambda token, repo_type: hub)
    config = training_config({**BASE, "trainer_type": "generic", "dataset": "hf:org/chat"})
    local = model_commands._with_hub_data(config)
    assert hub.downloads == ["org/chat"]
    assert config.task.dataset == "hf:org/chat"  # the resolved config keeps the Hub id
    assert local.task.dataset == str(tmp_path / "cache/hub-datasets/org--chat/train.jsonl")
    assert dataclasses.replace(local, task=config.task) == config
