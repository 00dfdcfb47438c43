"""The strict validator of chat JSONL: every problem with its line, field path and rule.

One conversation per line: ``{"messages": [...], "tools": [...]?}``. Roles are system,
developer, user, assistant and tool. Assistant messages have ``content`` (a string, or null
with ``tool_calls``), optional ``reasoning`` and ``tool_calls``; tool messages answer an
earlier call by ``tool_call_id``. The file is streamed: memory does not grow with its size.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

ROLES = ("system", "developer", "user", "assistant", "tool")
MAX_REPORTED = 1000  # problems kept in a report (all are counted)


@dataclass
class Problem:
    line: int
    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.path}: {self.message} [{self.rule}]"


@dataclass
class ChatReport:
    rows: int = 0
    valid_rows: int = 0
    turns: int = 0
    role_counts: Counter = field(default_factory=Counter)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    error_count: int = 0
    warning_count: int = 0
    invalid_lines: list[int] = field(default_factory=list)
    token_lengths: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def add(self, problems: list[Problem], warnings: list[Problem]) -> None:
        self.error_count += len(problems)
        self.warning_count += len(warnings)
        self.errors.extend(problems[:max(0, MAX_REPORTED - len(self.errors))])
        self.warnings.extend(warnings[:max(0, MAX_REPORTED - len(self.warnings))])

    def summary(self) -> dict:
        lengths = sorted(self.token_lengths)

        def percentile(q: float) -> int | None:
            return lengths[min(len(lengths) - 1, int(q * len(lengths)))] if lengths else None

        return {"rows": self.rows, "valid_rows": self.valid_rows, "turns": self.turns,
                "role_counts": dict(self.role_counts),
                "token_lengths": {"p50": percentile(0.5), "p90": percentile(0.9),
                                  "p99": percentile(0.99),
                                  "max": lengths[-1] if lengths else None}}

    def to_dict(self) -> dict:
        return {"ok": self.ok, "summary": self.summary(), "error_count": self.error_count,
                "warning_count": self.warning_count, "invalid_lines": self.invalid_lines[:1000],
                "errors": [asdict(p) for p in self.errors],
                "warnings": [asdict(p) for p in self.warnings]}


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


def _tool_calls(message: dict, where: str, line: int, calls: set[str]) -> list[Problem]:
    found = message.get("tool_calls")
    if found is None:
        return []
    if not isinstance(found, list):
        return [Problem(line, f"{where}.tool_calls", "tool_calls_type",
                        "tool_calls must be a list")]
    problems = []
    for j, call in enumerate(found):
        at = f"{where}.tool_calls[{j}]"
        if not isinstance(call, dict):
            problems.append(Problem(line, at, "tool_call_type", "a tool call must be an object"))
            continue
        if not isinstance(call.get("id"), str) or not call["id"]:
            problems.append(Problem(line, f"{at}.id", "tool_call_id", "a tool call needs an id"))
        else:
            calls.add(call["id"])
        if call.get("type", "function") != "function":
            problems.append(Problem(line, f"{at}.type", "tool_call_kind",
                                    f"type must be 'function'; got {call.get('type')!r}"))
        function = call.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) \
                or not function["name"]:
            problems.append(Problem(line, f"{at}.function.name", "tool_call_name",
                                    "a tool call needs function.name"))
            continue
        arguments = function.get("arguments")
        if not isinstance(arguments, str) or not _is_json(arguments):
            problems.append(Problem(line, f"{at}.function.arguments", "tool_call_arguments",
                                    "arguments must be a JSON-encoded string"))
    return problems


def _message(message, i: int, line: int, calls: set[str]) -> tuple[list, list]:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        return [Problem(line, where, "message_type", "a message must be an object")], []
    role = message.get("role")
    if role not in ROLES:
        return [Problem(line, f"{where}.role", "unknown_role",
                        f"role must be one of {', '.join(ROLES)}; got {role!r}")], []
    problems, warnings = [], []
    content = message.get("content")
    if role == "assistant":
        problems += _tool_calls(message, where, line, calls)
        if content is not None and not isinstance(content, str):
            problems.append(Problem(line, f"{where}.content", "content_type",
                                    "content must be a string or null"))
        if content is None and not message.get("tool_calls"):
            problems.append(Problem(line, where, "assistant_empty",
                                    "an assistant message needs content or tool_calls"))
        elif isinstance(content, str) and not content.strip() and not message.get("tool_calls"):
            warnings.append(Problem(line, f"{where}.content", "empty_assistant",
                                    "empty assistant turn"))
        if "reasoning" in message and not isinstance(message["reasoning"], str):
            problems.append(Problem(line, f"{where}.reasoning", "reasoning_type",
                                    "reasoning must be a string"))
    elif not isinstance(content, str):
        problems.append(Problem(line, f"{where}.content", "content_type",
                                f"{role} content must be a string"
                                + ("" if "content" in message else " (missing)")))
    if role == "tool":
        call_id = message.get("tool_call_id")
        if not isinstance(call_id, str) or call_id not in calls:
            problems.append(Problem(line, f"{where}.tool_call_id", "tool_call_unmatched",
                                    f"tool_call_id {call_id!r} matches no earlier tool call"))
    return problems, warnings


def check_conversation(data, line: int) -> tuple[list[Problem], list[Problem]]:
    """The errors and warnings of one parsed line (structure only, no tokenizer)."""
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        return [Problem(line, "messages", "no_messages",
                        "each line must be an object with a 'messages' list")], []
    messages = data["messages"]
    problems, warnings, calls = [], [], set()
    seen_user = False
    for i, message in enumerate(messages):
        found, warned = _message(message, i, line, calls)
        problems += found
        warnings += warned
        role = message.get("role") if isinstance(message, dict) else None
        if role == "developer" and seen_user:
            warnings.append(Problem(line, f"messages[{i}]", "late_developer",
                                    "a developer message after the first user turn"))
        seen_user = seen_user or role == "user"
    if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in messages):
        problems.append(Problem(line, "messages", "no_assistant",
                                "a conversation needs at least one assistant turn"))
    if "tools" in data and not isinstance(data["tools"], list):
        problems.append(Problem(line, "tools", "tools_type", "tools must be a list"))
    return problems, warnings


def parse_line(text: str, line: int) -> tuple[dict | None, list[Problem], list[Problem]]:
    """One JSONL line: the conversation (None when invalid), its errors and warnings."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        return None, [Problem(line, "$", "invalid_json", f"not valid JSON: {exc}")], []
    problems, warnings = check_conversation(data, line)
    return (None if problems else data), problems, warnings


def conversations(lines: Iterable[str], report: ChatReport,
                  count_tokens: Callable[[dict], int] | None = None,
                  max_length: int | None = None) -> Iterator[tuple[int, dict]]:
    """The valid conversations of a JSONL stream with their line numbers; every problem is
    recorded in ``report`` (blank lines are skipped)."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        report.rows += 1
        data, problems, warnings = parse_line(text, number)
        if data is not None and count_tokens is not None:
            length = count_tokens(data)
            report.token_lengths.append(length)
            if max_length and length > max_length:
                warnings.append(Problem(number, "messages", "too_long",
                                        f"{length} tokens, longer than max_length "
                                        f"{max_length}: it will be cut"))
        report.add(problems, warnings)
        if data is None:
            report.invalid_lines.append(number)
            continue
        report.valid_rows += 1
        report.turns += len(data["messages"])
        report.role_counts.update(m["role"] for m in data["messages"])
        yield number, data


def validate_chat(lines: Iterable[str], count_tokens: Callable[[dict], int] | None = None,
                  max_length: int | None = None) -> ChatReport:
    report = ChatReport()
    for _ in conversations(lines, report, count_tokens, max_length):
        pass
    return report
