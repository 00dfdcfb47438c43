"""Hostile values in every field of every route: no response is a 5xx, and the service is
still healthy afterwards.

The fields come from the live ``/api/openapi.json`` (built from the same declarations the
views validate with): each request body property and query parameter of each operation gets
values a careless or hostile client sends (unpaired surrogates, NULs, integers of hundreds
of digits, deep nesting, lists and objects where scalars go, very long strings, path
escapes), alone and mixed into otherwise valid-looking bodies. The requests are drawn from a
seeded ``random.Random`` (the same ones on every run). The job capacities are zero, so
submissions only queue.
"""

from __future__ import annotations

import json
import random
import urllib.error
import urllib.parse
import urllib.request

import pytest
from support.server import Client, running

from deepsynth.config.server import ServerConfig

REQUESTS = 5200
SEED = 20261201
DEEP = "[" * 5000 + "]" * 5000
HOSTILE = ["\ud800", "a\udfffb", "x\x00y", "\x00", 10**400, -(10**400), 2**64, 1e308,
           -1, 0, True, None, [], {}, ["a"], {"a": 1}, [[[[[[[[[[1]]]]]]]]]], "",
           "a" * 100_000, "../../etc/passwd", "/etc/passwd", "hf:/etc", "HF::../x",
           "uploads/../../x", "%2e%2e/x", "\\\\server\\share", "\u202e\u0645", "NaN", 1.5]
# A stream lasts up to 25 s per request; its HEAD and GET are tested in test_hardening.
EXCLUDED = ("/api/jobs/{job_id}/events",)


def send(base: str, method: str, path: str, raw: bytes | None) -> int:
    request = urllib.request.Request(base + path, data=raw, method=method)
    if raw is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        error.read()
        return error.code


def operations(document: dict) -> list[tuple[str, str, list[str], list[str]]]:
    """(method, path, body properties, query parameters) of every operation."""
    found = []
    for path, methods in document["paths"].items():
        if path in EXCLUDED:
            continue
        for method, operation in methods.items():
            body = operation.get("requestBody", {}).get("content", {}).get(
                "application/json", {}).get("schema", {})
            query = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
            found.append((method.upper(), path, list(body.get("properties", {})), query))
    return found


def in_url(value, limit: int) -> str:
    """A value as a URL part: surrogates pass as the invalid UTF-8 a client can send."""
    return urllib.parse.quote(str(value)[:limit].encode("utf-8", "surrogatepass"), safe="")


def hostile_request(rng: random.Random, operation, ids: dict) -> tuple[str, str, bytes | None]:
    method, path, properties, query = operation
    filled = path
    for name, value in ids.items():
        filled = filled.replace("{" + name + "}", value if rng.random() < 0.7 else
                                in_url(rng.choice(HOSTILE), 200))
    for name in query:
        if rng.random() < 0.5:
            value = in_url(rng.choice(HOSTILE), 5000)
            filled += ("&" if "?" in filled else "?") + f"{name}={value}"
    if method in ("GET", "DELETE"):
        return method, filled, None
    body = {name: rng.choice(HOSTILE) for name in rng.sample(
        properties, k=min(len(properties), rng.randint(1, 3)))} if properties else {}
    if rng.random() < 0.1:
        return method, filled, ('{"x": ' + DEEP + "}").encode()
    if rng.random() < 0.05:
        return method, filled, json.dumps([body]).encode()
    return method, filled, json.dumps(body).encode()  # ensure_ascii: surrogates as \\ud800


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "data"
    (root / "uploads").mkdir(parents=True)
    (root / "uploads" / "news.jsonl").write_text('{"article": "a", "highlights": "b"}\n')
    config = ServerConfig(data_root=str(root), generate_capacity=0, accelerator_capacity=0,
                          threads=8)
    with running(config) as (app, base):
        client = Client(base)
        status, job = client.call("POST", "/api/dataset/generate", {
            "source": "uploads/news.jsonl", "name": "queued", "text_field": "article",
            "summary_field": "highlights"})
        assert status == 202, job
        yield client, base, {"job_id": job["job_id"], "name": "queued", "index": "0",
                             "page": "0", "preset": "cpu_demo", "action": "pause"}


def test_hostile_values_in_every_field_are_never_a_server_error(server):
    client, base, ids = server
    status, document = client.call("GET", "/api/openapi.json")
    assert status == 200
    chosen = operations(document)
    assert len(chosen) >= 30
    rng = random.Random(SEED)
    failures, statuses = [], {}
    for _ in range(REQUESTS):
        method, path, raw = hostile_request(rng, rng.choice(chosen), ids)
        status = send(base, method, path, raw)
        statuses[status] = statuses.get(status, 0) + 1
        if status >= 500:
            failures.append((status, method, path[:200], (raw or b"")[:200]))
    assert not failures, failures[:5]
    assert sum(statuses.values()) == REQUESTS
    assert client.call("GET", "/api/health")[0] == 200
    assert client.call("GET", "/api/jobs")[0] == 200
    print(f"{REQUESTS} hostile requests over {len(chosen)} operations: {statuses}")
