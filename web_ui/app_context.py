"""What the views share: the app's Workspace and job manager, how a job is shown, and the
one path that submits a job (secrets taken out of the request once, a 202 with the job)."""

from __future__ import annotations

from collections.abc import Callable

from flask import current_app, jsonify

from deepsynth.errors import DeepSynthError, NotFound
from deepsynth.jobs.state import JobRecord
from deepsynth.workspace import Workspace, check_name
from web_ui.requests_json import optional_string

SECRETS = ("hf_token",)  # given per request, kept in memory by the manager, never written


def workspace() -> Workspace:
    return current_app.config["WORKSPACE"]


def manager():
    return current_app.config["JOBS"]


def job_view(record: JobRecord, shown: Workspace | None = None,
             places: dict[str, dict] | None = None) -> dict:
    """A job as the API shows it: paths relative to the data root (``shown``, by default the
    app's); a queued job with its ``queue`` place (``places``: the manager's, read once for
    a list), else ``queue`` null."""
    if record.status == "queued" and places is None:
        places = manager().queue_places()
    return (shown or workspace()).scrub({
        "job_id": record.job_id, "kind": record.kind, "status": record.status,
        "name": record.name, "progress": record.progress, "config": record.config,
        "created_at": record.created_at, "updated_at": record.updated_at,
        "started_at": record.started_at, "finished_at": record.finished_at,
        "error": record.error, "result": record.result,
        "queue": (places or {}).get(record.job_id) if record.status == "queued" else None})


def find(job_id: str) -> JobRecord:
    try:
        return manager().store.load(job_id)
    except (KeyError, DeepSynthError):  # unknown, or not a job id at all ("..")
        raise NotFound(f"no job {job_id!r}") from None


def requested_name(data: dict, default: str) -> str:
    """The request's ``name`` (taken out of ``data``), checked; ``default`` only when it is
    absent or null: a wrong value ([], {}, false, "") is a 400, never replaced."""
    name = data.pop("name", None)
    return check_name("name", default if name is None else name)


def split_secrets(data: dict) -> tuple[dict, dict]:
    """The request without its secrets, and the secrets."""
    secrets = {}
    for name in SECRETS:
        value = optional_string(data, name)
        if value:
            secrets[name] = value
    return {k: v for k, v in data.items() if k not in SECRETS}, secrets


def submit_job(kind: str, name: str, data: dict, build: Callable[[dict], dict], **fields):
    """Submit a ``kind`` job writing or reading ``name``: ``build`` turns the request without
    its secrets into the job's config (raising a 4xx error for a bad request). The answer
    is a 202 with the job's id, kind and status, ``fields`` and the job itself."""
    options, secrets = split_secrets(data)
    record = manager().submit(kind, build(options), name=name, secrets=secrets or None)
    return jsonify(job_id=record.job_id, kind=kind, status=record.status, **fields,
                   job=job_view(record)), 202
