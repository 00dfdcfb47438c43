"""The small REST requests and query parameters, declared once with ``option()``.

Views parse bodies and queries with :func:`parse_body` and :func:`parse_query`; the OpenAPI
document renders the same declarations with :func:`body_schema` and
:func:`query_parameters`, so what is documented is what is validated.

Parsing is strict where a REST client's mistake must not slip through: a boolean is true or
false (never the string "false", which would publish a repository), an integer is an
integer. Ranges and choices are the ``option()``'s. Secret fields (``hf_token``) are parsed
but never serialized (``to_dict`` leaves them out) nor documented as config.
"""

from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass
from typing import Any

from deepsynth.config.schema import TEXT_PATTERN, json_schema
from deepsynth.config.spec import from_dict, hub_repo_id, option
from deepsynth.errors import ConfigError
from deepsynth.jobs.state import STATUSES
from deepsynth.workspace import NAME_PATTERN, NAME_RULE, check_name


def name_rule(value: object) -> str | None:
    """The ``check`` of fields naming a dataset or model: a single folder name."""
    try:
        check_name("name", value)
    except ConfigError:
        return NAME_RULE
    return None


name_rule.pattern = NAME_PATTERN  # what the OpenAPI document states
MAX_SUMMARY_CHARS = 50_000
MAX_IMAGE_BYTES = 10 * 2**20
MAX_IMAGE_CHARS = 64 + 4 * MAX_IMAGE_BYTES // 3 + 4  # base64, after a data: URL's prefix
_BASE64 = re.compile(r"^(?:data:[^,\x00]*,)?(?:[A-Za-z0-9+/]{4})*"
                     r"(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")


def base64_text(value: object) -> str | None:
    """The ``check`` of a base64 field (optionally a data: URL)."""
    if isinstance(value, str) and _BASE64.fullmatch(value):
        return None
    return "must be base64 (optionally a data: URL)"


base64_text.pattern = _BASE64.pattern
_TOKEN_HELP = "Hub token, used in memory only"


# Request bodies.
@dataclass
class EvaluateRequest:
    model: str = option(help="a model trained here, by name", check=name_rule)
    dataset: str = option(help="a generated dataset, by name", check=name_rule)
    split: str | None = option(None, help="the split to evaluate (default: the test split)")
    max_samples: int | None = option(None, min=1, help="evaluate at most this many rows")


@dataclass
class PushRequest:
    repo_id: str = option(help="the Hub repository, ORG/NAME", check=hub_repo_id)
    public: bool = option(False, help="create the repository public (default private)")
    merge: bool = option(True, help="models: merge the adapters into the weights")
    hf_token: str | None = option(None, secret=True, help=_TOKEN_HELP)


@dataclass
class ExportRequest:
    merge: bool = option(True, help="merge the adapters into the weights (false: keep the "
                         "adapter files as they are)")


QA_SAMPLE = 50  # pages render QA reads back unless told (deepsynth qa --sample, the REST body)


@dataclass
class QaRequest:
    sample: int = option(QA_SAMPLE, min=1, max=10_000,
                         help="how many pages to read back with Tesseract")
    seed: int = option(0, min=0, help="which pages: the same seed picks the same pages")


@dataclass
class SummarizeRequest:
    model: str = option(help="a model trained here, by name", check=name_rule)
    text: str | None = option(None, help="the text to summarize (or image)",
                              max_chars=MAX_SUMMARY_CHARS)
    image: str | None = option(None, help="a page to summarize: a base64 PNG, optionally a "
                               "data: URL (or text)", check=base64_text,
                               max_chars=MAX_IMAGE_CHARS)


    compare_with: str | None = option(None, help="also summarize with \"base\" (the model "
                                      "the run was trained from) or another run, by name",
                                      check=name_rule)


MAX_COMPARED = 8


def run_names(value: object) -> str | None:
    """The ``check`` of a list of run names: 1 to :data:`MAX_COMPARED` folder names."""
    if not isinstance(value, list) or not 1 <= len(value) <= MAX_COMPARED:
        return f"must be a list of 1 to {MAX_COMPARED} model names"
    return next((NAME_RULE for item in value if name_rule(item)), None)


run_names.pattern = NAME_PATTERN  # of each item (the OpenAPI document states the count)


@dataclass
class CompareRequest:
    models: list[str] = option(help=f"runs trained here, by name (1 to {MAX_COMPARED})",
                               check=run_names)


CHAT_ROLES = ("system", "user", "assistant")
MAX_MESSAGE_CHARS = 20_000


@dataclass
class ChatMessage:
    role: str = option(help="who speaks", choices=CHAT_ROLES)
    content: str = option(help="what they say", max_chars=MAX_MESSAGE_CHARS)


