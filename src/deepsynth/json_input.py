"""JSON from outside (request bodies, lines of user files) parsed with limits: a nesting depth,
and strings that can be stored (no unpaired surrogates, no NUL characters).

``json.loads`` alone accepts ``"\\ud800"`` (a string that no UTF-8 file can hold, so writing
it later fails) and raises RecursionError, not ValueError, on deep nesting.
"""

from __future__ import annotations

import json
import re
from typing import Any

from deepsynth.errors import ConfigError

MAX_DEPTH = 32
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def unstorable(text: str) -> str | None:
    """Why ``text`` cannot be stored as UTF-8 text, or None."""
    found = _UNSTORABLE.search(text)
    if found is None:
        return None
    return "holds a NUL character" if found.group() == "\x00" else \
        "holds an unpaired surrogate (not valid Unicode)"


def load_json(text: str | bytes, field: str = "body") -> Any:
    """Parse JSON text; errors are ConfigErrors naming ``field``."""
    try:
        return json.loads(text)
    except RecursionError:
        raise ConfigError(field, f"is nested too deeply (at most {MAX_DEPTH} levels)",
                          f"at most {MAX_DEPTH} levels of nesting") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ConfigError(field, f"is not valid JSON ({exc})", "a JSON object") from None


def check_json(value: Any, field: str = "body", max_depth: int = MAX_DEPTH) -> None:
    """Walk ``value`` (without recursion): a ConfigError names the first key path whose
    string cannot be stored, or where nesting goes deeper than ``max_depth``."""
    pending = [(value, None, 0)]
    while pending:
        item, path, depth = pending.pop()
        if depth > max_depth:
            raise ConfigError(path or field, f"is nested too deeply (at most {max_depth} "
                              "levels)", f"at most {max_depth} levels of nesting")
        if isinstance(item, str):
            problem = unstorable(item)
            if problem:
                raise ConfigError(path or field, problem, "text without NUL characters or "
                                  "unpaired surrogates")
        elif isinstance(item, dict):
            for key, child in item.items():
                problem = unstorable(key)
                if problem:
                    raise ConfigError(field, f"has a key that {problem}", "plain keys")
                pending.append((child, key if path is None else f"{path}.{key}", depth + 1))
        elif isinstance(item, list):
            for index, child in enumerate(item):
                pending.append((child, f"{path or field}[{index}]", depth + 1))


def load_checked_json(text: str | bytes, field: str = "body") -> Any:
    value = load_json(text, field)
    check_json(value, field)
    return value
