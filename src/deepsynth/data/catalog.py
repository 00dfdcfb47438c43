"""What has been generated: list the datasets under a root folder, or describe one."""

from __future__ import annotations

from pathlib import Path

from deepsynth.data.manifest import MANIFEST_NAME, Manifest
from deepsynth.errors import DeepSynthError


def _size(folder: Path) -> int:
    return sum(p.stat().st_size for p in (folder / "data").glob("*.parquet"))


def summarize(folder: Path) -> dict:
    """Name, status, rows per split, pages, bytes and source of a generated dataset."""
    folder = Path(folder)
    manifest = Manifest.load(folder)
    if manifest is None:
        raise DeepSynthError(f"{folder} is not a DeepSynth dataset (no {MANIFEST_NAME})")
    config = manifest.data["config"]
    return {
        "name": folder.name, "path": str(folder), "status": manifest.data["status"],
        "source": config["source"]["source"], "page_size": config["render"]["page_size"],
        "rows": {name: state.rows for name, state in manifest.splits.items()},
        "pages": manifest.totals()["pages"], "bytes": _size(folder),
        "updated_at": manifest.data["updated_at"],
    }


def list_datasets(root: Path) -> list[dict]:
    root = Path(root)
    if not root.is_dir():
        return []
    found = [summarize(m.parent) for m in sorted(root.glob(f"*/{MANIFEST_NAME}"))]
    if (root / MANIFEST_NAME).exists():
        found.insert(0, summarize(root))
    return found


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
