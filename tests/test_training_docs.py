"""docs/training.md's options table is the config's declarations, in section order: this
test regenerates it (run ``python tests/test_training_docs.py`` to print the table). Its
family table ("The family and the loop") names a test per cell: each must exist."""

from __future__ import annotations

import ast
import dataclasses
import re
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


TABLE_HEADER = "| feature | DeepSeek-OCR-2 | DeepSeek-OCR v1 | Unlimited-OCR |"


def documented_cells() -> list[str]:
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(TABLE_HEADER)
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(line)
    assert len(rows) >= 11, "the table lost rows"
    return [cell for row in rows for cell in row.strip("|").split("|")[1:]]


def defined_tests(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in tree.body if isinstance(
        node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test_")}


def test_every_test_named_in_the_family_table_exists():
    named = 0
    for cell in documented_cells():
        for file, name in re.findall(r"`(tests/\w+\.py)::(test_\w+)`", cell):
            path = DOC.parents[1] / file
            assert path.is_file(), f"{file} (named in the family table) does not exist"
            assert name in defined_tests(path), f"{file}::{name} does not exist"
            named += 1
        assert "::" in cell or "n/a" in cell, f"a cell names no test: {cell!r}"
    assert named >= 30


if __name__ == "__main__":
    print(options_table())
