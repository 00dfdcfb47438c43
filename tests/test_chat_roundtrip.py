# ruff: noqa: F811
"""ShareGPT and Alpaca files made here, converted, validated clean, and trained for a few
steps on the tiny chat model, with labels exactly on the assistant text; and trained on as
they are (converted at training time, the report in metrics.json)."""

from __future__ import annotations

import itertools
import json

import pytest
from chat_samples import quiet, root, tokenizer  # noqa: F401

from deepsynth.chat.convert import convert_file
from deepsynth.chat.data import load_chat
from deepsynth.chat.inspect import validate_file
from deepsynth.chat.template import IGNORE, ChatEncoder
from deepsynth.config.training import training_config
from deepsynth.training.loop import train

SHAREGPT = [{"system": "You are terse.", "conversations": [
    {"from": "human", "value": f"What is {i} plus {i}?"},
    {"from": "gpt", "value": f"{2 * i}."},
    {"from": "human", "value": "And times two?"},
    {"from": "gpt", "value": f"{4 * i}, café."}]} for i in range(6)]
ALPACA = [{"instruction": f"Name the number after {i}.", "input": "Digits only.",
           "output": f"{i + 1}", "history": [[f"Count to {i}.", f"1 to {i}."]]}
          for i in range(6)]
ANSWERS = {"sharegpt": [[f"{2 * i}.", f"{4 * i}, café."] for i in range(6)],
           "alpaca": [[f"1 to {i}.", f"{i + 1}"] for i in range(6)]}
RUN = {"trainer_type": "generic", "peft": "full", "mixed_precision": "no", "batch_size": 2,
       "gradient_accumulation_steps": 1, "log_steps": 1, "save_steps": 1000, "max_steps": 3}


def trained_runs(example: dict, tokenizer) -> list[str]:
    runs = []
    for trained, group in itertools.groupby(zip(example["input_ids"], example["labels"],
                                                strict=True), key=lambda p: p[1] != IGNORE):
        if trained:
            runs.append(tokenizer.decode([token for token, _ in group],
                                         skip_special_tokens=False))
    return runs


@pytest.mark.parametrize("fmt, records", [("sharegpt", SHAREGPT), ("alpaca", ALPACA)])
def test_converted_validated_and_trained_with_labels_on_the_answers(fmt, records, root,
                                                                    tokenizer, tmp_path):
    source = tmp_path / f"{fmt}_demo.json"
    source.write_text(json.dumps(records, indent=2, ensure_ascii=False), encoding="utf-8")
    converted = tmp_path / f"{fmt}_demo.jsonl"
    report = convert_file(source, converted)
    assert report.counts() == {"records": 6, "converted": 6, "refused": 0,
                               "refused_by_reason": {}}
    encoder = ChatEncoder(tokenizer)
    checked = validate_file(converted, encoder)
    assert (checked["ok"], checked["errors"], checked["warnings"]) == (True, [], [])
    assert checked["format"]["name"] == "openai" and checked["conversion"] is None

    examples, _, _ = load_chat(converted, encoder, skip_invalid=False)
    assert [trained_runs(example, tokenizer) for example in examples] == [
        [f"{answer}<|im_end|>" for answer in answers] for answers in ANSWERS[fmt]]

    out = tmp_path / "run"
    result = train(training_config({"dataset": str(converted), "out": str(out), **RUN}),
                   root=root, echo=quiet)
    assert (result.status, result.step) == ("completed", 3)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["conversion"] is None and metrics["lines_skipped_invalid"] == 0


def test_training_converts_a_sharegpt_file_by_itself(root, tmp_path):
    source = tmp_path / "sharegpt.json"
    records = SHAREGPT + [{"conversations": [{"from": "human", "value": "hi"},
                                             {"from": "bot", "value": "beep"}]}]
    source.write_text(json.dumps(records, indent=2), encoding="utf-8")
    said = []
    out = tmp_path / "run"
    config = training_config({"dataset": str(source), "out": str(out), **RUN,
                              "skip_invalid_lines": True})
    result = train(config, root=root, echo=said.append)
    assert result.status == "completed"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["chat_format"]["label"] == (
        "ShareGPT (conversations with from/value) in a JSON array")
    assert metrics["conversion"] == {"records": 7, "converted": 6, "refused": 1,
                                     "refused_by_reason": {"unknown_from": 1}}
    assert metrics["lines_skipped_invalid"] == 1
    assert any("converted: 7 records read, 6 converted, 1 refused, unknown_from 1" in line
               for line in said)
