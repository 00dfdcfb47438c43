"""GET /api/openapi.json: an OpenAPI 3.1 document of every route of the app.

Paths come from the app's own URL map and request bodies from the configuration dataclasses
that validate them, so neither can drift from what the server does.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify

from deepsynth import __version__
from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig
from deepsynth.config.chat import ChatInspectConfig
from deepsynth.config.schema import json_schema, merged_schema
from deepsynth.config.training import TrainingConfig

blueprint = Blueprint("openapi", __name__)
_NAME = {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"}
_TOKEN = {"type": "string", "description": "Hub token, used in memory only"}
_PUSH = {"type": "object", "required": ["repo_id"], "additionalProperties": False,
         "properties": {"repo_id": {"type": "string", "pattern": "^[^/]+/[^/]+$"},
                        "public": {"type": "boolean", "default": False},
                        "merge": {"type": "boolean", "default": True}, "hf_token": _TOKEN}}
_ERROR = {"type": "object", "properties": {"error": {"type": "string"},
                                           "field": {"type": ["string", "null"]},
                                           "allowed": {"type": ["string", "null"]}}}


def _generation_body(with_source: bool) -> dict:
    generation = json_schema(GenerationConfig, exclude=("out", "source", "render"))
    source = json_schema(SourceConfig, exclude=() if with_source else ("source",))
    extra = {"name": _NAME, "hf_token": _TOKEN}
    if not with_source:
        extra["preset"] = {"type": "string"}
    return merged_schema(generation, source, json_schema(RenderConfig), extra=extra,
                         required=("source", "name") if with_source else ("preset",))


def request_bodies() -> dict[str, dict]:
    training = json_schema(TrainingConfig, exclude=("out",))
    training["properties"].update(name=_NAME, hf_token=_TOKEN)
    return {
        "datasets.benchmark_create": _generation_body(with_source=False),
        "datasets.dataset_generate": _generation_body(with_source=True),
        "training.train_model": training,
        "training.lora_recommended": {"type": "object", "required": ["num_samples"],
                                      "properties": {"num_samples": {"type": "integer",
                                                                     "minimum": 1}},
                                      "additionalProperties": False},
        "previews.render_preview": merged_schema(
            json_schema(RenderConfig), extra={"text": {"type": "string"}},
            required=("text",)),
        "previews.source_preview": {"type": "object", "required": ["source"],
                                    "properties": {"source": {"type": "string"}}},
        "models.evaluate": {"type": "object", "required": ["model", "dataset"],
                            "additionalProperties": False,
                            "properties": {"model": _NAME, "dataset": _NAME,
                                           "split": {"type": "string"},
                                           "max_samples": {"type": "integer", "minimum": 1}}},
        "chat.validate": json_schema(ChatInspectConfig),
        "chat.preview": json_schema(ChatInspectConfig),
        "models.push_dataset": _PUSH,
        "models.push_model": _PUSH,
        "models.summarize_endpoint": {"type": "object", "required": ["model"],
                                      "properties": {"model": _NAME,
                                                     "text": {"type": "string"},
                                                     "image": {"type": "string"}}},
    }


def _path(rule: str) -> str:
    return rule.replace("<int:", "{").replace("<", "{").replace(">", "}")


def document() -> dict:
    bodies = request_bodies()
    paths: dict = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.rule.startswith("/api/"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            operation: dict = {
                "operationId": rule.endpoint, "summary": (current_app.view_functions[
                    rule.endpoint].__doc__ or rule.endpoint).strip().splitlines()[0],
                "parameters": [{"name": arg, "in": "path", "required": True,
                                "schema": {"type": "string"}} for arg in rule.arguments],
                "responses": {"200": {"description": "OK"},
                              "400": {"description": "bad input", "content": {
                                  "application/json": {"schema": _ERROR}}}}}
            if rule.endpoint in bodies:
                operation["requestBody"] = {"required": True, "content": {
                    "application/json": {"schema": bodies[rule.endpoint]}}}
            paths.setdefault(_path(rule.rule), {})[method.lower()] = operation
    return {"openapi": "3.1.0", "info": {"title": "DeepSynth API", "version": __version__},
            "paths": paths}


@blueprint.get("/api/openapi.json")
def openapi():
    """The OpenAPI 3.1 document of this API."""
    return jsonify(document())
