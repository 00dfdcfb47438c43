# ruff: noqa: F811
"""The generic chat trainer end to end on the tiny chat model: defaults per training type,
conflicts, every PEFT type trains, saves and reloads, the loss goes down, bad lines,
evaluation, and the ``deepsynth train`` command round-trip through the real CLI parser."""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import pytest
import torch

from deepsynth.chat.data import ChatFileError
from deepsynth.cli.main import build_parser
from deepsynth.cli.model_commands import run_train
from deepsynth.config import to_dict
from deepsynth.config.spec import build, flat_fields
from deepsynth.config.training import CHAT_DEFAULTS as GENERIC_DEFAULTS
from deepsynth.config.training import TrainingConfig, train_command, training_config
from deepsynth.config.training_checks import check_chat as check_generic
from deepsynth.errors import ConfigError
from deepsynth.models.registry import load_model
from deepsynth.training import loop
from deepsynth.training.loop import train

# Fixtures are imported from chat_samples and requested by name (hence F401/F811 below).
from chat_samples import (  # noqa: F401
    FULL, MULTI, USER, qa, quiet, root, tokenizer, write_lines,
)


# ================================================================== 5. config

BASE = {"dataset": "chat.jsonl", "out": "run"}
ADAPTER = {"model": "tiny-chat-lm", "lora_preset": "all_linear", "lora_r": 64,
           "lora_alpha": 128, "lora_dropout": 0.05, "warmup_ratio": 0.03, "weight_decay": 0.1,
           "gradient_accumulation_steps": 16}
EXPECTED_GENERIC = {
    "lora": {**ADAPTER, "learning_rate": 2e-4},
    "qlora": {**ADAPTER, "learning_rate": 2e-4},
    "dora": {**ADAPTER, "learning_rate": 1e-4},
    "adalora": {**ADAPTER, "learning_rate": 5e-5},
    "full": {"model": "tiny-chat-lm", "learning_rate": 2e-5, "warmup_ratio": 0.03,
             # Resolved configs record every value: all_linear's rank, unused by full.
             "weight_decay": 0.1, "gradient_accumulation_steps": 32, "lora_r": 64},
}


