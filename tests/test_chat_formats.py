# ruff: noqa: F811
"""The chat formats people bring: ShareGPT and Alpaca records (as LLaMA-Factory's and
ms-swift's demo files have them), JSON arrays, BOMs and gzip; converted exactly, refused with
the line and field, reported by the validator in one line naming the command, converted by
``deepsynth convert-chat`` and at training time."""

from __future__ import annotations

import gzip
import io
import json

import pytest

# Fixtures are imported from chat_samples and requested by name (hence F401/F811 below).
from chat_samples import PLAIN, dumps, encoder, root, tokenizer, write_lines  # noqa: F401
from conftest import run_cli

from deepsynth.chat.convert import convert_file
from deepsynth.chat.data import ChatFileError, chat_file_in, load_chat
from deepsynth.chat.formats import from_alpaca, from_sharegpt
from deepsynth.chat.inspect import read_file, validate_file
from deepsynth.chat.records import array_records, read_records
from deepsynth.errors import ConfigRefused

TOOLS = [{"name": "get_weather", "description": "Weather of a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]
# LLaMA-Factory's tool-calling ShareGPT record (glaive_toolcall_en_demo's shape).
TOOL_RECORD = {"conversations": [
    {"from": "human", "value": "Weather in Rome?"},
    {"from": "function_call", "value": json.dumps({"name": "get_weather",
                                                   "arguments": {"city": "Rome"}})},
    {"from": "observation", "value": "{\"temp_c\": 25}"},
    {"from": "gpt", "value": "It is 25 degrees in Rome."}],
    "system": "You are a weather bot.", "tools": json.dumps(TOOLS)}
TOOL_CONVERTED = {"messages": [
    {"role": "system", "content": "You are a weather bot."},
    {"role": "user", "content": "Weather in Rome?"},
    {"role": "assistant", "content": None, "tool_calls": [{
        "id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}}]},
    {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 25}"},
    {"role": "assistant", "content": "It is 25 degrees in Rome."}],
    "tools": [{"type": "function", "function": TOOLS[0]}]}


def alpaca(i: int) -> dict:
    """alpaca_en_demo's shape: instruction, input (often empty), output."""
    return {"instruction": f"Add {i} and {i}.", "input": "" if i % 2 else "Show the sum.",
            "output": f"{i} plus {i} is {2 * i}."}


def sharegpt(i: int) -> dict:
    return {"conversations": [{"from": "human", "value": f"What is {i} times 3?"},
                              {"from": "gpt", "value": f"{i} times 3 is {3 * i}."}]}


def array_text(records: list) -> tuple[str, list[int]]:
    """Records as a pretty-printed JSON array, and the line each record starts on."""
    pieces = [json.dumps(record, indent=2, ensure_ascii=False) for record in records]
    starts, line = [], 2
    for piece in pieces:
        starts.append(line)
        line += piece.count("\n") + 1
    return "[\n" + ",\n".join(pieces) + "\n]\n", starts


def write_array(path, records: list) -> list[int]:
    path.parent.mkdir(parents=True, exist_ok=True)
    text, starts = array_text(records)
    path.write_text(text, encoding="utf-8")
    return starts


# ================================================================= 1. conversion


def test_sharegpt_with_tools_system_function_call_and_observation():
    converted, paths, errors = from_sharegpt(TOOL_RECORD, 1)
    assert errors == [] and converted == TOOL_CONVERTED
    assert paths == ["system"] + [f"conversations[{i}]" for i in range(4)]
    # A first system turn, role/content turns, parallel calls answered in order.
    record = {"conversations": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Oslo, Lima?"},
        {"role": "function_call", "content": json.dumps([
            {"name": "get_weather", "arguments": {"city": "Oslo"}},
            {"name": "get_weather", "arguments": "{\"city\": \"Lima\"}"}])},
        {"role": "observation", "content": "9"}, {"role": "observation", "content": "19"},
        {"role": "assistant", "content": "Lima."}]}
    converted, _, errors = from_sharegpt(record, 1)
    assert errors == []
    calls = converted["messages"][2]["tool_calls"]
    assert [(c["id"], c["function"]["arguments"]) for c in calls] == [
        ("call_1", "{\"city\": \"Oslo\"}"), ("call_2", "{\"city\": \"Lima\"}")]
    assert [(m["role"], m.get("tool_call_id")) for m in converted["messages"][3:5]] == [
        ("tool", "call_1"), ("tool", "call_2")]
    assert converted["messages"][0] == {"role": "system", "content": "Be brief."}


def test_alpaca_with_system_history_and_input():
    record = {"instruction": "Translate.", "input": "Bonjour", "output": "Hello",
              "system": "You translate French.", "history": [["Hi", "Salut"]]}
    converted, paths, errors = from_alpaca(record, 1)
    assert errors == [] and converted == {"messages": [
        {"role": "system", "content": "You translate French."},
        {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Salut"},
        {"role": "user", "content": "Translate.\nBonjour"},
        {"role": "assistant", "content": "Hello"}]}
    assert paths == ["system", "history[0][0]", "history[0][1]", "instruction", "output"]
    # ms-swift's query/response; an empty input adds nothing.
    converted, _, _ = from_alpaca({"query": "2+2?", "response": "4", "input": ""}, 1)
    assert converted == {"messages": [{"role": "user", "content": "2+2?"},
                                      {"role": "assistant", "content": "4"}]}


REFUSED = [  # (record, path, rule): each refused with the record's own field path
    ({"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "x"}]},
     "conversations[1].from", "unknown_from"),
    ({"conversations": [{"from": "human", "value": ["hi"]}, {"from": "gpt", "value": "x"}]},
     "conversations[0].value", "value_type"),
    ({"conversations": [{"from": "human", "value": "hi"},
                        {"from": "observation", "value": "{}"}, {"from": "gpt", "value": "x"}]},
     "conversations[1].from", "observation_unmatched"),
    ({"conversations": [{"from": "human", "value": "hi"},
                        {"from": "function_call", "value": "get_weather(Rome)"}]},
     "conversations[1].value", "function_call_value"),
    ({**sharegpt(1), "tools": "[{not json"}, "tools", "tools_value"),
    ({"conversations": []}, "conversations", "conversations_type"),
    ({**sharegpt(1), "images": ["cat.png"]}, "images", "multimodal_unsupported"),
    ({"instruction": "Rank.", "output": ["a", "b"]}, "output", "output_type"),
    ({"instruction": "Say it.", "output": "  "}, "output", "output_empty"),
    ({"instruction": "", "input": "", "output": "x"}, "instruction", "instruction_empty"),
    ({**alpaca(1), "history": [["only the question"]]}, "history[0]", "history_type"),
    ({"instruction": "Pick.", "chosen": "a", "rejected": "b"}, "chosen",
     "preference_unsupported"),
    # A problem the OpenAI rules find after conversion: named by the record's field.
    ({"conversations": [{"from": "human", "value": "hi"},
                        {"from": "gpt", "value": "ok", "extra": 1},
                        {"from": "system", "value": "late"}, {"from": "gpt", "value": "y"}]},
     None, None),
]


def test_each_refusal_names_its_line_and_field(tmp_path):
    records = [sharegpt(0)] + [record for record, _, _ in REFUSED] + [alpaca(2)]
    starts = write_array(tmp_path / "mixed.json", records)
    report = read_file(tmp_path / "mixed.json")
    expected = [(starts[i + 1], path, rule) for i, (_, path, rule) in enumerate(REFUSED)
                if rule]
    assert [(p.line, p.path, p.rule) for p in report.errors] == expected
    assert report.invalid_lines == [line for line, _, _ in expected]
    assert (report.rows, report.valid_rows) == (len(records), 3)
    assert report.refused == {rule: 1 for _, _, rule in expected}
    # The late system turn is a warning, named by the ShareGPT turn it came from.
    assert [(p.line, p.path, p.rule) for p in report.warnings] == [
        (starts[-2], "conversations[2]", "late_system")]
    assert report.format_name == "mixed" and report.needs_conversion
    assert report.conversion() == {"records": len(records), "converted": 3,
                                   "refused": len(expected),
                                   "refused_by_reason": {r: 1 for _, _, r in expected}}


# ============================================================ 2. reading files


def test_a_json_array_is_streamed_and_a_syntax_error_ends_it_once():
    class Trickle(io.BytesIO):
        """Hands out the bytes 50 at a time, and fails past ``stop``."""

        def __init__(self, text: str, stop: int):
            super().__init__(text.encode())
            self.stop = stop

        def read(self, size=-1):
            if self.tell() >= self.stop:
                raise AssertionError("read past the first record")
            return super().read(50)

    text, starts = array_text([sharegpt(i) for i in range(50)])
    first = next(array_records(Trickle(text, 400), "f.json"))
    assert first.value == sharegpt(0) and first.line == 2 and first.error is None
    assert first.size == len(json.dumps(sharegpt(0), indent=2).encode())

    # The third record is broken: two records, then one error, not one per line after it.
    broken = text.replace('"gpt",', '"gpt" oops,', 3).replace('"gpt" oops,', '"gpt",', 2)
    records = list(array_records(io.BytesIO(broken.encode()), "f.json"))
    assert [r.value for r in records[:2]] == [sharegpt(0), sharegpt(1)]
    assert len(records) == 3 and records[2].value is None and records[2].line == starts[2]
    bad_line = broken[:broken.index("oops")].count("\n") + 1
    assert records[2].error.startswith("not valid JSON") and f"at line {bad_line}" in \
        records[2].error

    # An array cut short, and one followed by more text: one problem each, after the records.
    cut = text[:text.rindex("}") + 1]
    end, after = cut.count("\n") + 1, text.count("\n") + 1
    records = list(array_records(io.BytesIO(cut.encode()), "f.json"))
    assert [r.value for r in records[:50]] == [sharegpt(i) for i in range(50)]
    ended = f"not valid JSON at line {end}: expected ',' or ']', the file ends (is it cut short?)"
    assert (records[50].index, records[50].line, records[50].error) == (50, end, ended)
    last = list(array_records(io.BytesIO((text + "{}").encode()), "f.json"))[-1]
    more = f"not valid JSON at line {after}: more JSON after the array"
    assert (last.line, last.error) == (after, more)


def test_bom_gzip_blank_lines_and_a_huge_record(tmp_path):
    bom = tmp_path / "excel.jsonl"
    bom.write_bytes(b"\xef\xbb\xbf" + (dumps(PLAIN) + "\n\n" + dumps(PLAIN) + "\n").encode())
    assert [(r.line, r.value) for r in read_records(bom)] == [(1, PLAIN), (3, PLAIN)]
    packed = tmp_path / "demo.json.gz"
    with gzip.open(packed, "wt", encoding="utf-8") as handle:
        text, starts = array_text([alpaca(1), alpaca(2)])
        handle.write("\ufeff  \n" + text)
    assert [(r.line, r.value) for r in read_records(packed)] == [
        (starts[0] + 1, alpaca(1)), (starts[1] + 1, alpaca(2))]
    deep = write_lines(tmp_path / "deep.jsonl", [PLAIN, '{"a": ' * 50_000 + "1" + "}" * 50_000,
                                                 PLAIN])
    report = read_file(deep)
    assert [(p.line, p.rule) for p in report.errors] == [(2, "invalid_json")]
    assert "nested too deeply" in report.errors[0].message and report.valid_rows == 2
    big = {"instruction": "Summarize: " + "word " * 300_000, "output": "Words."}
    path = tmp_path / "big.json"
    path.write_text(json.dumps([alpaca(0), big, alpaca(3)]))
    assert [r.value for r in read_records(path)] == [alpaca(0), big, alpaca(3)]


def test_validator_names_the_format_and_the_command_in_one_line(tmp_path, root):
    # alpaca_en_demo.json: 999 records pretty-printed over about 5,000 lines.
    demo = tmp_path / "alpaca_en_demo.json"
    write_array(demo, [alpaca(i) for i in range(999)])
    assert demo.read_text().count("\n") > 4000
    done = run_cli("validate-chat", str(demo), env={"DEEPSYNTH_DATA_ROOT": str(root)})
    assert done.returncode == 2, done.stderr
    assert done.stdout.count("\n") == 1 and done.stderr == ""
    line = done.stdout.strip()
    assert line.startswith("error: line 1: $: ") and line.endswith("[other_format]")
    assert "Alpaca (instruction/input/output) in a JSON array" in line
    assert "999 records: 999 convert, 0 refused" in line
    assert f"deepsynth convert-chat {demo} {tmp_path / 'alpaca_en_demo.jsonl'}" in line

    lines = write_lines(tmp_path / "sharegpt.jsonl", [TOOL_RECORD, sharegpt(1),
                                                      {"conversations": "no"}])
    report = validate_file(lines, shown="uploads/sharegpt.jsonl")
    assert [(e["rule"], e["line"]) for e in report["errors"]] == [("other_format", 1)]
    assert "ShareGPT (conversations with from/value) in JSON Lines" in \
        report["errors"][0]["message"]
    assert report["conversion"]["command"] == (
        "deepsynth convert-chat uploads/sharegpt.jsonl uploads/sharegpt.converted.jsonl")
    assert report["conversion"]["refused_by_reason"] == {"conversations_type": 1}
    assert [(p["line"], p["path"]) for p in report["conversion"]["problems"]] == [
        (3, "conversations")]
    assert (report["ok"], report["trainable"], report["format"]["name"]) == (
        False, False, "sharegpt")


def test_convert_chat_writes_chat_jsonl_or_nothing(tmp_path, encoder, root):
    source = tmp_path / "glaive.json"
    starts = write_array(source, [TOOL_RECORD, sharegpt(2), {"conversations": [
        {"from": "human", "value": "hi"}, {"from": "bot", "value": "x"}]}])
    out = tmp_path / "out" / "glaive.jsonl"
    done = run_cli("convert-chat", str(source), str(out),
                   env={"DEEPSYNTH_DATA_ROOT": str(root)})
    assert done.returncode == 2 and not out.exists()
    assert f"refused: line {starts[2]}: conversations[1].from: from must be one of" in \
        done.stdout
    assert "3 records read, 2 converted, 1 refused, unknown_from 1" in done.stderr
    assert "nothing written" in done.stderr

    report = convert_file(source, out, skip_invalid=True)
    assert report.counts() == {"records": 3, "converted": 2, "refused": 1,
                               "refused_by_reason": {"unknown_from": 1}}
    written = [json.loads(line) for line in out.read_text().splitlines()]
    assert written == [TOOL_CONVERTED, from_sharegpt(sharegpt(2), 1)[0]]
    checked = validate_file(out, encoder)
    assert checked["ok"] and checked["conversion"] is None and checked["errors"] == []
    assert checked["format"]["label"] == "OpenAI messages in JSON Lines"
    with pytest.raises(ConfigRefused, match="JSON Lines file name"):
        convert_file(source, tmp_path / "out.json")


def test_training_reads_the_formats_by_itself(tmp_path, encoder):
    path = tmp_path / "alpaca.json"
    write_array(path, [alpaca(i) for i in range(4)] + [{"instruction": "x", "output": ""}])
    with pytest.raises(ChatFileError, match="skip_invalid_lines to train on the valid records"):
        load_chat(path, encoder, skip_invalid=False)
    examples, report, _ = load_chat(path, encoder, skip_invalid=True)
    assert len(examples) == 4 and report.conversion()["refused_by_reason"] == {
        "output_empty": 1}
    assert examples[0]["summary"] == alpaca(0)["output"]
    # A Hub dataset's chat file may be JSON: JSON Lines first, train first.
    folder = tmp_path / "hub"
    write_array(folder / "data" / "other.json", [alpaca(1)])
    write_array(folder / "data" / "train.json", [alpaca(1)])
    assert chat_file_in(folder).name == "train.json"
    write_lines(folder / "train.jsonl", [PLAIN])
    assert chat_file_in(folder).name == "train.jsonl"


def test_telling_a_corpus_file_holds_chat_reads_a_bounded_start(tmp_path, monkeypatch):
    from deepsynth.chat import inspect

    path = write_lines(tmp_path / "many.jsonl", [sharegpt(i) for i in range(50)])
    monkeypatch.setattr(inspect, "DETECT_BYTES", 2000)  # cuts the file within a record
    found = inspect.detect_chat(path, "uploads/many.jsonl")
    assert found["format"]["name"] == "sharegpt" and 0 < found["checked"] < 50
    assert found["refused"] == 0  # the record cut by the bound is left out, not refused
    assert found["command"] == ("deepsynth convert-chat uploads/many.jsonl "
                                "uploads/many.converted.jsonl")
    assert inspect.detect_chat(write_lines(tmp_path / "news.jsonl", [
        {"article": "A text.", "highlights": "A."}]), "news.jsonl") is None
    assert inspect.detect_chat(tmp_path / "many.jsonl", "x.parquet", limit=3)["checked"] == 3
