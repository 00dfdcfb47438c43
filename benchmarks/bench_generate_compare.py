"""Generation speed of this checkout against another one (an older commit), interleaved.

    git worktree add --detach ../before COMMIT
    .venv/bin/python benchmarks/bench_generate_compare.py ../before [--docs 100] [--rounds 20]

Two long-lived processes, one importing each checkout's ``src``, generate the same corpus
(``bench_generate.py``'s: ~600-word articles, 1024x1024 pages, 18 px, 40 px margins, one
worker, so each process is one core) into fresh folders, in alternating order (ABBA), one
round after the other. Rounds of a second or so, interleaved, see the same machine: a slow
spell of shared cores slows both sides of a round, which the per-round ratio cancels and
which whole runs minutes apart (the way ``bench_generate.py`` is run twice) do not.

On this 2-core virtual machine a process runs in one of two speeds (about 170 or 205 pages/s
here, whichever code it runs) and keeps it for many rounds, so both processes are started
again every ``--fresh-every`` rounds: the figures average over many processes of each side.
Prints each side's median and mean pages/s, every round, and the per-round ratios' median,
quartiles and range.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from corpus import write_corpus

# Runs in each child: only configuration fields both checkouts have.
_CHILD = r"""
import json, shutil, sys, time
from pathlib import Path
from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig
from deepsynth.data.generate import generate_dataset

corpus, out = sys.argv[1], Path(sys.argv[2])
for line in sys.stdin:
    config = GenerationConfig(
        out=str(out), workers=1,
        source=SourceConfig(source=corpus, text_field="article", summary_field="highlights",
                            id_field="id"),
        render=RenderConfig(page_size="base", font_size=18, margin=40))
    start = time.perf_counter()
    result = generate_dataset(config)
    seconds = time.perf_counter() - start
    shutil.rmtree(out)
    print(json.dumps({"pages": result.totals["pages"], "seconds": seconds}), flush=True)
"""


class Side:
    """A child process generating with one checkout's code."""

    def __init__(self, checkout: Path, corpus: Path, out: Path):
        env = {**os.environ, "PYTHONPATH": str(checkout / "src")}
        self.checkout = checkout
        self.process = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(corpus), str(out)], env=env, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def round(self) -> float:
        """Pages per second of one generation."""
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line:
            raise SystemExit(f"the process for {self.checkout} ended (see its error above)")
        answer = json.loads(line)
        return answer["pages"] / answer["seconds"]

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=60)


def quartiles(values: list[float]) -> list[float]:
    return [round(q, 3) for q in statistics.quantiles(values, n=4)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", type=Path, help="the other checkout (its src/ is imported)")
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--fresh-every", type=int, default=2,
                        help="start both processes again every this many rounds")
    args = parser.parse_args()
    here = Path(__file__).resolve().parent.parent
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write_corpus(Path(tmp) / "corpus.jsonl", args.docs)
        checkouts = {"before": args.before.resolve(), "this": here}
        rates: dict[str, list[float]] = {"before": [], "this": []}
        sides: dict[str, Side] = {}
        for index in range(args.rounds):
            if index % args.fresh_every == 0:
                for side in sides.values():
                    side.close()
                sides = {name: Side(path, corpus, Path(tmp) / name)
                         for name, path in checkouts.items()}
                for side in sides.values():  # warm-up: imports, fonts, caches
                    side.round()
            order = ("before", "this") if index % 4 in (0, 3) else ("this", "before")
            for name in order:
                rates[name].append(sides[name].round())
        for side in sides.values():
            side.close()
    ratios = [now / then for now, then in zip(rates["this"], rates["before"])]
    print(json.dumps({
        "cpus": os.cpu_count(), "documents": args.docs, "rounds": args.rounds,
        "before": str(args.before), "fresh_every": args.fresh_every, "pages_per_second": {
            name: {"median": round(statistics.median(values), 1),
                   "mean": round(statistics.fmean(values), 1)} for name, values in rates.items()},
        "ratio_this_to_before": {"median": round(statistics.median(ratios), 3),
                                 "quartiles": quartiles(ratios),
                                 "min": round(min(ratios), 3), "max": round(max(ratios), 3)},
    }, indent=2))
    for name, values in rates.items():  # one line a side
        print(json.dumps({f"{name}_each_round": [round(v, 1) for v in values]}))


if __name__ == "__main__":
    main()
