"""Conversations and fixtures shared by the chat tests: one valid conversation with every
feature, a few smaller ones, the tiny chat model's tokenizer (built once per module)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from deepsynth.chat.template import ChatEncoder
from deepsynth.models.registry import load_model
from deepsynth.models.tiny_chat import ensure_tiny_chat_model
from deepsynth.workspace import Workspace

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
    built = ensure_tiny_chat_model(Workspace(folder).cache)
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


