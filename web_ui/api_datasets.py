"""Datasets, ``/api/datasets/*`` (with ``/api/dataset/generate`` and
``/api/benchmark/create``): presets, generation jobs, the generated datasets, their rows and
pages, render QA, deletion and upload to the Hub."""

from __future__ import annotations

import io
import time

from flask import Blueprint, Response, current_app, jsonify
from werkzeug.routing import BaseConverter

from deepsynth.config import to_dict
from deepsynth.config.requests import (
    PageQuery, PushRequest, QaRequest, SamplesQuery, SplitQuery, parse_body,
)
from deepsynth.data.catalog import check_split, list_datasets, listed_dataset, read_row
from deepsynth.data.manifest import Manifest
from deepsynth.data.presets import PRESETS
from deepsynth.errors import ConfigError, NotFound
from deepsynth.jobs.kinds import generation_config, refuse_taken_name, render_qa_options
from deepsynth.jobs.manager import JobConflict
from deepsynth.workspace import RESERVED_DATASET_NAMES, check_name
from web_ui import schemas
from web_ui.app_context import manager, requested_name, submit_job, workspace
from web_ui.requests_json import body, declares, page, parsed_query

blueprint = Blueprint("datasets", __name__)


class DatasetName(BaseConverter):
    """A dataset's name in a path: anything but ``presets``, which names the presets (so
    DELETE /api/datasets/presets is a 405, not the deletion of a dataset no GET can read)."""

    regex = "".join(rf"(?!{name}\Z)" for name in RESERVED_DATASET_NAMES) + r"[^/]+"


def _generation(name: str, options: dict) -> dict:
    """The generate job's config: the request checked now (a bad field is a 400, not a
    failed job), its source, tokenizer and font confined to the data root."""
    for field, why, allowed in (
            ("out", "the output is datasets/NAME: give name", "name"),
            ("render", "render options are given flat: font_size, page_size...", "name"),
            ("ray_address", "the cluster is the service's: deepsynth serve --ray-address",
             "engine")):
        if field in options:  # chosen by the server / given flat
            raise ConfigError(field, f"is not a known field ({why})", allowed)
    options = {**workspace().render_files(options),
               "source": workspace().source(options.get("source"))}
    config = generation_config(workspace(), name, options,
                               current_app.config["DEEPSYNTH"].ray_address)
    # A job holding the name is the manager's 409 ("resume it instead"), checked first;
    # else a folder with another configuration's dataset refuses the name.
    manager().check_writer("generate", name)
    refuse_taken_name(name, config)
    return {"name": name, "options": options}


def _generate(name: str, data: dict):
    return submit_job("generate", name, data, lambda options: _generation(name, options),
                      dataset=name)


def _unique_name(base: str) -> str:
    return f"{base}-{time.strftime('%Y%m%d-%H%M%S')}"


@blueprint.get("/api/datasets/presets")
@declares()
def presets():
    return jsonify(presets=[p.to_dict() for p in PRESETS.values()])


@blueprint.post("/api/benchmark/create")
@declares(body=lambda: schemas.generation_body(with_source=False),
          status=202, schema=schemas.JOB_ACCEPTED,
          errors=(404, 409, 422, 507))
def benchmark_create():
    data = body()
    preset = data.pop("preset", None)
    if "source" in data:
        raise ConfigError("source", "is the preset's; use POST /api/dataset/generate for "
                          "another source", "preset")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ConfigError("preset", f"must be one of {', '.join(PRESETS)}; got {preset!r}",
                          ", ".join(PRESETS))
    name = requested_name(data, _unique_name(preset))
    return _generate(name, {**data, "source": f"preset:{preset}"})


@blueprint.post("/api/dataset/generate")
@declares(body=lambda: schemas.generation_body(with_source=True),
          status=202, schema=schemas.JOB_ACCEPTED,
          errors=(404, 409, 422, 507))
def dataset_generate():
    data = body()
    if "name" not in data:
        raise ConfigError("name", "is required", "a folder name")
    return _generate(check_name("name", data.pop("name")), data)


def _status(name: str, summary: dict) -> str:
    if manager().jobs_using(dataset=name, writers_only=True):
        return "generating"
    return "ready" if summary["status"] == "complete" else summary["status"]


