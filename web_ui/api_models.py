"""Trained models, ``/api/models/*`` (with ``/api/evaluate`` and ``/api/summarize``): the
listing, a run's configuration (to clone it), comparisons of runs, deletion, upload to the
Hub, evaluation jobs and summaries (beside the base model or another run's)."""

from __future__ import annotations

import base64
import shutil
import tempfile
from pathlib import Path

from flask import Blueprint, jsonify

from deepsynth.config import to_dict
from deepsynth.config.requests import (
    MAX_IMAGE_BYTES, CompareRequest, EvaluateRequest, PageQuery, PushRequest, SummarizeRequest,
    parse_body,
)
from deepsynth.errors import ConfigRefused, NotFound
from deepsynth.jobs.manager import RUNNING_LIKE, JobConflict
from deepsynth.models.registry import MODEL_PRESETS
from deepsynth.training.run_folder import list_runs
from web_ui import schemas
from web_ui.app_context import manager, submit_job, workspace
from web_ui.model_calls import TookTooLong, bounded, too_slow
from web_ui.requests_json import body, declares, page, parsed_body

blueprint = Blueprint("models", __name__)


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
    busy = manager().jobs_using(model=name)
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


def _compared_model(run, compare_with: str | None) -> tuple[str | None, str | None]:
    """What ``compare_with`` names, as ``load_model`` takes it, and how the page labels it:
    "base" is the model the run was trained from (its resolved configuration's ``model``),
    anything else another OCR run trained here."""
    if compare_with is None:
        return None, None
    if compare_with == "base":
        base = (run.config() or {}).get("model")
        if not isinstance(base, str) or not base:
            raise ConfigRefused("compare_with", f"model {run.name!r} records no base model",
                                "another run's name")
        return base, f"base: {workspace().scrub(base)}"
    other = workspace().existing_run(compare_with, "compare_with")
    if other.task() == "chat":
        raise ConfigRefused("compare_with", f"{compare_with!r} is a chat model: it reads no "
                            "pages", "base, or an OCR run's name")
    return str(workspace().trained_model(compare_with, "compare_with")), compare_with


def _summaries(root: Path, model: Path, request: SummarizeRequest,
               images: list[str] | None, other: tuple[str | None, str | None]) -> dict:
    """The run's summary and, with ``other``, the same page's with that model (the base
    reads it with the run's prompt and settings); both on the model worker's one call."""
    from deepsynth.evaluation.summarize import summarize, training_render_config

    result = summarize(str(model), text=request.text, images=images, root=root)
    result["model"] = request.model
    spec, label = other
    if spec is not None:
        compared = summarize(spec, text=request.text, images=images, root=root,
                             render=training_render_config(str(model)),
                             like=str(model) if request.compare_with == "base" else None)
        result["comparison"] = {"model": label, "summary": compared["summary"],
                                "randomly_initialized_base":
                                    compared["randomly_initialized_base"]}
    return result


@blueprint.post("/api/summarize")
@declares(body=SummarizeRequest, errors=(404, 422, 504))
def summarize_endpoint():
    request = parsed_body(SummarizeRequest)
    run = workspace().existing_run(request.model)
    text, image = request.text, request.image
    if not text and not image:
        raise ConfigRefused("text", "is empty: give a text to summarize, or a page image "
                            "(image, a base64 PNG)", "a non-empty text or an image")
    if text and image:
        raise ConfigRefused("text", "and image were both given: give one of them",
                            "text or image")
    if run.task() == "chat":
        raise ConfigRefused("model", f"{request.model!r} is a chat model: it reads no pages",
                            "an OCR run's name")
    other = _compared_model(run, request.compare_with)
    images = [str(_page_image(image))] if image else None
    try:
        result = bounded(_summaries, workspace().root, run.final, request, images, other)
    except TookTooLong:
        return too_slow("summarizing")
    finally:
        if images:
            shutil.rmtree(Path(images[0]).parent, ignore_errors=True)
    result["pages_png"] = ["data:image/png;base64," + base64.b64encode(png).decode()
                           for png in result.pop("page_pngs")]
    return jsonify(workspace().scrub(result))


@blueprint.get("/api/models/<name>/config")
@declares(path={"name": schemas.NAME})
def model_config(name: str):
    """A run's resolved configuration, and the options a run like it starts from (what the
    Train form's Clone fills in: its dataset and base model by the names the form offers)."""
    from deepsynth.training.compare import clone_options

    run = workspace().existing_run(name)
    config = run.config()
    if config is None:
        raise NotFound(f"model {name!r} has no configuration yet", "model")
    clone = clone_options(config) or {}
    for key, folder in (("dataset", workspace().datasets), ("model", workspace().models)):
        found = workspace().name_in(folder, clone.get(key))
        if found is not None:
            clone[key] = found
    return jsonify(workspace().scrub({"name": name, "task": run.task(), "config": config,
                                      "clone": clone}))


@blueprint.post("/api/compare")
@declares(body=schemas.compare_body, errors=(404,))
def compare():
    """Runs side by side: their curves and where their configurations differ."""
    from deepsynth.training.compare import compare_runs

    names = list(dict.fromkeys(parsed_body(CompareRequest).models))  # each run once
    runs = [workspace().existing_run(name, "models") for name in names]
    return jsonify(workspace().scrub(compare_runs(runs)))
