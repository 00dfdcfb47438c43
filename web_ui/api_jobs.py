"""Jobs: list, inspect, logs, metrics, pause, resume, cancel, delete."""

from __future__ import annotations

import json

from flask import Blueprint, current_app, jsonify, request

from deepsynth.errors import ConfigError, DeepSynthError
from deepsynth.jobs.state import STATUSES, JobRecord
from deepsynth.paths import models_dir
from deepsynth.training.metrics import HISTORY_NAME, SUMMARY_NAME
from web_ui.errors import NotFound
from web_ui.requests_json import int_arg, page

blueprint = Blueprint("jobs", __name__)


def job_view(record: JobRecord) -> dict:
    return {"job_id": record.job_id, "kind": record.kind, "status": record.status,
            "name": record.name, "progress": record.progress, "config": record.config,
            "created_at": record.created_at, "updated_at": record.updated_at,
            "started_at": record.started_at, "finished_at": record.finished_at,
            "error": record.error, "result": record.result}


def manager():
    return current_app.config["JOBS"]


def find(job_id: str) -> JobRecord:
    try:
        return manager().store.load(job_id)
    except (KeyError, DeepSynthError):  # unknown, or not a job id at all ("..")
        raise NotFound(f"no job {job_id!r}") from None


@blueprint.get("/api/jobs")
def list_jobs():
    records = manager().store.all()
    kind, status = request.args.get("kind"), request.args.get("status")
    if status and status not in STATUSES:
        raise ConfigError("status", f"must be one of {', '.join(STATUSES)}",
                          ", ".join(STATUSES))
    chosen = [job_view(r) for r in reversed(records)
              if (not kind or r.kind == kind) and (not status or r.status == status)]
    return jsonify(page(chosen, "jobs"))


@blueprint.get("/api/jobs/<job_id>")
def get_job(job_id: str):
    return jsonify(job_view(find(job_id)))


@blueprint.get("/api/jobs/<job_id>/logs")
def job_logs(job_id: str):
    find(job_id)
    path = manager().store.log_path(job_id)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    tail = int_arg("tail", 200, 1, 10_000)
    return jsonify(job_id=job_id, lines=lines[-tail:])


@blueprint.post("/api/jobs/<job_id>/<action>")
def act(job_id: str, action: str):
    find(job_id)
    actions = {"pause": manager().pause, "resume": manager().resume,
               "cancel": manager().cancel}
    if action not in actions:
        raise NotFound(f"no action {action!r}; use pause, resume or cancel")
    return jsonify(job_view(actions[action](job_id)))


@blueprint.delete("/api/jobs/<job_id>")
def delete_job(job_id: str):
    find(job_id)
    manager().delete(job_id)
    return jsonify(deleted=job_id)


@blueprint.get("/api/metrics/<job_id>")
def metrics(job_id: str):
    """A training job's summary and history (steps after ``since``)."""
    record = find(job_id)
    if record.kind != "train":
        raise NotFound(f"job {job_id} is a {record.kind} job; metrics are for training jobs")
    folder = models_dir(current_app.config["DATA_ROOT"]) / (record.name or "")
    since = int_arg("since", 0, 0, 10**9)
    summary_path = folder / SUMMARY_NAME
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    rows = [line for step, line in history_lines(folder / HISTORY_NAME) if step > since]
    # Polled every second by monitors: the history's lines are joined, never re-serialized.
    body = (f'{{"job_id": {json.dumps(job_id)}, "summary": {json.dumps(summary)}, '
            f'"history": [{",".join(rows)}]}}')
    return current_app.response_class(body, mimetype="application/json")


def history_lines(path) -> list[tuple[int, str]]:
    """(step, JSON line) of a metrics history, read incrementally by the app's reader."""
    return current_app.config["HISTORY_READER"].lines(path)
