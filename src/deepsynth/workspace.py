"""The data root as one object: every name and path a request or command may use, confined.

A data root holds ``datasets/``, ``models/`` (one run folder per training run), ``jobs/``,
``uploads/``, ``cache/`` (the tiny models, Hub downloads) and ``run/`` (the start scripts'
pid and log files). The root is ``DEEPSYNTH_DATA_ROOT``, else ``./data``; every service and
command that shares it sees the same datasets, models and jobs.

Names (a dataset, a model, a job's output) are single folder names; files named by a request
(a chat file, an uploaded source, a tokenizer) are relative paths that resolve inside the
root. Every rule about what a request may name lives here, so the web layer, the CLI and the
jobs share it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from deepsynth.errors import ConfigError, NotFound

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
_NAME = re.compile(NAME_PATTERN)
NAME_RULE = ("must be a name of letters, digits, '.', '_' or '-' (no slashes, at most 100 "
             "characters)")
FINAL_NAME = "final"  # a run's final model, also named by models/NAME/final in requests


def data_root() -> Path:
    return Path(os.environ.get("DEEPSYNTH_DATA_ROOT", "./data")).expanduser()


def check_name(field: str, name: object) -> str:
    """Output and input names are single folder names under the data root: no paths."""
    if not isinstance(name, str) or not _NAME.match(name) or ".." in name:
        raise ConfigError(field, f"{NAME_RULE}; got {name!r}", "a name")
    return name


class Workspace:
    """One data root and the rules for naming things in it."""

    def __init__(self, root: Path | str | None = None):
        self.root = Path(root).expanduser() if root is not None else data_root()

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    # The layout.
    @property
    def datasets(self) -> Path:
        return self.root / "datasets"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def jobs(self) -> Path:
        return self.root / "jobs"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def cache(self) -> Path:
        return self.root / "cache"

    @property
    def run(self) -> Path:
        return self.root / "run"

    def hub_download(self, repo_id: str) -> Path:
        """Where a Hub dataset ``ORG/NAME`` is downloaded (re-runs fetch only what is new)."""
        return self.cache / "hub-datasets" / repo_id.replace("/", "--")

    # Names.
    def dataset_folder(self, name: object, field: str = "dataset") -> Path:
        """``datasets/NAME``, whether or not it exists yet."""
        return self.datasets / check_name(field, name)

    def dataset(self, name: object, field: str = "dataset") -> Path:
        """An existing generated dataset (it has a manifest), else NotFound."""
        from deepsynth.data.manifest import is_dataset

        folder = self.dataset_folder(name, field)
        if not is_dataset(folder):
            raise NotFound(f"no dataset {name!r}")
        return folder

    def run_folder(self, name: object, field: str = "model"):
        """The RunFolder of ``models/NAME``, whether or not it exists yet."""
        from deepsynth.training.run_folder import RunFolder

        return RunFolder(self.models / check_name(field, name))

    def existing_run(self, name: object, field: str = "model"):
        run = self.run_folder(name, field)
        if not run.path.is_dir():
            raise NotFound(f"no model {name!r}")
        return run

    def trained_model(self, name: object, field: str = "model") -> Path:
        """The final model of a finished run, by the run's name."""
        run = self.existing_run(name, field)
        if not run.final.is_dir():
            raise NotFound(f"model {name!r} has no final weights yet")
        return run.final

    # Files named by a request.
    def file(self, value: object, field: str) -> Path:
        """A path named by a request: relative, and inside the data root once resolved."""
        example = "for example uploads/chat.jsonl"
        if not isinstance(value, str) or not value or "\x00" in value or \
                Path(value).is_absolute():
            raise ConfigError(field, f"must be a path inside the data root ({example}); got "
                              f"{value!r}", "a relative path")
        candidate = (self.root / value).resolve()
        if not candidate.is_relative_to(self.root.resolve()):
            raise ConfigError(field, f"must be a path inside the data root ({example}); got "
                              f"{value!r}", "a relative path")
        return candidate

    def existing_file(self, value: object, field: str) -> Path:
        path = self.file(value, field)
        if not path.is_file():
            raise NotFound(f"no file {value!r} under the data root")
        return path

    def relative(self, path: Path | str) -> str:
        """How a path inside the root is shown to a client: relative to the root."""
        path = Path(path)
        for base in (self.root, self.root.resolve()):
            try:
                return str(path.relative_to(base))
            except ValueError:
                continue
        return path.name
