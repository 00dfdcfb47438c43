"""Jobs, ``/api/jobs/*`` and ``/api/metrics/*``: list, inspect, logs, pause, resume, cancel,
delete, a training job's metrics, evaluation samples and its event stream."""

from __future__ import annotations

import json

from flask import Blueprint, Response, current_app, jsonify

from deepsynth.config.requests import JobsQuery, LogsQuery, MetricsQuery
from deepsynth.errors import NotFound
from web_ui import api_events
from web_ui.app_context import find, job_view, manager, workspace
from web_ui.requests_json import declares, page, parsed_query

blueprint = Blueprint("jobs", __name__)


@blueprint.get("/api/jobs")
@declares(query=JobsQuery)
def list_jobs():
    query = parsed_query(JobsQuery)
    places = manager().queue_places()
    chosen = [job_view(r, places=places) for r in reversed(manager().store.all())
              if (not query.kind or r.kind == query.kind)
              and (not query.status or r.status == query.status)]
    return jsonify(page(chosen, "jobs"))


@blueprint.get("/api/jobs/<job_id>")
@declares()
def get_job(job_id: str):
    return jsonify(job_view(find(job_id)))


@blueprint.get("/api/jobs/<job_id>/logs")
@declares(query=LogsQuery)
def job_logs(job_id: str):
    find(job_id)
    path = manager().store.log_path(job_id)
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    tail = parsed_query(LogsQuery).tail
    return jsonify(job_id=job_id, lines=lines[-tail:])


@blueprint.post("/api/jobs/<job_id>/<any(pause, resume, cancel):action>")
@declares(errors=(409,))
def act(job_id: str, action: str):
    find(job_id)
    actions = {"pause": manager().pause, "resume": manager().resume,
               "cancel": manager().cancel}
    if action not in actions:
        raise NotFound(f"no action {action!r}; use pause, resume or cancel")
    return jsonify(job_view(actions[action](job_id)))


@blueprint.delete("/api/jobs/<job_id>")
@declares(errors=(409,))
def delete_job(job_id: str):
    find(job_id)
    manager().delete(job_id)
    return jsonify(deleted=job_id)


@blueprint.get("/api/metrics/<job_id>")
@declares(query=MetricsQuery)
def metrics(job_id: str):
    """A training job's summary and history (steps after ``since``)."""
    from deepsynth.training.run_folder import RunFolder

    record = find(job_id)
    if record.kind != "train":
        raise NotFound(f"job {job_id} is a {record.kind} job; metrics are for training jobs")
    run = RunFolder(workspace().models / (record.name or "-"))
    since = parsed_query(MetricsQuery).since
    rows = current_app.config["HISTORY_READER"].lines(run, since)
    # Polled every second by monitors: the history's lines are joined, never re-serialized.
    body = (f'{{"job_id": {json.dumps(job_id)}, "summary": {json.dumps(run.summary())}, '
            f'"history": [{",".join(rows)}]}}')
    return current_app.response_class(body, mimetype="application/json")


@blueprint.get("/api/jobs/<job_id>/samples")
@declares()
def job_samples(job_id: str):
    """A training job's latest evaluation: its best, worst and first predictions."""
    from deepsynth.training.run_folder import RunFolder

    record = find(job_id)
    step, samples = RunFolder(workspace().models / (record.name or "-")).latest_eval_samples()
    if step is None:
        return jsonify(job_id=job_id, step=None, best=[], worst=[], fixed=[])
    ranked = sorted(samples, key=lambda s: s["rougeL"])
    return jsonify(job_id=job_id, step=step, best=ranked[::-1][:3], worst=ranked[:3],
                   fixed=samples[:6])


@blueprint.get("/api/jobs/<job_id>/events")
@declares(media="text/event-stream", errors=(503,))
def events(job_id: str):
    """Server-sent events of a job's state and training metrics."""
    record = find(job_id)
    slots = current_app.config["EVENT_SLOTS"]
    if not slots.acquire(blocking=False):
        return jsonify(error="too many open event streams; poll GET /api/jobs/<id> "
                             "instead"), 503
    slot = api_events.Slot(slots)
    try:
        response = Response(api_events.stream(record), mimetype="text/event-stream",
                            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    except BaseException:
        slot.release()
        raise
    response.call_on_close(slot.release)
    return response
