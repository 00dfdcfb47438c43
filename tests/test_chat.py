"""The generic chat trainer with real components: the strict validator of chat JSONL, the
chat template and its labels (built-in and the model's own Jinja template), truncation,
``load_chat``, the generic config defaults and conflicts, real training runs on the tiny
chat model (every PEFT type, loss going down, skipped lines, evaluation) and the
``deepsynth train`` command round-trip through the real CLI parser.
"""

from __future__ import annotations

import copy
import gzip
import itertools
import json
import math
import shlex
from pathlib import Path

import pytest
import torch

from deepsynth.chat.data import ChatFileError, load_chat
from deepsynth.chat.template import IGNORE, ChatEncoder, label_preview, marked_text
from deepsynth.chat.validate import ChatReport, conversations, parse_line, validate_chat
from deepsynth.cli.main import build_parser
from deepsynth.cli.model_commands import run_train
from deepsynth.config import to_dict
from deepsynth.config.training import (
    GENERIC_DEFAULTS, TrainingConfig, check_generic, train_command, training_config,
)
from deepsynth.errors import ConfigError, DeepSynthError
from deepsynth.models.registry import load_model
from deepsynth.models.tiny_chat import ensure_tiny_chat_model
from deepsynth.paths import cache_dir
from deepsynth.training import loop
from deepsynth.training.loop import train

# --------------------------------------------------------------------------- conversations

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather of a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}


def call(call_id: str, city: str, name: str = "get_weather") -> dict:
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": json.dumps({"city": city})}}


USER = {"role": "user", "content": "Hello there"}
ANSWER = {"role": "assistant", "content": "Hi, how can I help?"}

# Every feature: tools, system and developer roles, reasoning, a tool call and its response,
# structured (JSON) output with non-ASCII text.
FULL = {"tools": [WEATHER_TOOL], "messages": [
    {"role": "system", "content": "You are a weather assistant."},
    {"role": "developer", "content": "Reply with JSON matching the schema."},
    {"role": "user", "content": "How is the weather in Paris?"},
    {"role": "assistant", "content": None, "reasoning": "I need the current weather.",
     "tool_calls": [call("call_1", "Paris")]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 21, \"sky\": \"clear\"}"},
    {"role": "assistant",
     "content": "{\"city\": \"Paris\", \"temp_c\": 21, \"sky\": \"ensoleillé ☀\"}"},
]}
# The trained text of FULL's two assistant turns, written out by hand (built-in template).
FULL_TURN_1 = ("<think>\nI need the current weather.\n</think>\n<tool_call>\n"
               "{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n"
               "</tool_call>\n<|im_end|>")
FULL_TURN_1_NO_REASONING = FULL_TURN_1.split("</think>\n", 1)[1]
FULL_TURN_2 = "{\"city\": \"Paris\", \"temp_c\": 21, \"sky\": \"ensoleillé ☀\"}<|im_end|>"
NOT_TRAINED = ("You are a weather assistant.", "Reply with JSON matching the schema.",
               "How is the weather in Paris?", "{\"temp_c\": 21, \"sky\": \"clear\"}",
               "get_weather\", \"description\"")

# Two parallel tool calls answered out of order, content next to tool calls, reasoning on
# the final answer.
MULTI = {"messages": [
    {"role": "user", "content": "Is Oslo or Rome warmer?"},
    {"role": "assistant", "content": "Checking both.",
     "tool_calls": [call("call_a", "Oslo"), call("call_b", "Rome")]},
    {"role": "tool", "tool_call_id": "call_b", "content": "{\"temp_c\": 24}"},
    {"role": "tool", "tool_call_id": "call_a", "content": "{\"temp_c\": 9}"},
    {"role": "assistant", "reasoning": "24 is more than 9.", "content": "Rome is warmer."},
]}
PLAIN = {"messages": [USER, ANSWER]}


def dumps(conversation) -> str:
    return conversation if isinstance(conversation, str) else json.dumps(conversation,
                                                                          ensure_ascii=False)


