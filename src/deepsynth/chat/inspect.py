"""What the validator and the label-mask preview need from a model: its tokenizer only (the
weights are not loaded), wrapped in a ChatEncoder; and the two operations on a chat file."""

from __future__ import annotations

import threading
from pathlib import Path

from deepsynth.chat.data import read_lines
from deepsynth.chat.template import ChatEncoder, label_preview
from deepsynth.chat.validate import ChatReport, parse_line, validate_chat
from deepsynth.errors import NotFound

# One request at a time resolves and loads: transformers' lazy imports are not safe from two
# threads at once (an ImportError), and a demo model is written on its first use.
_LOADING = threading.Lock()
# Tokenizers already loaded, each kept by the thread that loaded it (a fast tokenizer must
# not encode for two threads at once), while its folder is unchanged.
_LOADED = threading.local()


def _tokenizer(location: str):
    from transformers import AutoTokenizer

    path = Path(location)
    key = (location, path.stat().st_mtime if path.exists() else 0.0)
    cache = _LOADED.__dict__.setdefault("tokenizers", {})
    if key not in cache:
        if len(cache) >= 4:
            cache.clear()
        cache[key] = AutoTokenizer.from_pretrained(location)
    return cache[key]


def chat_encoder(model: str, root: Path | None = None, template: str = "auto",
                 reasoning: str = "render", train_on: str = "all_assistant",
                 max_length: int = 2048) -> ChatEncoder:
    from deepsynth.models.registry import resolve_model

    with _LOADING:
        location, _ = resolve_model(model, root, hub_ids=True)
        try:
            tokenizer = _tokenizer(str(location))
        except (OSError, ValueError) as exc:
            raise NotFound(f"cannot load the tokenizer of {model!r}: "
                           f"{str(exc).splitlines()[0]}", "model") from None
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
    raise NotFound(f"line: the file has no line {line}", "line", "a line number of the file")
