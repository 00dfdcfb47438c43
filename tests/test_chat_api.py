"""Chat files in the formats people bring, through the REST API on a real server: uploaded,
validated (the detected format and the conversion report), previewed, seen as chat by the
source preview, and trained on (converted by the job, refused at submit when records are)."""

from __future__ import annotations

import json

import pytest
from support.server import Client, running, wait_job
from test_api import upload

from deepsynth.config.server import ServerConfig

SHAREGPT = [{"conversations": [{"from": "human", "value": f"What is {i} plus {i}?"},
                               {"from": "gpt", "value": f"{2 * i}."}]} for i in range(4)]
REFUSED = {"conversations": [{"from": "human", "value": "hi"}, {"from": "bot", "value": "x"}]}


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    root = tmp_path_factory.mktemp("chat-api") / "data"
    with running(ServerConfig(data_root=str(root), threads=8)) as (_app, base):
        yield Client(base), base


def test_validate_returns_the_format_and_the_conversion_report(api):
    client, base = api
    text = json.dumps(SHAREGPT + [REFUSED], indent=2).encode()
    assert upload(base, "demo.json", text)[0] == 201
    status, report = client.call("POST", "/api/chat/validate", {"source": "uploads/demo.json"})
    assert status == 200, report
    assert report["format"] == {
        "name": "sharegpt", "container": "json_array", "records": {"sharegpt": 5},
        "label": "ShareGPT (conversations with from/value) in a JSON array"}
    conversion = report["conversion"]
    assert {k: conversion[k] for k in ("records", "converted", "refused",
                                       "refused_by_reason", "command")} == {
        "records": 5, "converted": 4, "refused": 1, "refused_by_reason": {"unknown_from": 1},
        "command": "deepsynth convert-chat uploads/demo.json uploads/demo.jsonl"}
    assert [(p["path"], p["rule"]) for p in conversion["problems"]] == [
        ("conversations[1].from", "unknown_from")]
    assert [e["rule"] for e in report["errors"]] == ["other_format"]
    assert (report["ok"], report["trainable"]) == (False, False)
    assert report["summary"]["valid_rows"] == 4 and report["summary"]["token_lengths"]["p50"]

    status, shown = client.call("POST", "/api/chat/preview",
                                {"source": "uploads/demo.json", "line": 4})
    assert status == 200 and shown["ok"] and shown["format"] == "sharegpt"
    assert shown["line"] == 2  # the record line 4 is part of
    assert "".join(s["text"] for s in shown["segments"] if s["trained"]) == "0.<|im_end|>"

    status, preview = client.call("POST", "/api/sources/preview",
                                  {"source": "uploads/demo.json"})
    assert status == 200 and preview["chat"]["format"]["name"] == "sharegpt"
    assert (preview["chat"]["checked"], preview["chat"]["converted"]) == (5, 4)
    assert upload(base, "news.jsonl", b'{"article": "A text.", "highlights": "A."}\n')[0] == 201
    status, preview = client.call("POST", "/api/sources/preview",
                                  {"source": "uploads/news.jsonl"})
    assert status == 200 and preview["chat"] is None


def test_training_takes_a_sharegpt_file_and_refuses_its_bad_records_at_submit(api):
    client, base = api
    assert upload(base, "good.json", json.dumps(SHAREGPT).encode())[0] == 201
    assert upload(base, "bad.json", json.dumps(SHAREGPT + [REFUSED]).encode())[0] == 201
    body = {"trainer_type": "generic", "peft": "full", "max_steps": 2, "batch_size": 2,
            "gradient_accumulation_steps": 1, "mixed_precision": "no"}
    status, refused = client.call("POST", "/api/model/train",
                                  {**body, "dataset": "uploads/bad.json", "name": "bad"})
    assert status == 400 and refused["field"] == "dataset", refused
    assert "ShareGPT" in refused["error"] and "unknown_from" in refused["error"]
    status, started = client.call("POST", "/api/model/train",
                                  {**body, "dataset": "uploads/good.json", "name": "good"})
    assert status == 202, started
    job = wait_job(client, started["job_id"])
    assert job["status"] == "completed", job
    assert job["result"]["metrics"]["conversion"] == {
        "records": 4, "converted": 4, "refused": 0, "refused_by_reason": {}}
