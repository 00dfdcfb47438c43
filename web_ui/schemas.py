"""JSON Schemas of the request bodies that mix configuration sections: generation (source,
render and output options given flat) and training (the TrainingConfig with the run's
name). Built from the same dataclasses the views validate with."""

from __future__ import annotations

from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig
from deepsynth.config.chat import ChatInspectConfig
from deepsynth.config.schema import json_schema, merged_schema
from deepsynth.config.training import TrainingConfig
from deepsynth.workspace import NAME_PATTERN

NAME = {"type": "string", "pattern": NAME_PATTERN}
TOKEN = {"type": "string", "description": "Hub token, used in memory only"}


def generation_body(with_source: bool) -> dict:
    generation = json_schema(GenerationConfig, exclude=("out", "source", "render"))
    source = json_schema(SourceConfig, exclude=() if with_source else ("source",))
    extra = {"name": NAME, "hf_token": TOKEN}
    if not with_source:
        extra["preset"] = {"type": "string"}
    return merged_schema(generation, source, json_schema(RenderConfig), extra=extra,
                         required=("source", "name") if with_source else ("preset",))


def training_body() -> dict:
    training = json_schema(TrainingConfig, exclude=("out",))
    training["properties"].update(name=NAME, hf_token=TOKEN)
    return training


def render_preview_body() -> dict:
    return merged_schema(json_schema(RenderConfig), extra={"text": {"type": "string"}},
                         required=("text",))


def chat_inspect_body() -> dict:
    return json_schema(ChatInspectConfig)