def _view(summary: dict) -> dict:
    splits = summary.pop("rows")
    return {**summary, "splits": splits, "status": _status(summary["name"], summary)}


@blueprint.get("/api/datasets")
@declares(query=PageQuery)
def datasets():
    found = list_datasets(workspace().datasets)
    return jsonify(page([_view(s) for s in found], "datasets"))


@blueprint.get("/api/datasets/<dataset:name>")
@declares(path={"name": schemas.NAME})
def dataset(name: str):
    """A dataset's summary (``unreadable`` with the reason when its manifest is damaged)."""
    return jsonify(_view(listed_dataset(workspace().dataset(name, "name"))))


@blueprint.delete("/api/datasets/<dataset:name>")
@declares(path={"name": schemas.NAME}, errors=(409,))
def delete_dataset(name: str):
    folder = workspace().dataset_folder(name, "name")
    if not folder.is_dir():
        raise NotFound(f"no dataset {name!r}")
    busy = manager().jobs_using(dataset=name, waiting=True)
    if busy:
        raise JobConflict(f"dataset {name!r} is used by job {busy[0].job_id}")
    workspace().remove(folder)
    return jsonify(deleted=name)


@blueprint.post("/api/datasets/<dataset:name>/push")
@declares(body=PushRequest, path={"name": schemas.NAME},
          status=202, schema=schemas.JOB_ACCEPTED, errors=(409, 507))
def push_dataset(name: str):
    """Upload a dataset to the Hub, or finish an upload (only missing files)."""
    workspace().dataset(name, "name")
    return submit_job("push_dataset", name, body(), lambda options: {
        "name": name, "options": to_dict(parse_body(PushRequest, options))})


def _render_qa(name: str, options: dict) -> dict:
    """The render QA job's config; refused while a job writes the dataset (its pages are
    changing) or another QA job holds it."""
    options = render_qa_options(options)
    busy = manager().jobs_using(dataset=name, writers_only=True, waiting=True)
    if busy:
        raise JobConflict(f"dataset {name!r} is being written by job {busy[0].job_id} "
                          f"({busy[0].status}); run render QA when it ends")
    manager().check_writer("render_qa", name)
    return {"name": name, "options": options}


@blueprint.post("/api/datasets/<dataset:name>/qa")
@declares(body=QaRequest, path={"name": schemas.NAME},
          status=202, schema=schemas.JOB_ACCEPTED, errors=(409, 422, 507))
def render_qa(name: str):
    """Render QA as a job: a seeded sample of the dataset's pages read back with Tesseract,
    the report (CER per page, per script and overall) stored in its manifest and card."""
    workspace().dataset(name, "name")
    return submit_job("render_qa", name, body(), lambda options: _render_qa(name, options),
                      dataset=name)


def _manifest(name: str) -> tuple:
    folder = workspace().dataset_folder(name, "name")
    manifest = Manifest.load(folder) if folder.is_dir() else None
    if manifest is None:
        raise NotFound(f"no dataset {name!r}")
    return folder, manifest


@blueprint.get("/api/datasets/<dataset:name>/samples")
@declares(query=SamplesQuery, path={"name": schemas.NAME})
def samples(name: str):
    folder, manifest = _manifest(name)
    query = parsed_query(SamplesQuery)
    split = query.split or next(iter(manifest.splits))
    check_split(manifest, split)
    offset, limit = query.offset, query.limit
    total = manifest.splits[split].rows
    rows = []
    for index in range(offset, min(offset + limit, total)):
        row = read_row(folder, manifest, split, index)
        pages = row.pop("images")
        rows.append({**row, "index": index, "pages": len(pages)})
    return jsonify(split=split, samples=rows, total=total, offset=offset, limit=limit)


@blueprint.get("/api/datasets/<dataset:name>/samples/<int:index>/pages/<int:page>.png")
@declares(query=SplitQuery, path={"name": schemas.NAME}, media="image/png")
def page_png(name: str, index: int, page: int):
    folder, manifest = _manifest(name)
    split = parsed_query(SplitQuery).split or next(iter(manifest.splits))
    pages = read_row(folder, manifest, split, index)["images"]
    if page >= len(pages):
        raise NotFound(f"row {index} has {len(pages)} pages")
    return Response(io.BytesIO(pages[page]["bytes"]).getvalue(), mimetype="image/png")
