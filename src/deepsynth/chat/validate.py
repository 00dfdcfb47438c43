"""The strict rules of one conversation in the OpenAI chat format: every problem with its
line, field path and rule.

``{"messages": [...], "tools": [...]?}``. Roles are system, developer, user, assistant, tool
and the legacy function. Content is a string or a list of text parts (joined); an assistant
turn has content, tool_calls, the legacy function_call, or only a refusal, optional
``reasoning`` and ``weight`` 0 or 1; tool messages answer an earlier call by
``tool_call_id``, function messages an earlier function_call by ``name``. The chat trainer
is text-only: image, audio and file parts are refused, not dropped.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
MEDIA_PARTS = ("image_url", "input_image", "image", "input_audio", "audio", "video",
               "video_url", "file", "input_file")
MEDIA_FIELDS = ("images", "audios", "videos")  # LLaMA-Factory's multimodal columns
TEXT_ONLY = ("the chat trainer is text-only: images, audio and video are neither read nor "
             "trained; remove them (or the line)")


@dataclass
class Problem:
    line: int
    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.path}: {self.message} [{self.rule}]"


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


class _Checker:
    """The problems of one conversation, gathered while its messages are read in order, and
    the conversation in the form the encoder reads (``messages``): content as one string,
    a refusal as the content, legacy function calls as tool calls."""

    def __init__(self, line: int):
        self.line, self.errors, self.warnings, self.messages = line, [], [], []
        self.call_ids: dict[str, str] = {}  # tool call id -> where it was declared
        self.function_calls: list[tuple[str, str]] = []  # legacy calls not yet answered
        self.started = False  # a user or assistant turn has been seen
        self.has_assistant = False  # an assistant turn has been seen

    def error(self, path: str, rule: str, message: str) -> None:
        self.errors.append(Problem(self.line, path, rule, message))

    def warn(self, path: str, rule: str, message: str) -> None:
        self.warnings.append(Problem(self.line, path, rule, message))

    # Content.
    def content(self, message: dict, where: str, role: str) -> str | None:
        """The message's text (parts joined), or None when there is none or it is invalid."""
        content = message.get("content")
        if content is None or isinstance(content, str):
            if content is None and role != "assistant":
                self.error(f"{where}.content", "content_type", f"{role} content must be a "
                           "string or a list of text parts" + (
                               "" if "content" in message else " (missing)"))
            return content
        if not isinstance(content, list):
            self.error(f"{where}.content", "content_type",
                       "content must be a string, a list of text parts or null")
            return None
        texts = [self.part(part, f"{where}.content[{j}]", role)
                 for j, part in enumerate(content)]
        # Joined as they are, as Hugging Face chat templates render a list of text parts.
        return None if None in texts else "".join(texts)

    def part(self, part, at: str, role: str) -> str | None:
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" or (kind == "refusal" and role == "assistant"):
            if isinstance(part.get(kind), str):
                return part[kind]
            self.error(f"{at}.{kind}", "content_part_text",
                       f"a {kind} part needs {kind}, a string")
        elif kind in MEDIA_PARTS:
            self.error(f"{at}.type", "content_part_unsupported", f"{kind} part: {TEXT_ONLY}")
        else:
            self.error(f"{at}.type" if isinstance(part, dict) else at, "content_part_type",
                       f"a content part must be an object of type text; got {kind!r}")
        return None

    # Assistant turns.
    def tool_calls(self, message: dict, where: str) -> list[dict]:
        found = message.get("tool_calls")
        if found is None:
            return []
        if not isinstance(found, list):
            self.error(f"{where}.tool_calls", "tool_calls_type", "tool_calls must be a list")
            return []
        for j, call in enumerate(found):
            at = f"{where}.tool_calls[{j}]"
            if not isinstance(call, dict):
                self.error(at, "tool_call_type", "a tool call must be an object")
                continue
            self.call_id(call.get("id"), at)
            if call.get("type", "function") != "function":
                self.error(f"{at}.type", "tool_call_kind",
                           f"type must be 'function'; got {call.get('type')!r}")
            self.function(call.get("function"), f"{at}.function", "tool_call")
        return found

    def call_id(self, call_id, at: str) -> None:
        if not isinstance(call_id, str) or not call_id:
            self.error(f"{at}.id", "tool_call_id", "a tool call needs an id")
        elif call_id in self.call_ids:
            self.error(f"{at}.id", "tool_call_duplicate", f"tool call id {call_id!r} is "
                       f"already used by {self.call_ids[call_id]}: a tool response could "
                       "not tell the calls apart")
        else:
            self.call_ids[call_id] = at

    def function(self, function, where: str, rule: str) -> bool:
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) \
                or not function["name"]:
            self.error(f"{where}.name" if isinstance(function, dict) else where,
                       f"{rule}_name", f"a {rule.replace('_', ' ')} needs a function name")
            return False
        arguments = function.get("arguments")
        if not isinstance(arguments, str) or not _is_json(arguments):
            self.error(f"{where}.arguments", f"{rule}_arguments",
                       "arguments must be a JSON-encoded string")
        return True

    def legacy_call(self, message: dict, where: str) -> list[dict]:
        """The legacy ``function_call`` as a tool call, with an id of its own."""
        legacy = message.get("function_call")
        if legacy is None:
            return []
        if message.get("tool_calls"):
            self.error(f"{where}.function_call", "function_call_with_tool_calls",
                       "a turn has tool_calls or the legacy function_call, not both")
            return []
        if not self.function(legacy, f"{where}.function_call", "function_call"):
            return []
        call_id = f"function_call_{len(self.function_calls) + 1}"
        while call_id in self.call_ids:
            call_id += "_"
        self.function_calls.append((legacy["name"], call_id))
        return [{"id": call_id, "type": "function", "function": {
            "name": legacy["name"], "arguments": legacy.get("arguments")}}]

    def assistant(self, message: dict, where: str) -> dict:
        text = self.content(message, where, "assistant")
        calls = self.tool_calls(message, where) + self.legacy_call(message, where)
        refusal = message.get("refusal")
        if refusal is not None and not isinstance(refusal, str):
            self.error(f"{where}.refusal", "refusal_type", "refusal must be a string")
        elif refusal and text and text.strip():
            self.error(f"{where}.refusal", "refusal_with_content",
                       "an assistant turn has content or a refusal, not both")
        acts = bool(calls) or "function_call" in message
        if message.get("content") is None and not acts and refusal is None:
            self.error(where, "assistant_empty", "an assistant message needs content, "
                       "tool_calls, function_call or refusal")
        elif isinstance(text, str) and not text.strip() and not acts and not refusal:
            self.warn(f"{where}.content", "empty_assistant", "empty assistant turn")
        if "reasoning" in message and not isinstance(message["reasoning"], str):
            self.error(f"{where}.reasoning", "reasoning_type", "reasoning must be a string")
        weight = message.get("weight", 1)
        if isinstance(weight, bool) or weight not in (0, 1):
            self.error(f"{where}.weight", "weight_value",
                       f"weight must be 0 (not trained) or 1 (trained); got {weight!r}")
        read = {"role": "assistant", "content": text if (text or not refusal) else refusal}
        if message.get("reasoning"):
            read["reasoning"] = message["reasoning"]
        if calls:
            read["tool_calls"] = calls
        if weight == 0:
            read["weight"] = 0
        return read

    def other(self, message: dict, where: str, role: str) -> dict:
        read = {"role": role, "content": self.content(message, where, role)}
        if "reasoning" in message:
            self.error(f"{where}.reasoning", "reasoning_not_assistant",
                       f"reasoning belongs to assistant turns; on a {role} turn it would be "
                       "neither rendered nor trained: move it into the content, or drop it")
        if "weight" in message:
            self.warn(f"{where}.weight", "weight_ignored", f"weight has no effect on a {role} "
                      "turn: only assistant turns are trained")
        if role == "tool":
            call_id = message.get("tool_call_id")
            if not isinstance(call_id, str) or call_id not in self.call_ids:
                self.error(f"{where}.tool_call_id", "tool_call_unmatched",
                           f"tool_call_id {call_id!r} matches no earlier tool call")
            read["tool_call_id"] = call_id
            if isinstance(message.get("name"), str):  # some templates show the tool's name
                read["name"] = message["name"]
        elif role == "function":
            name = message.get("name")
            answered = next((c for c in self.function_calls if c[0] == name), None)
            if answered is None:
                self.error(f"{where}.name", "function_unmatched", f"function message "
                           f"{name!r} answers no earlier function_call of that name")
            else:
                self.function_calls.remove(answered)
                read = {"role": "tool", "tool_call_id": answered[1], "name": name,
                        "content": read["content"]}
        elif role in ("system", "developer") and self.started:
            self.warn(where, f"late_{role}", f"a {role} message after the conversation "
                      "started (kept in place; some models' templates refuse it)")
        return read

    def plain(self, message) -> bool:
        """A message of only a role and a string content, which needs no other rule: kept as
        it is (most messages are such; this keeps 100,000 lines within seconds)."""
        if type(message) is not dict or len(message) != 2:
            return False
        role, content = message.get("role"), message.get("content")
        if type(content) is not str:
            return False
        if role == "user" or (role == "system" and not self.started):
            pass
        elif role != "assistant" or not content or content.isspace():
            return False
        self.messages.append(message)
        self.started = self.started or role != "system"
        self.has_assistant = self.has_assistant or role == "assistant"
        return True

    def message(self, message, i: int) -> None:
        if self.plain(message):
            return
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            self.error(where, "message_type", "a message must be an object")
            return
        role = message.get("role")
        if role not in ROLES:
            self.error(f"{where}.role", "unknown_role",
                       f"role must be one of {', '.join(ROLES)}; got {role!r}")
            return
        read = self.assistant(message, where) if role == "assistant" else \
            self.other(message, where, role)
        self.messages.append(read)
        self.started = self.started or role in ("user", "assistant")
        self.has_assistant = self.has_assistant or role == "assistant"


