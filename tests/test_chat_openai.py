# ruff: noqa: F811
"""OpenAI fine-tuning lines as OpenAI documents them: content parts, refusal-only turns,
``weight`` per assistant turn (in the labels and the label preview), the legacy function
role; what is refused with its line and field path; a late system turn (a warning, an error
for a template that refuses it); token lengths of huge lines and of large files."""

from __future__ import annotations

import copy
import json

import pytest

# Fixtures are imported from chat_samples and requested by name (hence F401/F811 below).
from chat_samples import (  # noqa: F401
    ANSWER,
    PLAIN,
    USER,
    call,
    dumps,
    encoder,
    qa,
    root,
    tokenizer,
    write_lines,
)

from deepsynth.chat.data import ChatFileError, load_chat
from deepsynth.chat.inspect import preview_line
from deepsynth.chat.report import SAMPLE_SIZE
from deepsynth.chat.stream import parse_line, validate_chat
from deepsynth.chat.template import IGNORE, ChatEncoder, label_preview, marked_text


def trained_text(encoder: ChatEncoder, conversation: dict) -> list[str]:
    """The trained character runs of the rendered text."""
    preview = label_preview(encoder, conversation)
    return [s["text"] for s in preview["segments"] if s["trained"]]


def read(conversation) -> dict:
    data, errors, _ = parse_line(dumps(conversation), 1)
    assert errors == [], [str(e) for e in errors]
    return data


# ==================================================== 1. read as OpenAI writes them


