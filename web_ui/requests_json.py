"""Reading request bodies and queries into plain values, with 400s that name the field.

Views declare what they take with :func:`declares` (request dataclasses of
``deepsynth.config.requests``, or a function giving a body's JSON Schema) and parse with
:func:`parsed_body` / :func:`parsed_query`; the OpenAPI document reads the same declarations.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import request

from deepsynth.config.requests import PageQuery, parse_body, parse_query
from deepsynth.errors import ConfigError
from deepsynth.json_input import load_checked_json


def declares(body: type | Callable[[], dict] | None = None,
             query: type | None = None, *, path: dict | None = None,
             body_media: str = "application/json", status: int = 200,
             media: str = "application/json", schema: dict | None = None,
             errors: tuple[int, ...] = (), refusal: int = 400):
    """Record on a view what it takes: its request body (of ``body_media``), query and path
    parameters (JSON Schemas, or functions giving them, by name); and what it answers: the
    ``status``, ``media`` type and ``schema`` of its success, and the error statuses beyond
    those the OpenAPI document derives (``refusal``, 400, for input; 404 for a path
    parameter, 413 for a body, 401 and 403 with a token)."""
    def mark(view):
        view.request_body, view.request_query = body, query
        view.request_path, view.request_media = path or {}, body_media
        view.answers = {"status": status, "media": media, "schema": schema,
                        "errors": tuple(errors), "refusal": refusal}
        return view
    return mark


def body() -> dict:
    """The request's JSON object: parsed with a nesting limit, every string storable."""
    if not request.is_json:
        raise ConfigError("body", "must be a JSON object (Content-Type: application/json)",
                          "a JSON object")
    data = load_checked_json(request.get_data(cache=True))
    if not isinstance(data, dict):
        raise ConfigError("body", "must be a JSON object (Content-Type: application/json)",
                          "a JSON object")
    return data


def parsed_body(cls: type):
    return parse_body(cls, body())


def parsed_query(cls: type):
    return parse_query(cls, request.args)


def page(items: list, key: str) -> dict:
    query = parsed_query(PageQuery)
    offset, limit = query.offset, query.limit
    return {key: items[offset:offset + limit], "total": len(items), "offset": offset,
            "limit": limit}


def optional_string(data: dict, name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ConfigError(name, f"must be a string; got {type(value).__name__}", "a string")
    return value