def write_lines(path: Path, lines: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(dumps(line) + "\n" for line in lines), encoding="utf-8")
    return path


def qa(i: int) -> dict:
    return {"messages": [{"role": "user", "content": f"What is {i} plus {i}?"},
                         {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."}]}


# ------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """One data root for the module: the tiny chat model is built once and cached there."""
    folder = tmp_path_factory.mktemp("chat-root")
    built = ensure_tiny_chat_model(cache_dir(folder))
    assert (built / "model.safetensors").exists()
    return folder


@pytest.fixture(scope="module")
def tokenizer(root):
    loaded = load_model("tiny-chat-lm", root=root)
    assert not loaded.tokenizer.chat_template  # so "auto" means the built-in template
    return loaded.tokenizer


@pytest.fixture(scope="module")
def encoder(tokenizer) -> ChatEncoder:
    return ChatEncoder(tokenizer)


def quiet(_text: str) -> None:
    """Echo sink for in-process runs."""


# ============================================================== 1. the validator


def test_a_valid_file_with_every_feature_passes(tmp_path, encoder):
    lines = [dumps(FULL), "", dumps(MULTI), "   ", dumps(PLAIN)]
    report = validate_chat(line + "\n" for line in lines)
    assert report.ok, [str(p) for p in report.errors]
    assert (report.error_count, report.errors, report.warnings) == (0, [], [])
    assert report.invalid_lines == []
    summary = report.summary()
    assert (summary["rows"], summary["valid_rows"], summary["turns"]) == (3, 3, 13)
    assert summary["role_counts"] == {"system": 1, "developer": 1, "user": 3, "assistant": 5,
                                      "tool": 3}
    # Without a tokenizer there are no lengths.
    assert summary["token_lengths"] == {"p50": None, "p90": None, "p99": None, "max": None}
    as_dict = report.to_dict()
    assert as_dict["ok"] is True and json.loads(json.dumps(as_dict)) == as_dict

    # The streaming form yields each valid conversation with its physical line number.
    streamed = list(conversations(lines, ChatReport()))
    assert [(number, data) for number, data in streamed] == [(1, FULL), (3, MULTI), (5, PLAIN)]


def test_token_length_percentiles_use_the_tokenizer(tokenizer, encoder):
    # 11 distinct lengths: nearest-rank and the other usual definitions agree on the ranks.
    rows = [{"messages": [{"role": "user", "content": "word " * (3 * i + 1)},
                          {"role": "assistant", "content": "ok"}]} for i in range(11)]
    order = [7, 2, 9, 0, 5, 10, 1, 4, 8, 3, 6]
    rows = [rows[i] for i in order]
    report = validate_chat((dumps(r) for r in rows), count_tokens=encoder.count_tokens)
    # The count is the rendered text's tokens plus the BOS the built-in template starts with.
    expected = [1 + len(tokenizer(encoder.render(r)[0], add_special_tokens=False)["input_ids"])
                for r in rows]
    assert report.token_lengths == expected
    assert len(set(expected)) == 11
    ranked = sorted(expected)
    assert report.summary()["token_lengths"] == {"p50": ranked[5], "p90": ranked[9],
                                                 "p99": ranked[10], "max": ranked[10]}
    assert report.warnings == []  # no max_length given: nothing is too long


def tool_call_turn(*calls: dict, content=None) -> dict:
    return {"role": "assistant", "content": content, "tool_calls": list(calls)}


BAD_LINES = [  # (line, the one problem it has as (path, rule), or None for a valid line)
    (PLAIN, None),
    ('{"messages": [{"role": "user", "content": "hi"}', ("$", "invalid_json")),
    ({"conversation": [USER, ANSWER]}, ("messages", "no_messages")),
    ({"messages": [USER, {"role": "robot", "content": "beep"}, ANSWER]},
     ("messages[1].role", "unknown_role")),
    (MULTI, None),
    ({"messages": [{"role": "user"}, ANSWER]}, ("messages[0].content", "content_type")),
    ({"messages": [{"role": "user", "content": 42}, ANSWER]},
     ("messages[0].content", "content_type")),
    ({"messages": [USER, {"role": "assistant", "content": [{"type": "text", "text": "x"}]}]},
     ("messages[1].content", "content_type")),
    ({"messages": [USER, {"role": "assistant", "content": None}]},
     ("messages[1]", "assistant_empty")),
    "",  # blank lines are skipped but still counted in the line numbers
    (FULL, None),
    ({"messages": [USER, tool_call_turn(
        {"type": "function", "function": {"name": "get_weather", "arguments": "{}"}})]},
     ("messages[1].tool_calls[0].id", "tool_call_id")),
    ({"messages": [USER, tool_call_turn(call("c1", "Oslo"),
                                        {"id": "c2", "function": {"arguments": "{}"}})]},
     ("messages[1].tool_calls[1].function.name", "tool_call_name")),
    ({"messages": [USER, tool_call_turn(
        call("c1", "Oslo"),
        {"id": "c2", "function": {"name": "get_weather", "arguments": "{city: Rome"}})]},
     ("messages[1].tool_calls[1].function.arguments", "tool_call_arguments")),
    ({"messages": [USER, tool_call_turn(
        {"id": "c1", "function": {"name": "get_weather", "arguments": {"city": "Rome"}}})]},
     ("messages[1].tool_calls[0].function.arguments", "tool_call_arguments")),
    (PLAIN, None),
    ({"messages": [USER, tool_call_turn(call("c1", "Oslo")),
                   {"role": "tool", "tool_call_id": "c9", "content": "{}"}, ANSWER]},
     ("messages[2].tool_call_id", "tool_call_unmatched")),
    # A response before its call matches no *earlier* call.
    ({"messages": [USER, {"role": "tool", "tool_call_id": "c1", "content": "{}"},
                   tool_call_turn(call("c1", "Oslo"))]},
     ("messages[1].tool_call_id", "tool_call_unmatched")),
    ({"messages": [{"role": "system", "content": "Be brief."}, USER]},
     ("messages", "no_assistant")),
    ({"messages": [USER, {"role": "assistant", "content": "ok", "reasoning": ["step 1"]}]},
     ("messages[1].reasoning", "reasoning_type")),
    (PLAIN, None),
]


def bad_file_lines() -> tuple[list[str], list[tuple[int, str, str]], list[int]]:
    """The lines, the expected (line, path, rule) errors and the valid line numbers."""
    lines, errors, valid = [], [], []
    for number, entry in enumerate(BAD_LINES, start=1):
        if entry == "":
            lines.append("")
            continue
        data, problem = entry
        lines.append(dumps(data))
        if problem is None:
            valid.append(number)
        else:
            errors.append((number, *problem))
    return lines, errors, valid


def test_each_broken_rule_is_reported_with_its_line_and_path():
    lines, expected, valid = bad_file_lines()
    assert {rule for _, _, rule in expected} == {
        "invalid_json", "no_messages", "unknown_role", "content_type", "assistant_empty",
        "tool_call_id", "tool_call_name", "tool_call_arguments", "tool_call_unmatched",
        "no_assistant", "reasoning_type"}
    report = ChatReport()
    kept = list(conversations((line + "\n" for line in lines), report))
    assert [(p.line, p.path, p.rule) for p in report.errors] == expected
    assert report.error_count == len(expected) and not report.ok
    assert report.invalid_lines == [line for line, _, _ in expected]
    # The valid lines between bad ones stay valid, with their own line numbers.
    assert [number for number, _ in kept] == valid
    assert (report.rows, report.valid_rows) == (len(BAD_LINES) - 1, len(valid))
    assert report.warnings == []
    for problem in report.errors:
        assert str(problem).startswith(f"line {problem.line}: {problem.path}: ")
        assert str(problem).endswith(f"[{problem.rule}]")
        assert problem.message


def test_parse_line_returns_the_conversation_or_its_problems():
    data, errors, warnings = parse_line(dumps(PLAIN), 7)
    assert (data, errors, warnings) == (PLAIN, [], [])
    data, errors, _ = parse_line("[1, 2]", 7)
    assert data is None and [(p.line, p.path, p.rule) for p in errors] == [
        (7, "messages", "no_messages")]
    data, errors, _ = parse_line("{oops", 8)
    assert data is None and [(p.line, p.rule) for p in errors] == [(8, "invalid_json")]


def test_warnings_keep_lines_valid(encoder):
    long_user = {"role": "user", "content": "please summarize this sentence " * 12}
    lines = [
        {"messages": [USER, {"role": "developer", "content": "Be brief."}, ANSWER]},
        {"messages": [{"role": "developer", "content": "Be brief."}, USER, ANSWER]},  # fine
        {"messages": [USER, {"role": "assistant", "content": "  "}]},
        {"messages": [long_user, ANSWER]},
        {"messages": [USER, tool_call_turn(call("c1", "Oslo"), content="")]},  # not empty
    ]
    lengths = [encoder.count_tokens(line) for line in lines]
    assert lengths[3] > 64 and max(lengths[:3] + lengths[4:]) <= 64
    report = validate_chat((dumps(line) for line in lines), count_tokens=encoder.count_tokens,
                           max_length=64)
    assert report.ok and report.valid_rows == 5 and report.invalid_lines == []
    assert [(p.line, p.path, p.rule) for p in report.warnings] == [
        (1, "messages[1]", "late_developer"),
        (3, "messages[1].content", "empty_assistant"),
        (4, "messages", "too_long"),
    ]
    assert report.warning_count == 3
    assert f"{lengths[3]} tokens" in report.warnings[2].message
    assert "64" in report.warnings[2].message


# ================================================================= 2. labels


def label_runs(encoded, tokenizer) -> list[tuple[bool, str]]:
    """The token sequence cut into maximal trained / untrained runs, each decoded."""
    runs = []
    for trained, group in itertools.groupby(zip(encoded.input_ids, encoded.labels,
                                                strict=True),
                                            key=lambda pair: pair[1] != IGNORE):
        ids = [token for token, _ in group]
        runs.append((trained, tokenizer.decode(ids, skip_special_tokens=False,
                                               clean_up_tokenization_spaces=False)))
    return runs


def trained_texts(encoded, tokenizer) -> list[str]:
    return [text for trained, text in label_runs(encoded, tokenizer) if trained]


def check_labels_are_ids(encoded) -> None:
    assert len(encoded.labels) == len(encoded.input_ids)
    assert all(label in (IGNORE, token)
               for token, label in zip(encoded.input_ids, encoded.labels, strict=True))


def test_builtin_template_labels_exactly_the_assistant_turns(tokenizer, encoder):
    encoded = encoder.encode(FULL)
    check_labels_are_ids(encoded)
    assert not encoded.truncated
    assert tokenizer.decode(encoded.input_ids, skip_special_tokens=False,
                            clean_up_tokenization_spaces=False) == "<|bos|>" + encoded.text
    assert encoded.input_ids[0] == tokenizer.bos_token_id and encoded.labels[0] == IGNORE
    # Every trained token is assistant text, and all the assistant text (reasoning, tool
    # call, structured content, and the <|im_end|> that ends the turn) is trained.
    assert trained_texts(encoded, tokenizer) == [FULL_TURN_1, FULL_TURN_2]
    untrained = "".join(text for trained, text in label_runs(encoded, tokenizer)
                        if not trained)
    for text in NOT_TRAINED:
        assert text in untrained
    for header in ("tools", "system", "developer", "user", "tool", "assistant"):
        assert f"<|im_start|>{header}\n" in untrained
    assert encoded.trained_tokens == sum(label != IGNORE for label in encoded.labels)
    # <|im_end|> is trained where it closes an assistant turn, only there.
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")
    ends = [i for i, token in enumerate(encoded.input_ids) if token == end]
    assert len(ends) == 7
    assert [encoded.labels[i] != IGNORE for i in ends] == [False] * 4 + [True, False, True]
    assert [encoded.text[a:b] for a, b in encoded.spans] == [FULL_TURN_1, FULL_TURN_2]


def test_last_assistant_and_dropped_reasoning(tokenizer):
    last = ChatEncoder(tokenizer, train_on="last_assistant").encode(FULL)
    check_labels_are_ids(last)
    assert trained_texts(last, tokenizer) == [FULL_TURN_2]
    assert last.input_ids == ChatEncoder(tokenizer).encode(FULL).input_ids

    dropped = ChatEncoder(tokenizer, reasoning="drop").encode(FULL)
    assert "<think>" not in dropped.text and "I need the current weather" not in dropped.text
    assert trained_texts(dropped, tokenizer) == [FULL_TURN_1_NO_REASONING, FULL_TURN_2]

    multi = ChatEncoder(tokenizer).encode(MULTI)
    assert trained_texts(multi, tokenizer) == [
        "Checking both.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
        "\"Oslo\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": "
        "{\"city\": \"Rome\"}}\n</tool_call>\n<|im_end|>",
        "<think>\n24 is more than 9.\n</think>\nRome is warmer.<|im_end|>"]


def test_a_conversation_may_start_with_the_assistant(tokenizer, encoder):
    opening = {"tools": [WEATHER_TOOL], "messages": [
        {"role": "assistant", "content": "Hi there"}, USER, ANSWER]}
    assert validate_chat([dumps(opening)]).ok
    assert trained_texts(encoder.encode(opening), tokenizer) == [
        "Hi there<|im_end|>", "Hi, how can I help?<|im_end|>"]


def test_label_preview_marks_the_trained_text(tokenizer, encoder):
    preview = label_preview(encoder, FULL)
    text = encoder.render(FULL)[0]
    expected = text.replace(FULL_TURN_1, f"⟦{FULL_TURN_1}⟧").replace(FULL_TURN_2,
                                                                     f"⟦{FULL_TURN_2}⟧")
    assert marked_text(preview) == expected
    assert "".join(s["text"] for s in preview["segments"]) == text
    encoded = encoder.encode(FULL)
    assert preview["tokens"] == len(encoded.input_ids)
    assert preview["trained_tokens"] == encoded.trained_tokens
    assert (preview["truncated"], preview["template"]) == (False, "builtin")


def test_prompt_text_is_everything_before_the_last_assistant_turn(tokenizer, encoder):
    prompt, reference = encoder.prompt_text(FULL)
    text = encoder.render(FULL)[0]
    assert reference == FULL["messages"][-1]["content"]
    assert prompt == text[:text.index(FULL_TURN_2)]
    assert prompt.endswith("<|im_start|>assistant\n")
    assert encoder.prompt_ids(FULL)[0] == tokenizer.bos_token_id


# A ChatML template of our own in the style of Qwen's: roles, content, tool calls (arguments
# as objects), reasoning_content, the tools block and the generation prompt.
CHATML = (
    "{%- if tools %}{{ '<|im_start|>tools\\n' + (tools | tojson) + '<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for m in messages %}{{ '<|im_start|>' + m.role + '\\n' }}"
    "{%- if m.role == 'assistant' %}"
    "{%- if m.reasoning_content %}"
    "{{ '<think>\\n' + m.reasoning_content + '\\n</think>\\n' }}{%- endif %}"
    "{{- m.content or '' }}"
    "{%- for c in m.tool_calls or [] %}{{ '<tool_call>\\n' + ({'name': c.function.name, "
    "'arguments': c.function.arguments} | tojson) + '\\n</tool_call>\\n' }}{%- endfor %}"
    "{%- else %}{{ m.content }}{%- endif %}{{ '<|im_end|>\\n' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}")
# The same without reasoning_content: the encoder then puts a think block in the content.
CHATML_NO_REASONING = CHATML.replace(
    "{%- if m.reasoning_content %}"
    "{{ '<think>\\n' + m.reasoning_content + '\\n</think>\\n' }}{%- endif %}", "")
# Not prefix-stable: only the last message is rendered.
LAST_ONLY = ("{{ '<|im_start|>' + messages[-1].role + '\\n' + (messages[-1].content or '') "
             "+ '<|im_end|>\\n' }}"
             "{%- if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{%- endif %}")
# Not prefix-stable: reasoning is kept on the last message only (as some models do).
LATEST_REASONING_ONLY = CHATML.replace("{%- if m.reasoning_content %}",
                                       "{%- if m.reasoning_content and loop.last %}")
BROKEN = "{{ messages[0].content | no_such_filter }}"


def with_template(tokenizer, template: str):
    copied = copy.deepcopy(tokenizer)
    copied.chat_template = template
    return copied


def test_the_models_own_template_labels_exactly_the_assistant_turns(tokenizer):
    templated = with_template(tokenizer, CHATML)
    assert not tokenizer.chat_template  # the shared tokenizer is untouched
    encoder = ChatEncoder(templated)  # auto: the model's template
    encoded = encoder.encode(FULL)
    check_labels_are_ids(encoded)
    assert encoder.use_model_template
    # The template has no developer role: the developer turn becomes a system turn.
    assert "<|im_start|>system\nReply with JSON matching the schema.<|im_end|>" in encoded.text
    assert "developer" not in encoded.text
    assert encoded.input_ids[0] != tokenizer.bos_token_id  # the template decides, not us
    assert tokenizer.decode(encoded.input_ids, skip_special_tokens=False) == encoded.text
    # The turn as the template renders it after the generation prompt: through its newline.
    assert trained_texts(encoded, tokenizer) == [FULL_TURN_1 + "\n", FULL_TURN_2 + "\n"]
    assert marked_text(label_preview(encoder, FULL)) == encoded.text.replace(
        FULL_TURN_1 + "\n", f"⟦{FULL_TURN_1}\n⟧").replace(FULL_TURN_2 + "\n",
                                                          f"⟦{FULL_TURN_2}\n⟧")
    assert label_preview(encoder, FULL)["template"] == "model"

    last = ChatEncoder(templated, train_on="last_assistant").encode(FULL)
    assert trained_texts(last, tokenizer) == [FULL_TURN_2 + "\n"]
    dropped = ChatEncoder(templated, reasoning="drop").encode(FULL)
    assert trained_texts(dropped, tokenizer) == [FULL_TURN_1_NO_REASONING + "\n",
                                                 FULL_TURN_2 + "\n"]
    # A template without reasoning_content gets the reasoning as a think block in content.
    plain = ChatEncoder(with_template(tokenizer, CHATML_NO_REASONING)).encode(FULL)
    assert (plain.text, plain.labels) == (encoded.text, encoded.labels)

    prompt, reference = encoder.prompt_text(FULL)
    assert prompt == encoded.text[:encoded.text.index(FULL_TURN_2)]
    assert reference == FULL["messages"][-1]["content"]

    # "builtin" ignores the model's template.
    builtin = ChatEncoder(templated, template="builtin").encode(FULL)
    assert builtin.input_ids == ChatEncoder(tokenizer).encode(FULL).input_ids


def test_a_model_template_opening_with_the_assistant_trains_only_that_turn(tokenizer):
    opening = {"tools": [WEATHER_TOOL], "messages": [
        {"role": "assistant", "content": "Hi there"}, USER, ANSWER]}
    encoded = ChatEncoder(with_template(tokenizer, CHATML)).encode(opening)
    trained = trained_texts(encoded, tokenizer)
    assert trained == ["Hi there<|im_end|>\n", "Hi, how can I help?<|im_end|>\n"]


@pytest.mark.parametrize("template", [LAST_ONLY, LATEST_REASONING_ONLY, BROKEN],
                         ids=["last-message-only", "latest-reasoning-only", "jinja-error"])
def test_a_template_that_is_not_prefix_stable_is_refused(tokenizer, template):
    encoder = ChatEncoder(with_template(tokenizer, template), template="model")
    with pytest.raises(DeepSynthError, match="chat_template builtin"):
        encoder.encode(FULL)
    # The built-in template still works on the same tokenizer.
    fallback = ChatEncoder(with_template(tokenizer, template), template="builtin")
    assert trained_texts(fallback.encode(FULL), tokenizer) == [FULL_TURN_1, FULL_TURN_2]


def test_template_model_needs_a_template(tokenizer):
    with pytest.raises(ConfigError) as caught:
        ChatEncoder(tokenizer, template="model")
    assert caught.value.field == "chat_template"


# =============================================================== 3. truncation


def test_max_length_cuts_the_tokens_and_labels(tokenizer):
    whole = ChatEncoder(tokenizer).encode(FULL)
    cut_at = len(whole.input_ids) - 5
    cut = ChatEncoder(tokenizer, max_length=cut_at).encode(FULL)
    assert cut.truncated and not whole.truncated
    assert cut.input_ids == whole.input_ids[:cut_at] and cut.labels == whole.labels[:cut_at]
    assert 0 < cut.trained_tokens < whole.trained_tokens
    preview = label_preview(ChatEncoder(tokenizer, max_length=cut_at), FULL)
    assert preview["truncated"] and preview["tokens"] == cut_at
    assert "<|im_end|>" not in marked_text(preview).rsplit("⟦", 1)[1]  # the end is cut off


def test_a_conversation_cut_before_its_assistant_is_counted_not_trained(tmp_path, tokenizer):
    long = {"messages": [{"role": "user", "content": "tell me about the river " * 20},
                         {"role": "assistant", "content": "It is long."}]}
    encoder = ChatEncoder(tokenizer, max_length=48)
    assert encoder.count_tokens(long) > 60 and encoder.encode(long).trained_tokens == 0
    assert encoder.encode(PLAIN).trained_tokens > 0
    path = write_lines(tmp_path / "chat.jsonl", [PLAIN, long, qa(1)])
    examples, report, untrained = load_chat(path, encoder, skip_invalid=False)
    assert untrained == 1 and report.valid_rows == 3
    assert [item["id"] for item in examples] == ["line-1", "line-3"]
    assert all(any(label != IGNORE for label in item["labels"]) for item in examples)
    assert all(len(item["input_ids"]) <= 48 for item in examples)

    only_long = write_lines(tmp_path / "long.jsonl", [long])
    with pytest.raises(DeepSynthError, match="no conversation to train on"):
        load_chat(only_long, encoder, skip_invalid=False)


# ================================================================ 4. load_chat


def test_load_chat_refuses_errors_unless_told_to_skip(tmp_path, encoder):
    lines = [PLAIN, '{"messages": [', FULL, {"messages": [USER]}, MULTI]
    path = write_lines(tmp_path / "chat.jsonl", lines)
    with pytest.raises(ChatFileError) as caught:
        load_chat(path, encoder, skip_invalid=False)
    message = str(caught.value)
    assert "line 2:" in message and "line 4:" in message and "skip_invalid_lines" in message
    assert "2 problems on 2 lines" in message
    assert caught.value.report.invalid_lines == [2, 4]

    examples, report, untrained = load_chat(path, encoder, skip_invalid=True)
    assert [item["id"] for item in examples] == ["line-1", "line-3", "line-5"]
    assert report.invalid_lines == [2, 4] and untrained == 0
    assert [(p.line, p.rule) for p in report.errors] == [(2, "invalid_json"), (4, "no_assistant")]
    item = examples[1]
    encoded = encoder.encode(FULL)
    assert (item["input_ids"], item["labels"]) == (encoded.input_ids, encoded.labels)
    assert item["summary"] == FULL["messages"][-1]["content"]
    assert item["prompt_ids"] == encoder.prompt_ids(FULL) and item["pages"] == []

    # A limit keeps the first examples; the report still covers the whole file.
    limited, report, _ = load_chat(path, encoder, skip_invalid=True, limit=1)
    assert len(limited) == 1 and report.rows == 5 and report.invalid_lines == [2, 4]


def test_load_chat_reads_gzip_and_names_a_missing_file(tmp_path, encoder):
    path = tmp_path / "chat.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write(dumps(PLAIN) + "\n" + dumps(MULTI) + "\n")
    examples, report, _ = load_chat(path, encoder, skip_invalid=False)
    assert len(examples) == 2 and report.ok
    with pytest.raises(DeepSynthError, match="no chat file"):
        load_chat(tmp_path / "missing.jsonl", encoder, skip_invalid=False)


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
             "weight_decay": 0.1, "gradient_accumulation_steps": 32, "lora_r": None},
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
    for name, value in EXPECTED_GENERIC[peft].items():
        assert getattr(config, name) == value, name
    for name, value in GENERIC_DEFAULTS[peft].items():
        assert getattr(config, name) == value, name
    # Explicit fields override the defaults; the others keep them.
    config = training_config({**BASE, "trainer_type": "generic", "peft": peft,
                              "learning_rate": 1e-3, "gradient_accumulation_steps": 2,
                              "weight_decay": 0.0, "lora_r": 8})
    assert (config.learning_rate, config.gradient_accumulation_steps, config.weight_decay,
            config.lora_r) == (1e-3, 2, 0.0, 8)
    assert config.warmup_ratio == 0.03 and config.model == "tiny-chat-lm"


def test_presets_and_other_trainer_types_with_generic_defaults():
    # A training preset sits above the generic defaults; its OCR model is not taken.
    config = training_config({**BASE, "trainer_type": "generic", "preset": "quick_test"})
    assert (config.learning_rate, config.gradient_accumulation_steps, config.lora_r,
            config.model) == (1e-3, 1, 64, "tiny-chat-lm")
    config = training_config({**BASE, "trainer_type": "generic", "preset": "cpu_demo"})
    assert (config.model, config.peft, config.learning_rate, config.weight_decay) == (
        "tiny-chat-lm", "full", 2e-3, 0.1)
    # The OCR trainers do not get them.
    config = training_config(BASE)
    assert (config.learning_rate, config.lora_preset, config.lora_r) == (5e-5, "balanced", None)


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
    ({"lora_preset": "balanced"}, "lora_preset"),
])
def test_generic_conflicts_name_their_field(data, field):
    with pytest.raises(ConfigError) as caught:
        training_config({**BASE, "trainer_type": "generic", **data})
    assert caught.value.field == field and str(caught.value).startswith(f"{field} ")
    # check_generic itself, on a config built without validation.
    with pytest.raises(ConfigError) as caught:
        check_generic(TrainingConfig(**BASE, trainer_type="generic",
                                     **{"model": "tiny-chat-lm", "lora_preset": "all_linear",
                                        **data}))
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
             if k in TrainingConfig.__dataclass_fields__ and v is not None}
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

    command = (out / "command.txt").read_text().strip()
    assert command == train_command(config)
    readme = (final / "README.md").read_text()
    assert "## Reproduce" in readme
    assert f"```\n{command}\n```" in readme.split("## Reproduce", 1)[1]
    written = json.loads((out / "training_config.json").read_text())
    assert written == to_dict(config)
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
    assert config.peft == "qlora"
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
    assert parse_command(base).gradient_checkpointing is True
    assert parse_command(base + " --no-gradient-checkpointing").gradient_checkpointing is False
    turned_on = parse_command("deepsynth train --dataset d --out o --trainer-type generic "
                              "--skip-invalid-lines --gradient-checkpointing")
    assert turned_on.skip_invalid_lines is True and turned_on.gradient_checkpointing is True