def media_problems(data: dict, line: int) -> list[Problem]:
    """Multimodal columns of any format (LLaMA-Factory's images, audios, videos)."""
    return [Problem(line, key, "multimodal_unsupported", f"{key}: {TEXT_ONLY}")
            for key in MEDIA_FIELDS if data.get(key)]


def read_conversation(data, line: int) -> tuple[dict | None, list[Problem], list[Problem]]:
    """One parsed record: the conversation as the encoder reads it (None when it has errors),
    its errors and its warnings (structure only, no tokenizer)."""
    if not isinstance(data, dict) or not isinstance(data.get("messages"), list):
        return None, [Problem(line, "messages", "no_messages",
                              "each line must be an object with a 'messages' list")], []
    checker = _Checker(line)
    checker.errors += media_problems(data, line)
    for i, message in enumerate(data["messages"]):
        checker.message(message, i)
    if not checker.has_assistant:
        checker.error("messages", "no_assistant",
                      "a conversation needs at least one assistant turn")
    for key in ("tools", "functions"):
        if key in data and not isinstance(data[key], list):
            checker.error(key, f"{key}_type", f"{key} must be a list")
    if checker.errors:
        return None, checker.errors, checker.warnings
    read = {"messages": checker.messages}
    tools = (data.get("tools") or []) + [  # legacy function definitions become tools
        {"type": "function", "function": f} for f in data.get("functions") or []]
    if tools:
        read["tools"] = tools
    return read, checker.errors, checker.warnings


def check_conversation(data, line: int) -> tuple[list[Problem], list[Problem]]:
    """The errors and warnings of one parsed record."""
    _, errors, warnings = read_conversation(data, line)
    return errors, warnings
