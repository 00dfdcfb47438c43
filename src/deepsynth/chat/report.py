"""What reading a chat file found: records, valid conversations, every problem, the formats
its records are in, and what converting them gave (records read, converted, refused by
reason). Counts cover the whole file; the problems kept are capped."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import asdict, dataclass, field
from operator import itemgetter

from deepsynth.chat.formats import LABELS, OPENAI
from deepsynth.chat.records import ARRAY, JSONL, container_of
from deepsynth.chat.validate import Problem

MAX_REPORTED = 1000  # problems kept in a report (all are counted)
SAMPLE_SIZE = 500  # conversations whose token lengths the percentiles are taken from
CONTAINERS = {JSONL: "JSON Lines", ARRAY: "a JSON array"}


class LengthSample:
    """A uniform sample of the conversations' token lengths (reservoir sampling, seeded: the
    same file gives the same sample). Every conversation is counted while there are at most
    ``size``; after that a conversation is tokenized only when it is drawn."""

    def __init__(self, size: int = SAMPLE_SIZE):
        self.size, self.seen, self.lengths = size, 0, []
        self.random = random.Random(0)

    def draw(self) -> int | None:
        """The next conversation's slot in the sample, or None when it is not drawn."""
        self.seen += 1
        if len(self.lengths) < self.size:
            self.lengths.append(0)
            return len(self.lengths) - 1
        slot = self.random.randrange(self.seen)
        return slot if slot < self.size else None


@dataclass
class ChatReport:
    rows: int = 0  # records read (lines of JSON Lines, elements of an array)
    valid_rows: int = 0
    turns: int = 0
    role_counts: Counter = field(default_factory=Counter)
    errors: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    error_count: int = 0
    warning_count: int = 0
    invalid_lines: list[int] = field(default_factory=list)
    sample: LengthSample = field(default_factory=LengthSample)
    counted: int = 0  # conversations tokenized
    longest: int | None = None  # the most tokens counted
    estimated_lengths: int = 0  # lengths estimated from the start of a very long text
    container: str = JSONL
    formats: Counter = field(default_factory=Counter)  # records per format (None: none)
    refused: Counter = field(default_factory=Counter)  # refused records by their first rule

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def add(self, problems: list[Problem], warnings: list[Problem]) -> None:
        self.error_count += len(problems)
        self.warning_count += len(warnings)
        self.errors.extend(problems[:max(0, MAX_REPORTED - len(self.errors))])
        self.warnings.extend(warnings[:max(0, MAX_REPORTED - len(self.warnings))])

    def record(self, line: int, fmt: str | None, conversation: dict | None,
               problems: list[Problem], warnings: list[Problem]) -> None:
        """One record read: counted, its problems kept, its conversation tallied."""
        self.rows += 1
        self.formats[fmt] += 1
        self.add(problems, warnings)
        if conversation is None:
            self.invalid_lines.append(line)
            self.refused[problems[0].rule if problems else "invalid"] += 1
            return
        self.valid_rows += 1
        self.turns += len(conversation["messages"])
        self.role_counts.update(map(itemgetter("role"), conversation["messages"]))

    def unrecord(self, line: int, conversation: dict, problem: Problem) -> None:
        """A conversation counted valid, refused afterwards (its template failed on it)."""
        self.valid_rows -= 1
        self.turns -= len(conversation["messages"])
        self.role_counts.subtract(m["role"] for m in conversation["messages"])
        self.role_counts = +self.role_counts
        self.invalid_lines.append(line)
        self.refused[problem.rule] += 1
        self.add([problem], [])

    # The format.
    @property
    def format_name(self) -> str | None:
        """openai, sharegpt, alpaca, mixed, or None when no record is in a known format."""
        known = [name for name in self.formats if name]
        return known[0] if len(known) == 1 else ("mixed" if known else None)

    @property
    def needs_conversion(self) -> bool:
        """Not chat JSONL as the validator wants it: another format, or a JSON array."""
        name = self.format_name
        return name is not None and (name != OPENAI or self.container != JSONL)

    def format_label(self) -> str:
        name = self.format_name
        if name == "mixed":
            what = "mixed formats (" + ", ".join(
                f"{LABELS[n]}: {c}" for n, c in self.formats.items() if n) + ")"
        else:
            what = LABELS.get(name, "no record in a known format")
        return f"{what} in {CONTAINERS[self.container]}"

    def format_dict(self) -> dict:
        return {"name": self.format_name, "container": self.container,
                "label": self.format_label(),
                "records": {name or "unknown": n for name, n in self.formats.items()}}

    def counts(self) -> dict:
        """Records read, converted (or read as they are) and refused by reason."""
        return {"records": self.rows, "converted": self.valid_rows,
                "refused": sum(self.refused.values()),
                "refused_by_reason": dict(self.refused.most_common())}

    def conversion(self) -> dict | None:
        """The conversion report; None for chat JSON Lines read as it is."""
        return self.counts() if self.needs_conversion else None

    @property
    def token_lengths(self) -> list[int]:
        """The sampled lengths (every conversation's while there are at most SAMPLE_SIZE)."""
        return self.sample.lengths

    def counted_length(self, tokens: int, slot: int | None, estimated: bool) -> None:
        self.counted += 1
        self.estimated_lengths += estimated
        self.longest = tokens if self.longest is None else max(self.longest, tokens)
        if slot is not None:
            self.sample.lengths[slot] = tokens

    def summary(self) -> dict:
        lengths = sorted(self.token_lengths)

        def percentile(q: float) -> int | None:
            return lengths[min(len(lengths) - 1, int(q * len(lengths)))] if lengths else None

        return {"rows": self.rows, "valid_rows": self.valid_rows, "turns": self.turns,
                "role_counts": dict(self.role_counts),
                "token_lengths": {"p50": percentile(0.5), "p90": percentile(0.9),
                                  "p99": percentile(0.99),
                                  "max": self.longest, "sampled": len(lengths),
                                  "counted": self.counted,
                                  "estimated": self.estimated_lengths}}

    def to_dict(self) -> dict:
        return {"ok": self.ok, "trainable": self.ok and self.valid_rows > 0,
                "format": self.format_dict(), "conversion": self.conversion(),
                "summary": self.summary(), "error_count": self.error_count,
                "warning_count": self.warning_count, "invalid_lines": self.invalid_lines[:1000],
                "errors": [asdict(p) for p in self.errors],
                "warnings": [asdict(p) for p in self.warnings]}


def chat_report(path) -> ChatReport:
    """An empty report for the file at ``path``, knowing its container (JSON Lines or an
    array)."""
    return ChatReport(container=container_of(path))
