"""What the validator and the label-mask preview need from a model: its tokenizer only (the
weights are not loaded), wrapped in a ChatEncoder; and the operations on a chat file:
validate it, preview one record's labels, tell its format."""

from __future__ import annotations

import itertools
import shlex
import threading
from dataclasses import asdict
from pathlib import Path

from deepsynth.chat.records import read_records
from deepsynth.chat.report import ChatReport, chat_report
from deepsynth.chat.stream import conversations, read_record
from deepsynth.chat.template import ChatEncoder, label_preview
from deepsynth.chat.validate import Problem
from deepsynth.errors import DeepSynthError, NotFound

# One request at a time resolves and loads: transformers' lazy imports are not safe from two
# threads at once (an ImportError), and a demo model is written on its first use.
_LOADING = threading.Lock()
# Tokenizers already loaded, each kept by the thread that loaded it (a fast tokenizer must
# not encode for two threads at once), while its folder is unchanged.
_LOADED = threading.local()
SHOWN_REFUSALS = 100  # a conversion report's problems kept in the validator's view
DETECT_RECORDS = 1000  # records read to tell whether a corpus file holds conversations
DETECT_BYTES = 16 * 2**20  # and at most this much of it


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


def read_file(path: Path, encoder: ChatEncoder | None = None) -> ChatReport:
    """The file as training reads it (converted from its format): every problem, and with
    an encoder token lengths and too-long warnings."""
    report = chat_report(path)
    for _ in conversations(read_records(path), report, encoder):
        pass
    return report


def converted_name(shown: str) -> str:
    """Where ``convert-chat`` is suggested to write: the same name as JSON Lines."""
    stem = shown.removesuffix(".gz")
    stem = stem.rsplit(".", 1)[0] if "." in Path(stem).name else stem
    return f"{stem}.jsonl" if f"{stem}.jsonl" != shown else f"{stem}.converted.jsonl"


def convert_command(shown: str) -> str:
    return f"deepsynth convert-chat {shlex.quote(shown)} {shlex.quote(converted_name(shown))}"


def other_format(report: ChatReport, shown: str) -> Problem:
    """The validator's one problem with a file that is not chat JSON Lines as it is."""
    conversion = report.conversion()
    refused = "".join(f", {rule} {n}" for rule, n in conversion["refused_by_reason"].items())
    return Problem(1, "$", "other_format", f"{shown} is {report.format_label()}, not chat "
                   f"JSON Lines ({conversion['records']} records: {conversion['converted']} "
                   f"convert, {conversion['refused']} refused{refused}); convert it with "
                   f"`{convert_command(shown)}` (training converts it by itself)")


def validate_file(path: Path, encoder: ChatEncoder | None = None,
                  shown: str | None = None) -> dict:
    """The validator's report as a dict. Chat JSON Lines: every problem. Another format (or
    a JSON array): one problem naming the format and the command that converts it, with the
    conversion's report (records read, converted, refused by reason, their problems)."""
    report = read_file(path, encoder)
    result = report.to_dict()
    if report.needs_conversion:
        result["conversion"]["problems"] = result["errors"][:SHOWN_REFUSALS]
        result["conversion"]["command"] = convert_command(shown or str(path))
        result.update(ok=False, error_count=1, invalid_lines=[],
                      errors=[asdict(other_format(report, shown or str(path)))])
    return result


def detect_chat(path: Path, shown: str, limit: int = DETECT_RECORDS) -> dict | None:
    """Whether a corpus file holds chat conversations, told from its first ``limit``
    records: the format, what converting those records gives, and the command; None when
    they are in no chat format (or the file is not JSON)."""
    path = Path(path)
    if not path.name.lower().endswith((".json", ".jsonl", ".json.gz", ".jsonl.gz")):
        return None
    try:
        report = chat_report(path)
        records = itertools.islice(read_records(path, DETECT_BYTES), limit)
        for _ in conversations(records, report):
            pass
    except DeepSynthError:
        return None
    if report.format_name is None:
        return None
    return {"format": report.format_dict(), **report.counts(), "checked": report.rows,
            "command": convert_command(shown) if report.needs_conversion else None}


def preview_line(path: Path, line: int, encoder: ChatEncoder) -> dict:
    """The label-mask preview of the record on ``line`` (1-based; in a JSON array, the
    record that line is part of), or its problems when it is refused."""
    found = None
    for record in read_records(path):
        if record.line > line:
            break
        found = record
    if found is None or (found.line != line and chat_report(path).container == "jsonl"):
        raise NotFound(f"line: the file has no record on line {line}", "line",
                       "a line number of the file")
    fmt, conversation, problems, warnings = read_record(found)
    if conversation is None:
        return {"line": found.line, "ok": False, "format": fmt,
                "errors": [p.__dict__ for p in problems]}
    return {"line": found.line, "ok": True, "format": fmt, **label_preview(encoder,
                                                                          conversation),
            "warnings": [p.__dict__ for p in warnings]}
