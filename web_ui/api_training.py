"""Training, ``/api/training/*`` and ``/api/lora/*`` (with ``/api/model/train``): presets,
LoRA presets and recommendation, a run's checkpoints, and training jobs.

A training request is resolved once, here, into a complete TrainingConfig through the
Workspace; the job stores that config and runs exactly it.
"""

from __future__ import annotations

import re
import time

from flask import Blueprint, current_app, jsonify

from deepsynth.config import to_dict
from deepsynth.config.requests import CheckpointsQuery, EstimateQuery, LoraRecommendationRequest
from deepsynth.config.training import LORA_PRESETS, TRAINING_PRESETS, training_config
from deepsynth.config.training_presets import default_lora_dropout
from deepsynth.errors import ConfigError, ConfigRefused, NotFound
from deepsynth.jobs.manager import JobConflict
from deepsynth.jobs.train_job import train_record
from deepsynth.training.recommend import recommend_lora
from deepsynth.training.request import resolve_training
from deepsynth.training.run_folder import RunFolder
from web_ui import schemas
from web_ui.app_context import (
    find, manager, requested_name, split_secrets, submit_job, workspace,
)
from web_ui.requests_json import body, declares, parsed_body, parsed_query

blueprint = Blueprint("training", __name__)


@blueprint.get("/api/training/presets")
@declares()
def training_presets():
    return jsonify(presets=TRAINING_PRESETS)


@blueprint.get("/api/training/optimal-config/<preset>")
@declares(path={"preset": {"type": "string", "enum": list(TRAINING_PRESETS)}})
def optimal_config(preset: str):
    if preset not in TRAINING_PRESETS:
        raise NotFound(f"no training preset {preset!r}; presets: {', '.join(TRAINING_PRESETS)}")
    values = to_dict(training_config({"dataset": "-", "out": "-", "preset": preset}))
    for placeholder in ("dataset", "out"):
        values.pop(placeholder)
    return jsonify(preset=preset, config=values)


@blueprint.get("/api/training/checkpoints")
@declares(query=CheckpointsQuery, errors=(404, 422))
def checkpoints():
    """A run's checkpoints, by training job or model name; ``ref`` is what
    ``resume_from_checkpoint`` takes to start a new run from one."""
    query = parsed_query(CheckpointsQuery)
    if bool(query.job_id) == bool(query.model):
        raise ConfigRefused("job_id", "give exactly one of job_id and model",
                          "a training job id, or model=NAME")
    if query.model:
        run = workspace().existing_run(query.model)  # 404 for a model that does not exist
    else:
        run = RunFolder(workspace().models / (find(query.job_id).name or "-"))
    found = [{**row, "ref": f"{run.name}/{row['name']}"} for row in run.checkpoint_list()]
    return jsonify(job_id=query.job_id, model=run.name, checkpoints=found)


@blueprint.get("/api/lora/presets")
@declares()
def lora_presets():
    return jsonify(presets={name: {**values, "modules": list(values["modules"]),
                                   "parameters": list(values["parameters"]),
                                   "dropout": default_lora_dropout(name)}
                            for name, values in LORA_PRESETS.items()})


@blueprint.post("/api/lora/presets/recommended")
@declares(body=LoraRecommendationRequest)
def lora_recommended():
    return jsonify(recommend_lora(parsed_body(LoraRecommendationRequest).num_samples))


def _check_chat_files(values: dict) -> None:
    """Refuse a chat file with errors now, not an hour into the job (structure only, read
    as training reads it: ShareGPT and Alpaca converted)."""
    from deepsynth.chat.inspect import read_file
    from deepsynth.config.spec import hub_dataset_id

    if values.get("trainer_type") != "generic":
        return
    for field in ("dataset", "eval_dataset"):
        value = values.get(field)
        if value is None or hub_dataset_id(value) is not None:
            continue
        report = read_file(workspace().existing_file(value, field))
        if report.error_count and not values.get("skip_invalid_lines"):
            raise ConfigError(field, f"{value} ({report.format_label()}) has "
                              f"{report.error_count} problems on {len(report.invalid_lines)} "
                              f"records (first: {report.errors[0]}); see POST "
                              f"/api/chat/validate, or set skip_invalid_lines",
                              "a valid chat file")


def _resolved(name: str, values: dict):
    """A training request resolved into its complete TrainingConfig, with the server's own
    refusals: what a train job runs, and what an estimate estimates."""
    if values.get("trust_remote_code") and not current_app.config[
            "DEEPSYNTH"].allow_remote_code:
        raise ConfigRefused("trust_remote_code", "is not allowed by this server's "
                            "configuration", "false")
    config = resolve_training(values, workspace(), name)
    _check_chat_files(values)
    return config


def _accelerator():
    """The GPU submissions are checked against: the app's ``ACCELERATOR`` when set (an
    :class:`~deepsynth.training.estimate.Accelerator`), else the detected CUDA device."""
    from deepsynth.training.estimate import detected_accelerator

    if "ACCELERATOR" in current_app.config:
        return current_app.config["ACCELERATOR"]
    return detected_accelerator()


def _training_job(name: str, values: dict, warnings: list[str]) -> dict:
    """The train job's config: the request resolved once into a complete TrainingConfig.
    A config the estimate says will not fit the GPU is accepted, with a warning."""
    from deepsynth.training.estimate import fit_warnings

    config = _resolved(name, values)
    dataset = values.get("dataset")
    writing = manager().jobs_using(dataset=dataset, writers_only=True)
    if writing:
        raise JobConflict(f"dataset {dataset!r} is still being written by job "
                          f"{writing[0].job_id}")
    warnings += fit_warnings(config, _accelerator(), workspace().root)
    return train_record(config, name)


@blueprint.post("/api/model/train")
@declares(body=schemas.training_body,
          status=202, schema=schemas.JOB_ACCEPTED, errors=(404, 409, 422, 507))
def train_model():
    data = body()
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", str(data.get("dataset") or "model")).strip("-.")
    name = requested_name(data, f"{base or 'model'}-{time.strftime('%Y%m%d-%H%M%S')}")
    warnings: list[str] = []
    answer, status = submit_job("train", name, data,
                                lambda values: _training_job(name, values, warnings),
                                model=name)
    return jsonify({**answer.get_json(), "warnings": warnings}), status


@blueprint.post("/api/training/estimate")
@declares(body=schemas.training_body, query=EstimateQuery, schema=schemas.ESTIMATE,
          errors=(404, 422))
def training_estimate():
    """Peak memory and step time of a training request (the body of POST /api/model/train;
    name optional): the breakdown deepsynth estimate prints, as JSON."""
    from deepsynth.training.estimate import estimate, fit_warnings

    device = parsed_query(EstimateQuery).device
    data = body()
    name = requested_name(data, "estimate")
    config = _resolved(name, split_secrets(data)[0])
    result = estimate(config, device, root=workspace().root).to_dict()
    result["warnings"] = fit_warnings(config, _accelerator(), workspace().root)
    return jsonify(result)
