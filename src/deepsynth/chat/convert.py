"""``deepsynth convert-chat``: a chat file in any format the reader knows (ShareGPT, Alpaca,
OpenAI messages; JSON Lines or a JSON array) written as chat JSON Lines, one conversation
per line in the form training reads, with the report of what was converted and refused."""

from __future__ import annotations

import gzip
import json
import os
import tempfile
from pathlib import Path

from deepsynth.atomic_files import fsync_dir
from deepsynth.chat.records import read_records
from deepsynth.chat.report import ChatReport, chat_report
from deepsynth.chat.stream import conversations
from deepsynth.errors import ConfigRefused

OUTPUT_SUFFIXES = (".jsonl", ".jsonl.gz")


def convert_file(source: Path, out: Path, skip_invalid: bool = False) -> ChatReport:
    """Convert ``source`` into ``out`` (written whole or not at all). With refused records
    nothing is written unless ``skip_invalid``: then the others are."""
    source, out = Path(source), Path(out)
    if not out.name.endswith(OUTPUT_SUFFIXES):
        raise ConfigRefused("out", f"{out.name} is not a JSON Lines file name",
                            "a name ending in .jsonl or .jsonl.gz")
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise ConfigRefused("out", "is the file being converted", "another file")
    report = chat_report(source)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        opener = gzip.open if out.name.endswith(".gz") else open
        with opener(tmp, "wt", encoding="utf-8") as handle:
            for _, conversation in conversations(read_records(source), report):
                handle.write(json.dumps(conversation, ensure_ascii=False) + "\n")
        if report.error_count and not skip_invalid:
            Path(tmp).unlink()
            return report
        os.chmod(tmp, 0o644)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(out.parent)
    return report
