"""Run comparison in the library (training/compare.py): the diff of resolved configurations,
the curves read from a history, the options a clone starts from; and the chat prompt a
playground reply is generated from. No model is loaded."""

from __future__ import annotations

from deepsynth.chat.template import ChatEncoder
from deepsynth.config import to_dict
from deepsynth.config.training import training_config
from deepsynth.training.compare import clone_options, config_diff, curves


def test_the_diff_holds_only_the_keys_that_differ():
    a = {"dataset": "datasets/a", "learning_rate": 0.001, "batch_size": 2, "seed": 42}
    b = {"dataset": "datasets/a", "learning_rate": 0.0005, "batch_size": 2, "seed": 42}
    assert config_diff({"a": a, "b": b}) == [
        {"key": "learning_rate", "values": {"a": 0.001, "b": 0.0005}}]
    assert config_diff({"a": a, "same": dict(a)}) == []


def test_the_diff_of_three_runs_with_a_key_one_lacks():
    a = {"max_steps": 10, "peft": "lora"}
    b = {"max_steps": 10, "peft": "full"}
    c = {"max_steps": 10, "peft": "lora", "sliding_window": 128}  # a newer version's key
    assert config_diff({"a": a, "b": b, "c": c}) == [
        {"key": "peft", "values": {"a": "lora", "b": "full", "c": "lora"}},
        {"key": "sliding_window", "values": {"a": None, "b": None, "c": 128}}]
    # 1 and 1.0, True and 1 are different values in a configuration.
    assert [d["key"] for d in config_diff({"x": {"v": 1, "w": True}, "y": {"v": 1.0, "w": 1}})] \
        == ["v", "w"]


def test_curves_take_train_and_eval_records_and_skip_bad_ones():
    history = [{"step": 1, "loss": 7.5}, {"step": 2, "loss": 7.0},
               {"step": 2, "eval": {"eval_loss": 7.2, "rouge1": 0.1, "rougeL": 0.05}},
               {"step": "3", "loss": 6.0}, {"step": 4, "loss": "nan"}, {"loss": 1.0},
               {"step": 4, "eval": "broken"}, {"step": True, "loss": 2.0}]
    assert curves(history) == {"loss": [[1, 7.5], [2, 7.0]], "eval_loss": [[2, 7.2]],
                               "rouge1": [[2, 0.1]], "rougeL": [[2, 0.05]]}


def test_a_clone_resolves_to_the_same_configuration():
    original = training_config({"dataset": "/data/datasets/d", "out": "/data/models/r",
                                "preset": "quick_test", "learning_rate": 0.0005,
                                "max_steps": 3, "peft": "full"})
    options = clone_options(to_dict(original))
    assert "out" not in options and options["learning_rate"] == 0.0005
    assert options["preset"] == "quick_test" and options["peft"] == "full"
    again = to_dict(training_config({**options, "out": "/data/models/r"}))
    assert again == to_dict(original)
    assert clone_options({"no_such_option": 1}) is None


class _Tokenizer:
    chat_template = None


def test_the_reply_prompt_opens_the_assistant_turn():
    encoder = ChatEncoder(_Tokenizer(), template="builtin")
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Capital of France?"}]
    prompt = encoder.generation_prompt({"messages": messages})
    assert prompt == ("<|im_start|>system\nBe brief.<|im_end|>\n"
                      "<|im_start|>user\nCapital of France?<|im_end|>\n<|im_start|>assistant\n")
    # Evaluation's prompt (the turns before the last reply) is the same text.
    head, reference = encoder.prompt_text(
        {"messages": messages + [{"role": "assistant", "content": "Paris."}]})
    assert head == prompt and reference == "Paris."
