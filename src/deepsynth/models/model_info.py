"""The metadata file in every model folder DeepSynth writes (trained, exported, or a built-in
demo model): family, image size, base model, adapter method, versions. Its one home."""

from __future__ import annotations

import json
from pathlib import Path

from deepsynth.atomic_files import write_json_atomic

MODEL_INFO_NAME = "deepsynth-model.json"


def info_path(folder: Path) -> Path:
    return Path(folder) / MODEL_INFO_NAME


def read_info(folder: Path) -> dict:
    """The folder's metadata, or {} when it has none (a plain transformers folder)."""
    try:
        data = json.loads(info_path(folder).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_info(folder: Path, info: dict) -> None:
    write_json_atomic(info_path(folder), info)
