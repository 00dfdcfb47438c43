"""Datasets: presets, benchmark and custom generation jobs, the generated datasets."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from flask import Blueprint, current_app, jsonify

from deepsynth.data.catalog import list_datasets, summarize
from deepsynth.data.presets import PRESETS
from deepsynth.errors import ConfigError, DeepSynthError
from deepsynth.data.sources import SourceError, open_source
from deepsynth.jobs.kinds import check_name, data_root_path, generation_config
from deepsynth.jobs.manager import JobConflict
from deepsynth.paths import datasets_dir
from web_ui.api_jobs import job_view, manager
from web_ui.errors import NotFound
from web_ui.requests_json import body, optional_string, page

blueprint = Blueprint("datasets", __name__)
_SCHEMES = ("builtin:", "hf:", "HF::", "preset:")


def resolve_source(root: Path, source: str) -> str:
    """Sources are scheme specs or paths inside the data root (no escapes)."""
    if not isinstance(source, str) or not source:
        raise ConfigError("source", "is required", "a path under the data root, builtin:, "
                          "hf: or preset:")
    if source.startswith(("preset:", "builtin:")):
        try:
            open_source(source)  # names the known presets and built-in corpora
        except SourceError as exc:
            raise ConfigError("source", str(exc), "preset:NAME, builtin:NAME") from None
        return source
    if source.startswith(_SCHEMES):
        return source
    candidate = data_root_path(root, source, "source")
    if not candidate.exists():
        raise ConfigError("source", f"no file or folder {source!r} under the data root "
                          f"(upload it with POST /api/uploads)", "an existing path")
    return str(candidate)


def _submit(name: str, options: dict, token: str | None):
    root = current_app.config["DATA_ROOT"]
    for field in ("out", "render"):  # chosen by the server / given flat
        if field in options:
            raise ConfigError(field, "is not a known field" + (
                " (the output is datasets/NAME: give name)" if field == "out" else
                " (render options are given flat: font_size, page_size...)"), "name")
    options = {**options, "source": resolve_source(root, options.get("source", ""))}
    if options.get("tokenizer") is not None:  # a server file: only under the data root
        options["tokenizer"] = str(data_root_path(root, options["tokenizer"], "tokenizer"))
    generation_config(root, name, options)  # validate now: a bad field is a 400, not a job
    secrets = {"hf_token": token} if token else None
    record = manager().submit("generate", {"name": name, "options": options}, name=name,
                              secrets=secrets)
    view = job_view(record)
    return jsonify(job_id=record.job_id, kind="generate", status=record.status,
                   dataset=name, job=view), 202


def _unique_name(base: str) -> str:
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S')}"


@blueprint.get("/api/datasets/presets")
def presets():
    return jsonify(presets=[p.to_dict() for p in PRESETS.values()])


@blueprint.post("/api/benchmark/create")
def benchmark_create():
    data = body()
    preset = data.pop("preset", None)
    if "source" in data:
        raise ConfigError("source", "is the preset's; use POST /api/dataset/generate for "
                          "another source", "preset")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError("preset", f"must be one of {', '.join(PRESETS)}; got {preset!r}",
                          ", ".join(PRESETS))
    name = check_name("name", data.pop("name", None) or _unique_name(preset))
    token = optional_string(data, "hf_token")
    data.pop("hf_token", None)
    return _submit(name, {**data, "source": f"preset:{preset}"}, token)


@blueprint.post("/api/dataset/generate")
def dataset_generate():
    data = body()
    if "name" not in data:
        raise ConfigError("name", "is required", "a folder name")
    name = check_name("name", data.pop("name"))
    token = optional_string(data, "hf_token")
    data.pop("hf_token", None)
    return _submit(name, data, token)


def _status(name: str, summary: dict) -> str:
    if manager().jobs_using(dataset=name, writers_only=True):
        return "generating"
    return "ready" if summary["status"] == "complete" else summary["status"]


def _view(summary: dict) -> dict:
    splits = summary.pop("rows")
    return {**summary, "splits": splits, "status": _status(summary["name"], summary)}


@blueprint.get("/api/datasets")
def datasets():
    found = list_datasets(datasets_dir(current_app.config["DATA_ROOT"]))
    return jsonify(page([_view(s) for s in found], "datasets"))


@blueprint.get("/api/datasets/<name>")
def dataset(name: str):
    folder = datasets_dir(current_app.config["DATA_ROOT"]) / check_name("name", name)
    try:
        return jsonify(_view(summarize(folder)))
    except DeepSynthError:
        raise NotFound(f"no dataset {name!r}") from None




@blueprint.delete("/api/datasets/<name>")
def delete_dataset(name: str):
    folder = datasets_dir(current_app.config["DATA_ROOT"]) / check_name("name", name)
    if not folder.is_dir():
        raise NotFound(f"no dataset {name!r}")
    busy = manager().jobs_using(dataset=name)
    if busy:
        raise JobConflict(f"dataset {name!r} is used by job {busy[0].job_id}")
    shutil.rmtree(folder)
    return jsonify(deleted=name)
