"""GET /api/openapi.json: an OpenAPI 3.1 document of every route of the app.

Paths come from the app's own URL map (an ``int`` or ``any(...)`` part is typed by its
converter); request bodies, query and path parameters, the success status and media type
and the errors a view answers from what it declares with ``requests_json.declares``: the
request dataclasses (or config schemas) it parses with, so neither can drift from what the
server does. Each operation lists every status it can answer, errors with the error body:
400 where it takes input, 404 where it names something (a path parameter, or a body that
names a dataset, model or file), 413 where it takes a body, 401 (and 403 for a browser
session without the CSRF header) when the server has a token, and what the view declares
(409, 422, 429, 503, 504, 507). With a token the document says so: a bearer scheme, and the
open paths need none.
"""

from __future__ import annotations

import dataclasses
import re

from flask import Blueprint, current_app, jsonify
from werkzeug.routing import AnyConverter, IntegerConverter

from deepsynth import __version__
from deepsynth.config.requests import body_schema, query_parameters
from web_ui import auth

blueprint = Blueprint("openapi", __name__)
ERROR = {"type": "object", "required": ["error"], "properties": {
    "error": {"type": "string", "description": "what went wrong, and what to do"},
    "field": {"type": ["string", "null"], "description": "the field at fault (400)"},
    "allowed": {"type": ["string", "null"], "description": "what the field allows (400)"},
    "service": {"type": "string", "description": "the service that runs the job (409)"}}}
REASONS = {
    200: "OK", 201: "created", 202: "accepted: the job, queued or running",
    400: "bad input: ``field`` names it and ``allowed`` says what is allowed",
    401: "missing or wrong API token (Authorization: Bearer TOKEN)",
    403: "a browser session without the X-DeepSynth-CSRF header",
    404: "something the request names does not exist",
    409: "a conflict: with a job that uses the same dataset or model, with the job's "
         "state, or a job kind another service runs",
    413: "the body is larger than the server accepts",
    422: "values each allowed by the document, refused together (a rule between fields) or "
         "by this server; ``field`` and ``allowed`` as for 400",
    429: "too many wrong tokens from this address; try again after Retry-After seconds",
    503: "too many open event streams; poll the job instead",
    504: "the model took too long", 507: "the data root's disk is full"}
HEADERS = {429: {"Retry-After": {"required": True, "description": "seconds to wait",
                                 "schema": {"type": "integer", "minimum": 1}}}}
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
_PART = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def _body(view) -> dict | None:
    declared = getattr(view, "request_body", None)
    if declared is None:
        return None
    return body_schema(declared) if dataclasses.is_dataclass(declared) else declared()


def _path(rule: str) -> str:
    return _PART.sub(r"{\1}", rule)


def _path_schema(rule, name: str, view) -> dict:
    """What a path part accepts: its converter's type, else what the view declares."""
    converter = rule._converters.get(name)
    if isinstance(converter, IntegerConverter):
        return {"type": "integer", "minimum": 0}
    if isinstance(converter, AnyConverter):
        return {"type": "string", "enum": sorted(converter.items)}
    declared = getattr(view, "request_path", {}).get(name)
    return dict(declared() if callable(declared) else declared or {"type": "string"})


def _content(media: str, schema: dict) -> dict:
    if media.startswith("image/"):
        schema = {"type": "string", "format": "binary"}
    elif not media.endswith("json"):
        schema = {"type": "string"}
    return {media: {"schema": schema}}


def _responses(rule, method: str, view, checked: bool, has_body: bool) -> dict:
    answers = getattr(view, "answers", {"status": 200, "media": "application/json",
                                        "errors": (), "refusal": 400})
    statuses = set(answers["errors"])
    statuses |= {answers["refusal"]} if checked else set()
    statuses |= {404} if rule.arguments else set()
    statuses |= {413} if has_body else set()
    if _guarded(rule.rule):
        statuses |= {401} | ({403} if method not in SAFE_METHODS else set())
    success = answers["status"]
    responses = {str(success): {"description": REASONS[success], "content": _content(
        answers["media"], answers.get("schema") or {"type": "object"})}}
    for status in sorted(statuses):
        responses[str(status)] = {"description": REASONS[status], "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        if status in HEADERS:
            responses[str(status)]["headers"] = HEADERS[status]
    return responses


def _guarded(path: str) -> bool:
    """Whether the app's token guards ``path``."""
    return bool(current_app.config["DEEPSYNTH"].api_token) and path not in auth.OPEN_PATHS


def _operation(rule, method: str) -> dict:
    view = current_app.view_functions[rule.endpoint]
    query = getattr(view, "request_query", None)
    schema = _body(view)
    parameters = [{"name": arg, "in": "path", "required": True,
                   "schema": _path_schema(rule, arg, view)} for arg in sorted(rule.arguments)]
    parameters += query_parameters(query) if query else []
    checked = bool(query or schema or getattr(view, "request_path", None))  # 400 possible
    operation: dict = {
        "operationId": rule.endpoint,
        "summary": (view.__doc__ or rule.endpoint).strip().splitlines()[0],
        "parameters": parameters,
        "responses": _responses(rule, method, view, checked, schema is not None)}
    if schema is not None:
        media = getattr(view, "request_media", "application/json")
        operation["requestBody"] = {"required": True, "content": {media: {"schema": schema}}}
    if current_app.config["DEEPSYNTH"].api_token and not _guarded(rule.rule):
        operation["security"] = []
    return operation


def document() -> dict:
    paths: dict = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(_path(rule.rule), {})[method.lower()] = _operation(rule, method)
    spec = {"openapi": "3.1.0", "info": {"title": "DeepSynth API", "version": __version__},
            "paths": paths, "components": {"schemas": {"Error": ERROR}}}
    if current_app.config["DEEPSYNTH"].api_token:
        spec["components"]["securitySchemes"] = {"bearer": {"type": "http",
                                                            "scheme": "bearer"}}
        spec["security"] = [{"bearer": []}]
    return spec


@blueprint.get("/api/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of this API."""
    return jsonify(document())
