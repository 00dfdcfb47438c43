"""JSON Schema of configuration dataclasses, from the same field declarations that validate
them (types, choices, ranges, required fields): the API's OpenAPI document uses it."""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from deepsynth.config.spec import MAX_INT, MAX_STRING, flat_fields


def _type_schema(tp: Any) -> dict:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(tp) if a is not type(None)]
        inner = _type_schema(options[0])
        return {**inner, "type": [inner["type"], "null"]} if "type" in inner else inner
    if origin in (list, tuple):
        (item,) = typing.get_args(tp)[:1] or (str,)
        return {"type": "array", "items": _type_schema(item)}
    if dataclasses.is_dataclass(tp):
        return json_schema(tp)
    return {"type": {bool: "boolean", int: "integer", float: "number", str: "string"}.get(
        tp, "string")}


def _limits(schema: dict, meta: dict) -> None:
    """What every field of its type is held to beyond its own range (see spec's coercion)."""
    kinds = schema["type"] if isinstance(schema.get("type"), list) else [schema.get("type")]
    if "string" in kinds:
        schema["maxLength"] = meta.get("max_chars") or MAX_STRING
    if "integer" in kinds:
        schema.setdefault("minimum", -MAX_INT)
        schema.setdefault("maximum", MAX_INT)


def json_schema(cls: type, exclude: tuple[str, ...] = ()) -> dict:
    """The object schema of ``cls``: unknown fields are not allowed, as in ``from_dict``.
    Sections are flat, as ``from_dict`` reads them: one property per field."""
    properties, required = {}, []
    for f, hint in flat_fields(cls).values():
        if f.name in exclude or f.metadata.get("secret"):
            continue
        schema = _type_schema(hint)
        schema["description"] = f.metadata.get("help", "")
        if f.metadata.get("choices"):
            schema["enum"] = list(f.metadata["choices"])
        if f.metadata.get("min") is not None:
            schema["minimum"] = f.metadata["min"]
        if f.metadata.get("max") is not None:
            schema["maximum"] = f.metadata["max"]
        _limits(schema, f.metadata)
        if f.metadata.get("guide"):
            schema["x-guide"] = dict(f.metadata["guide"])
        if f.default is not dataclasses.MISSING and not dataclasses.is_dataclass(f.default):
            schema["default"] = f.default
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(f.name)
        properties[f.name] = schema
    return {"type": "object", "properties": properties, "required": required,
            "additionalProperties": False}


def merged_schema(*parts: dict, extra: dict | None = None,
                  required: tuple[str, ...] = ()) -> dict:
    """One flat object schema from several (a request that mixes config sections)."""
    properties: dict = {}
    for part in parts:
        properties.update(part["properties"])
    properties.update(extra or {})
    return {"type": "object", "properties": properties, "required": list(required),
            "additionalProperties": False}
