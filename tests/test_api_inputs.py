"""Every endpoint with good and bad input, table-driven, on a real waitress server.

For each rule of the app's URL map the table holds at least one good request (2xx) and bad
ones: wrong types, out-of-range values, unknown fields, unknown presets and models, missing
fields, malformed and non-object JSON bodies, path escapes in names (``..``, absolute paths,
``%2F``) and ids that do not exist. A bad value is a 400 ``{"error", "field", "allowed"}``
naming the field, a missing resource a 404, a conflict a 409, and nothing is ever a 500.
``test_every_rule_is_covered`` fails when a rule of the URL map has no good or no bad case,
so a new endpoint without tests fails CI.

The server runs with both capacities at 0: accepted jobs only queue, so nothing heavy runs
and no Hub is contacted.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import shutil
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from conftest import articles, write_jsonl
from support.server import Client, running, wait_job

from deepsynth.config.server import ServerConfig

TOKEN = "inputs-test-token"
NO_BODY = object()
PAGES = ("/", "/custom", "/datasets", "/train", "/monitor", "/models", "/playground",
         "/compare")


@dataclasses.dataclass(frozen=True)
class Multipart:
    filename: str
    content: bytes = b'{"article": "a", "highlights": "b"}\n'


@dataclasses.dataclass(frozen=True)
class Case:
    method: str
    rule: str  # the URL rule exercised, as in app.url_map
    path: str  # may hold {placeholders} filled with the fixture's job ids
    body: Any = NO_BODY  # JSON-encoded, or raw bytes, or a Multipart upload
    status: int = 200
    field: str | None = None  # the field a 400 (or 401) must name
    label: str = ""
    content_type: str | None = None  # of raw bytes bodies (default application/json)
    server: str = "open"  # or "token": the server with an API token

    @property
    def good(self) -> bool:
        return self.status < 300


def good(method, rule, path, body=NO_BODY, status=200, label="", **kw) -> Case:
    return Case(method, rule, path, body, status, label=label or "good", **kw)


def bad(method, rule, path, body=NO_BODY, status=400, field=None, label="", **kw) -> Case:
    if status == 400:
        assert field, f"a 400 case must name its field: {method} {path} {body}"
    return Case(method, rule, path, body, status, field, label or "bad", **kw)


MALFORMED = b'{"text": "unterminated'


def body_cases(method: str, rule: str, path: str) -> list[Case]:
    """Malformed JSON, non-object JSON and a JSON body sent as text/plain: 400 body."""
    return [bad(method, rule, path, MALFORMED, field="body", label="malformed JSON"),
            bad(method, rule, path, [1, 2], field="body", label="JSON array"),
            bad(method, rule, path, b"null", field="body", label="JSON null"),
            bad(method, rule, path, b'{"a": 1}', field="body", label="text/plain",
                content_type="text/plain")]


def generate(name: str, **extra) -> dict:
    return {"source": "uploads/x.jsonl", "text_field": "article",
            "summary_field": "highlights", "id_field": "id", "name": name,
            "page_size": "tiny", "workers": 1, **extra}


def train(name: str, **extra) -> dict:
    return {"dataset": "ds", "preset": "quick_test", "max_steps": 2, "name": name, **extra}


R_BENCH, R_GEN = "/api/benchmark/create", "/api/dataset/generate"
R_TRAIN, R_EVAL, R_SUM = "/api/model/train", "/api/evaluate", "/api/summarize"
R_RENDER, R_SOURCE, R_UPLOAD = "/api/render/preview", "/api/sources/preview", "/api/uploads"
R_JOB, R_ACT = "/api/jobs/<job_id>", "/api/jobs/<job_id>/<any(pause, resume, cancel):action>"
R_DATASET, R_MODEL = "/api/datasets/<dataset:name>", "/api/models/<name>"
R_SAMPLES = "/api/datasets/<dataset:name>/samples"
R_PNG = "/api/datasets/<dataset:name>/samples/<int:index>/pages/<int:page>.png"
R_DPUSH, R_MPUSH = "/api/datasets/<dataset:name>/push", "/api/models/<name>/push"
R_MEXPORT, R_DQA = "/api/models/<name>/export", "/api/datasets/<dataset:name>/qa"
R_CKPT, R_LORA = "/api/training/checkpoints", "/api/lora/presets/recommended"
R_ESTIMATE = "/api/training/estimate"
R_OPTIMAL = "/api/training/optimal-config/<preset>"
R_CHATV, R_CHATP = "/api/chat/validate", "/api/chat/preview"
R_CHATG, R_COMPARE, R_CONFIG = "/api/chat/generate", "/api/compare", "/api/models/<name>/config"
HELLO = [{"role": "user", "content": "Hello?"}]
CHAT = {"source": "uploads/chat.jsonl"}

CASES: list[Case] = [
    # Read-only listings without input: good, and a method they do not allow.
    good("GET", "/api/health", "/api/health"),
    bad("POST", "/api/health", "/api/health", {}, 405),
    good("GET", "/api/resources", "/api/resources"),
    bad("POST", "/api/resources", "/api/resources", {}, 405),
    good("GET", "/api/openapi.json", "/api/openapi.json"),
    bad("POST", "/api/openapi.json", "/api/openapi.json", {}, 405),
    good("GET", "/api/datasets/presets", "/api/datasets/presets"),
    bad("POST", "/api/datasets/presets", "/api/datasets/presets", {}, 405),
    good("GET", "/api/training/presets", "/api/training/presets"),
    bad("POST", "/api/training/presets", "/api/training/presets", {}, 405),
    good("GET", "/api/lora/presets", "/api/lora/presets"),
    bad("POST", "/api/lora/presets", "/api/lora/presets", {}, 405),
    # Paged listings.
    good("GET", "/api/models", "/api/models?limit=5"),
    bad("GET", "/api/models", "/api/models?limit=0", field="limit"),
    bad("GET", "/api/models", "/api/models?limit=x", field="limit"),
    bad("GET", "/api/models", "/api/models?offset=-1", field="offset"),
    good("GET", "/api/datasets", "/api/datasets?offset=0&limit=1000"),
    bad("GET", "/api/datasets", "/api/datasets?limit=1001", field="limit"),
    bad("GET", "/api/datasets", "/api/datasets?offset=abc", field="offset"),
    good("GET", "/api/jobs", "/api/jobs?kind=generate&status=completed&limit=3"),
    bad("GET", "/api/jobs", "/api/jobs?status=nope", field="status"),
    bad("GET", "/api/jobs", "/api/jobs?limit=1001", field="limit"),
    bad("GET", "/api/jobs", "/api/jobs?offset=1.5", field="offset"),
    # One job.
    good("GET", R_JOB, "/api/jobs/{gen_job}"),
    bad("GET", R_JOB, "/api/jobs/generate-20000101-000000-abcdef", status=404),
    bad("GET", R_JOB, "/api/jobs/..", status=404, label="dot-dot"),
    bad("GET", R_JOB, "/api/jobs/%2e%2e", status=404, label="encoded dot-dot"),
    bad("GET", R_JOB, "/api/jobs/..%2F..%2Fdatasets", status=404, label="%2F escape"),
    good("DELETE", R_JOB, "/api/jobs/{cancelled}"),
    bad("DELETE", R_JOB, "/api/jobs/no-such-job", status=404),
    bad("DELETE", R_JOB, "/api/jobs/.hidden", status=404),
    good("GET", "/api/jobs/<job_id>/logs", "/api/jobs/{gen_job}/logs?tail=5"),
    bad("GET", "/api/jobs/<job_id>/logs", "/api/jobs/{gen_job}/logs?tail=0", field="tail"),
    bad("GET", "/api/jobs/<job_id>/logs", "/api/jobs/{gen_job}/logs?tail=x", field="tail"),
    bad("GET", "/api/jobs/<job_id>/logs", "/api/jobs/no-such-job/logs", status=404),
    good("POST", R_ACT, "/api/jobs/{to_cancel}/cancel", label="cancel a queued job"),
    bad("POST", R_ACT, "/api/jobs/{gen_job}/pause", status=409, label="pause completed"),
    bad("POST", R_ACT, "/api/jobs/{gen_job}/resume", status=409, label="resume completed"),
    bad("POST", R_ACT, "/api/jobs/{gen_job}/cancel", status=409, label="cancel completed"),
    good("POST", R_ACT, "/api/jobs/{queued_gen}/pause", label="pause (hold) queued"),
    bad("POST", R_ACT, "/api/jobs/{gen_job}/explode", status=404, label="unknown action"),
    bad("POST", R_ACT, "/api/jobs/no-such-job/pause", status=404),
    good("GET", "/api/metrics/<job_id>", "/api/metrics/{train_job}?since=1"),
    bad("GET", "/api/metrics/<job_id>", "/api/metrics/{train_job}?since=-1", field="since"),
    bad("GET", "/api/metrics/<job_id>", "/api/metrics/{train_job}?since=x", field="since"),
    bad("GET", "/api/metrics/<job_id>", "/api/metrics/{gen_job}", status=404,
        label="not a training job"),
    bad("GET", "/api/metrics/<job_id>", "/api/metrics/no-such-job", status=404),
    good("GET", "/api/jobs/<job_id>/samples", "/api/jobs/{train_job}/samples"),
    bad("GET", "/api/jobs/<job_id>/samples", "/api/jobs/no-such-job/samples", status=404),
    good("GET", "/api/jobs/<job_id>/events", "/api/jobs/{gen_job}/events"),
    bad("GET", "/api/jobs/<job_id>/events", "/api/jobs/no-such-job/events", status=404),
    # Benchmark datasets.
    good("POST", R_BENCH, R_BENCH, {"preset": "scitldr", "name": "bench-good",
                                     "max_samples": 2, "page_size": "tiny"}, 202),
    bad("POST", R_BENCH, R_BENCH, {}, field="preset", label="missing preset"),
    bad("POST", R_BENCH, R_BENCH, {"preset": "nope"}, field="preset"),
    bad("POST", R_BENCH, R_BENCH, {"preset": 5}, field="preset"),
    bad("POST", R_BENCH, R_BENCH, {"preset": ["scitldr"]}, field="preset"),
    bad("POST", R_BENCH, R_BENCH, {"preset": {"a": 1}}, field="preset"),
    bad("POST", R_BENCH, R_BENCH, {"preset": "scitldr", "name": "../escape"}, field="name"),
    bad("POST", R_BENCH, R_BENCH, {"preset": "scitldr", "name": "/abs"}, field="name"),
    bad("POST", R_BENCH, R_BENCH, {"preset": "scitldr", "name": "a%2Fb"}, field="name"),
    bad("POST", R_BENCH, R_BENCH, {"preset": "scitldr", "name": 7}, field="name"),
    bad("POST", R_BENCH, R_BENCH, {"preset": "scitldr", "name": "b1", "max_samples": -3},
        field="source.max_samples"),
    bad("POST", R_BENCH, R_BENCH, {"preset": "scitldr", "name": "b2", "max_samples": "many"},
        field="source.max_samples"),
    bad("POST", R_BENCH, R_BENCH, {"preset": "scitldr", "name": "b3", "font_size": 1000},
        field="render.font_size"),
    bad("POST", R_BENCH, R_BENCH, {"preset": "scitldr", "name": "b4", "page_size": "9x9"},
        field="render.page_size"),
    bad("POST", R_BENCH, R_BENCH, {"preset": "scitldr", "name": "b5", "workers": 0},
        field="workers"),
    bad("POST", R_BENCH, R_BENCH, {"preset": "scitldr", "name": "b6", "colour": "red"},
        field="colour", label="unknown field"),
    bad("POST", R_BENCH, R_BENCH, {"preset": "scitldr", "name": "queued-ds"}, 409,
        label="the same output twice"),
    bad("POST", R_BENCH, R_BENCH, {"preset": "scitldr", "name": "b7", "out": "/tmp/else"},
        field="out"),
    bad("POST", R_BENCH, R_BENCH, {"preset": "scitldr", "name": "b8",
                                   "source": "/etc/passwd"}, field="source"),
    *body_cases("POST", R_BENCH, R_BENCH),
    # Custom datasets.
    good("POST", R_GEN, R_GEN, generate("gen-good", shard_size=5), 202),
    bad("POST", R_GEN, R_GEN, {"source": "uploads/x.jsonl"}, field="name",
        label="missing name"),
    bad("POST", R_GEN, R_GEN, {"name": "g1"}, field="source", label="missing source"),
    bad("POST", R_GEN, R_GEN, {"name": "g1", "source": 5}, field="source"),
    bad("POST", R_GEN, R_GEN, generate("g1", source="/etc/passwd"), status=404, field="source"),
    bad("POST", R_GEN, R_GEN, generate("g1", source="../../etc/passwd"),
        status=404, field="source"),
    bad("POST", R_GEN, R_GEN, generate("g1", source="uploads/../../x.jsonl"),
        status=404, field="source"),
    bad("POST", R_GEN, R_GEN, generate(".."), field="name"),
    bad("POST", R_GEN, R_GEN, generate("a/b"), field="name"),
    bad("POST", R_GEN, R_GEN, generate(""), field="name"),
    bad("POST", R_GEN, R_GEN, generate("x" * 101), field="name", label="too long"),
    bad("POST", R_GEN, R_GEN, generate("g1", shard_size=-1), field="shard_size"),
    bad("POST", R_GEN, R_GEN, generate("g1", shard_size="five"), field="shard_size"),
    bad("POST", R_GEN, R_GEN, generate("g1", workers=0), field="workers"),
    bad("POST", R_GEN, R_GEN, generate("g1", page_size="-5x-5"), field="render.page_size"),
    bad("POST", R_GEN, R_GEN, generate("g1", margin=-1), field="render.margin"),
    bad("POST", R_GEN, R_GEN, generate("g1", color_mode="cmyk"), field="render.color_mode"),
    bad("POST", R_GEN, R_GEN, generate("g1", overflow="nope"), field="render.overflow"),
    bad("POST", R_GEN, R_GEN, generate("g1", vary_font_size_min=12),
        status=422, field="vary_font_size_max", label="half a variety range"),
    bad("POST", R_GEN, R_GEN, generate("g1", vary_margin_min=9, vary_margin_max=3),
        status=422, field="vary_margin_min"),
    bad("POST", R_GEN, R_GEN, generate("g1", vary_fonts="DejaVuSans"),
        field="render.vary_fonts", label="fonts not a list"),
    bad("POST", R_GEN, R_GEN, generate("g1", vary_fonts=["../../etc/x.ttf"]), status=404,
        field="vary_fonts", label="a variety font outside the data root"),
    bad("POST", R_GEN, R_GEN, generate("g1", qa_sample=-1), field="qa_sample"),
    bad("POST", R_GEN, R_GEN, generate("g1", validation_fraction=2),
        field="source.validation_fraction"),
    bad("POST", R_GEN, R_GEN, generate("g1", validation_fraction=-0.1),
        field="source.validation_fraction"),
    bad("POST", R_GEN, R_GEN, generate("g1", dedup="maybe"), field="dedup"),
    bad("POST", R_GEN, R_GEN, generate("g1", text_field=5), field="source.text_field"),
    bad("POST", R_GEN, R_GEN, generate("g1", splits=["../x"]), field="source.splits"),
    bad("POST", R_GEN, R_GEN, generate("g1", on_error="ignore"), field="source.on_error"),
    bad("POST", R_GEN, R_GEN, generate("g1", push_to_hub="not-a-repo"), field="push_to_hub"),
    bad("POST", R_GEN, R_GEN, generate("g1", colour="red"), field="colour",
        label="unknown field"),
    bad("POST", R_GEN, R_GEN, generate("queued-ds"), 409, label="the same output twice"),
    bad("POST", R_GEN, R_GEN, generate("g2", source="preset:nope"), field="source",
        label="unknown preset"),
    bad("POST", R_GEN, R_GEN, generate("g3", source="uploads/missing.jsonl"),
        status=404, field="source", label="missing file"),
    bad("POST", R_GEN, R_GEN, generate("g4", render={"font_size": 1000}),
        field="render", label="nested render"),
    bad("POST", R_GEN, R_GEN, generate("g5", out="/tmp/elsewhere"), field="out"),
    bad("POST", R_GEN, R_GEN, generate("g1", engine="spark"), field="engine"),
    bad("POST", R_GEN, R_GEN, generate("g1", engine="ray", ray_address="127.0.0.1:6379"),
        field="ray_address", label="the cluster is the service's"),
    bad("POST", R_GEN, R_GEN, generate("g6", line_spacing="nan"),
        field="render.line_spacing"),
    *body_cases("POST", R_GEN, R_GEN),
    # Datasets.
    good("GET", R_DATASET, "/api/datasets/ds"),
    bad("GET", R_DATASET, "/api/datasets/nope", status=404),
    bad("GET", R_DATASET, "/api/datasets/..", field="name"),
    bad("GET", R_DATASET, "/api/datasets/%2e%2e", field="name"),
    bad("GET", R_DATASET, "/api/datasets/..%2F..", status=404, label="%2F escape"),
    good("DELETE", R_DATASET, "/api/datasets/ds-del"),
    bad("DELETE", R_DATASET, "/api/datasets/nope", status=404),
    bad("DELETE", R_DATASET, "/api/datasets/..", field="name"),
    bad("DELETE", R_DATASET, "/api/datasets/..%2Fjobs", status=404, label="%2F escape"),
    bad("DELETE", R_DATASET, "/api/datasets/ds-busy", status=409, label="in use"),
    good("GET", R_SAMPLES, "/api/datasets/ds/samples?split=train&limit=2"),
    bad("GET", R_SAMPLES, "/api/datasets/nope/samples", status=404),
    bad("GET", R_SAMPLES, "/api/datasets/../samples", field="name"),
    bad("GET", R_SAMPLES, "/api/datasets/..%2Fjobs/samples", status=404, label="%2F escape"),
    bad("GET", R_SAMPLES, "/api/datasets/ds/samples?limit=101", field="limit"),
    bad("GET", R_SAMPLES, "/api/datasets/ds/samples?offset=-1", field="offset"),
    bad("GET", R_SAMPLES, "/api/datasets/ds/samples?split=nope", status=404, field="split"),
    good("GET", R_PNG, "/api/datasets/ds/samples/0/pages/0.png?split=train"),
    bad("GET", R_PNG, "/api/datasets/ds/samples/0/pages/0.png?split=nope",
        status=404, field="split"),
    bad("GET", R_PNG, "/api/datasets/ds/samples/99/pages/0.png", status=404),
    bad("GET", R_PNG, "/api/datasets/ds/samples/0/pages/99.png", status=404),
    bad("GET", R_PNG, "/api/datasets/ds/samples/-1/pages/0.png", status=404),
    bad("GET", R_PNG, "/api/datasets/nope/samples/0/pages/0.png", status=404),
    bad("GET", R_PNG, "/api/datasets/../samples/0/pages/0.png", field="name"),
    good("POST", R_DPUSH, "/api/datasets/ds/push", {"repo_id": "me/ds"}, 202),
    bad("POST", R_DPUSH, "/api/datasets/ds/push", {}, field="repo_id"),
    bad("POST", R_DPUSH, "/api/datasets/ds/push", {"repo_id": "no-slash"}, field="repo_id"),
    bad("POST", R_DPUSH, "/api/datasets/ds/push", {"repo_id": "a/b/c"}, field="repo_id"),
    bad("POST", R_DPUSH, "/api/datasets/ds/push", {"repo_id": 5}, field="repo_id"),
    bad("POST", R_DPUSH, "/api/datasets/ds/push", {"repo_id": "me/ds", "foo": 1},
        field="foo", label="unknown field"),
    bad("POST", R_DPUSH, "/api/datasets/nope/push", {"repo_id": "me/ds"}, 404),
    bad("POST", R_DPUSH, "/api/datasets/../push", {"repo_id": "me/ds"}, field="name"),
    bad("POST", R_DPUSH, "/api/datasets/ds-busy/push", {"repo_id": "me/ds"}, 409,
        label="the same push twice"),
    bad("POST", R_DPUSH, "/api/datasets/ds-pub/push", {"repo_id": "me/ds", "public": "false"},
        field="public", label="string boolean"),
    *body_cases("POST", R_DPUSH, "/api/datasets/ds/push"),
    good("POST", R_DQA, "/api/datasets/ds/qa", {"sample": 5, "seed": 1}, 202),
    bad("POST", R_DQA, "/api/datasets/ds/qa", {"sample": 0}, field="sample"),
    bad("POST", R_DQA, "/api/datasets/ds/qa", {"sample": 10_001}, field="sample"),
    bad("POST", R_DQA, "/api/datasets/ds/qa", {"sample": "5"}, field="sample"),
    bad("POST", R_DQA, "/api/datasets/ds/qa", {"seed": -1}, field="seed"),
    bad("POST", R_DQA, "/api/datasets/ds/qa", {"pages": 5}, field="pages",
        label="unknown field"),
    bad("POST", R_DQA, "/api/datasets/nope/qa", {}, 404),
    bad("POST", R_DQA, "/api/datasets/../qa", {}, field="name"),
    bad("POST", R_DQA, "/api/datasets/ds-busy/qa", {}, 409, label="QA twice"),
    *body_cases("POST", R_DQA, "/api/datasets/ds/qa"),
    # Previews and uploads.
    good("POST", R_RENDER, R_RENDER, {"text": "Hello, world.", "page_size": "tiny"}),
    bad("POST", R_RENDER, R_RENDER, {"page_size": "tiny"}, field="text", label="no text"),
    bad("POST", R_RENDER, R_RENDER, {"text": 5}, field="text"),
    bad("POST", R_RENDER, R_RENDER, {"text": "Hi", "vary_font_size_min": 10,
                                      "vary_font_size_max": 12}, field="vary_font_size_min",
        label="variety in a preview"),
    bad("POST", R_RENDER, R_RENDER, {"text": "   "}, field="text"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x" * 50_001}, field="text", label="too long"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "margin": -1}, field="margin"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "page_size": "tiny", "margin": 300},
        status=422, field="margin", label="no room for text"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "font_size": "big"}, field="font_size"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "font_size": 5}, field="font_size"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "max_pages": 0}, field="max_pages"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "page_size": 5}, field="page_size"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "page_size": "huge"}, field="page_size"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "color_mode": "cmyk"}, field="color_mode"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "font": "nope"}, status=404, field="font"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "font": "/etc/passwd"}, status=404, field="font"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "tokenizer": "/nonexistent"},
        status=404, field="tokenizer"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "foo": 1}, field="foo",
        label="unknown field"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "tokenizer": "/etc/passwd"},
        status=404, field="tokenizer", label="outside the data root"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "tokenizer": "uploads/x.jsonl"},
        status=422, field="tokenizer", label="not a tokenizer file"),
    bad("POST", R_RENDER, R_RENDER, {"text": "x", "line_spacing": "nan"},
        field="line_spacing"),
    *body_cases("POST", R_RENDER, R_RENDER),
    good("POST", R_SOURCE, R_SOURCE, {"source": "uploads/x.jsonl"}),
    good("POST", R_SOURCE, R_SOURCE, {"source": "builtin:scitldr"}, label="builtin"),
    bad("POST", R_SOURCE, R_SOURCE, {}, field="source", label="missing source"),
    bad("POST", R_SOURCE, R_SOURCE, {"source": 5}, field="source"),
    bad("POST", R_SOURCE, R_SOURCE, {"source": "/etc/passwd"}, status=404, field="source"),
    bad("POST", R_SOURCE, R_SOURCE, {"source": "../x.jsonl"}, status=404, field="source"),
    bad("POST", R_SOURCE, R_SOURCE, {"source": "uploads/../../etc/passwd"},
        status=404, field="source"),
    bad("POST", R_SOURCE, R_SOURCE, {"source": "preset:nope"}, field="source",
        label="unknown preset"),
    bad("POST", R_SOURCE, R_SOURCE, {"source": "uploads/missing.jsonl"}, status=404, field="source",
        label="missing file"),
    good("POST", R_SOURCE, R_SOURCE, {"source": "datasets/ds"},
         label="a generated dataset (page bytes shown by size)"),
    bad("POST", R_SOURCE, R_SOURCE, {"source": "uploads/x.jsonl", "foo": 1}, field="foo",
        label="unknown field"),
    *body_cases("POST", R_SOURCE, R_SOURCE),
    good("POST", R_UPLOAD, R_UPLOAD, Multipart("news.jsonl"), 201),
    bad("POST", R_UPLOAD, R_UPLOAD, {"file": "news.jsonl"}, field="file", label="JSON body"),
    bad("POST", R_UPLOAD, R_UPLOAD, Multipart(""), status=422, field="file", label="no file name"),
    bad("POST", R_UPLOAD, R_UPLOAD, Multipart("../evil.jsonl"), status=422, field="file"),
    bad("POST", R_UPLOAD, R_UPLOAD, Multipart("/tmp/evil.jsonl"), status=422, field="file"),
    bad("POST", R_UPLOAD, R_UPLOAD, Multipart("..%2Fevil.jsonl"), status=422, field="file"),
    bad("POST", R_UPLOAD, R_UPLOAD, Multipart("notes.exe"), status=422, field="file"),
    # Training presets and checkpoints.
    good("GET", R_OPTIMAL, "/api/training/optimal-config/quick_test"),
    bad("GET", R_OPTIMAL, "/api/training/optimal-config/nope", status=404),
    bad("GET", R_OPTIMAL, "/api/training/optimal-config/..%2F..", status=404),
    good("GET", R_CKPT, "/api/training/checkpoints?model=m"),
    good("GET", R_CKPT, "/api/training/checkpoints?job_id={train_job}", label="by job"),
    bad("GET", R_CKPT, "/api/training/checkpoints", status=422, field="job_id", label="neither"),
    bad("GET", R_CKPT, "/api/training/checkpoints?job_id={train_job}&model=m",
        status=422, field="job_id", label="both"),
    bad("GET", R_CKPT, "/api/training/checkpoints?model=..%2Fx", field="model"),
    bad("GET", R_CKPT, "/api/training/checkpoints?model=%2Fetc", field="model"),
    bad("GET", R_CKPT, "/api/training/checkpoints?job_id=no-such-job", status=404),
    bad("GET", R_CKPT, "/api/training/checkpoints?model=nope", status=404),
    bad("GET", R_CKPT, "/api/training/checkpoints?job_id=..%2F..", status=404),
    good("POST", R_LORA, R_LORA, {"num_samples": 30}),
    bad("POST", R_LORA, R_LORA, {}, field="num_samples", label="missing"),
    bad("POST", R_LORA, R_LORA, {"num_samples": 0}, field="num_samples"),
    bad("POST", R_LORA, R_LORA, {"num_samples": -1}, field="num_samples"),
    bad("POST", R_LORA, R_LORA, {"num_samples": "5"}, field="num_samples"),
    bad("POST", R_LORA, R_LORA, {"num_samples": True}, field="num_samples"),
    bad("POST", R_LORA, R_LORA, {"num_samples": 1.5}, field="num_samples"),
    bad("POST", R_LORA, R_LORA, {"num_samples": 5, "foo": 1}, field="foo",
        label="unknown field"),
    *body_cases("POST", R_LORA, R_LORA),
    # Training jobs.
    good("POST", R_TRAIN, R_TRAIN, train("train-good"), 202),
    bad("POST", R_TRAIN, R_TRAIN, {}, field="dataset", label="missing dataset"),
    bad("POST", R_TRAIN, R_TRAIN, train("t1", dataset="nope"), 404),
    bad("POST", R_TRAIN, R_TRAIN, train("t1", dataset="../ds"), status=404, field="dataset"),
    bad("POST", R_TRAIN, R_TRAIN, train("t1", dataset="/abs"), status=404, field="dataset"),
    bad("POST", R_TRAIN, R_TRAIN, train("t1", dataset=7), field="dataset"),
    bad("POST", R_TRAIN, R_TRAIN, train("../x"), field="name"),
    bad("POST", R_TRAIN, R_TRAIN, train("/abs"), field="name"),
    bad("POST", R_TRAIN, R_TRAIN, train("a%2Fb"), field="name"),
    bad("POST", R_TRAIN, R_TRAIN, train(7), field="name"),
    *[bad("POST", R_TRAIN, R_TRAIN, train("t1", **{key: value}), field=key,
          label=f"{key}={value!r}") for key, value in (
          ("expert_dropout_rate", 1.5), ("expert_dropout_rate", -0.1),
          ("gate_dropout_rate", 0.96), ("gate_dropout_rate", -0.1),
          ("expert_dropout_min_keep", 0), ("expert_dropout_min_keep", 9),
          ("bidrop_passes", 6), ("bidrop_passes", 0), ("max_steps", -1), ("max_steps", 0),
          ("max_steps", "abc"), ("max_steps", 2.5), ("max_steps", True),
          ("batch_size", -2), ("num_epochs", 0), ("learning_rate", 0),
          ("learning_rate", "inf"), ("warmup_ratio", 0.9), ("hidden_dropout", 0.6),
          ("lora_dropout", 0.7), ("save_steps", 0), ("eval_samples", -5),
          ("preset", "nope"), ("peft", "nope"), ("lora_preset", "nope"),
          ("trainer_type", "nope"), ("scheduler", "nope"), ("mixed_precision", "fp8"),
          ("report_to", "nope"), ("prompt", 5), ("augment", "perhaps"), ("foo", 1))],
    bad("POST", R_TRAIN, R_TRAIN, train("t1", expert_dropout_rate=0.1), status=422, field=(
        "expert_dropout_rate"), label="conflicts with lora_preset balanced"),
    bad("POST", R_TRAIN, R_TRAIN, train("t1", bidrop_passes=2, lora_dropout=0.0),
        status=422, field="bidrop_passes", label="needs dropout"),
    bad("POST", R_TRAIN, R_TRAIN, train("t1", resume_from_checkpoint="../m/step-000001"),
        status=404, field="resume_from_checkpoint"),
    bad("POST", R_TRAIN, R_TRAIN, train("t1", resume_from_checkpoint="/etc/step-000001"),
        status=404, field="resume_from_checkpoint"),
    bad("POST", R_TRAIN, R_TRAIN, train("t1", resume_from_checkpoint="m/step-000009"),
        status=404, field="resume_from_checkpoint"),
    bad("POST", R_TRAIN, R_TRAIN, train("t1", resume_from_checkpoint="latest"),
        status=404, field="resume_from_checkpoint", label="no checkpoint yet"),
    bad("POST", R_TRAIN, R_TRAIN, train("t1", resume_from_checkpoint=7),
        field="resume_from_checkpoint"),
    bad("POST", R_TRAIN, R_TRAIN, train("t1", trust_remote_code=True),
        status=422, field="trust_remote_code"),
    bad("POST", R_TRAIN, R_TRAIN, train("t1", push_to_hub=True), status=422, field="hub_model_id"),
    bad("POST", R_TRAIN, R_TRAIN, train("t1", push_to_hub=True, hub_model_id="bad"),
        field="hub_model_id"),
    bad("POST", R_TRAIN, R_TRAIN, train("busy-model"), 409, label="the same output twice"),
    bad("POST", R_TRAIN, R_TRAIN, train("t2", model="nope"), status=404, field="model",
        label="unknown model"),
    bad("POST", R_TRAIN, R_TRAIN, train("t3", model="/etc"), status=404, field="model",
        label="absolute path"),
    bad("POST", R_TRAIN, R_TRAIN, train("t4", learning_rate="NaN"), field="learning_rate"),
    bad("POST", R_TRAIN, R_TRAIN, train("t5", out="/tmp/elsewhere"), field="out"),
    bad("POST", R_TRAIN, R_TRAIN, {"dataset": "../ds"},
        status=404, field="dataset", label="no name"),
    bad("POST", R_TRAIN, R_TRAIN, train("t1", dataset="hf:not-a-repo"), field="dataset"),
    *body_cases("POST", R_TRAIN, R_TRAIN),
    # The estimate takes a train submission's body and refuses it as train does.
    good("POST", R_ESTIMATE, R_ESTIMATE, train("est")),
    good("POST", R_ESTIMATE, R_ESTIMATE + "?device=cpu", {"dataset": "ds"}, label="no name"),
    bad("POST", R_ESTIMATE, R_ESTIMATE, {}, field="dataset", label="missing dataset"),
    bad("POST", R_ESTIMATE, R_ESTIMATE, train("est", dataset="nope"), 404),
    bad("POST", R_ESTIMATE, R_ESTIMATE, train("est", batch_size=0), field="batch_size"),
    bad("POST", R_ESTIMATE, R_ESTIMATE, train("../x"), field="name"),
    bad("POST", R_ESTIMATE, R_ESTIMATE, train("est", model="nope"), status=404, field="model"),
    bad("POST", R_ESTIMATE, R_ESTIMATE, train("est", expert_dropout_rate=0.1), status=422,
        field="expert_dropout_rate", label="conflicts with lora_preset balanced"),
    bad("POST", R_ESTIMATE, R_ESTIMATE, train("est", trust_remote_code=True), status=422,
        field="trust_remote_code", label="refused by this server"),
    bad("POST", R_ESTIMATE, R_ESTIMATE + "?device=tpu", train("est"), field="device"),
    bad("GET", R_ESTIMATE, R_ESTIMATE, status=405),
    *body_cases("POST", R_ESTIMATE, R_ESTIMATE),
    # Models.
    good("POST", R_EVAL, R_EVAL, {"model": "m", "dataset": "ds", "max_samples": 1}, 202),
    bad("POST", R_EVAL, R_EVAL, {"dataset": "ds"}, field="model", label="missing model"),
    bad("POST", R_EVAL, R_EVAL, {"model": "m"}, field="dataset", label="missing dataset"),
    bad("POST", R_EVAL, R_EVAL, {"model": "nope", "dataset": "ds"}, 404),
    bad("POST", R_EVAL, R_EVAL, {"model": "m", "dataset": "nope"}, 404),
    bad("POST", R_EVAL, R_EVAL, {"model": "../m", "dataset": "ds"}, field="model"),
    bad("POST", R_EVAL, R_EVAL, {"model": ["m"], "dataset": "ds"}, field="model"),
    bad("POST", R_EVAL, R_EVAL, {"model": "m", "dataset": "/etc"}, field="dataset"),
    bad("POST", R_EVAL, R_EVAL, {"model": "m", "dataset": "ds", "max_samples": 0},
        field="max_samples"),
    bad("POST", R_EVAL, R_EVAL, {"model": "m", "dataset": "ds", "max_samples": "2"},
        field="max_samples"),
    bad("POST", R_EVAL, R_EVAL, {"model": "m", "dataset": "ds", "foo": 1}, field="foo",
        label="unknown field"),
    bad("POST", R_EVAL, R_EVAL, {"model": "m-busy", "dataset": "ds"}, 409,
        label="the same evaluation twice"),
    bad("POST", R_EVAL, R_EVAL, {"model": "m-x1", "dataset": "ds", "max_samples": True},
        field="max_samples"),
    bad("POST", R_EVAL, R_EVAL, {"model": "m-x2", "dataset": "ds", "split": 5},
        field="split"),
    *body_cases("POST", R_EVAL, R_EVAL),
    good("POST", R_SUM, R_SUM, {"model": "m", "text": "A short document about rivers."}),
    bad("POST", R_SUM, R_SUM, {"text": "x"}, field="model", label="missing model"),
    bad("POST", R_SUM, R_SUM, {"model": "nope", "text": "x"}, 404),
    bad("POST", R_SUM, R_SUM, {"model": "../m", "text": "x"}, field="model"),
    bad("POST", R_SUM, R_SUM, {"model": "m"},
        status=422, field="text", label="neither text nor image"),
    bad("POST", R_SUM, R_SUM, {"model": "m", "text": "x", "image": "eA=="},
        status=422, field="text",
        label="both"),
    bad("POST", R_SUM, R_SUM, {"model": "m", "text": 5}, field="text"),
    bad("POST", R_SUM, R_SUM, {"model": "m", "text": "x" * 50_001}, field="text",
        label="too long"),
    bad("POST", R_SUM, R_SUM, {"model": "m", "image": "!!not base64!!"}, field="image"),
    bad("POST", R_SUM, R_SUM, {"model": "m", "image": 5}, field="image"),
    bad("POST", R_SUM, R_SUM, {"model": "m", "image": "aGVsbG8="}, status=422, field="image",
        label="not a PNG"),
    bad("POST", R_SUM, R_SUM, {"model": "m", "text": "x", "foo": 1}, field="foo",
        label="unknown field"),
    *body_cases("POST", R_SUM, R_SUM),
    # The playground: beside the base model or another run; a chat run's reply.
    good("POST", R_SUM, R_SUM, {"model": "m", "text": "Rivers.", "compare_with": "base"},
         label="beside the base model"),
    good("POST", R_SUM, R_SUM, {"model": "m", "text": "Rivers.", "compare_with": "m-x1"},
         label="beside another run"),
    bad("POST", R_SUM, R_SUM, {"model": "m", "text": "x", "compare_with": "nope"}, 404,
        field="compare_with"),
    bad("POST", R_SUM, R_SUM, {"model": "m", "text": "x", "compare_with": "chat-m"}, 422,
        field="compare_with", label="a chat run to compare with"),
    bad("POST", R_SUM, R_SUM, {"model": "m", "text": "x", "compare_with": "../m"},
        field="compare_with"),
    bad("POST", R_SUM, R_SUM, {"model": "chat-m", "text": "x"}, 422, field="model",
        label="a chat run"),
    good("POST", R_CHATG, R_CHATG, {"model": "chat-m", "messages": HELLO, "max_new_tokens": 4}),
    bad("POST", R_CHATG, R_CHATG, {"model": "m", "messages": HELLO}, 422, field="model",
        label="an OCR run"),
    bad("POST", R_CHATG, R_CHATG, {"model": "nope", "messages": HELLO}, 404, field="model"),
    bad("POST", R_CHATG, R_CHATG, {"model": "chat-m", "messages": []}, 422, field="messages",
        label="no messages"),
    bad("POST", R_CHATG, R_CHATG, {"model": "chat-m", "messages": [
        {"role": "assistant", "content": "Hi"}]}, 422, field="messages[0].role",
        label="the assistant spoke last"),
    bad("POST", R_CHATG, R_CHATG, {"model": "chat-m", "messages": [
        {"role": "robot", "content": "Hi"}]}, field="messages[0].role"),
    bad("POST", R_CHATG, R_CHATG, {"model": "chat-m", "messages": ["Hi"]}, field="messages[0]"),
    bad("POST", R_CHATG, R_CHATG, {"model": "chat-m"}, field="messages"),
    bad("POST", R_CHATG, R_CHATG, {"model": "chat-m", "messages": HELLO, "max_new_tokens": 0},
        field="max_new_tokens"),
    *body_cases("POST", R_CHATG, R_CHATG),
    # Run comparison and cloning.
    good("GET", R_CONFIG, "/api/models/m/config"),
    bad("GET", R_CONFIG, "/api/models/nope/config", status=404, field="model"),
    bad("GET", R_CONFIG, "/api/models/m-nofinal/config", status=404, field="model",
        label="no configuration"),
    bad("GET", R_CONFIG, "/api/models/../config", field="model"),
    good("POST", R_COMPARE, R_COMPARE, {"models": ["m", "chat-m"]}),
    bad("POST", R_COMPARE, R_COMPARE, {"models": []}, field="models"),
    bad("POST", R_COMPARE, R_COMPARE, {"models": ["m"] * 9}, field="models", label="nine"),
    bad("POST", R_COMPARE, R_COMPARE, {"models": "m"}, field="models"),
    bad("POST", R_COMPARE, R_COMPARE, {"models": ["../m"]}, field="models"),
    bad("POST", R_COMPARE, R_COMPARE, {"models": ["m", "nope"]}, 404, field="models"),
    *body_cases("POST", R_COMPARE, R_COMPARE),
    good("DELETE", R_MODEL, "/api/models/m-del"),
    bad("DELETE", R_MODEL, "/api/models/nope", status=404),
    bad("DELETE", R_MODEL, "/api/models/..", field="model"),
    bad("DELETE", R_MODEL, "/api/models/..%2Fdatasets", status=404, label="%2F escape"),
    bad("DELETE", R_MODEL, "/api/models/m-busy", status=409, label="in use"),
    good("POST", R_MPUSH, "/api/models/m/push", {"repo_id": "me/m", "merge": False}, 202),
    bad("POST", R_MPUSH, "/api/models/m/push", {}, field="repo_id"),
    bad("POST", R_MPUSH, "/api/models/m/push", {"repo_id": "bad"}, field="repo_id"),
    bad("POST", R_MPUSH, "/api/models/m/push", {"repo_id": "me/m", "foo": 1}, field="foo",
        label="unknown field"),
    bad("POST", R_MPUSH, "/api/models/nope/push", {"repo_id": "me/m"}, 404),
    bad("POST", R_MPUSH, "/api/models/../push", {"repo_id": "me/m"}, field="model"),
    bad("POST", R_MPUSH, "/api/models/m-nofinal/push", {"repo_id": "me/m"}, 404,
        label="no final weights"),
    bad("POST", R_MPUSH, "/api/models/m-x3/push", {"repo_id": "me/m", "merge": "no"},
        field="merge", label="string boolean"),
    *body_cases("POST", R_MPUSH, "/api/models/m/push"),
    good("POST", R_MEXPORT, "/api/models/m/export", {}, 202),
    bad("POST", R_MEXPORT, "/api/models/m-x1/export", {"merge": "false"}, field="merge",
        label="string boolean"),
    bad("POST", R_MEXPORT, "/api/models/m-x1/export", {"out": "/tmp/x"}, field="out",
        label="a path the request names"),
    bad("POST", R_MEXPORT, "/api/models/nope/export", {}, 404),
    bad("POST", R_MEXPORT, "/api/models/../export", {}, field="model"),
    bad("POST", R_MEXPORT, "/api/models/m-nofinal/export", {}, 404, label="no final weights"),
    bad("POST", R_MEXPORT, "/api/models/m-x2/export", {"merge": False}, 409,
        label="the same export twice"),
    *body_cases("POST", R_MEXPORT, "/api/models/m/export"),
    # Chat files for the generic trainer.
    good("POST", R_CHATV, R_CHATV, CHAT),
    good("POST", R_CHATP, R_CHATP, {**CHAT, "line": 1}),
    good("POST", R_CHATP, R_CHATP, {**CHAT, "line": 2}, label="an invalid line"),
    *[bad("POST", rule, rule, body, status, field=field, label=label)
      for rule in (R_CHATV, R_CHATP) for body, status, field, label in (
          ({}, 400, "source", "missing source"),
          ({"source": 5}, 400, "source", ""),
          ({"source": "/etc/passwd"}, 404, "source", ""),
          ({"source": "../x.jsonl"}, 404, "source", ""),
          ({"source": "uploads/../../x.jsonl"}, 404, "source", ""),
          ({"source": "uploads/missing.jsonl"}, 404, None, "missing file"),
          ({"source": "uploads"}, 404, None, "a folder"),
          ({**CHAT, "model": "nope"}, 404, "model", "unknown model"),
          ({**CHAT, "max_length": 4}, 400, "max_length", ""),
          ({**CHAT, "max_length": "long"}, 400, "max_length", ""),
          ({**CHAT, "chat_template": "nope"}, 400, "chat_template", ""),
          ({**CHAT, "chat_reasoning": "nope"}, 400, "chat_reasoning", ""),
          ({**CHAT, "chat_train_on": "nope"}, 400, "chat_train_on", ""),
          ({**CHAT, "foo": 1}, 400, "foo", "unknown field"))],
    bad("POST", R_CHATP, R_CHATP, {**CHAT, "line": 0}, field="line"),
    bad("POST", R_CHATP, R_CHATP, {**CHAT, "line": "x"}, field="line"),
    bad("POST", R_CHATP, R_CHATP, {**CHAT, "line": 99}, 404, field="line", label="past the end"),
    bad("POST", R_CHATV, R_CHATV, {"source": "datasets/ds/data/train-00000.parquet"},
        422, field="source", label="not UTF-8"),
    bad("POST", R_CHATV, R_CHATV, {**CHAT, "model": "/etc"}, 404, field="model",
        label="absolute path"),
    *body_cases("POST", R_CHATV, R_CHATV),
    *body_cases("POST", R_CHATP, R_CHATP),
    # Pages (the UI) and the login of a server with a token.
    *[good("GET", page, page, label="page") for page in PAGES],
    *[bad("POST", page, page, {}, 405) for page in PAGES],
    bad("GET", "/login", "/login", status=404, label="no token configured"),
    good("GET", "/login", "/login", label="page", server="token"),
    good("POST", "/api/login", "/api/login", {"token": TOKEN}, server="token"),
    bad("POST", "/api/login", "/api/login", {"token": "wrong"}, 401, field="token",
        server="token"),
    bad("POST", "/api/login", "/api/login", {"token": 5}, 401, field="token", server="token"),
    bad("POST", "/api/login", "/api/login", {}, 401, field="token", server="token"),
    bad("POST", "/api/login", "/api/login", MALFORMED, 401, field="token", server="token"),
    bad("POST", "/api/login", "/api/login", [TOKEN], 401, field="token", server="token",
        label="JSON array"),
    good("POST", "/api/logout", "/api/logout", {}, server="token"),
    bad("GET", "/api/logout", "/api/logout", status=405, server="token"),
]


_DEFAULTS = {**generate(""), **train("")}


def case_id(case: Case) -> str:
    """Method, path, label and the body without the defaults of ``generate``/``train``."""
    body = case.body
    if isinstance(body, dict) and "name" in body:
        body = {k: v for k, v in body.items() if k == "name" or _DEFAULTS.get(k, ...) != v}
    text = "" if body is NO_BODY else (
        body.filename if isinstance(body, Multipart) else
        body.decode(errors="replace") if isinstance(body, bytes) else json.dumps(body))
    return f"{case.method} {case.path} {case.label} {text[:70]}".strip()


def params() -> list:
    return [pytest.param(case, id=case_id(case)) for case in CASES]


def send(base: str, method: str, path: str, body=NO_BODY, content_type: str | None = None,
         headers: dict | None = None) -> tuple[int, str, bytes]:
    """One request with the path sent exactly as given (no normalizing, no redirects)."""
    address = urlsplit(base)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=120)
    headers = dict(headers or {})
    data = None
    if isinstance(body, Multipart):
        boundary = "inputs-test-boundary"
        data = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; "
                f"filename=\"{body.filename}\"\r\nContent-Type: application/octet-stream"
                f"\r\n\r\n").encode() + body.content + f"\r\n--{boundary}--\r\n".encode()
        headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
    elif isinstance(body, bytes):
        data = body
        headers["Content-Type"] = content_type or "application/json"
    elif body is not NO_BODY:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


@dataclasses.dataclass
class Server:
    app: Any
    base: str
    root: Path
    ids: dict


def copy_model(root: Path, source: str, name: str) -> None:
    shutil.copytree(root / "models" / source, root / "models" / name)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory):
    """The server of the table: capacities 0 over a data root with a dataset ``ds``, a model
    ``m``, copies of them to delete or keep busy, and jobs in every needed state."""
    root = tmp_path_factory.mktemp("inputs") / "data"
    ids = {}
    with running(ServerConfig(data_root=str(root), threads=8)) as (_, base):
        client = Client(base)
        status, made = client.call("POST", "/api/benchmark/create", {
            "preset": "scitldr", "max_samples": 3, "name": "ds", "page_size": "256x256",
            "font_size": 12, "margin": 8, "workers": 1})
        assert status == 202, made
        assert wait_job(client, made["job_id"], 120)["status"] == "completed"
        ids["gen_job"] = made["job_id"]
        status, started = client.call("POST", "/api/model/train", {
            "dataset": "ds", "preset": "quick_test", "max_steps": 1, "eval_steps": 1,
            "save_steps": 1, "eval_samples": 2, "max_new_tokens": 8, "name": "m"})
        assert status == 202, started
        done = wait_job(client, started["job_id"], 180)
        assert done["status"] == "completed", done["error"]
        ids["train_job"] = started["job_id"]
        write_jsonl(root / "uploads" / "chat-good.jsonl", [
            {"messages": [{"role": "user", "content": "Hi?"},
                          {"role": "assistant", "content": "Hello."}]}] * 2)
        status, started = client.call("POST", "/api/model/train", {
            "trainer_type": "generic", "peft": "full", "max_steps": 1, "batch_size": 2,
            "gradient_accumulation_steps": 1, "mixed_precision": "no",
            "dataset": "uploads/chat-good.jsonl", "name": "chat-m"})
        assert status == 202, started
        done = wait_job(client, started["job_id"], 180)
        assert done["status"] == "completed", done["error"]
    for name in ("ds-del", "ds-busy", "ds-pub"):
        shutil.copytree(root / "datasets" / "ds", root / "datasets" / name)
    for name in ("m-del", "m-busy", "m-x1", "m-x2", "m-x3"):
        copy_model(root, "m", name)
    (root / "models" / "m-nofinal").mkdir()
    write_jsonl(root / "uploads" / "x.jsonl", articles(3))
    write_jsonl(root / "uploads" / "chat.jsonl", [
        {"messages": [{"role": "user", "content": "What is 1 plus 1?"},
                      {"role": "assistant", "content": "2."}]},
        {"messages": [{"role": "robot", "content": "beep"}]}])

    config = ServerConfig(data_root=str(root), threads=8, generate_capacity=0,
                          accelerator_capacity=0)
    with running(config) as (app, base):
        client = Client(base)

        def submit(path: str, body: dict) -> str:
            status, made = client.call("POST", path, body)
            assert status == 202 and made["status"] == "queued", made
            return made["job_id"]

        ids["queued_gen"] = submit(R_GEN, generate("queued-ds"))
        ids["to_cancel"] = submit(R_GEN, generate("to-cancel"))
        ids["cancelled"] = submit(R_GEN, generate("cancelled-ds"))
        assert client.call("POST", f"/api/jobs/{ids['cancelled']}/cancel")[0] == 200
        submit(R_EVAL, {"model": "m-busy", "dataset": "ds"})
        submit(R_DPUSH.replace("<dataset:name>", "ds-busy"), {"repo_id": "me/ds-busy"})
        submit(R_DQA.replace("<dataset:name>", "ds-busy"), {})
        submit(R_MEXPORT.replace("<name>", "m-x2"), {})
        submit(R_TRAIN, train("busy-model"))
        yield Server(app, base, root, ids)


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs-token") / "data"
    with running(ServerConfig(data_root=str(root), threads=4, api_token=TOKEN)) as (app, base):
        yield Server(app, base, root, {})


@pytest.mark.parametrize("case", params())
def test_endpoint_input(case: Case, request):
    server = request.getfixturevalue(f"{case.server}_server")
    path = case.path.format(**server.ids)
    status, content_type, raw = send(server.base, case.method, path, case.body,
                                     case.content_type)
    assert status != 500, raw[:500]
    is_json = content_type.startswith("application/json")
    data = json.loads(raw) if is_json else None
    assert status == case.status, (status, raw[:500])
    if status >= 400:
        assert is_json and isinstance(data.get("error"), str) and data["error"], raw[:500]
        assert "Traceback" not in data["error"]
    if status == 400:
        assert {"error", "field", "allowed"} <= set(data), data
    if case.field:
        assert data.get("field") == case.field, data
    if status == 202:
        assert data["job_id"] and data["status"] == "queued", data  # capacity 0
    if case.good and status != 202:
        expected = ("image/png" if case.rule == R_PNG else
                    "text/event-stream" if case.rule.endswith("/events") else
                    "text/html" if not case.rule.startswith("/api/") else
                    "application/json")
        assert content_type.startswith(expected), content_type


def rule_keys(app) -> set[tuple[str, str]]:
    return {(rule.rule, method) for rule in app.url_map.iter_rules()
            if rule.endpoint != "static" and not rule.endpoint.endswith(".static")
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_every_rule_is_covered(open_server, token_server):
    """Each rule of the URL map (with and without a token) has a good and a bad case. A
    wrong method (405) is the bad request of a rule that takes no input."""
    rules = rule_keys(open_server.app) | rule_keys(token_server.app)
    with_good = {(c.rule, c.method) for c in CASES if c.good}
    with_bad = {(c.rule, c.method) for c in CASES if not c.good and c.status != 405}
    with_bad |= {(rule, method) for rule, method in rules
                 for c in CASES if c.status == 405 and c.rule == rule}
    assert not rules - with_good, f"rules without a good case: {sorted(rules - with_good)}"
    assert not rules - with_bad, f"rules without a bad case: {sorted(rules - with_bad)}"
    stale = {c.rule for c in CASES} - {rule for rule, _ in rules}
    assert not stale, f"cases of rules that no longer exist: {sorted(stale)}"
    assert not {(c.rule, c.method) for c in CASES if c.status != 405} - rules
