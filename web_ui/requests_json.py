"""Reading request bodies and queries into plain values, with 400s that name the field."""

from __future__ import annotations

from flask import request

from deepsynth.errors import ConfigError


def body() -> dict:
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ConfigError("body", "must be a JSON object (Content-Type: application/json)",
                          "a JSON object")
    return data


def int_arg(name: str, default: int, low: int = 0, high: int = 100_000) -> int:
    raw = request.args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be an integer; got {raw!r}", f"{low}-{high}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low} and {high}; got {value}",
                          f"{low}-{high}")
    return value


def page(items: list, key: str) -> dict:
    offset, limit = int_arg("offset", 0), int_arg("limit", 100, 1, 1000)
    return {key: items[offset:offset + limit], "total": len(items), "offset": offset,
            "limit": limit}


def only(data: dict, allowed: tuple[str, ...]) -> dict:
    """Refuse fields a request does not take, naming the first one."""
    unknown = sorted(set(data) - set(allowed))
    if unknown:
        raise ConfigError(unknown[0], "is not a known field", ", ".join(allowed))
    return data


def flag(data: dict, name: str, default: bool) -> bool:
    """A boolean field: true or false, never a string that merely looks like one."""
    value = data.get(name, default)
    if not isinstance(value, bool):
        raise ConfigError(name, f"must be true or false; got {value!r}", "true, false")
    return value


def optional_string(data: dict, name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ConfigError(name, f"must be a string; got {type(value).__name__}", "a string")
    return value
