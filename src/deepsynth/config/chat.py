"""Requests to inspect a chat file: validate it, or preview one line's label mask."""

from __future__ import annotations

from dataclasses import dataclass

from deepsynth.config.spec import option


@dataclass
class ChatInspectConfig:
    source: str = option(help="a chat file under the data root (uploads/chat.jsonl): chat "
                         "JSONL, or ShareGPT, Alpaca or a JSON array (reported as converted)")
    model: str = option("tiny-chat-lm", help="whose tokenizer and chat template to use")
    max_length: int = option(2048, min=8, max=131072, help="warn about longer conversations")
    line: int = option(1, min=1, help="preview: the line to show (1-based)")
    chat_template: str = option("auto", choices=("auto", "model", "builtin"),
                                help="the model's chat template, or the built-in one")
    chat_reasoning: str = option("render", choices=("render", "drop"),
                                 help="render assistant reasoning, or drop it")
    chat_train_on: str = option("all_assistant", choices=("all_assistant", "last_assistant"),
                                help="which assistant turns carry labels")
