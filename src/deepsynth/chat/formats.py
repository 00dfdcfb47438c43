"""The chat formats people bring, told apart record by record, and converted to the OpenAI
messages format the trainer reads.

- ``openai``: ``{"messages": [{"role", "content"}, ...], "tools"?}`` (read as it is).
- ``sharegpt`` (LLaMA-Factory's): ``{"conversations": [{"from", "value"}, ...], "system"?,
  "tools"?}`` with ``from`` human/user, gpt/assistant, system, function_call (the value is
  a JSON call, or a list of calls) and observation (the tool's answer); ``tools`` a list of
  function schemas, or that list as a JSON string. Turns written ``role``/``content`` are
  read too.
- ``alpaca``: ``{"instruction", "input"?, "output", "system"?, "history"?: [[user,
  assistant], ...]}``; the user turn is the instruction and the input joined by a newline
  (as LLaMA-Factory does). ms-swift's ``query``/``response`` are read as instruction/output.

Conversion checks what it needs in the record's own terms (``conversations[3].from``); the
converted conversation then goes through the OpenAI rules, whose paths are mapped back to
the record's fields.
"""

from __future__ import annotations

import json
import re

from deepsynth.chat.validate import Problem

OPENAI, SHAREGPT, ALPACA = "openai", "sharegpt", "alpaca"
LABELS = {OPENAI: "OpenAI messages", SHAREGPT: "ShareGPT (conversations with from/value)",
          ALPACA: "Alpaca (instruction/input/output)"}
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant",
                  "assistant": "assistant", "chatgpt": "assistant", "system": "system",
                  "function_call": "function_call", "observation": "observation",
                  "tool": "observation"}
_MESSAGE_PATH = re.compile(r"^messages\[(\d+)\]")


def record_format(value) -> str | None:
    """Which format a parsed record is in, or None when it is in none of them."""
    if not isinstance(value, dict):
        return None
    if "messages" in value:
        return OPENAI
    if "conversations" in value:
        return SHAREGPT
    if "instruction" in value or "output" in value or {"query", "response"} <= set(value):
        return ALPACA
    return None


class _Conversion:
    """Messages being built from a record, each with the record field it came from."""

    def __init__(self, line: int):
        self.line, self.messages, self.paths, self.errors = line, [], [], []
        self.pending: list[str] = []  # ids of function calls not yet observed
        self.calls = 0  # function calls so far: their ids are call_1, call_2, ...

    def add(self, message: dict, path: str) -> None:
        self.messages.append(message)
        self.paths.append(path)

    def error(self, path: str, rule: str, message: str) -> None:
        self.errors.append(Problem(self.line, path, rule, message))

    def text(self, value, path: str) -> str | None:
        if isinstance(value, str):
            return value
        self.error(path, "value_type", f"must be a string; got {type(value).__name__}")
        return None

    def result(self, tools: list | None = None) -> tuple[dict | None, list[str], list[Problem]]:
        if self.errors:
            return None, self.paths, self.errors
        conversation = {"messages": self.messages}
        if tools:
            conversation["tools"] = tools
        return conversation, self.paths, []


def _calls(value: str, path: str, build: _Conversion) -> list[dict] | None:
    """A ShareGPT function_call value: one call or a list, arguments an object or a string."""
    try:
        calls = json.loads(value)
    except ValueError:
        calls = None
    calls = calls if isinstance(calls, list) else [calls]
    out = []
    for call in calls:
        if not isinstance(call, dict) or not isinstance(call.get("name"), str):
            build.error(path, "function_call_value", "a function_call value must be JSON: "
                        '{"name": ..., "arguments": {...}}, or a list of them')
            return None
        arguments = call.get("arguments", {})
        build.calls += 1
        out.append({"id": f"call_{build.calls}", "type": "function", "function": {
            "name": call["name"], "arguments": arguments if isinstance(arguments, str)
            else json.dumps(arguments, ensure_ascii=False)}})
    return out


