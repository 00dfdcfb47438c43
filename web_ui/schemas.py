"""JSON Schemas of the request bodies that mix configuration sections: generation (source,
render and output options given flat) and training (the TrainingConfig with the run's
name). Built from the same dataclasses the views validate with."""

from __future__ import annotations

from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig
from deepsynth.config.chat import ChatInspectConfig
from deepsynth.config.dataset import VarietyConfig
from deepsynth.config.schema import TEXT_PATTERN, json_schema, merged_schema
from deepsynth.config.spec import flat_fields
from deepsynth.config.training import TrainingConfig
from deepsynth.data.presets import PRESETS
from deepsynth.jobs.state import STATUSES
from deepsynth.workspace import NAME_PATTERN

NAME = {"type": "string", "pattern": NAME_PATTERN, "description": "a folder name"}
# A name the server chooses when it is absent or null.
OPTIONAL_NAME = {**NAME, "type": ["string", "null"], "description": "a folder name (default: "
                 "chosen by the server)"}
TOKEN = {"type": ["string", "null"], "pattern": TEXT_PATTERN,
         "description": "Hub token, used in memory only"}
MAX_PREVIEW_CHARS = 50_000
# Text with something to render: at least one character that is not white space.
PREVIEW_TEXT = {"type": "string", "maxLength": MAX_PREVIEW_CHARS,
                "pattern": r"^[^\x00]*[^\s\x00][^\x00]*$", "description": "the text to render"}


def generation_body(with_source: bool) -> dict:
    generation = json_schema(GenerationConfig, exclude=("out", "source", "render",
                                                           "ray_address"))
    source = json_schema(SourceConfig, exclude=() if with_source else ("source",))
    extra = {"name": NAME if with_source else OPTIONAL_NAME, "hf_token": TOKEN}
    if not with_source:
        extra["preset"] = {"type": "string", "enum": list(PRESETS),
                           "description": "the benchmark corpus"}
    return merged_schema(generation, source, json_schema(RenderConfig), extra=extra,
                         required=("source", "name") if with_source else ("preset",))


def training_body() -> dict:
    training = json_schema(TrainingConfig, exclude=("out",))
    training["properties"].update(name=OPTIONAL_NAME, hf_token=TOKEN)
    return training


def render_preview_body() -> dict:
    # One text drawn once: no rows to vary (api_previews refuses vary_* by name).
    return merged_schema(json_schema(RenderConfig, exclude=tuple(flat_fields(VarietyConfig))),
                         extra={"text": PREVIEW_TEXT},
                         required=("text",))


def chat_inspect_body() -> dict:
    return json_schema(ChatInspectConfig)


def upload_body() -> dict:
    return {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "format": "binary",
                 "description": "a corpus file (JSONL, JSON, CSV, Parquet; optionally .gz) "
                                "with its file name"}}}


# The answer of a request that submits a job (202).
JOB_ACCEPTED = {"type": "object", "required": ["job_id", "kind", "status", "job"],
                "properties": {"job_id": {"type": "string"}, "kind": {"type": "string"},
                               "status": {"type": "string", "enum": list(STATUSES)},
                               "job": {"type": "object"}}}

# The answer of POST /api/training/estimate: ``Estimate.to_dict()`` and the submit warnings.
_BYTES = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
_GIB = {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}}
ESTIMATE = {"type": "object", "required": [
    "model", "device", "parameters", "trainable_parameters", "memory", "peak_bytes",
    "peak_gib", "peak_phase", "phases", "needed_on_gpu_gib", "fits", "step_time", "warnings"],
    "properties": {
        "model": {"type": "string"}, "device": {"type": "string", "enum": ["cuda", "cpu"]},
        "parameters": {"type": "integer"}, "trainable_parameters": {"type": "integer"},
        "sequence_tokens": {"type": "integer"}, "micro_batch": {"type": "integer"},
        "pages_per_example": {"type": "integer"},
        "memory": {**_BYTES, "description": "bytes: the parts of the peak"},
        "memory_gib": _GIB, "peak_bytes": {"type": "integer"}, "peak_gib": {"type": "number"},
        "peak_phase": {"type": "string"}, "phases": {**_BYTES, "description": "each "
                                                      "phase's peak, bytes"},
        "needed_on_gpu_gib": {"type": "number", "description": "the peak with the "
                              "allocator's slack and the CUDA context"},
        "fits": {"type": "object", "additionalProperties": {"type": "boolean"},
                 "description": "GPU size in GB: whether it fits"},
        "step_time": {"type": "array", "items": {"type": "object"}},
        "notes": {"type": "array", "items": {"type": "string"}},
        "warnings": {"type": "array", "items": {"type": "string"}}}}


def compare_body() -> dict:
    """POST /api/compare: 1 to MAX_COMPARED run names."""
    from deepsynth.config.requests import MAX_COMPARED, CompareRequest, body_schema

    schema = body_schema(CompareRequest)
    schema["properties"]["models"].update(minItems=1, maxItems=MAX_COMPARED)
    return schema
