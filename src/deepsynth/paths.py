"""The data root and its layout: datasets/, models/, jobs/, uploads/, cache/.

The root is ``DEEPSYNTH_DATA_ROOT``, else ``./data``; every service and command that shares
it sees the same datasets, models and jobs.
"""

from __future__ import annotations

import os
from pathlib import Path


def data_root() -> Path:
    return Path(os.environ.get("DEEPSYNTH_DATA_ROOT", "./data")).expanduser()


def datasets_dir(root: Path | None = None) -> Path:
    return (root or data_root()) / "datasets"


def models_dir(root: Path | None = None) -> Path:
    return (root or data_root()) / "models"


def cache_dir(root: Path | None = None) -> Path:
    return (root or data_root()) / "cache"
