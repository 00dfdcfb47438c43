"""Trained models, ``/api/models/*`` (with ``/api/evaluate`` and ``/api/summarize``): the
listing, deletion, export, upload to the Hub, evaluation jobs and summaries."""

from __future__ import annotations

import base64
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor, TimeoutError
from pathlib import Path

from flask import Blueprint, jsonify

from deepsynth.config import to_dict
from deepsynth.config.requests import (
    MAX_IMAGE_BYTES,
    EvaluateRequest,
    ExportRequest,
    PageQuery,
    PushRequest,
    SummarizeRequest,
    parse_body,
)
from deepsynth.errors import ConfigRefused, NotFound
from deepsynth.jobs.manager import RUNNING_LIKE, JobConflict
from deepsynth.models.registry import MODEL_PRESETS
from deepsynth.training.run_folder import list_runs
from web_ui import schemas
from web_ui.app_context import manager, submit_job, workspace
from web_ui.requests_json import body, declares, page, parsed_body

blueprint = Blueprint("models", __name__)
SUMMARIZE_TIMEOUT_SECONDS = 120
_summaries = ThreadPoolExecutor(max_workers=1, thread_name_prefix="summarize")


@blueprint.get("/api/models")
@declares(query=PageQuery)
def list_models():
    # A run paused, then resumed, keeps its summary's "stopped" until it ends again: the
    # job training it now says what it is.
    writing = {record.name for record in manager().store.all() if record.kind == "train"
               and record.status in ("queued",) + RUNNING_LIKE}
    found = [{**run.listing(), "training": run.name in writing}
             for run in list_runs(workspace().models)]
    presets = [p.to_dict() for p in MODEL_PRESETS.values()]
    return jsonify({**page(found, "models"), "presets": presets})


@blueprint.delete("/api/models/<name>")
@declares(path={"name": schemas.NAME}, errors=(409,))
def delete_model(name: str):
    run = workspace().existing_run(name)
    busy = manager().jobs_using(model=name, waiting=True)
    if busy:
        raise JobConflict(f"model {name!r} is used by job {busy[0].job_id}")
    workspace().remove(run.path)
    return jsonify(deleted=name)


@blueprint.post("/api/models/<name>/push")
@declares(body=PushRequest, path={"name": schemas.NAME},
          status=202, schema=schemas.JOB_ACCEPTED, errors=(409, 507))
def push_model(name: str):
    """Export a trained model (adapters merged) and upload it to the Hub."""
    workspace().trained_model(name)
    return submit_job("push_model", name, body(), lambda options: {
        "name": name, "options": to_dict(parse_body(PushRequest, options))})


@blueprint.post("/api/models/<name>/export")
@declares(body=ExportRequest, path={"name": schemas.NAME},
          status=202, schema=schemas.JOB_ACCEPTED, errors=(404, 409, 507))
def export_model(name: str):
    """Export a trained model into ``exports/NAME`` (adapters merged unless ``merge`` is
    false): a job, since merging loads the whole model."""
    workspace().trained_model(name)
    return submit_job("export_model", name, body(), lambda options: {
        "name": name, "options": to_dict(parse_body(ExportRequest, options))},
        folder=f"exports/{name}")


@blueprint.post("/api/evaluate")
@declares(body=EvaluateRequest, status=202, schema=schemas.JOB_ACCEPTED, errors=(404, 409, 507))
def evaluate():
    request = parsed_body(EvaluateRequest)
    workspace().existing_run(request.model)
    if not workspace().dataset_folder(request.dataset).is_dir():
        raise NotFound(f"no dataset {request.dataset!r}", "dataset")
    name = f"eval-{request.model}"
    return submit_job("evaluate", name, to_dict(request),
                      lambda options: {"name": name, "options": options})


def _page_image(image: str) -> Path:
    """A summarize request's base64 PNG (checked as base64 by its declaration), written to a
    temporary folder."""
    raw = base64.b64decode(image.split(",")[-1], validate=True)
    if len(raw) > MAX_IMAGE_BYTES:
        raise ConfigRefused("image", "is too large", f"at most {MAX_IMAGE_BYTES} bytes")
    if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
        raise ConfigRefused("image", "must be a PNG image", "base64 PNG")
    page_file = Path(tempfile.mkdtemp()) / "page.png"
    page_file.write_bytes(raw)
    return page_file


@blueprint.post("/api/summarize")
@declares(body=SummarizeRequest, errors=(404, 422, 504))
def summarize_endpoint():
    from deepsynth.evaluation.summarize import summarize

    request = parsed_body(SummarizeRequest)
    model = workspace().existing_run(request.model).final
    text, image = request.text, request.image
    if not text and not image:
        raise ConfigRefused("text", "is empty: give a text to summarize, or a page image "
                            "(image, a base64 PNG)", "a non-empty text or an image")
    if text and image:
        raise ConfigRefused("text", "and image were both given: give one of them",
                            "text or image")
    images = [str(_page_image(image))] if image else None
    future = _summaries.submit(summarize, str(model), text=text, images=images,
                               root=workspace().root)
    try:
        result = future.result(timeout=SUMMARIZE_TIMEOUT_SECONDS)
        result["pages_png"] = ["data:image/png;base64," + base64.b64encode(png).decode()
                               for png in result.pop("page_pngs")]
        return jsonify(result)
    except TimeoutError:
        return jsonify(error=f"summarizing took longer than {SUMMARIZE_TIMEOUT_SECONDS} s"), 504
    finally:
        if images:
            shutil.rmtree(Path(images[0]).parent, ignore_errors=True)