def test_text_parts_are_joined(encoder):
    parts = {"messages": [
        {"role": "user", "content": [{"type": "text", "text": "Hello "},
                                     {"type": "text", "text": "there"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Hi, how can I help?"}]}]}
    assert read(parts) == PLAIN
    assert encoder.encode(read(parts)).labels == encoder.encode(PLAIN).labels


def test_a_refusal_only_turn_is_trained_on_its_refusal(encoder):
    refusing = {"messages": [USER, {"role": "assistant", "content": None,
                                    "refusal": "I cannot help with that."}]}
    assert read(refusing)["messages"][1] == {"role": "assistant",
                                             "content": "I cannot help with that."}
    assert trained_text(encoder, read(refusing)) == ["I cannot help with that.<|im_end|>"]
    as_part = {"messages": [USER, {"role": "assistant", "content": [
        {"type": "refusal", "refusal": "I cannot help with that."}]}]}
    assert read(as_part) == read(refusing)
    both = {"messages": [USER, {**ANSWER, "refusal": "No."}]}
    _, errors, _ = parse_line(dumps(both), 4)
    assert [(e.line, e.path, e.rule) for e in errors] == [
        (4, "messages[1].refusal", "refusal_with_content")]


WEIGHTED = {"messages": [
    USER, {"role": "assistant", "content": "A first try.", "weight": 0},
    {"role": "user", "content": "Try again."},
    {"role": "assistant", "content": "A better answer.", "weight": 1}]}


def test_weight_zero_turns_are_rendered_not_trained(tmp_path, encoder, tokenizer):
    conversation = read(WEIGHTED)
    encoded = encoder.encode(conversation)
    assert "A first try." in encoded.text
    trained = tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels,
                                                      strict=True) if label != IGNORE])
    assert trained == "A better answer.<|im_end|>"
    assert trained_text(encoder, conversation) == ["A better answer.<|im_end|>"]
    # The label preview of the file's line says the same.
    path = write_lines(tmp_path / "weighted.jsonl", [PLAIN, WEIGHTED])
    shown = preview_line(path, 2, encoder)
    assert "⟦A first try." not in marked_text(shown) and "⟦A better answer." in \
        marked_text(shown)
    assert shown["trained_tokens"] == encoded.trained_tokens
    # last_assistant trains the last turn only when its weight is 1.
    last = ChatEncoder(tokenizer, train_on="last_assistant")
    assert trained_text(last, conversation) == ["A better answer.<|im_end|>"]
    flipped = copy.deepcopy(WEIGHTED)
    flipped["messages"][3]["weight"] = 0
    assert last.encode(read(flipped)).trained_tokens == 0


@pytest.mark.parametrize("weight", [2, -1, 0.5, "1", True, None])
def test_a_weight_other_than_0_or_1_is_refused(weight):
    bad = {"messages": [USER, {**ANSWER, "weight": weight}]}
    _, errors, _ = parse_line(dumps(bad), 3)
    assert [(e.line, e.path, e.rule) for e in errors] == [
        (3, "messages[1].weight", "weight_value")]
    _, errors, warnings = parse_line(dumps({"messages": [{**USER, "weight": 0}, ANSWER]}), 3)
    assert errors == [] and [(w.path, w.rule) for w in warnings] == [
        ("messages[0].weight", "weight_ignored")]


def test_the_legacy_function_role_becomes_a_tool_call(encoder):
    legacy = {"functions": [{"name": "get_weather", "parameters": {}}], "messages": [
        {"role": "user", "content": "Weather in Rome?"},
        {"role": "assistant", "content": None,
         "function_call": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}},
        {"role": "function", "name": "get_weather", "content": "{\"temp_c\": 25}"},
        {"role": "assistant", "content": "25 degrees."}]}
    modern = {"tools": [{"type": "function", "function": {"name": "get_weather",
                                                          "parameters": {}}}],
              "messages": [legacy["messages"][0],
                           {"role": "assistant", "content": None,
                            "tool_calls": [{**call("function_call_1", "Rome"),
                                            "function": legacy["messages"][1]["function_call"]}]},
                           {"role": "tool", "tool_call_id": "function_call_1",
                            "name": "get_weather", "content": "{\"temp_c\": 25}"},
                           legacy["messages"][3]]}
    assert read(legacy) == read(modern)
    assert encoder.encode(read(legacy)).labels == encoder.encode(read(modern)).labels
    orphan = {"messages": [USER, {"role": "function", "name": "get_weather", "content": "1"},
                           ANSWER]}
    both = {"messages": [USER, {"role": "assistant", "content": None,
                                "tool_calls": [call("c1", "Oslo")],
                                "function_call": {"name": "f", "arguments": "{}"}}]}
    for line, expected in ((orphan, ("messages[1].name", "function_unmatched")),
                           (both, ("messages[1].function_call",
                                   "function_call_with_tool_calls"))):
        _, errors, _ = parse_line(dumps(line), 5)
        assert [(e.path, e.rule) for e in errors] == [expected]


# ============================================================ 2. what is refused

DUPLICATE = {"messages": [
    USER, {"role": "assistant", "content": None, "tool_calls": [call("c1", "Oslo")]},
    {"role": "tool", "tool_call_id": "c1", "content": "9"},
    {"role": "assistant", "content": None, "tool_calls": [call("c1", "Rome")]},
    {"role": "tool", "tool_call_id": "c1", "content": "24"}, ANSWER]}
IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
REFUSED = [  # (line, path, rule, words the message has)
    ({"messages": [{**USER, "reasoning": "Thinking as the user."}, ANSWER]},
     "messages[0].reasoning", "reasoning_not_assistant", "assistant turns"),
    ({"messages": [{"role": "system", "content": "x", "reasoning": "y"}, USER, ANSWER]},
     "messages[0].reasoning", "reasoning_not_assistant", "system turn"),
    (DUPLICATE, "messages[3].tool_calls[0].id", "tool_call_duplicate",
     "messages[1].tool_calls[0]"),
    ({"messages": [{"role": "user", "content": [{"type": "text", "text": "What is it?"},
                                                IMAGE]}, ANSWER]},
     "messages[0].content[1].type", "content_part_unsupported", "text-only"),
    ({"messages": [{"role": "user", "content": [
        {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}}]}, ANSWER]},
     "messages[0].content[0].type", "content_part_unsupported", "text-only"),
    ({"messages": [{"role": "user", "content": [{"type": "text"}]}, ANSWER]},
     "messages[0].content[0].text", "content_part_text", "string"),
    ({"messages": [{"role": "user", "content": [{"type": "thought", "x": 1}]}, ANSWER]},
     "messages[0].content[0].type", "content_part_type", "text"),
    ({"messages": [USER, ANSWER], "images": ["a.png"]}, "images", "multimodal_unsupported",
     "text-only"),
]


