"""Training: presets, LoRA presets and recommendation, training jobs, trained models."""

from __future__ import annotations

import json
import re
import time

from flask import Blueprint, current_app, jsonify

from deepsynth.config.training import LORA_PRESETS, TRAINING_PRESETS, training_config
from deepsynth.errors import ConfigError
from deepsynth.config.spec import hub_dataset_id
from deepsynth.jobs.kinds import check_name, checkpoint_folder, data_root_path, model_spec
from deepsynth.jobs.manager import JobConflict
from deepsynth.models.registry import MODEL_PRESETS
from deepsynth.paths import datasets_dir, models_dir
from deepsynth.training.recommend import recommend_lora
from web_ui.api_jobs import job_view, manager
from web_ui.errors import NotFound
from web_ui.requests_json import body, only, optional_string, page

blueprint = Blueprint("training", __name__)


@blueprint.get("/api/training/presets")
def training_presets():
    return jsonify(presets=TRAINING_PRESETS)


@blueprint.get("/api/lora/presets")
def lora_presets():
    return jsonify(presets={name: {**values, "modules": list(values["modules"]),
                                   "parameters": list(values["parameters"])}
                            for name, values in LORA_PRESETS.items()})


@blueprint.post("/api/lora/presets/recommended")
def lora_recommended():
    samples = only(body(), ("num_samples",)).get("num_samples")
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise ConfigError("num_samples", f"must be a positive integer; got {samples!r}",
                          "1 or more")
    return jsonify(recommend_lora(samples))


def _check_chat_file(path, field: str, value: str, skip_invalid: bool) -> None:
    """Refuse a chat file with errors now, not an hour into the job (structure only)."""
    from deepsynth.chat.inspect import validate_file

    if not path.is_file():
        raise NotFound(f"no chat file {value!r} under the data root")
    report = validate_file(path)
    if report.error_count and not skip_invalid:
        first = report.errors[0]
        raise ConfigError(field, f"{value} has {report.error_count} problems on "
                          f"{len(report.invalid_lines)} lines (first: {first}); see "
                          f"POST /api/chat/validate, or set skip_invalid_lines",
                          "a valid chat JSONL file")


def _check_training_data(root, data: dict) -> None:
    """The dataset (and eval_dataset) exist: a generated dataset by name, a chat file under
    the data root (trainer_type generic), or a Hub dataset (downloaded by the job)."""
    generic = data.get("trainer_type") == "generic"
    for field in ("dataset", "eval_dataset"):
        value = data.get(field)
        if (field == "eval_dataset" and value is None) or hub_dataset_id(value) is not None:
            continue
        if generic:
            _check_chat_file(data_root_path(root, value, field), field, value,
                             bool(data.get("skip_invalid_lines")))
        elif field == "eval_dataset":
            raise ConfigError(field, "is for trainer_type generic", "null")
        elif not (datasets_dir(root) / check_name(field, value) /
                  "deepsynth-manifest.json").exists():
            raise NotFound(f"no dataset {value!r}")


@blueprint.post("/api/model/train")
def train_model():
    root = current_app.config["DATA_ROOT"]
    data = body()
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", str(data.get("dataset") or "model")).strip("-.")
    name = check_name("name", data.pop("name", None) or
                      f"{base or 'model'}-{time.strftime('%Y%m%d-%H%M%S')}")
    dataset = data.get("dataset")
    if "out" in data:
        raise ConfigError("out", "is chosen by the server (models/NAME): give name instead",
                          "name")
    _check_training_data(root, data)
    if data.get("model") is not None:
        model_spec(root, data["model"], data.get("trainer_type") == "generic")
    if data.get("trust_remote_code") and not current_app.config["DEEPSYNTH"].allow_remote_code:
        raise ConfigError("trust_remote_code", "is not allowed by this server's "
                          "configuration", "false")
    token = optional_string(data, "hf_token")
    data.pop("hf_token", None)
    training_config({**data, "dataset": str(datasets_dir(root) / "-"),
                     "out": str(models_dir(root) / name)})  # a bad field is a 400 now
    if data.get("resume_from_checkpoint") is not None:
        checkpoint_folder(root, name, data["resume_from_checkpoint"])
    writing = manager().jobs_using(dataset=dataset, writers_only=True)
    if writing:
        raise JobConflict(f"dataset {dataset!r} is still being written by job "
                          f"{writing[0].job_id}")
    record = manager().submit("train", {"name": name, "options": data}, name=name,
                              secrets={"hf_token": token} if token else None)
    return jsonify(job_id=record.job_id, kind="train", status=record.status, model=name,
                   job=job_view(record)), 202


@blueprint.get("/api/models")
def models():
    root = current_app.config["DATA_ROOT"]
    found = []
    folder = models_dir(root)
    for run in sorted(folder.iterdir()) if folder.is_dir() else []:
        metrics = run / "metrics.json"
        found.append({"name": run.name, "final": (run / "final").is_dir(),
                      "metrics": json.loads(metrics.read_text()) if metrics.exists() else {}})
    presets = [p.to_dict() for p in MODEL_PRESETS.values()]
    return jsonify({**page(found, "models"), "presets": presets})
