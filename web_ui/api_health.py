"""GET /api/health: liveness, role, version, device and queue lengths (no token needed);
GET /api/resources: what the service uses of the machine (behind the token)."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from deepsynth import __version__
from web_ui.requests_json import declares

blueprint = Blueprint("health", __name__)


def device() -> dict:
    import torch

    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        return {"type": "cuda", "name": props.name,
                "memory_gib": round(props.total_memory / 2**30, 1)}
    return {"type": "cpu", "name": "CPU (tiny demo models only)"}


@blueprint.get("/api/health")
def health():
    manager = current_app.config["JOBS"]
    records = manager.store.all()
    return jsonify(status="ok", role=manager.role, version=__version__, device=device(),
                   queues={"queued": sum(r.status == "queued" for r in records),
                           "running": sum(r.status == "running" for r in records)})


@blueprint.get("/api/resources")
@declares()
def resources():
    """This service's CPU and memory, the machine's, and each NVIDIA GPU's memory and
    utilization (an empty list without CUDA)."""
    from deepsynth.machine import gpu_usage, process_usage

    return jsonify(role=current_app.config["JOBS"].role, process=process_usage(),
                   gpus=gpu_usage())
