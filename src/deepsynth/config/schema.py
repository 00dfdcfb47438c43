"""JSON Schema of configuration dataclasses, from the same field declarations that validate
them (types, choices, ranges, required fields, string rules): the API's OpenAPI document
uses it.

What parsing holds every field of a type to is stated too: strings have at most
:data:`MAX_STRING` characters (or the field's ``max_chars``) and no NUL character, integers
fit in 64 bits. A field's ``check`` (a function) is stated as a pattern: the function's
``pattern`` attribute, or its entry in :data:`CHECK_PATTERNS`; every check has one.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any

from deepsynth.config.spec import MAX_INT, MAX_STRING, flat_fields, hub_repo_id
from deepsynth.models.random_spec import PREFIX, REAL_MODELS, check_model_spec, real_depth

# Strings that can be stored: JSON allows "\u0000", parsing refuses it (see json_input).
TEXT_PATTERN = r"^[^\x00]*$"
# spec.hub_repo_id's rule: ORG/NAME, no "..".
HUB_ID_PATTERN = r"^(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$"
_SIDE = r"0{0,2}(?:12[89]|1[3-9][0-9]|[2-9][0-9]{2})|0?(?:[1-3][0-9]{3}|40[0-8][0-9]|409[0-6])"


def _model_pattern() -> str:
    """``check_model_spec``'s rule: anything not ``random:``, or a real model's spec with
    ``?layers=N`` (N from 1 to its depth; the digits as parse_random_spec reads them)."""
    depths = {name: real_depth(name) for name in REAL_MODELS}
    specs = "|".join(
        name.replace(".", r"\.") + r"(?:\?layers=(?=[0-9]{1,4}$)0*(?:"
        + "|".join(str(n) for n in range(depth, 0, -1)) + "))?"
        for name, depth in depths.items())
    return rf"^(?:(?!{PREFIX})[^\x00]*|{PREFIX}(?:{specs}))$"  # plain names: no escapes


# The checks of config fields, by function or (for a module's private check) by field name.
CHECK_PATTERNS: dict[Any, str] = {
    hub_repo_id: HUB_ID_PATTERN,
    check_model_spec: _model_pattern(),
    "page_size": rf"^(?:tiny|small|base|large|(?:{_SIDE})x(?:{_SIDE}))$",  # 128-4096 a side
    "splits": r"^[A-Za-z][A-Za-z0-9_]*$",  # each split's name
}


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


def _kinds(schema: dict) -> list:
    return schema["type"] if isinstance(schema.get("type"), list) else [schema.get("type")]


def _limits(schema: dict, meta: dict, pattern: str | None = None) -> None:
    """What every value of its type is held to beyond its own range (see spec's coercion),
    and the pattern of the field's check."""
    kinds = _kinds(schema)
    if "string" in kinds:
        schema["maxLength"] = meta.get("max_chars") or MAX_STRING
        if pattern:
            schema["pattern"] = pattern  # every check's pattern refuses NUL itself
        elif "enum" not in schema:
            schema["pattern"] = TEXT_PATTERN
    if "integer" in kinds:
        schema.setdefault("minimum", -MAX_INT)
        schema.setdefault("maximum", MAX_INT)
    if "array" in kinds:
        _limits(schema["items"], {}, pattern)


def check_pattern(name: str, meta: dict) -> str | None:
    """The pattern stating a field's ``check``; a check without one is a bug here."""
    check = meta.get("check")
    if check is None:
        return None
    pattern = (getattr(check, "pattern", None) or CHECK_PATTERNS.get(check)
               or CHECK_PATTERNS.get(name))
    if pattern is None:
        raise TypeError(f"field {name}: its check has no pattern in CHECK_PATTERNS")
    return pattern


def field_schema(name: str, f: dataclasses.Field, hint: Any) -> dict:
    """The schema of one declared field."""
    schema = _type_schema(hint)
    schema["description"] = f.metadata.get("help", "")
    if f.metadata.get("choices"):
        schema["enum"] = list(f.metadata["choices"]) + (
            [None] if "null" in _kinds(schema) else [])
    if f.metadata.get("min") is not None:
        schema["minimum"] = f.metadata["min"]
    if f.metadata.get("max") is not None:
        schema["maximum"] = f.metadata["max"]
    _limits(schema, f.metadata, check_pattern(name, f.metadata))
    if f.metadata.get("guide"):
        schema["x-guide"] = dict(f.metadata["guide"])
    if f.default is not dataclasses.MISSING and not dataclasses.is_dataclass(f.default):
        schema["default"] = f.default
    return schema


def json_schema(cls: type, exclude: tuple[str, ...] = ()) -> dict:
    """The object schema of ``cls``: unknown fields are not allowed, as in ``from_dict``.
    Sections are flat, as ``from_dict`` reads them: one property per field."""
    properties, required = {}, []
    for name, (f, hint) in flat_fields(cls).items():
        if name in exclude or f.metadata.get("secret"):
            continue
        properties[name] = field_schema(name, f, hint)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            required.append(name)
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
