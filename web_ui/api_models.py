"""Trained models and their runs: checkpoints, evaluation jobs, summaries, deletion."""

from __future__ import annotations

import base64
import json
import shutil
import tempfile
from concurrent.futures import ThreadPoolExecutor, TimeoutError
from pathlib import Path

from flask import Blueprint, current_app, jsonify, request

from deepsynth.config import to_dict
from deepsynth.config.spec import hub_repo_id
from deepsynth.config.training import TRAINING_PRESETS, training_config
from deepsynth.errors import ConfigError
from deepsynth.jobs.kinds import check_name
from deepsynth.jobs.manager import JobConflict
from deepsynth.paths import datasets_dir, models_dir
from deepsynth.training.checkpoint import list_checkpoints
from web_ui.api_jobs import find, job_view, manager
from web_ui.errors import NotFound
from web_ui.requests_json import body, flag, only, optional_string

blueprint = Blueprint("models", __name__)
SUMMARIZE_TIMEOUT_SECONDS = 120
MAX_TEXT_CHARS = 50_000
MAX_IMAGE_BYTES = 10 * 2**20
_summaries = ThreadPoolExecutor(max_workers=1, thread_name_prefix="summarize")


def _model_folder(name: str) -> Path:
    folder = models_dir(current_app.config["DATA_ROOT"]) / check_name("model", name)
    if not folder.is_dir():
        raise NotFound(f"no model {name!r}")
    return folder


@blueprint.get("/api/training/optimal-config/<preset>")
def optimal_config(preset: str):
    if preset not in TRAINING_PRESETS:
        raise NotFound(f"no training preset {preset!r}; presets: {', '.join(TRAINING_PRESETS)}")
    values = to_dict(training_config({"dataset": "-", "out": "-", "preset": preset}))
    for placeholder in ("dataset", "out"):
        values.pop(placeholder)
    return jsonify(preset=preset, config=values)


@blueprint.get("/api/training/checkpoints")
def checkpoints():
    """A run's checkpoints, by training job or model name; ``ref`` is what
    ``resume_from_checkpoint`` takes to start a new run from one."""
    job_id, model = request.args.get("job_id"), request.args.get("model")
    if bool(job_id) == bool(model):
        raise ConfigError("job_id", "give exactly one of job_id and model",
                          "a training job id, or model=NAME")
    name = check_name("model", model) if model else find(job_id).name or "-"
    if model:
        _model_folder(model)  # 404 for a model that does not exist
    found = []
    for path in list_checkpoints(models_dir(current_app.config["DATA_ROOT"]) / name):
        state = json.loads((path / "trainer_state.json").read_text())
        found.append({"name": path.name, "ref": f"{name}/{path.name}", "step": state["step"],
                      "saved_at": path.stat().st_mtime})
    return jsonify(job_id=job_id, model=name, checkpoints=found)


@blueprint.post("/api/evaluate")
def evaluate():
    data = only(body(), ("model", "dataset", "split", "max_samples"))
    _model_folder(data.get("model", ""))
    optional_string(data, "split")
    dataset = check_name("dataset", data.get("dataset", ""))
    if not (datasets_dir(current_app.config["DATA_ROOT"]) / dataset).is_dir():
        raise NotFound(f"no dataset {dataset!r}")
    samples = data.get("max_samples")
    if samples is not None and (not isinstance(samples, int) or isinstance(samples, bool)
                                or samples < 1):
        raise ConfigError("max_samples", "must be a positive integer", "1 or more")
    record = manager().submit("evaluate", {"name": f"eval-{data['model']}", "options": data},
                              name=f"eval-{data['model']}")
    return jsonify(job_id=record.job_id, kind="evaluate", status=record.status,
                   job=job_view(record)), 202


@blueprint.post("/api/summarize")
def summarize_endpoint():
    from deepsynth.evaluation.summarize import summarize

    data = only(body(), ("model", "text", "image"))
    model = _model_folder(data.get("model", "")) / "final"
    text, image = data.get("text"), data.get("image")
    if bool(text) == bool(image):
        raise ConfigError("text", "give either text or image (a base64 PNG), not both",
                          "text or image")
    if text and (not isinstance(text, str) or len(text) > MAX_TEXT_CHARS):
        raise ConfigError("text", f"must be a string of at most {MAX_TEXT_CHARS} characters",
                          f"1-{MAX_TEXT_CHARS} characters")
    images = None
    if image:
        try:
            raw = base64.b64decode(str(image).split(",")[-1], validate=True)
        except ValueError:
            raise ConfigError("image", "must be base64 (optionally a data: URL)",
                              "base64 PNG") from None
        if len(raw) > MAX_IMAGE_BYTES:
            raise ConfigError("image", "is too large", f"at most {MAX_IMAGE_BYTES} bytes")
        if not raw.startswith(b"\x89PNG\r\n\x1a\n"):
            raise ConfigError("image", "must be a PNG image", "base64 PNG")
        page = Path(tempfile.mkdtemp()) / "page.png"
        page.write_bytes(raw)
        images = [str(page)]
    future = _summaries.submit(summarize, str(model), text=text, images=images,
                               root=current_app.config["DATA_ROOT"])
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


@blueprint.delete("/api/models/<name>")
def delete_model(name: str):
    folder = _model_folder(name)
    busy = manager().jobs_using(model=name)
    if busy:
        raise JobConflict(f"model {name!r} is used by job {busy[0].job_id}")
    shutil.rmtree(folder)
    return jsonify(deleted=name)


@blueprint.get("/api/jobs/<job_id>/samples")
def job_samples(job_id: str):
    record = find(job_id)
    folder = models_dir(current_app.config["DATA_ROOT"]) / (record.name or "-")
    evaluations = sorted((folder / "eval_samples").glob("step-*.json"))
    if not evaluations:
        return jsonify(job_id=job_id, step=None, best=[], worst=[], fixed=[])
    samples = json.loads(evaluations[-1].read_text())
    ranked = sorted(samples, key=lambda s: s["rougeL"])
    return jsonify(job_id=job_id, step=int(evaluations[-1].stem.split("-")[1]),
                   best=ranked[::-1][:3], worst=ranked[:3], fixed=samples[:6])


def _push_request(kind: str, name: str):
    data = only(body(), ("repo_id", "public", "hf_token", "merge"))
    repo = data.get("repo_id")
    if hub_repo_id(repo):
        raise ConfigError("repo_id", f"must be ORG/NAME; got {repo!r}", "ORG/NAME")
    flag(data, "public", False)  # a string "false" must not create a public repository
    flag(data, "merge", True)
    token = optional_string(data, "hf_token")
    data.pop("hf_token", None)
    record = manager().submit(kind, {"name": name, "options": data}, name=name,
                              secrets={"hf_token": token} if token else None)
    return jsonify(job_id=record.job_id, kind=kind, status=record.status,
                   job=job_view(record)), 202


@blueprint.post("/api/datasets/<name>/push")
def push_dataset(name: str):
    """Upload a dataset to the Hub, or finish an upload (only missing files)."""
    folder = datasets_dir(current_app.config["DATA_ROOT"]) / check_name("name", name)
    if not (folder / "deepsynth-manifest.json").exists():
        raise NotFound(f"no dataset {name!r}")
    return _push_request("push_dataset", name)


@blueprint.post("/api/models/<name>/push")
def push_model(name: str):
    """Export a trained model (adapters merged) and upload it to the Hub."""
    if not (_model_folder(name) / "final").is_dir():
        raise NotFound(f"model {name!r} has no final weights yet")
    return _push_request("push_model", name)
