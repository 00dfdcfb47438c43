"""Chat files as training data: streamed, validated line by line, encoded with a ChatEncoder.

A file with errors is refused (every problem is in the error's report) unless
``skip_invalid_lines`` is set; then the skipped lines are counted and named.
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from pathlib import Path

import torch

from deepsynth.chat.template import ChatEncoder
from deepsynth.chat.validate import ChatReport, conversations
from deepsynth.errors import ConfigRefused, DeepSynthError

CHAT_SUFFIXES = (".jsonl", ".jsonl.gz")


class ChatFileError(DeepSynthError):
    """The chat file has invalid lines; ``report`` has every problem."""

    def __init__(self, message: str, report: ChatReport):
        super().__init__(message)
        self.report = report


def read_lines(path: Path) -> Iterator[str]:
    """The file's lines, streamed (``.jsonl`` or ``.jsonl.gz``)."""
    path = Path(path)
    if not path.is_file():
        raise DeepSynthError(f"no chat file {path}")
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            yield from handle
    except UnicodeDecodeError as exc:
        raise ConfigRefused("source", f"{path.name} is not UTF-8 text ({exc.reason} at byte "
                          f"{exc.start})", "a UTF-8 JSONL file") from None
    except (OSError, EOFError) as exc:  # a truncated or fake .gz
        raise ConfigRefused("source", f"{path.name} cannot be read: {exc}",
                          "a JSONL file, optionally gzipped") from None


def chat_file_in(folder: Path) -> Path:
    """The chat JSONL of a downloaded Hub dataset: ``train`` first, else the first found."""
    found = sorted(p for p in Path(folder).rglob("*") if p.name.endswith(CHAT_SUFFIXES)
                   and ".cache" not in p.parts)
    if not found:
        raise DeepSynthError(f"the Hub dataset in {folder} has no .jsonl file of conversations")
    return next((p for p in found if p.name.startswith("train")), found[0])


class ChatExamples(torch.utils.data.Dataset):
    """Encoded conversations: token ids, labels on assistant tokens, and what evaluation
    generates from (the turns before the last assistant turn) with its reference."""

    def __init__(self, items: list[dict], encoder: ChatEncoder):
        self.items, self.encoder = items, encoder

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict:
        return self.items[index]


def load_chat(path: Path, encoder: ChatEncoder, skip_invalid: bool,
              limit: int | None = None) -> tuple[ChatExamples, ChatReport, int]:
    """Examples of a chat file, its validation report, and how many conversations were left
    out because truncation to ``max_length`` removed every trained token."""
    report = ChatReport()
    items, untrained = [], 0
    for line, conversation in conversations(read_lines(path), report):
        if limit is not None and len(items) >= limit:
            continue  # keep reading: the report covers the whole file
        encoded = encoder.encode(conversation)
        if encoded.trained_tokens == 0:
            untrained += 1
            continue
        prompt, reference = encoder.prompt_text(conversation)
        items.append({"id": f"line-{line}", "input_ids": encoded.input_ids,
                      "labels": encoded.labels, "pages": [], "summary": reference,
                      "prompt_ids": encoder._tokenize(prompt)[0]})
    if report.error_count and not skip_invalid:
        shown = "; ".join(str(p) for p in report.errors[:5])
        raise ChatFileError(f"{path}: {report.error_count} problems on "
                            f"{len(report.invalid_lines)} lines ({shown}); fix them, or set "
                            f"skip_invalid_lines to train on the valid lines", report)
    if not items:
        raise DeepSynthError(f"{path}: no conversation to train on ({report.valid_rows} valid "
                             f"lines, {untrained} with no assistant token within max_length)")
    return ChatExamples(items, encoder), report, untrained
