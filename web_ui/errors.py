"""Every error is JSON: 400 names the field and what is allowed (a value the OpenAPI
document refuses), 422 the same for values each allowed but refused together or by this
server, 404 (naming the field when the request's body names what is missing), 405 (with
``Allow``), 409 (a damaged dataset also names its ``shard``), 413 (the body; also when
waitress refuses it, see ``web_ui.serving``), 507 for a full disk; a bug is a 500 with a
message but never a traceback. No message shows the server's absolute paths (they are
written relative to the data root)."""

from __future__ import annotations

import errno
import logging

from flask import Flask, current_app, jsonify
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge

from deepsynth.errors import ConfigError, ConfigRefused, DatasetDamaged, DeepSynthError, NotFound
from deepsynth.jobs.manager import JobConflict, RoleError
from deepsynth.jobs.state import InvalidTransition

log = logging.getLogger(__name__)


def _answer(status: int, message: str, **fields):
    shown = current_app.config["WORKSPACE"].scrub(message)
    return jsonify(error=shown, **fields), status


def too_large(limit_bytes: int) -> dict:
    """The body of a 413: the field is the body, what is allowed its largest size."""
    size = f"{limit_bytes / 2**20:g} MiB"
    return {"error": f"the request body is larger than this server accepts ({size})",
            "field": "body", "allowed": f"at most {size}"}


def register(app: Flask) -> None:
    @app.errorhandler(ConfigError)
    def config_error(exc: ConfigError):
        return _answer(400, str(exc), field=exc.field, allowed=exc.allowed)

    @app.errorhandler(ConfigRefused)
    def refused(exc: ConfigRefused):
        return _answer(422, str(exc), field=exc.field, allowed=exc.allowed)

    @app.errorhandler(NotFound)
    def not_found(exc: NotFound):
        return _answer(404, str(exc), field=exc.field, allowed=exc.allowed)

    @app.errorhandler(InvalidTransition)
    @app.errorhandler(JobConflict)
    def conflict(exc: DeepSynthError):
        return _answer(409, str(exc))

    @app.errorhandler(DatasetDamaged)
    def damaged(exc: DatasetDamaged):
        return _answer(409, str(exc), dataset=exc.dataset, shard=exc.shard)

    @app.errorhandler(RoleError)
    def wrong_service(exc: RoleError):
        config = app.config["DEEPSYNTH"]
        other = (("cpu", config.cpu_service_url) if app.config["JOBS"].role == "gpu"
                 else ("gpu", config.gpu_service_url))
        return _answer(409, f"{exc}; the {other[0]} service at {other[1]} does",
                       service=other[1])

    @app.errorhandler(DeepSynthError)
    def user_error(exc: DeepSynthError):
        return _answer(400, str(exc), field=None, allowed=None)

    @app.errorhandler(RequestEntityTooLarge)
    def body_too_large(exc: RequestEntityTooLarge):
        return jsonify(too_large(app.config["MAX_CONTENT_LENGTH"])), 413

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        response, status = _answer(exc.code or 500, exc.description or exc.name)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))
        return response, status

    @app.errorhandler(OSError)
    def machine_error(exc: OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return _answer(507, "the data root's disk is full; free space, then try again")
        return bug(exc)

    @app.errorhandler(Exception)
    def bug(exc: Exception):
        log.exception("unexpected error")
        return jsonify(error=f"internal error ({type(exc).__name__}); see the server log"), 500