def _tools(value, build: _Conversion) -> list | None:
    """ShareGPT tools: a list (or its JSON string) of function schemas or OpenAI tools."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            build.error("tools", "tools_value", "tools must be a list of function schemas, "
                        "or that list as a JSON string")
            return None
    if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
        build.error("tools", "tools_value", "tools must be a list of function schemas")
        return None
    return [t if t.get("type") == "function" and "function" in t
            else {"type": "function", "function": t} for t in value]


def _turn(turn, path: str, build: _Conversion) -> None:
    if not isinstance(turn, dict):
        build.error(path, "turn_type", "a turn must be an object with from and value")
        return
    role_key, text_key = ("from", "value") if "from" in turn else ("role", "content")
    role = SHAREGPT_ROLES.get(turn.get(role_key))
    if role is None:
        build.error(f"{path}.{role_key}", "unknown_from", f"{role_key} must be one of "
                    f"{', '.join(SHAREGPT_ROLES)}; got {turn.get(role_key)!r}")
        return
    text = build.text(turn.get(text_key), f"{path}.{text_key}")
    if text is None:
        return
    if role == "function_call":
        calls = _calls(text, f"{path}.{text_key}", build)
        if calls:
            build.pending += [c["id"] for c in calls]
            build.add({"role": "assistant", "content": None, "tool_calls": calls}, path)
    elif role == "observation":
        if not build.pending:
            build.error(f"{path}.{role_key}", "observation_unmatched",
                        "an observation answers no earlier function_call")
            return
        build.add({"role": "tool", "tool_call_id": build.pending.pop(0), "content": text},
                  path)
    else:
        build.add({"role": role, "content": text}, path)


def _system(record: dict, build: _Conversion) -> None:
    if record.get("system") not in (None, ""):
        system = build.text(record["system"], "system")
        if system is not None:
            build.add({"role": "system", "content": system}, "system")


def from_sharegpt(record: dict, line: int):
    build = _Conversion(line)
    _system(record, build)
    turns = record.get("conversations")
    if not isinstance(turns, list) or not turns:
        build.error("conversations", "conversations_type",
                    "conversations must be a non-empty list of turns")
        return build.result()
    for i, turn in enumerate(turns):
        _turn(turn, f"conversations[{i}]", build)
    return build.result(_tools(record.get("tools"), build))


def from_alpaca(record: dict, line: int):
    build = _Conversion(line)
    prompt_key = "instruction" if "instruction" in record or "query" not in record else "query"
    answer_key = "output" if "output" in record or "response" not in record else "response"
    _system(record, build)
    history = record.get("history") or []
    if not isinstance(history, list):
        build.error("history", "history_type", "history must be a list of [user, assistant]")
        history = []
    for i, pair in enumerate(history):
        if not (isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str)
                                                                  for p in pair)):
            build.error(f"history[{i}]", "history_type",
                        "each history entry must be [user text, assistant text]")
            continue
        build.add({"role": "user", "content": pair[0]}, f"history[{i}][0]")
        build.add({"role": "assistant", "content": pair[1]}, f"history[{i}][1]")
    parts = [build.text(record.get(key), key) for key in (prompt_key, "input")
             if record.get(key) not in (None, "")]
    if not parts:
        build.error(prompt_key, "instruction_empty", f"{prompt_key} and input are empty: "
                    "there is no user turn")
    answer = record.get(answer_key)
    if isinstance(answer, list):
        build.error(answer_key, "output_type", f"{answer_key} is a list (ranking data): the "
                    "chat trainer needs one answer, a string")
    elif not isinstance(answer, str) or not answer.strip():
        build.error(answer_key, "output_empty", f"{answer_key} must be a non-empty string")
    if None not in parts and parts:
        build.add({"role": "user", "content": "\n".join(parts)}, prompt_key)
        build.add({"role": "assistant", "content": answer}, answer_key)
    return build.result()


PREFERENCE_FIELDS = ("chosen", "rejected")
CONVERTERS = {SHAREGPT: from_sharegpt, ALPACA: from_alpaca}


def convert_record(record: dict, fmt: str, line: int):
    """A ShareGPT or Alpaca record as an OpenAI conversation, the source path of each of its
    messages, and the problems that kept it from converting."""
    found = [key for key in PREFERENCE_FIELDS if key in record]
    if found:
        return None, [], [Problem(line, found[0], "preference_unsupported", "chosen/rejected "
                                  "pairs are preference data (DPO, KTO); the chat trainer "
                                  "trains on conversations")]
    return CONVERTERS[fmt](record, line)


def source_path(path: str, paths: list[str]) -> str:
    """A converted conversation's field path (``messages[2].content``) in the record's terms
    (``conversations[1].value``): messages[i] came from paths[i]."""
    match = _MESSAGE_PATH.match(path)
    if not match or int(match[1]) >= len(paths):
        return path
    return paths[int(match[1])] + (" (converted: " + path + ")" if path != match[0] else "")
