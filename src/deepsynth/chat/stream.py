"""From records to conversations, streamed: each record's format told, ShareGPT and Alpaca
converted, the OpenAI rules applied, token lengths counted in batches, every problem and
count in a ChatReport. Validation, training and ``convert-chat`` all read files through
``conversations``; memory follows a batch of records, never the file.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from deepsynth.chat.formats import OPENAI, convert_record, record_format, source_path
from deepsynth.chat.records import Record, line_records
from deepsynth.chat.report import ChatReport
from deepsynth.chat.validate import Problem, media_problems, read_conversation
from deepsynth.errors import DeepSynthError

BATCH_RECORDS, BATCH_CHARS = 256, 1 << 22  # a batch of records to count tokens of at once
NO_FORMAT = ("each record must be an object with a 'messages' list (OpenAI), "
             "'conversations' (ShareGPT) or 'instruction' and 'output' (Alpaca)")


def read_record(record: Record) -> tuple[str | None, dict | None, list[Problem], list]:
    """One record: its format, the conversation as the encoder reads it (None when it is
    refused), its errors and warnings."""
    if record.error is not None:
        return None, None, [Problem(record.line, "$", "invalid_json", record.error)], []
    fmt = record_format(record.value)
    if fmt is None:
        return None, None, [Problem(record.line, "messages", "no_messages", NO_FORMAT)], []
    if fmt == OPENAI:
        return (fmt, *read_conversation(record.value, record.line))
    refused = media_problems(record.value, record.line)
    if refused:
        return fmt, None, refused, []
    converted, paths, errors = convert_record(record.value, fmt, record.line)
    if errors:
        return fmt, None, errors, []
    conversation, errors, warnings = read_conversation(converted, record.line)

    def mapped(problems: list[Problem]) -> list[Problem]:
        return [replace(p, path=source_path(p.path, paths)) for p in problems]

    return fmt, conversation, mapped(errors), mapped(warnings)


def parse_line(text: str, line: int) -> tuple[dict | None, list[Problem], list[Problem]]:
    """One JSON Lines line: the conversation (None when it is refused), errors, warnings."""
    record = next(line_records([text]), None) or Record(line, 0, error="an empty line")
    _, conversation, errors, warnings = read_record(replace(record, line=line))
    return conversation, errors, warnings


def _batches(records: Iterable[Record]) -> Iterator[list[Record]]:
    batch, chars = [], 0
    for record in records:
        batch.append(record)
        chars += record.size
        if len(batch) >= BATCH_RECORDS or chars >= BATCH_CHARS:
            yield batch
            batch, chars = [], 0
    if batch:
        yield batch


@dataclass
class _Read:
    """A record as read: its line and size, format, conversation (None: refused), problems."""
    line: int
    size: int
    fmt: str | None
    conversation: dict | None
    errors: list[Problem]
    warnings: list[Problem]

    def refuse(self, problem: Problem) -> None:
        self.conversation = None
        self.errors = self.errors + [problem]


def _render(read: _Read, encoder) -> str | None:
    """The text a conversation renders to, or None (and the record refused) when the
    model's template fails on it."""
    try:
        return encoder.render(read.conversation)[0]
    except DeepSynthError as exc:
        read.refuse(Problem(read.line, "messages", "template_failed", str(exc)))
        return None


def _lengths(batch: list[_Read], encoder, report: ChatReport) -> None:
    """Token lengths of a batch's valid conversations: the sampled ones, and every one that
    could be over max_length (too-long warnings). The built-in template cannot fail: its
    text is rendered only to be counted; a model's template is tried on every record."""
    texts, counted = [], []
    for read in batch:
        if read.conversation is None:
            continue
        slot = report.sample.draw()
        messages = len(read.conversation["messages"])
        if slot is None and encoder.record_fits(read.size, messages):
            continue
        text = _render(read, encoder)
        if text is not None and (slot is not None or not encoder.surely_fits(text, messages)):
            texts.append(text)
            counted.append((read, slot))
    for (read, slot), count in zip(counted, encoder.count_texts(texts), strict=True):
        report.counted_length(count.tokens, slot, count.estimated)
        if count.tokens > encoder.max_length:
            about = "about " if count.estimated else ""
            read.warnings.append(Problem(read.line, "messages", "too_long",
                                         f"{about}{count.tokens} tokens, longer than "
                                         f"max_length {encoder.max_length}: it will be cut"))


def conversations(records: Iterable[Record], report: ChatReport,
                  encoder=None) -> Iterator[tuple[int, dict]]:
    """The conversations of a stream of records that are not refused, with their lines;
    every problem is recorded in ``report``. With an encoder, token lengths too."""
    for batch in _batches(records):
        read = [_Read(r.line, r.size, *read_record(r)) for r in batch]
        if encoder is not None:
            _lengths(read, encoder, report)
        for one in read:
            report.record(one.line, one.fmt, one.conversation, one.errors, one.warnings)
            if one.conversation is not None:
                yield one.line, one.conversation


def validate_records(records: Iterable[Record], encoder=None,
                     container: str | None = None) -> ChatReport:
    report = ChatReport() if container is None else ChatReport(container=container)
    for _ in conversations(records, report, encoder):
        pass
    return report


def validate_chat(lines: Iterable[str], encoder=None) -> ChatReport:
    """The report of JSON Lines text (tests and callers holding lines)."""
    return validate_records(line_records(lines), encoder)
