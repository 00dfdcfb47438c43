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
