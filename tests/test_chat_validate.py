# ruff: noqa: F811
"""The strict validator of chat JSONL and ``load_chat``: every rule with its line and field
path, warnings, the summary, skipping bad lines."""

from __future__ import annotations

import gzip
import json

import pytest

from deepsynth.chat.data import ChatFileError, load_chat
from deepsynth.chat.records import line_records
from deepsynth.chat.report import ChatReport
from deepsynth.chat.stream import conversations, parse_line, validate_chat
from deepsynth.chat.template import ChatEncoder
from deepsynth.errors import DeepSynthError

# Fixtures are imported from chat_samples and requested by name (hence F401/F811 below).
from chat_samples import (  # noqa: F401
    ANSWER, FULL, MULTI, PLAIN, USER, call, dumps, encoder, root, tokenizer, write_lines,
)


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
    assert summary["token_lengths"] == {"p50": None, "p90": None, "p99": None, "max": None,
                                        "sampled": 0, "counted": 0, "estimated": 0}
    as_dict = report.to_dict()
    assert as_dict["ok"] is True and json.loads(json.dumps(as_dict)) == as_dict

    # The streaming form yields each valid conversation with its physical line number.
    streamed = list(conversations(line_records(lines), ChatReport()))
    assert [(number, data) for number, data in streamed] == [(1, FULL), (3, MULTI), (5, PLAIN)]


def test_token_length_percentiles_use_the_tokenizer(tokenizer, encoder):
    # 11 distinct lengths: nearest-rank and the other usual definitions agree on the ranks.
    rows = [{"messages": [{"role": "user", "content": "word " * (3 * i + 1)},
                          {"role": "assistant", "content": "ok"}]} for i in range(11)]
    order = [7, 2, 9, 0, 5, 10, 1, 4, 8, 3, 6]
    rows = [rows[i] for i in order]
    report = validate_chat((dumps(r) for r in rows), encoder)
    # The count is the rendered text's tokens plus the BOS the built-in template starts with.
    expected = [1 + len(tokenizer(encoder.render(r)[0], add_special_tokens=False)["input_ids"])
                for r in rows]
    assert report.token_lengths == expected
    assert len(set(expected)) == 11
    ranked = sorted(expected)
    assert report.summary()["token_lengths"] == {"p50": ranked[5], "p90": ranked[9],
                                                 "p99": ranked[10], "max": ranked[10],
                                                 "sampled": 11, "counted": 11, "estimated": 0}
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
    ({"messages": [USER, {"role": "assistant", "content": {"type": "text", "text": "x"}}]},
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
    kept = list(conversations(line_records(line + "\n" for line in lines), report))
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
    report = validate_chat((dumps(line) for line in lines),
                           ChatEncoder(encoder.tokenizer, max_length=64))
    assert report.ok and report.valid_rows == 5 and report.invalid_lines == []
    assert [(p.line, p.path, p.rule) for p in report.warnings] == [
        (1, "messages[1]", "late_developer"),
        (3, "messages[1].content", "empty_assistant"),
        (4, "messages", "too_long"),
    ]
    assert report.warning_count == 3
    assert f"{lengths[3]} tokens" in report.warnings[2].message
    assert "64" in report.warnings[2].message


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


