"""GET /api/openapi.json: an OpenAPI 3.1 document of every route of the app.

Paths come from the app's own URL map; request bodies and query parameters from what each
view declares with ``requests_json.declares``: the request dataclasses (or config schemas)
it parses with, so neither can drift from what the server does.
"""

from __future__ import annotations

import dataclasses

from flask import Blueprint, current_app, jsonify

from deepsynth import __version__
from deepsynth.config.requests import body_schema, query_parameters

blueprint = Blueprint("openapi", __name__)
_ERROR = {"type": "object", "properties": {"error": {"type": "string"},
                                           "field": {"type": ["string", "null"]},
                                           "allowed": {"type": ["string", "null"]}}}


def _body(view) -> dict | None:
    declared = getattr(view, "request_body", None)
    if declared is None:
        return None
    return body_schema(declared) if dataclasses.is_dataclass(declared) else declared()


def _path(rule: str) -> str:
    return rule.replace("<int:", "{").replace("<", "{").replace(">", "}")


def _operation(rule) -> dict:
    view = current_app.view_functions[rule.endpoint]
    query = getattr(view, "request_query", None)
    operation: dict = {
        "operationId": rule.endpoint,
        "summary": (view.__doc__ or rule.endpoint).strip().splitlines()[0],
        "parameters": [{"name": arg, "in": "path", "required": True,
                        "schema": {"type": "string"}} for arg in rule.arguments]
        + (query_parameters(query) if query else []),
        "responses": {"200": {"description": "OK"},
                      "400": {"description": "bad input", "content": {
                          "application/json": {"schema": _ERROR}}}}}
    schema = _body(view)
    if schema is not None:
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": schema}}}
    return operation


def document() -> dict:
    paths: dict = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(_path(rule.rule), {})[method.lower()] = _operation(rule)
    return {"openapi": "3.1.0", "info": {"title": "DeepSynth API", "version": __version__},
            "paths": paths}


@blueprint.get("/api/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of this API."""
    return jsonify(document())