@dataclass
class ChatGenerateRequest:
    model: str = option(help="a chat model trained here (trainer_type generic), by name",
                        check=name_rule)
    messages: list[ChatMessage] = option(help="the conversation so far, ending with a user "
                                         "message")
    max_new_tokens: int | None = option(None, min=1, max=1024, help="at most this many "
                                        "tokens in the reply (default: the run's own limit)")


@dataclass
class LoraRecommendationRequest:
    num_samples: int = option(min=1, help="how many training samples the run has")


@dataclass
class SourcePreviewRequest:
    source: str = option(help="a path under the data root, builtin:, hf: or preset:")


# Query parameters.
@dataclass
class PageQuery:
    offset: int = option(0, min=0, max=100_000, help="skip this many items")
    limit: int = option(100, min=1, max=1000, help="return at most this many items")


@dataclass
class JobsQuery(PageQuery):
    kind: str | None = option(None, help="only jobs of this kind")
    status: str | None = option(None, choices=STATUSES, help="only jobs in this status")


@dataclass
class LogsQuery:
    tail: int = option(200, min=1, max=10_000, help="the last lines of the log")


@dataclass
class MetricsQuery:
    since: int = option(0, min=0, max=10**9, help="only history records after this step")


@dataclass
class SplitQuery:
    split: str | None = option(None, help="the split (default: the dataset's first)")


@dataclass
class SamplesQuery(SplitQuery):
    offset: int = option(0, min=0, max=100_000, help="the first row")
    limit: int = option(10, min=1, max=100, help="at most this many rows")


@dataclass
class CheckpointsQuery:
    job_id: str | None = option(None, help="a training job's id (or model)")
    model: str | None = option(None, help="a model trained here, by name (or job_id)",
                               check=name_rule)


@dataclass
class EstimateQuery:
    device: str = option("cuda", choices=("cuda", "cpu"), help="where the step runs: cuda "
                         "(GPU memory) or cpu (RAM, whose dropout and attention keep more)")


# Parsing.
def _unwrap(tp: Any) -> tuple[Any, bool]:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if len(typing.get_args(tp)) == 2 and len(args) == 1:
        return args[0], True
    return tp, False


def parse_body(cls: type, data: dict) -> Any:
    """A JSON body as ``cls``: unknown fields refused by name, JSON types (never the string
    "false" for a boolean, which would publish a repository), then the declared ranges and
    choices."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(unknown[0], "is not a known field", ", ".join(fields))
    for name, f in fields.items():
        if name not in data and f.default is dataclasses.MISSING:
            raise ConfigError(name, "is required", f.metadata.get("help"))
    return from_dict(cls, data, strict=True)


def _query_value(name: str, tp: Any, meta: dict, raw: str) -> Any:
    tp, _ = _unwrap(tp)
    if tp is not int:
        return raw
    low, high = meta.get("min"), meta.get("max")
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"must be an integer; got {raw!r}", f"{low}-{high}") from None
    if not low <= value <= high:
        raise ConfigError(name, f"must be between {low} and {high}; got {value}",
                          f"{low}-{high}")
    return value


def parse_query(cls: type, args: typing.Mapping[str, str]) -> Any:
    """Query parameters as ``cls`` (unknown parameters are ignored; an empty string
    parameter is absent)."""
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        raw = args.get(f.name)
        if raw is None or (raw == "" and _unwrap(hints[f.name])[0] is str):
            continue
        values[f.name] = _query_value(f.name, hints[f.name], dict(f.metadata), raw)
    choices = {f.name: f.metadata.get("choices") for f in dataclasses.fields(cls)}
    for name, value in values.items():
        if choices[name] and value not in choices[name]:
            raise ConfigError(name, f"must be one of {', '.join(choices[name])}",
                              ", ".join(choices[name]))
    return from_dict(cls, values)


# Documentation.
def body_schema(cls: type, extra: dict | None = None) -> dict:
    """The JSON Schema of a request body (a secret field is a plain string)."""
    schema = json_schema(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("secret"):
            schema["properties"][f.name] = {"type": ["string", "null"],
                                            "pattern": TEXT_PATTERN,
                                            "description": f.metadata["help"]}
    schema["properties"].update(extra or {})
    return schema


def query_parameters(cls: type) -> list[dict]:
    """The OpenAPI parameters (``in: query``) of a query declaration."""
    found = []
    for name, prop in json_schema(cls)["properties"].items():
        if isinstance(prop.get("type"), list):  # absent, not null, when not given
            prop["type"] = next(t for t in prop["type"] if t != "null")
        if prop.get("default", 0) is None:
            del prop["default"]
        found.append({"name": name, "in": "query", "required": False,
                      "description": prop.pop("description", ""), "schema": prop})
    return found
