"""The Flask app factory: JSON errors everywhere, one blueprint per URL prefix, one
Workspace (the data root) and one job manager per service."""

from __future__ import annotations

from flask import Flask

from deepsynth.config.server import ServerConfig
from deepsynth.jobs.kinds import job_kinds
from deepsynth.jobs.manager import JobManager
from deepsynth.jobs.state import JobStore
from deepsynth.training.run_folder import HistoryReader
from deepsynth.workspace import Workspace
from web_ui import (
    api_chat, api_datasets, api_events, api_health, api_jobs, api_models, api_previews,
    api_training, auth, errors, openapi, pages,
)


def create_app(config: ServerConfig, manager: JobManager | None = None) -> Flask:
    """The app for one service; ``manager`` defaults to one over the config's data root."""
    app = Flask("web_ui", static_folder=None)
    # "/api/datasets//x" must be a 404, not a redirect to "/api/datasets/x": a client
    # following it would act on another name (DELETE /api/datasets/%2Fx).
    app.url_map.merge_slashes = False
    app.url_map.converters["dataset"] = api_datasets.DatasetName
    workspace = Workspace(config.data_root or None)
    if manager is None:
        manager = JobManager(JobStore(workspace.jobs), job_kinds(workspace, ray_address=config.ray_address),
                             role=config.role,
                             generate_capacity=config.generate_capacity,
                             accelerator_capacity=config.accelerator_capacity)
    app.config.update(DEEPSYNTH=config, WORKSPACE=workspace, JOBS=manager,
                      HISTORY_READER=HistoryReader(),
                      MAX_CONTENT_LENGTH=config.max_upload_mb * 2**20,
                      EVENT_SLOTS=api_events.stream_slots(config.threads))
    errors.register(app)
    auth.register(app, config.api_token)
    for blueprint in (api_health.blueprint, api_jobs.blueprint, api_datasets.blueprint,
                      api_previews.blueprint, api_training.blueprint, api_models.blueprint,
                      api_chat.blueprint, openapi.blueprint, pages.blueprint):
        app.register_blueprint(blueprint)
    return app