def test_each_refusal_names_its_line_and_field_path(tmp_path, encoder):
    path = write_lines(tmp_path / "refused.jsonl",
                       [PLAIN] + [line for line, _, _, _ in REFUSED] + [PLAIN])
    examples, report, _ = load_chat(path, encoder, skip_invalid=True)
    assert [(p.line, p.path, p.rule) for p in report.errors] == [
        (i, path_, rule) for i, (_, path_, rule, _) in enumerate(REFUSED, start=2)]
    for problem, (_, _, _, words) in zip(report.errors, REFUSED, strict=True):
        assert words in problem.message
    assert len(examples) == 2 and report.invalid_lines == list(range(2, 2 + len(REFUSED)))
    with pytest.raises(ChatFileError):
        load_chat(path, encoder, skip_invalid=False)


# ===================================================== 3. a system turn met late

LATE = {"messages": [USER, ANSWER, {"role": "system", "content": "Now answer in French."},
                     {"role": "user", "content": "Merci"},
                     {"role": "assistant", "content": "De rien."}]}
# Gemma's and Mistral's templates raise on a system turn that is not the first.
REFUSING = ("{% for m in messages %}{% if m['role'] == 'system' and not loop.first %}"
            "{{ raise_exception('System role not supported after the first message') }}"
            "{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
            "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
# Qwen2.5's and Llama 3's templates render it in place.
IN_PLACE = REFUSING.replace("{% if m['role'] == 'system' and not loop.first %}"
                            "{{ raise_exception('System role not supported after the first "
                            "message') }}{% endif %}", "")


def test_a_late_system_turn_is_a_warning_unless_the_template_refuses_it(tmp_path, tokenizer):
    lines = [PLAIN, LATE, qa(3)]
    report = validate_chat(dumps(line) for line in lines)
    assert report.ok and [(w.line, w.path, w.rule) for w in report.warnings] == [
        (2, "messages[2]", "late_system")]
    builtin = ChatEncoder(tokenizer)
    assert "<|im_start|>system\nNow answer in French.<|im_end|>" in builtin.render(LATE)[0]

    in_place = copy.deepcopy(tokenizer)
    in_place.chat_template = IN_PLACE
    assert validate_chat((dumps(line) for line in lines), ChatEncoder(in_place)).ok
    refusing = copy.deepcopy(tokenizer)
    refusing.chat_template = REFUSING
    report = validate_chat((dumps(line) for line in lines), ChatEncoder(refusing))
    assert [(e.line, e.path, e.rule) for e in report.errors] == [
        (2, "messages", "template_failed")]
    assert "System role not supported" in report.errors[0].message
    path = write_lines(tmp_path / "late.jsonl", lines)
    with pytest.raises(ChatFileError, match="template_failed"):
        load_chat(path, ChatEncoder(refusing), skip_invalid=False)
    examples, report, _ = load_chat(path, ChatEncoder(refusing), skip_invalid=True)
    assert [e["id"] for e in examples] == ["line-1", "line-3"] and report.invalid_lines == [2]
    assert report.valid_rows == 2 and report.refused == {"template_failed": 1}


# ====================================================== 4. token lengths, bounded


def test_a_huge_line_is_estimated_and_a_large_file_sampled(tokenizer):
    encoder = ChatEncoder(tokenizer, max_length=512)
    huge = {"messages": [{"role": "user", "content": "the river runs " * 100_000}, ANSWER]}
    report = validate_chat([dumps(PLAIN), json.dumps(huge)], encoder)
    assert report.ok and [(w.line, w.rule) for w in report.warnings] == [(2, "too_long")]
    assert report.warnings[0].message.startswith("about ")
    tokens = len(tokenizer(encoder.render(huge)[0], add_special_tokens=False)["input_ids"])
    estimate = report.summary()["token_lengths"]["max"]
    assert abs(estimate - tokens) < 0.02 * tokens and report.estimated_lengths == 1

    # More conversations than the sample: every one that may be too long is still counted.
    long_one = {"messages": [{"role": "user", "content": "many words here " * 200}, ANSWER]}
    lines = [dumps(qa(i)) for i in range(SAMPLE_SIZE + 300)] + [dumps(long_one)]
    report = validate_chat(lines, encoder)
    summary = report.summary()["token_lengths"]
    assert summary["sampled"] == SAMPLE_SIZE and summary["counted"] < len(lines)
    assert [(w.line, w.rule) for w in report.warnings] == [(len(lines), "too_long")]
    assert summary["max"] == encoder.count_tokens(long_one)
    exact = sorted(encoder.count_tokens(qa(i)) for i in range(SAMPLE_SIZE + 300))
    assert abs(summary["p50"] - exact[len(exact) // 2]) <= 2
