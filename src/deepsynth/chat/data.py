"""Chat files as training data: streamed, converted from ShareGPT or Alpaca when they are
in those formats, validated record by record, encoded with a ChatEncoder.

A file with errors is refused (every problem is in the error's report) unless
``skip_invalid_lines`` is set; then the skipped records are counted and named.
"""

from __future__ import annotations

from pathlib import Path

import torch

from deepsynth.chat.records import read_records
from deepsynth.chat.report import ChatReport, chat_report
from deepsynth.chat.stream import conversations
from deepsynth.chat.template import ChatEncoder
from deepsynth.chat.validate import Problem
from deepsynth.errors import DeepSynthError

# Files a Hub chat dataset may hold, in the order they are looked for.
CHAT_SUFFIXES = (".jsonl", ".jsonl.gz", ".json", ".json.gz")


class ChatFileError(DeepSynthError):
    """The chat file has invalid records; ``report`` has every problem."""

    def __init__(self, message: str, report: ChatReport):
        super().__init__(message)
        self.report = report


def chat_file_in(folder: Path) -> Path:
    """The chat file of a downloaded Hub dataset: ``train`` first, JSON Lines before JSON."""
    found = sorted((p for p in Path(folder).rglob("*") if p.name.endswith(CHAT_SUFFIXES)
                    and ".cache" not in p.parts),
                   key=lambda p: (not p.name.startswith("train"),
                                  CHAT_SUFFIXES.index(next(s for s in CHAT_SUFFIXES
                                                           if p.name.endswith(s))), str(p)))
    if not found:
        raise DeepSynthError(f"the Hub dataset in {folder} has no .jsonl or .json file of "
                             "conversations")
    return found[0]


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
    report = chat_report(path)
    items, untrained = [], 0
    for line, conversation in conversations(read_records(path), report):
        if limit is not None and len(items) >= limit:
            continue  # keep reading: the report covers the whole file
        try:
            encoded = encoder.encode(conversation)
        except DeepSynthError as exc:  # the model's template fails on this conversation
            report.unrecord(line, conversation, Problem(line, "messages", "template_failed",
                                                        str(exc)))
            continue
        if encoded.trained_tokens == 0:
            untrained += 1
            continue
        prompt, reference = encoder.prompt_text(conversation)
        items.append({"id": f"line-{line}", "input_ids": encoded.input_ids,
                      "labels": encoded.labels, "pages": [], "summary": reference,
                      "prompt_ids": encoder._tokenize(prompt)[0]})
    unit = "records" if report.needs_conversion else "lines"
    if report.error_count and not skip_invalid:
        shown = "; ".join(str(p) for p in report.errors[:5])
        raise ChatFileError(f"{path}: {report.error_count} problems on "
                            f"{len(report.invalid_lines)} lines ({shown}); fix them, or set "
                            f"skip_invalid_lines to train on the valid {unit}", report)
    if not items:
        raise DeepSynthError(f"{path}: no conversation to train on ({report.valid_rows} valid "
                             f"lines, {untrained} with no assistant token within max_length)")
    return ChatExamples(items, encoder), report, untrained
