"""What the validator and the label-mask preview need from a model: its tokenizer only (the
weights are not loaded), wrapped in a ChatEncoder; and the two operations on a chat file."""

from __future__ import annotations

from pathlib import Path

from deepsynth.chat.data import read_lines
from deepsynth.chat.template import ChatEncoder, label_preview
from deepsynth.chat.validate import ChatReport, parse_line, validate_chat
from deepsynth.errors import ConfigError, DeepSynthError


def chat_encoder(model: str, root: Path | None = None, template: str = "auto",
                 reasoning: str = "render", train_on: str = "all_assistant",
                 max_length: int = 2048) -> ChatEncoder:
    from transformers import AutoTokenizer

    from deepsynth.models.registry import resolve_model

    location, _ = resolve_model(model, root, hub_ids=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(location)
    except (OSError, ValueError) as exc:
        raise DeepSynthError(f"cannot load the tokenizer of {model!r}: "
                             f"{str(exc).splitlines()[0]}") from None
    return ChatEncoder(tokenizer, template, reasoning, train_on, max_length)


def validate_file(path: Path, encoder: ChatEncoder | None = None) -> ChatReport:
    """Every problem of the file; with an encoder, token lengths and too-long warnings."""
    return validate_chat(read_lines(path), encoder.count_tokens if encoder else None,
                         encoder.max_length if encoder else None)


def preview_line(path: Path, line: int, encoder: ChatEncoder) -> dict:
    """The label-mask preview of one line (1-based), or its problems when it is invalid."""
    for number, text in enumerate(read_lines(path), start=1):
        if number == line:
            data, problems, warnings = parse_line(text, number)
            if data is None:
                return {"line": line, "ok": False,
                        "errors": [p.__dict__ for p in problems]}
            return {"line": line, "ok": True, **label_preview(encoder, data),
                    "warnings": [p.__dict__ for p in warnings]}
    raise ConfigError("line", f"the file has no line {line}", "a line number of the file")
