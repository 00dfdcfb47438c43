"""The output folder of a generation: checks before writing, and resume-or-refuse decisions.

A folder holding a dataset made with the same configuration is resumed; one made with another
configuration is refused unless ``overwrite`` is set; every finished shard of a resumed
dataset is checked in full (a damaged one is rendered again); free disk space is checked
against an estimate before any rendering starts.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from deepsynth.config import GenerationConfig, to_dict
from deepsynth.data.manifest import MANIFEST_NAME, Manifest, fingerprint, package_versions
from deepsynth.data.shards import TMP_DIR, shard_problem
from deepsynth.errors import OutputError

log = logging.getLogger(__name__)
SAFETY_FACTOR = 1.1
SAFETY_BYTES = 16 * 2**20


def prepare_folder(folder: Path) -> Path:
    """Create the folder if needed and prove it is writable."""
    folder = Path(folder).expanduser()
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output folder {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise OutputError(f"cannot write to output folder {folder}: "
                          f"{exc.strerror or exc}") from None
    return folder


def _flatten(data: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = value
    return flat


def _differences(old: dict, new: dict) -> list[str]:
    ignored = {"out", "workers", "overwrite", "push_to_hub", "public", "shard_size", "engine",
               "ray_address",
               "source.on_error"}
    a, b = _flatten(old), _flatten(new)
    return sorted(k for k in set(a) | set(b) if k not in ignored and a.get(k) != b.get(k))


def clear_dataset(folder: Path) -> None:
    for name in ("data", TMP_DIR):
        shutil.rmtree(folder / name, ignore_errors=True)
    for name in ("README.md", MANIFEST_NAME):
        (folder / name).unlink(missing_ok=True)


def conflict(folder: Path, config: GenerationConfig) -> str | None:
    """Why the folder cannot take this generation without ``overwrite`` (it holds a dataset
    of another configuration, or shards without a manifest), in words with no flag or
    path; None when it is new, resumable, or ``overwrite`` is set. The CLI and the API
    (at submit) each say what to do about it."""
    if config.overwrite:
        return None
    existing = Manifest.load(folder)
    if existing is not None and existing.data["fingerprint"] != fingerprint(config):
        changed = ", ".join(_differences(existing.data["config"], to_dict(config)))
        return f"holds a dataset generated with another configuration (changed: " \
               f"{changed or 'unknown'})"
    if existing is None and any((folder / "data").glob("*.parquet")):
        return f"holds Parquet files but no {MANIFEST_NAME}"
    return None


def open_manifest(folder: Path, config: GenerationConfig, order: list[str]) -> Manifest:
    """Resume the folder's manifest, or start a new one (refusing to mix configurations)."""
    problem = conflict(folder, config)
    if problem:
        raise OutputError(f"{folder} {problem}; re-run with --overwrite to replace it, or "
                          f"choose another --out")
    existing = Manifest.load(folder) if not config.overwrite else None
    if existing is None:
        clear_dataset(folder)
        return Manifest.start(folder, config, order)
    shutil.rmtree(folder / TMP_DIR, ignore_errors=True)  # a killed run's unfinished shard
    _drop_unrecorded_shards(folder, existing)
    existing.data["config"] = to_dict(config)
    existing.data["versions"] = package_versions()
    existing.data["status"] = "in_progress"
    existing.data["error"] = None
    return existing


def _drop_unrecorded_shards(folder: Path, manifest: Manifest) -> None:
    """Delete the shards of the manifest's splits that it does not record: written by a
    run killed before it recorded them (the Ray engine writes several shards at once), so
    a resume writes them again, and a shard_size changed since leaves none behind."""
    recorded = set(manifest.shard_files())
    for split in manifest.splits:
        for path in (folder / "data").glob(f"{split}-*.parquet"):
            relative = f"data/{path.name}"
            if relative not in recorded:
                log.info("deleting %s: not recorded in the manifest (written by a run that "
                         "was stopped before it recorded it)", relative)
                path.unlink(missing_ok=True)


def drop_damaged_shards(folder: Path, manifest: Manifest) -> list[str]:
    """Check every finished shard in full (size, SHA-256, footer) before resuming; returns
    what was found, and logs how many rows are resumed. A split with a bad or missing shard
    goes back to just before it (the state its manifest entry records): that shard and the
    later ones of the split are deleted and their rows rendered again, which gives the rows
    an uninterrupted run writes."""
    found = []
    for name, state in manifest.splits.items():
        for index, entry in enumerate(state.shards):
            problem = shard_problem(folder, entry, full=True)
            if problem is None:
                continue
            dropped = state.keep_shards(index)
            for gone in dropped:
                (folder / gone["file"]).unlink(missing_ok=True)
                manifest.data["hub"]["uploaded"].pop(gone["file"], None)  # upload it again
            log.warning("shard %s %s: rendering its rows again (%d shard(s) of split %s "
                        "dropped)", entry["file"], problem, len(dropped), name)
            found.append(f"{entry['file']} {problem}")
            break
    if found:
        manifest.save()
    if any(s.shards for s in manifest.splits.values()):
        log.info("resuming %s: %d rows already written", folder,
                 sum(s.rows for s in manifest.splits.values()))
    return found


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def check_disk_space(folder: Path, bytes_per_row: float, rows_to_write: int | None) -> None:
    """Refuse to start when the estimated size of what is left does not fit on the disk."""
    if rows_to_write is None:
        log.info("row count unknown; skipping the free disk space check")
        return
    need = int(bytes_per_row * rows_to_write * SAFETY_FACTOR) + SAFETY_BYTES
    free = free_bytes(folder)
    if need > free:
        raise OutputError(f"not enough disk space in {folder}: needs about {byte_size(need)} "
                          f"for {rows_to_write:,} rows of about {byte_size(bytes_per_row)} "
                          f"each, plus {SAFETY_FACTOR - 1:.0%} and {SAFETY_BYTES // 2**20} "
                          f"MiB; {byte_size(free)} free")


def byte_size(count: float) -> str:
    """Exact bytes, with a binary unit of three significant figures: ``23,456,789 bytes
    (22.4 MiB)``; a figure under 1 KiB is bytes only."""
    count = int(count)
    text = f"{count:,} byte{'' if count == 1 else 's'}"
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if count >= scale:
            value = count / scale
            shown = f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 10 \
                else f"{value:.2f}"
            return f"{text} ({shown} {unit})"
    return text
