"""The dataset manifest: resolved configuration, package versions and per-split progress.

It is rewritten atomically after every finished shard, and is what a re-run reads to resume.
A shard's entry records the file, rows, bytes and SHA-256, and the split's state right after
it (``source_rows_read``, ``counts``), so a re-run can go back to just before a damaged shard.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from deepsynth.atomic_files import write_json_atomic
from deepsynth.config import GenerationConfig, to_dict
from deepsynth.config.dataset import VarietyConfig
from deepsynth.config.spec import flat_fields
from deepsynth.errors import OutputError

MANIFEST_NAME = "deepsynth-manifest.json"
FORMAT_VERSION = 1
COUNT_NAMES = ("read", "written", "duplicates", "leaked", "empty", "empty_summary", "invalid",
               "truncated", "missing_glyphs", "rows_with_missing_glyphs", "pages",
               "lossy_pages", "unreadable_pages")
# Options that change neither rows nor pixels: a re-run may change them and still resume.
_NOT_IN_FINGERPRINT = ("workers", "overwrite", "push_to_hub", "public", "shard_size", "engine",
                       "ray_address", "qa_sample")
_NOT_IN_SOURCE_FINGERPRINT = ("on_error",)
_PACKAGES = ("deepsynth", "pillow", "numpy", "isal", "fonttools", "pyarrow", "datasets",
             "huggingface_hub", "tokenizers")


def is_dataset(folder: Path) -> bool:
    """Whether ``folder`` holds a dataset made by DeepSynth (it has a manifest)."""
    return (Path(folder) / MANIFEST_NAME).is_file()


def package_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


# Options newer than some datasets: left out of the hash while unset, so those resume.
_NEW_RENDER_OPTIONS = ("target_compression",)


def fingerprint(config: GenerationConfig) -> str:
    """A hash of every option that changes the rows or pixels of the dataset."""
    data = to_dict(config)
    for name in _NEW_RENDER_OPTIONS:
        if data["render"].get(name) is None:
            data["render"].pop(name, None)
    if not config.render.variety.enabled:  # so datasets from before variety still resume
        for name in flat_fields(VarietyConfig):
            data["render"].pop(name, None)
    for name in _NOT_IN_FINGERPRINT:
        data.pop(name, None)
    data.pop("out", None)
    for name in _NOT_IN_SOURCE_FINGERPRINT:
        data["source"].pop(name, None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def empty_counts() -> dict[str, int]:
    return {name: 0 for name in COUNT_NAMES}


@dataclass
class SplitState:
    status: str = "pending"  # pending | in_progress | complete
    shards: list[dict] = field(default_factory=list)
    source_rows_read: int = 0
    counts: dict[str, int] = field(default_factory=empty_counts)

    @property
    def rows(self) -> int:
        return sum(s["rows"] for s in self.shards)

    def keep_shards(self, count: int) -> list[dict]:
        """Go back to the state right after the first ``count`` shards; returns the entries
        dropped. An entry of an older manifest does not record the state after it: then the
        split goes back to its start."""
        if count and "counts" not in self.shards[count - 1]:
            count = 0
        dropped = self.shards[count:]
        if dropped:
            last = self.shards[count - 1] if count else {"source_rows_read": 0, "counts": {}}
            self.shards = self.shards[:count]
            self.source_rows_read = last["source_rows_read"]
            self.counts = {**empty_counts(), **last["counts"]}
            self.status = "in_progress" if count else "pending"
        return dropped


@dataclass
class Manifest:
    path: Path
    data: dict[str, Any]
    splits: dict[str, SplitState]

    @classmethod
    def start(cls, folder: Path, config: GenerationConfig, order: list[str]) -> Manifest:
        now = time.time()
        data = {
            "format_version": FORMAT_VERSION, "fingerprint": fingerprint(config),
            "config": to_dict(config), "versions": package_versions(), "status": "in_progress",
            "split_order": order, "created_at": now, "updated_at": now, "error": None,
            "hub": {"repo_id": None, "uploaded": {}, "error": None},
        }
        return cls(Path(folder) / MANIFEST_NAME, data, {s: SplitState() for s in order})

    @classmethod
    def load(cls, folder: Path) -> Manifest | None:
        path = Path(folder) / MANIFEST_NAME
        if not path.exists():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError) as exc:
            raise OutputError(f"{MANIFEST_NAME} of {Path(folder).name} is unreadable ({exc}); "
                              "use --overwrite to start over") from None
        if not isinstance(data, dict) or data.get("format_version") != FORMAT_VERSION:
            version = data.get("format_version") if isinstance(data, dict) else None
            raise OutputError(f"{MANIFEST_NAME} of {Path(folder).name} has format version "
                              f"{version}, this deepsynth writes {FORMAT_VERSION}; use "
                              "--overwrite")
        try:
            splits = {name: SplitState(**state) for name, state in data.pop("splits").items()}
            data["config"]["source"]["source"], data["config"]["render"]["page_size"]
        except (KeyError, TypeError, AttributeError) as exc:
            raise OutputError(f"{MANIFEST_NAME} of {Path(folder).name} is not a manifest "
                              f"({type(exc).__name__}: {exc}); use --overwrite") from None
        return cls(path, data, splits)

    def save(self) -> None:
        self.data["updated_at"] = time.time()
        body = dict(self.data)
        body["splits"] = {name: vars(state) for name, state in self.splits.items()}
        body["totals"] = self.totals()
        write_json_atomic(self.path, body)

    def totals(self) -> dict[str, int]:
        totals = empty_counts()
        for state in self.splits.values():
            for name, value in state.counts.items():
                totals[name] = totals.get(name, 0) + value
        return totals

    def shard_files(self) -> list[str]:
        return [s["file"] for state in self.splits.values() for s in state.shards]
