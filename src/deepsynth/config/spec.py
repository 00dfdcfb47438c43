"""The machinery behind the configuration tree: typed fields with their ranges, in one place.

Every configuration dataclass declares its fields with :func:`option`, which records the
help text, the allowed choices or range and the CLI flag. From that one declaration we get:

- :func:`from_dict`: parse a JSON-like mapping (REST bodies, manifests) into the dataclass,
  with errors that name the field and what is allowed;
- :func:`validate`: check an instance built in Python;
- :func:`add_arguments` / :func:`from_namespace`: the argparse flags of the CLI;
- :func:`to_dict`: the mapping back (what ``from_dict`` reads).

A field declared with :func:`section` groups fields in a dataclass of their own; outside,
its fields stay flat (one namespace of unique names for mappings, flags and schemas).

So the CLI, the REST API and the UI all parse into the same objects with the same rules.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import types
import typing
from typing import Any, TypeVar

from deepsynth.errors import ConfigError, refusing
from deepsynth.json_input import unstorable

T = TypeVar("T")
# ASCII, as the Hub names repositories (and as the OpenAPI document states it).
_HUB_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


def hub_repo_id(value: str) -> str | None:
    """The ``check`` of fields naming a Hub repository: ORG/NAME, nothing else."""
    ok = isinstance(value, str) and _HUB_REPO_ID.fullmatch(value) and ".." not in value
    return None if ok else "must be ORG/NAME"


def hub_dataset_id(value: str) -> str | None:
    """``hf:org/name`` (or the alias ``HF::org/name``) -> ``org/name``; None when ``value``
    names no Hub dataset. A malformed id is a ConfigError naming ``dataset``."""
    if not isinstance(value, str) or not value.startswith(("hf:", "HF::")):
        return None
    repo = value[4:] if value.startswith("HF::") else value[3:]
    if hub_repo_id(repo):
        raise ConfigError("dataset", f"a Hub dataset must be hf:ORG/NAME; got {value!r}",
                          "a dataset name, or hf:ORG/NAME")
    return repo


def option(
    default: Any = dataclasses.MISSING,
    *,
    help: str,
    choices: tuple[Any, ...] | None = None,
    min: float | None = None,
    max: float | None = None,
    flag: str | None = None,
    cli: bool = True,
    secret: bool = False,
    check: typing.Callable[[Any], str | None] | None = None,
    guide: dict[str, str] | None = None,
    max_chars: int | None = None,
    default_factory: Any = dataclasses.MISSING,
) -> Any:
    """Declare a configuration field with its documentation and its allowed values.

    ``check`` returns an error message (what is allowed) or None for custom rules.
    ``secret`` fields are never serialized by :func:`to_dict`. ``guide`` is advice for
    people choosing a value (``recommended`` range, what it ``costs``), shown by the UI.
    ``max_chars`` caps a string field (default :data:`MAX_STRING`).
    """
    meta = {
        "help": help, "choices": choices, "min": min, "max": max, "flag": flag,
        "cli": cli, "secret": secret, "check": check, "guide": guide,
        "max_chars": max_chars,
    }
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(tp)) == 2:
            return args[0], True
    return tp, False


MAX_INT = 2**63 - 1  # what every integer field fits in (numpy, torch, JSON consumers)
MAX_STRING = 4096  # characters of a string field unless its option() says ``max_chars``


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:40]}... ({len(text)} characters)"


def _to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    raise ConfigError(name, f"must be true or false, got {_short(value)}")


def _to_int(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str, float)):
        raise ConfigError(name, f"must be an integer, got {_short(value)}")
    if isinstance(value, str):  # CLI flags and query strings: digits, or 1e3
        text = value.strip()
        if len(text) > 24:
            raise ConfigError(name, f"must be an integer of at most {MAX_INT}, got "
                              f"{_short(value)}", f"at most {MAX_INT}")
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ConfigError(name, f"must be an integer, got {_short(value)}") from None
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            raise ConfigError(name, f"must be an integer, got {_short(value)}")
        if abs(value) > MAX_INT:
            raise ConfigError(name, f"must be an integer of at most {MAX_INT}",
                              f"at most {MAX_INT}")
        value = int(value)
    if abs(value) > MAX_INT:  # checked on the int itself: never converted to a float
        raise ConfigError(name, f"must be an integer of at most {MAX_INT}", f"at most {MAX_INT}")
    return value


def _to_float(name: str, value: Any) -> float:
    if isinstance(value, bool) or (isinstance(value, int) and abs(value) > MAX_INT):
        raise ConfigError(name, f"must be a finite number, got {_short(value)}")
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        raise ConfigError(name, f"must be a number, got {_short(value)}") from None
    if not math.isfinite(number):
        raise ConfigError(name, f"must be a finite number, got {_short(value)}")
    return number


def _to_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(name, f"must be a string, got {type(value).__name__}")
    problem = unstorable(value)
    if problem:
        raise ConfigError(name, problem, "text without NUL characters or unpaired surrogates")
    return value


_SCALARS = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str}
# What a JSON value of each type is (``strict`` parsing): 5.0 is an integer, as in JSON
# Schema; "5" is a string, never a number.
_JSON_TYPES = {bool: (bool,), int: (int, float), float: (int, float), str: (str,)}


def _check_json_type(name: str, tp: Any, value: Any) -> None:
    wrong = not isinstance(value, _JSON_TYPES[tp]) or (tp is not bool and isinstance(
        value, bool)) or (tp is int and isinstance(value, float) and not value.is_integer())
    if wrong:
        kind = {bool: "true or false", int: "an integer", float: "a number",
                str: "a string"}[tp]
        raise ConfigError(name, f"must be {kind} (JSON), got {_short(value)}", kind)


def _coerce(name: str, tp: Any, value: Any, strict: bool = False) -> Any:
    """Convert ``value`` to ``tp`` or raise a ConfigError naming ``name``; ``strict``: the
    value must already be of the JSON type (a REST body), not text to convert (CLI flags)."""
    tp, optional = _unwrap_optional(tp)
    if value is None:
        if optional:
            return None
        raise ConfigError(name, "must not be null")
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(name, f"must be an object, got {type(value).__name__}")
        return from_dict(tp, value, prefix=f"{name}.", strict=strict)
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if isinstance(value, str) and not strict:
            value = [v for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(name, f"must be a list, got {type(value).__name__}")
        items = [_coerce(f"{name}[{i}]", item_tp, v, strict) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp in _SCALARS:
        if strict:
            _check_json_type(name, tp, value)
        return _SCALARS[tp](name, value)
    return value


def _check_field(name: str, meta: dict[str, Any], value: Any) -> None:
    if value is None:
        return
    choices = meta.get("choices")
    if choices is not None and value not in choices:
        allowed = ", ".join(str(c) for c in choices)
        raise ConfigError(name, f"must be one of {allowed}; got {value!r}", allowed)
    limit = meta.get("max_chars") or MAX_STRING
    if isinstance(value, str) and len(value) > limit:
        raise ConfigError(name, f"is too long ({len(value)} characters)",
                          f"at most {limit} characters")
    lo, hi = meta.get("min"), meta.get("max")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(name, f"must be {_range(lo, hi)}; got {value}",
                              f"{_fmt(lo)}-{_fmt(hi)}" if None not in (lo, hi) else
                              _range(lo, hi))
    check = meta.get("check")
    if check is not None:
        problem = check(value)
        if problem:
            raise ConfigError(name, problem)


def _fmt(bound: float) -> str:
    return str(bound) if isinstance(bound, int) else f"{bound:g}"


def _range(lo: float | None, hi: float | None) -> str:
    if hi is None:
        return f"at least {_fmt(lo)}"
    if lo is None:
        return f"at most {_fmt(hi)}"
    return f"between {_fmt(lo)} and {_fmt(hi)}"


def section(cls: type | None = None, *, help: str) -> Any:
    """Declare a field that groups fields in their own dataclass (``cls``, or required when
    None). A section's fields stay flat outside: the same names in mappings, CLI flags and
    schemas as if they were declared on the parent, so their names must be unique."""
    meta = {"help": help, "section": True}
    if cls is None:
        return dataclasses.field(metadata=meta)
    return dataclasses.field(default_factory=cls, metadata=meta)


def _is_section(f: dataclasses.Field) -> bool:
    return bool(f.metadata.get("section"))


def flat_fields(cls: type) -> dict[str, tuple[dataclasses.Field, Any]]:
    """Every field of ``cls`` by its flat name (sections' fields in their place), with its
    type: what mappings, flags and schemas list."""
    hints = _field_types(cls)
    found: dict[str, tuple[dataclasses.Field, Any]] = {}
    for f in dataclasses.fields(cls):
        inner = flat_fields(hints[f.name]) if _is_section(f) else {f.name: (f, hints[f.name])}
        clash = set(inner) & set(found)
        if clash:
            raise TypeError(f"{cls.__name__}: field {min(clash)} is declared twice")
        found.update(inner)
    return found


def build(cls: type[T], values: dict[str, Any]) -> T:
    """``cls`` from flat values, each section given its own fields; no validation (tests
    and :func:`from_dict` use it). Unknown names raise TypeError."""
    unknown = set(values) - set(flat_fields(cls))
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {min(unknown)}")
    hints = _field_types(cls)
    kwargs = {}
    for f in dataclasses.fields(cls):
        if _is_section(f):
            names = flat_fields(hints[f.name])
            kwargs[f.name] = build(hints[f.name], {k: v for k, v in values.items()
                                                   if k in names})
        elif f.name in values:
            kwargs[f.name] = values[f.name]
    return cls(**kwargs)


def replace(obj: T, **values: Any) -> T:
    """A copy of ``obj`` with flat fields replaced (wherever their section is)."""
    return build(type(obj), {**to_dict(obj, secrets=True), **values})


def from_dict(cls: type[T], data: dict[str, Any], *, prefix: str = "",
              strict: bool = False) -> T:
    """Build ``cls`` from a (flat) mapping; unknown keys and bad values raise ConfigError.
    ``strict``: JSON (a REST body): values must have their JSON types (see _coerce)."""
    if not isinstance(data, dict):
        raise ConfigError(prefix.rstrip(".") or cls.__name__, "must be an object")
    fields = flat_fields(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            prefix + unknown[0], f"is not a known field; allowed: {', '.join(sorted(fields))}"
        )
    for name, (f, _) in fields.items():
        if name not in data and f.default is dataclasses.MISSING and (
                f.default_factory is dataclasses.MISSING):
            raise ConfigError(prefix + name, f"is required: {f.metadata.get('help', '')}")
    kwargs = {k: _coerce(prefix + k, fields[k][1], v, strict) for k, v in data.items()}
    obj = build(cls, kwargs)
    validate(obj, prefix=prefix)
    return obj


def validate(obj: Any, *, prefix: str = "") -> None:
    """Check every field of ``obj`` (recursively) against its declared range and choices;
    sections' fields are named flat, nested configs' as ``outer.inner``. A refusal of its
    ``check()`` (the rules between fields) is a ConfigRefused."""
    hints = _field_types(type(obj))
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        if _is_section(f):
            validate(value, prefix=prefix)
            continue
        name = prefix + f.name
        if dataclasses.is_dataclass(value):
            validate(value, prefix=f"{name}.")
            continue
        value = _coerce(name, hints[f.name], value)
        _check_field(name, dict(f.metadata), value)
    post = getattr(obj, "check", None)
    if callable(post):
        with refusing():  # each value is allowed; together they are not
            post()


def to_dict(obj: Any, *, secrets: bool = False) -> dict[str, Any]:
    """Serialize a config to plain JSON types, sections flat, leaving out secret fields
    (unless ``secrets``): the mapping :func:`from_dict` parses back."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(obj):
        if f.metadata.get("secret") and not secrets:
            continue
        value = getattr(obj, f.name)
        if _is_section(f):
            out.update(to_dict(value, secrets=secrets))
            continue
        if dataclasses.is_dataclass(value):
            value = to_dict(value, secrets=secrets)
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def add_arguments(parser: argparse.ArgumentParser | Any, cls: type) -> None:
    """Add one ``--flag`` per CLI field of ``cls``; values stay strings until parsed."""
    for f, hint in flat_fields(cls).values():
        if not f.metadata.get("cli", True):
            continue
        tp, _ = _unwrap_optional(hint)
        flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
        kwargs: dict[str, Any] = {"dest": f.name, "default": None, "help": f.metadata["help"]}
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kwargs["required"] = True
        if f.default is not dataclasses.MISSING and f.default is not None:
            kwargs["help"] += f" (default: {f.default})"
        if tp is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(tp) in (list, tuple):
            kwargs["action"] = "append"
        if f.metadata.get("choices") and tp is str:
            kwargs["choices"] = f.metadata["choices"]
        parser.add_argument(flag, **kwargs)


def from_namespace(cls: type[T], ns: argparse.Namespace, **overrides: Any) -> T:
    """Build ``cls`` from parsed CLI flags: flags not given keep the dataclass defaults."""
    names = set(flat_fields(cls))
    data = {k: v for k, v in vars(ns).items() if k in names and v is not None}
    data.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(cls, data)
