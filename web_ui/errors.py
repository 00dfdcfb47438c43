"""Every error is JSON: 400 names the field and what is allowed, 404, 409, 413; a bug is a
500 with a message but never a traceback in the response."""

from __future__ import annotations

import logging

from flask import Flask, jsonify
from werkzeug.exceptions import HTTPException

from deepsynth.errors import ConfigError, DeepSynthError, NotFound
from deepsynth.jobs.manager import JobConflict, RoleError
from deepsynth.jobs.state import InvalidTransition

log = logging.getLogger(__name__)


def register(app: Flask) -> None:
    @app.errorhandler(ConfigError)
    def config_error(exc: ConfigError):
        return jsonify(error=str(exc), field=exc.field, allowed=exc.allowed), 400

    @app.errorhandler(NotFound)
    def not_found(exc: NotFound):
        return jsonify(error=str(exc)), 404

    @app.errorhandler(InvalidTransition)
    @app.errorhandler(JobConflict)
    def conflict(exc: DeepSynthError):
        return jsonify(error=str(exc)), 409

    @app.errorhandler(RoleError)
    def wrong_service(exc: RoleError):
        config = app.config["DEEPSYNTH"]
        other = (("cpu", config.cpu_service_url) if app.config["JOBS"].role == "gpu"
                 else ("gpu", config.gpu_service_url))
        return jsonify(error=f"{exc}; the {other[0]} service at {other[1]} does",
                       service=other[1]), 409

    @app.errorhandler(DeepSynthError)
    def user_error(exc: DeepSynthError):
        return jsonify(error=str(exc), field=None, allowed=None), 400

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return jsonify(error=exc.description), exc.code

    @app.errorhandler(Exception)
    def bug(exc: Exception):
        log.exception("unexpected error")
        return jsonify(error=f"internal error ({type(exc).__name__}); see the server log"), 500
