"""Chat validation speed and memory: what ``deepsynth validate-chat`` and
``POST /api/chat/validate`` do, on files made here.

    .venv/bin/python benchmarks/bench_chat_validate.py [--lines 100000] [--big-mb 3]

Cases, each timed in a fresh process after the tokenizer is loaded (``validate_file`` with
tiny-chat-lm's tokenizer and max_length 2048, as the CLI runs it, unless marked structure
only): ordinary chat JSONL lines; the same without a tokenizer; one line of ``--big-mb`` MB;
the ordinary conversations as ShareGPT records in a pretty-printed JSON array (converted);
and the whole ``deepsynth validate-chat`` command on the ordinary lines, wall time.
Prints one JSON object per case: seconds, records, and the peak growth of the process's
resident memory while validating (sampled every 2 ms by a thread, from the resident size
just before; the tokenizer's own allocations, outside Python, included).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

from corpus import _sentence

SYSTEM = "You are a helpful assistant. Answer briefly and cite the figures you use."
WEATHER = {"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}}}}


def conversation(rng: random.Random, i: int) -> dict:
    """An ordinary conversation: a system prompt, one to three exchanges; one in ten uses a
    tool. About 600 bytes of JSON on average."""
    messages = [{"role": "system", "content": SYSTEM}]
    for _ in range(rng.randint(1, 3)):
        messages += [{"role": "user", "content": _sentence(rng)},
                     {"role": "assistant", "content": " ".join(_sentence(rng)
                                                               for _ in range(2))}]
    if i % 10 == 0:
        call = {"id": f"c{i}", "type": "function",
                "function": {"name": "get_weather", "arguments": '{"city": "Lima"}'}}
        messages += [{"role": "user", "content": "And the weather in Lima?"},
                     {"role": "assistant", "content": None, "tool_calls": [call]},
                     {"role": "tool", "tool_call_id": f"c{i}", "content": '{"temp_c": 19}'},
                     {"role": "assistant", "content": "It is 19 degrees in Lima."}]
        return {"messages": messages, "tools": [WEATHER]}
    return {"messages": messages}


def sharegpt(chat: dict) -> dict:
    names = {"user": "human", "assistant": "gpt"}
    turns = [{"from": names[m["role"]], "value": m["content"]} for m in chat["messages"]
             if m["role"] in names and m["content"]]
    return {"system": chat["messages"][0]["content"], "conversations": turns}


def write_files(folder: Path, lines: int, big_mb: float) -> dict[str, Path]:
    rng = random.Random(0)
    chats = [conversation(rng, i) for i in range(lines)]
    ordinary = folder / "ordinary.jsonl"
    ordinary.write_text("".join(json.dumps(c) + "\n" for c in chats), encoding="utf-8")
    array = folder / "sharegpt.json"
    array.write_text(json.dumps([sharegpt(c) for c in chats], indent=2), encoding="utf-8")
    text = ""
    while len(text) < big_mb * 1e6:
        text += _sentence(rng) + " "
    big = folder / "big.jsonl"
    big.write_text(json.dumps({"messages": [
        {"role": "user", "content": "Summarize this report:\n" + text},
        {"role": "assistant", "content": "A long report."}]}) + "\n", encoding="utf-8")
    return {"ordinary": ordinary, "ordinary_structure_only": ordinary, "big_line": big,
            "sharegpt_array": array}


class PeakMemory:
    """The largest resident size of this process while the block runs (a sampling thread)."""

    def __enter__(self):
        self.process, self.done = psutil.Process(), threading.Event()
        self.start = self.peak = self.process.memory_info().rss
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.wait(0.002):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)


def measure(path: Path, root: Path, tokenizer: bool) -> dict:
    """In this (fresh) process: load the tokenizer, then validate and measure."""
    from deepsynth.chat.inspect import chat_encoder, validate_file

    encoder = chat_encoder("tiny-chat-lm", root, max_length=2048) if tokenizer else None
    with PeakMemory() as memory:
        started = time.perf_counter()
        report = validate_file(path, encoder)
        seconds = time.perf_counter() - started
    return {"seconds": round(seconds, 2), "records": report["summary"]["rows"],
            "valid": report["summary"]["valid_rows"], "bytes": path.stat().st_size,
            "peak_rss_growth_mb": round((memory.peak - memory.start) / 2**20, 1),
            "token_lengths": report["summary"]["token_lengths"],
            "format": report["format"]["label"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--big-mb", type=float, default=3.0)
    parser.add_argument("--measure", nargs=3, metavar=("FILE", "ROOT", "TOKENIZER"),
                        help=argparse.SUPPRESS)  # the child process's entry
    args = parser.parse_args()
    if args.measure:
        path, root, tokenizer = args.measure
        print(json.dumps(measure(Path(path), Path(root), tokenizer == "1")))
        return
    from deepsynth.models.tiny_chat import ensure_tiny_chat_model
    from deepsynth.workspace import Workspace

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "root"
        ensure_tiny_chat_model(Workspace(root).cache)
        for case, path in write_files(Path(tmp), args.lines, args.big_mb).items():
            tokenizer = "0" if case.endswith("structure_only") else "1"
            done = subprocess.run([sys.executable, __file__, "--measure", str(path),
                                   str(root), tokenizer], check=True, capture_output=True,
                                  text=True)
            print(json.dumps({"case": case, **json.loads(done.stdout)}), flush=True)
        print(json.dumps(whole_command(Path(tmp) / "ordinary.jsonl", root)), flush=True)


def whole_command(path: Path, root: Path) -> dict:
    """``deepsynth validate-chat FILE`` in a new process, as a user runs it: wall time from
    start to exit (Python, the imports and the tokenizer included)."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "deepsynth", "validate-chat", str(path),
                           "--model", "tiny-chat-lm", "--max-length", "2048"],
                          capture_output=True, text=True, check=False,
                          env={**os.environ, "DEEPSYNTH_DATA_ROOT": str(root)})
    return {"case": "ordinary_whole_command", "wall_seconds":
            round(time.perf_counter() - started, 2), "exit_code": done.returncode,
            "last_line": (done.stdout.strip().splitlines() or [""])[-1][:200]}


if __name__ == "__main__":
    main()
