"""What has been generated: list the datasets under a root folder, or describe one."""

from __future__ import annotations

from pathlib import Path

from deepsynth.data.manifest import MANIFEST_NAME, Manifest
from deepsynth.errors import DeepSynthError, NotFound
from deepsynth.render.legibility import dataset_warnings


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in (folder / "data").glob("*.parquet"))


def summarize(folder: Path) -> dict:
    """Name, status, rows per split, pages, bytes, source, warnings and render QA report of a
    generated dataset."""
    folder = Path(folder)
    manifest = Manifest.load(folder)
    if manifest is None:
        raise DeepSynthError(f"{folder} is not a DeepSynth dataset (no {MANIFEST_NAME})")
    config, totals = manifest.data["config"], manifest.totals()
    return {
        "name": folder.name, "path": str(folder), "status": manifest.data["status"],
        "source": config["source"]["source"], "page_size": config["render"]["page_size"],
        "rows": {name: state.rows for name, state in manifest.splits.items()},
        "pages": totals["pages"], "bytes": _size(folder),
        "updated_at": manifest.data["updated_at"],
        "warnings": dataset_warnings(totals),  # lossy pages, missing glyphs
        "qa": manifest.data.get("qa"),  # the latest render QA report (data/qa.py), or None
    }


def list_datasets(root: Path) -> list[dict]:
    """Every dataset under ``root``; one that cannot be read is listed ``unreadable`` with
    the reason, so one bad manifest never hides the others."""
    root = Path(root)
    if not root.is_dir():
        return []
    folders = [m.parent for m in sorted(root.glob(f"*/{MANIFEST_NAME}"))
               if not m.parent.name.startswith(".")]  # hidden: being deleted
    if (root / MANIFEST_NAME).exists():
        folders.insert(0, root)
    return [listed_dataset(folder) for folder in folders]


def listed_dataset(folder: Path) -> dict:
    """The summary of a dataset, or an ``unreadable`` entry naming what is wrong."""
    try:
        return summarize(folder)
    except (DeepSynthError, OSError) as exc:
        return {"name": folder.name, "status": "unreadable", "error": str(exc), "rows": {},
                "pages": 0, "bytes": 0, "source": None, "page_size": None, "updated_at": None,
                "warnings": [], "qa": None}


def describe_dataset(folder: Path) -> dict:
    """The summary plus counts per split, shards, configuration, versions and Hub state."""
    manifest = Manifest.load(Path(folder))
    summary = summarize(Path(folder))
    summary.update({
        "splits": {name: {"status": s.status, "rows": s.rows, "shards": len(s.shards),
                          "counts": s.counts} for name, s in manifest.splits.items()},
        "config": manifest.data["config"], "versions": manifest.data["versions"],
        "hub": manifest.data["hub"], "error": manifest.data.get("error"),
        "timings": manifest.data.get("timings", {}),
    })
    return summary


def check_split(manifest: Manifest, split: str) -> None:
    if split not in manifest.splits:  # the dataset has no such split: 404
        raise NotFound(f"split must be one of {', '.join(manifest.splits)}; got {split!r}",
                       "split", ", ".join(manifest.splits))


def read_row(folder: Path, manifest: Manifest, split: str, index: int) -> dict:
    """Row ``index`` of a split (its page images included), reading only its shard (checked
    first: a damaged one raises ``DatasetDamaged``)."""
    from deepsynth.data.shards import read_shard

    check_split(manifest, split)
    position = index
    for shard in manifest.splits[split].shards:
        if position < shard["rows"]:
            return read_shard(folder, shard).slice(position, 1).to_pylist()[0]
        position -= shard["rows"]
    raise NotFound(f"split {split!r} has no row {index}")