@pytest.fixture
def pretend_cuda(monkeypatch):
    """Build a qlora config as on a CUDA machine (the check only asks torch)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


@pytest.mark.parametrize("peft", ["lora", "qlora", "dora", "adalora", "full"])
def test_generic_defaults_per_training_type(peft, request):
    if peft == "qlora":
        request.getfixturevalue("pretend_cuda")
    config = training_config({**BASE, "trainer_type": "generic", "peft": peft})
    flat = to_dict(config)
    for name, value in EXPECTED_GENERIC[peft].items():
        assert flat[name] == value, name
    for name, value in GENERIC_DEFAULTS[peft].items():
        assert flat[name] == value, name
    # Explicit fields override the defaults; the others keep them.
    config = training_config({**BASE, "trainer_type": "generic", "peft": peft,
                              "learning_rate": 1e-3, "gradient_accumulation_steps": 2,
                              "weight_decay": 0.0, "lora_r": 8})
    schedule = config.schedule
    assert (schedule.learning_rate, schedule.gradient_accumulation_steps, schedule.weight_decay,
            config.adapter.lora_r) == (1e-3, 2, 0.0, 8)
    assert config.schedule.warmup_ratio == 0.03 and config.task.model == "tiny-chat-lm"


def test_presets_and_other_trainer_types_with_generic_defaults():
    # A training preset sits above the generic defaults; its OCR model is not taken.
    config = training_config({**BASE, "trainer_type": "generic", "preset": "quick_test"})
    assert (config.schedule.learning_rate, config.schedule.gradient_accumulation_steps,
            config.adapter.lora_r, config.task.model) == (1e-3, 1, 64, "tiny-chat-lm")
    config = training_config({**BASE, "trainer_type": "generic", "preset": "cpu_demo"})
    assert (config.task.model, config.adapter.peft, config.schedule.learning_rate,
            config.schedule.weight_decay) == (
        "tiny-chat-lm", "full", 2e-3, 0.1)
    # The OCR trainers do not get them.
    config = training_config(BASE)
    # (The resolved config records the LoRA preset's rank, balanced: 16, not None.)
    assert (config.schedule.learning_rate, config.adapter.lora_preset,
            config.adapter.lora_r) == (5e-5, "balanced", 16)


def test_qlora_without_cuda_is_refused_naming_peft():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ConfigError) as caught:
        training_config({**BASE, "trainer_type": "generic", "peft": "qlora"})
    assert caught.value.field == "peft" and "CUDA" in str(caught.value)


@pytest.mark.parametrize("data, field", [
    ({"model": "tiny-deepseek-ocr-2"}, "model"),
    ({"model": "deepseek-ocr-2", "peft": "full"}, "model"),
    ({"expert_dropout_rate": 0.1}, "expert_dropout_rate"),
    ({"peft": "full", "expert_dropout_rate": 0.1}, "expert_dropout_rate"),
    ({"peft": "full", "gate_dropout_rate": 0.1}, "gate_dropout_rate"),
    ({"aux_loss_coef": 0.01}, "aux_loss_coef"),
    ({"augment": True}, "augment"),
    ({"image_mode": "crops"}, "image_mode"),
    ({"lora_preset": "balanced"}, "lora_preset"),
])
def test_generic_conflicts_name_their_field(data, field):
    with pytest.raises(ConfigError) as caught:
        training_config({**BASE, "trainer_type": "generic", **data})
    assert caught.value.field == field and str(caught.value).startswith(f"{field} ")
    # check_generic itself, on a config built without validation.
    with pytest.raises(ConfigError) as caught:
        check_generic(build(TrainingConfig, {**BASE, "trainer_type": "generic",
                                             "model": "tiny-chat-lm",
                                             "lora_preset": "all_linear", **data}))
    assert caught.value.field == field


# ================================================================= 6. training

TRAIN_ROWS = [qa(i) for i in range(12)] + [FULL, MULTI]
RUN = {"trainer_type": "generic", "mixed_precision": "no", "batch_size": 2,
       "gradient_accumulation_steps": 1, "log_steps": 1, "save_steps": 1000}
PROBE_INPUT = torch.tensor([[0, 5, 6, 7, 8, 9, 10, 11]])


@pytest.fixture(scope="module")
def chat_file(tmp_path_factory) -> Path:
    return write_lines(tmp_path_factory.mktemp("chat-data") / "train.jsonl", TRAIN_ROWS)


@pytest.fixture(scope="module")
def base_logits(root) -> torch.Tensor:
    model = load_model("tiny-chat-lm", root=root).model.eval()
    with torch.no_grad():
        return model(input_ids=PROBE_INPUT).logits


def run_config(dataset: Path, out: Path, **options) -> TrainingConfig:
    return training_config({"dataset": str(dataset), "out": str(out), **RUN, **options})


def history(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics_history.jsonl").read_text()
            .splitlines()]


def parse_command(command: str) -> TrainingConfig:
    """``deepsynth train ...`` through the real CLI parser, as ``run_train`` reads it."""
    words = shlex.split(command)
    assert words[:2] == ["deepsynth", "train"]
    args = build_parser().parse_args(words[1:])
    assert args.handler is run_train
    given = {k: v for k, v in vars(args).items()
             if k in flat_fields(TrainingConfig) and v is not None}
    return training_config(given)


@pytest.mark.parametrize("peft", ["lora", "dora", "adalora", "full"])
def test_each_training_type_trains_saves_and_reloads(peft, chat_file, root, base_logits,
                                                     tmp_path, monkeypatch):
    saved = {}
    original = loop.save_final_model

    def keep_model(folder, model, *args, **kwargs):
        saved["model"] = model
        return original(folder, model, *args, **kwargs)

    monkeypatch.setattr(loop, "save_final_model", keep_model)
    out = tmp_path / f"run {peft}"
    config = run_config(chat_file, out, peft=peft, max_steps=3, learning_rate=1e-2)
    result = train(config, root=root, echo=quiet)
    assert (result.status, result.step, result.final_model) == ("completed", 3, out / "final")

    final = out / "final"
    names = {p.name for p in final.iterdir()}
    if peft == "full":
        assert {"model.safetensors", "config.json"} <= names and "adapter_config.json" not in names
    else:
        assert {"adapter_config.json", "adapter_weights.safetensors"} <= names
        assert "model.safetensors" not in names
    info = json.loads((final / "deepsynth-model.json").read_text())
    assert (info["trainer_type"], info["peft"], info["base_model"]) == (
        "generic", peft, "tiny-chat-lm")
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["status"], metrics["steps"], metrics["lines_skipped_invalid"],
            metrics["invalid_lines"]) == ("completed", 3, 0, [])
    assert metrics["parameters_trainable"] > 0
    if peft != "full":
        assert metrics["parameters_trainable"] < metrics["parameters_total"]
    losses = [r["loss"] for r in history(out) if "loss" in r]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)

    written = json.loads((out / "training_config.json").read_text())
    # The run fills in the summary length limit it was not given (docs/training.md).
    assert config.evaluation.max_new_tokens is None and written["max_new_tokens"] >= 1
    assert written == {**to_dict(config), "max_new_tokens": written["max_new_tokens"]}
    command = (out / "command.txt").read_text().strip()
    assert command == train_command(training_config(written))
    readme = (final / "README.md").read_text()
    assert "## Reproduce" in readme
    assert f"```\n{command}\n```" in readme.split("## Reproduce", 1)[1]
    assert to_dict(parse_command(command)) == written

    # The saved model reloads and computes exactly what the trained model computed.
    reloaded = load_model(str(final), root=root)
    trained = saved["model"].eval()
    with torch.no_grad():
        expected = trained(input_ids=PROBE_INPUT).logits
        actual = reloaded.model.eval()(input_ids=PROBE_INPUT).logits
    assert torch.equal(actual, expected)
    assert (actual - base_logits).abs().max() > 1e-3  # training changed something
    assert reloaded.tokenizer("<|im_end|>", add_special_tokens=False)["input_ids"] == [
        reloaded.tokenizer.eos_token_id]


def test_qlora_training_on_cpu_fails_with_a_clear_error(chat_file, root, tmp_path,
                                                        monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with monkeypatch.context() as patched:
        patched.setattr(torch.cuda, "is_available", lambda: True)
        config = run_config(chat_file, tmp_path / "qlora", peft="qlora", max_steps=1)
    assert config.adapter.peft == "qlora"
    with pytest.raises(ConfigError) as caught:
        train(config, root=root, echo=quiet)
    assert caught.value.field == "peft"
    assert "CUDA" in str(caught.value) and "lora" in str(caught.value)
    assert not (tmp_path / "qlora" / "final").exists()


def test_training_on_a_small_chat_set_lowers_the_loss(chat_file, root, tmp_path):
    out = tmp_path / "loss"
    config = run_config(chat_file, out, peft="full", max_steps=40, batch_size=4,
                        learning_rate=3e-3, scheduler="constant", warmup_ratio=0.0,
                        weight_decay=0.0)
    result = train(config, root=root, echo=quiet)
    assert (result.status, result.step) == ("completed", 40)
    records = [r for r in history(out) if "loss" in r]
    assert [r["step"] for r in records] == list(range(1, 41))
    first, last = records[0]["loss"], records[-1]["loss"]
    assert last < 0.5 * first, (first, last)
    mean = sum(r["loss"] for r in records[-5:]) / 5
    assert mean < 0.5 * sum(r["loss"] for r in records[:5]) / 5


def test_training_refuses_bad_lines_unless_told_to_skip_them(tmp_path, root):
    lines = [qa(1), '{"messages": [', qa(2), qa(3), {"messages": [USER]}, qa(4)]
    path = write_lines(tmp_path / "with errors.jsonl", lines)
    config = run_config(path, tmp_path / "refused", peft="full", max_steps=1)
    with pytest.raises(ChatFileError) as caught:
        train(config, root=root, echo=quiet)
    assert "line 2:" in str(caught.value) and "line 5:" in str(caught.value)
    assert "skip_invalid_lines" in str(caught.value)
    assert not (tmp_path / "refused" / "final").exists()

    out = tmp_path / "skipped"
    result = train(run_config(path, out, peft="full", max_steps=1, skip_invalid_lines=True),
                   root=root, echo=quiet)
    assert result.status == "completed"
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["lines_skipped_invalid"], metrics["invalid_lines"]) == (2, [2, 5])
    assert result.metrics["invalid_lines"] == [2, 5]
    assert "--skip-invalid-lines" in shlex.split((out / "command.txt").read_text())


def test_training_with_an_eval_dataset_reports_eval_loss(chat_file, root, tmp_path):
    eval_path = write_lines(tmp_path / "eval.jsonl", [qa(20), qa(21), qa(22)])
    out = tmp_path / "eval"
    config = run_config(chat_file, out, peft="lora", max_steps=2, eval_steps=2,
                        eval_dataset=str(eval_path), eval_samples=2, max_new_tokens=4)
    result = train(config, root=root, echo=quiet)
    assert result.status == "completed"
    evals = [r for r in history(out) if "eval" in r]
    assert [r["step"] for r in evals] == [2]
    assert math.isfinite(evals[0]["eval"]["eval_loss"]) and evals[0]["eval"]["samples"] == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["best_eval_loss"] == evals[0]["eval"]["eval_loss"]
    assert math.isfinite(metrics["perplexity"])
    samples = json.loads((out / "eval_samples" / "step-000002.json").read_text())
    assert [s["reference"] for s in samples] == ["20 plus 20 is 40.", "21 plus 21 is 42."]


# ========================================================== 7. command round-trip

ROUND_TRIPS = {
    "generic-lora-overrides": {
        "trainer_type": "generic", "peft": "lora", "lora_r": 8, "lora_alpha": 16,
        "lora_dropout": 0.1, "learning_rate": 1e-3, "chat_template": "builtin",
        "chat_reasoning": "drop", "chat_train_on": "last_assistant",
        "skip_invalid_lines": True, "eval_dataset": "/data/my eval.jsonl", "max_steps": 7,
        "max_length": 1024, "gradient_checkpointing": True},
    "generic-full": {"trainer_type": "generic", "peft": "full"},
    "generic-dora-standard": {"trainer_type": "generic", "peft": "dora",
                              "lora_preset": "standard", "scheduler": "linear"},
    "ocr-production-moe": {
        "model": "tiny-deepseek-ocr-2", "peft": "full", "expert_dropout_rate": 0.1,
        "expert_dropout_min_keep": 2, "gate_dropout_rate": 0.05, "bidrop_passes": 2,
        "bidrop_agreement": True, "hidden_dropout": 0.1, "aux_loss_coef": 0.01,
        "z_loss_coef": 0.001, "augment": True, "prompt": "Summarize: it's \"short\"."},
    "ocr-lora-high-capacity": {"peft": "lora", "lora_preset": "high_capacity_moe",
                               "lora_dropout": 0.0, "expert_dropout_rate": 0.2,
                               "push_to_hub": True, "hub_model_id": "org/name",
                               "public": False},
    "preset-boolean-false": {"preset": "low_memory", "gradient_checkpointing": False},
    "generic-preset-override": {"trainer_type": "generic", "preset": "quick_test",
                                "learning_rate": 2e-4},
}
# Both fail the same way: an explicit value equal to the no-preset baseline is left out of
# the command, so parsing it back applies the preset's value instead.
@pytest.mark.parametrize("case", list(ROUND_TRIPS))
def test_train_command_parses_back_to_the_same_config(case):
    config = training_config({"dataset": "/data/my chat.jsonl", "out": "/runs/run 1",
                              **ROUND_TRIPS[case]})
    command = train_command(config)
    parsed = parse_command(command)
    assert parsed == config, command
    assert to_dict(parsed) == to_dict(config)


def test_boolean_flags_parse_both_ways():
    """What a command needs to undo a preset's boolean: ``--no-FLAG`` wins over the preset."""
    base = "deepsynth train --dataset d.jsonl --out run --preset low_memory"
    assert parse_command(base).schedule.gradient_checkpointing is True
    assert parse_command(base + " --no-gradient-checkpointing").schedule.gradient_checkpointing \
        is False
    turned_on = parse_command("deepsynth train --dataset d --out o --trainer-type generic "
                              "--skip-invalid-lines --gradient-checkpointing")
    assert turned_on.chat.skip_invalid_lines is True
    assert turned_on.schedule.gradient_checkpointing is True
