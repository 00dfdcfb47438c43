"""docs/training.md's options table is the config's declarations, in section order: this
test regenerates it (run ``python tests/test_training_docs.py`` to print the table)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from deepsynth.config.spec import flat_fields
from deepsynth.config.training import TrainingConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "training.md"
HEADER = "| flag | default | allowed | meaning |"


def _number(value) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _row(f: dataclasses.Field) -> str:
    meta = f.metadata
    default = "—" if f.default in (dataclasses.MISSING, None) else str(f.default)
    lo, hi = meta.get("min"), meta.get("max")
    if meta.get("choices"):
        allowed = ", ".join(str(c) for c in meta["choices"])
    elif lo is not None or hi is not None:
        allowed = "–".join("" if bound is None else _number(bound) for bound in (lo, hi))
    else:
        allowed = ""
    return f"| `--{f.name.replace('_', '-')}` | {default} | {allowed} | {meta['help']} |"


def options_table() -> str:
    rows = [_row(f) for f, _ in flat_fields(TrainingConfig).values()]
    return "\n".join([HEADER, "|---|---|---|---|", *rows])


def documented_table() -> str:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(HEADER)
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return "\n".join(lines[start:end])


def test_the_options_table_is_the_configs():
    assert documented_table() == options_table()


if __name__ == "__main__":
    print(options_table())
