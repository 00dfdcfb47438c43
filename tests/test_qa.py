"""``deepsynth qa`` and the ``render_qa`` job (``POST /api/datasets/<name>/qa``, through a real
server): a generated dataset's pages read back with Tesseract, CER per script, stored in the
manifest and the card. Real generation, real Tesseract (skipped, saying so, where it or its
Arabic/Hebrew packs are missing; scripts/setup.sh installs them)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from conftest import articles, run_cli, write_jsonl
from support.server import Client, running, wait_job

from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig
from deepsynth.config.server import ServerConfig
from deepsynth.data.generate import generate_dataset
from deepsynth.data.manifest import MANIFEST_NAME
from deepsynth.errors import OutputError
from deepsynth.render.ocr import installed_languages, tesseract_path
from test_render_bidi import ARABIC, HEBREW

pytestmark = pytest.mark.skipif(
    not tesseract_path() or not {"eng", "ara", "heb"} <= installed_languages(),
    reason="Tesseract with its eng, ara and heb packs is not installed (scripts/setup.sh)")

GREEK = "Η γλώσσα είναι το κύριο μέσο επικοινωνίας των ανθρώπων. " * 3


def dataset(tmp_path):
    rows = articles(3, words=80)
    rows += [{"id": "he", "article": HEBREW, "highlights": "x"},
             {"id": "ar", "article": ARABIC, "highlights": "x"},
             {"id": "el", "article": GREEK, "highlights": "x"}]  # no Greek pack installed
    corpus = write_jsonl(tmp_path / "corpus" / "train.jsonl", rows).parent
    out = tmp_path / "ds"
    generate_dataset(GenerationConfig(
        out=str(out), source=SourceConfig(source=str(corpus), text_field="article",
                                          summary_field="highlights", id_field="id"),
        render=RenderConfig(page_size="small"), workers=1))
    return out


def test_qa_prints_a_cer_table_per_script_and_stores_it(tmp_path):
    folder = dataset(tmp_path)
    result = run_cli("qa", str(folder), "--sample", "50", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("6 of 6 pages read back (seed 0)")
    table = {line.split("|")[1].strip(): line for line in result.stdout.splitlines()
             if line.startswith("| ")}
    assert {"LATIN", "HEBREW", "ARABIC", "overall"} <= set(table)
    report = json.loads((folder / MANIFEST_NAME).read_text())["qa"]
    assert report["sample"] == report["of_pages"] == 6
    assert report["by_script"]["LATIN"]["pages"] == 3
    assert all(entry["cer"] < 0.05 for entry in report["by_script"].values()), report
    assert report["cer"] < 0.05
    if "ell" not in installed_languages():
        assert report["not_read"] == {"GREEK": 1} and "GREEK (1 pages)" in result.stdout
    worst = report["worst"][0]
    assert worst["cer"] == max(w["cer"] for w in report["worst"])
    assert {"split", "row", "id", "page", "script", "language", "chars"} <= set(worst)
    card = (folder / "README.md").read_text()
    assert "## Render QA" in card and "| HEBREW | 1 |" in card


def test_qa_sample_is_seeded_and_bounded(tmp_path):
    folder = dataset(tmp_path)
    first = run_cli("qa", str(folder), "--sample", "2", "--seed", "3")
    again = run_cli("qa", str(folder), "--sample", "2", "--seed", "3")
    assert first.returncode == 0, first.stderr
    assert first.stdout == again.stdout and first.stdout.startswith("2 of 6 pages")
    refused = run_cli("qa", str(folder), "--sample", "0")
    assert refused.returncode == 2 and refused.stderr.startswith("error: sample must be")
    missing = run_cli("qa", str(tmp_path / "nope"))
    assert missing.returncode != 0 and "no manifest" in missing.stderr
    assert "Traceback" not in refused.stderr + missing.stderr


# Render QA of a generated dataset as a job, through a real server (REST and its refusals).
def served_root(tmp_path):
    """A data root whose datasets/ds is the dataset above."""
    root = tmp_path / "data"
    (root / "datasets").mkdir(parents=True)
    dataset(tmp_path).rename(root / "datasets" / "ds")
    return root


def test_render_qa_job_stores_its_report_where_the_datasets_page_reads_it(tmp_path):
    root = served_root(tmp_path)
    with running(ServerConfig(data_root=str(root), threads=4)) as (_, base):
        client = Client(base)
        status, before = client.call("GET", "/api/datasets/ds")
        assert status == 200 and before["qa"] is None and before["warnings"] == [], before
        status, made = client.call("POST", "/api/datasets/ds/qa", {"sample": 6, "seed": 0})
        assert status == 202 and made["kind"] == "render_qa" and made["dataset"] == "ds", made
        done = wait_job(client, made["job_id"], 120)
        assert done["status"] == "completed", done["error"]
        report = done["result"]["qa"]
        assert report["sample"] == report["of_pages"] == 6 and report["cer"] < 0.05, report
        assert {"LATIN", "HEBREW", "ARABIC"} <= set(report["by_script"])
        status, listed = client.call("GET", "/api/datasets")
        assert listed["datasets"][0]["qa"] == report  # the list and the manifest hold it
        worst = report["worst"][0]
        request = urllib.request.Request(
            f"{base}/api/datasets/ds/samples/{worst['row']}/pages/{worst['page']}.png"
            f"?split={worst['split']}")
        with urllib.request.urlopen(request, timeout=30) as response:  # the thumbnail's URL
            assert response.read()[:8] == b"\x89PNG\r\n\x1a\n"
    manifest = json.loads((root / "datasets" / "ds" / MANIFEST_NAME).read_text())
    assert manifest["qa"] == report
    assert "## Render QA" in (root / "datasets" / "ds" / "README.md").read_text()


def test_render_qa_requests_are_refused_naming_the_field_or_the_job(tmp_path, monkeypatch):
    root = served_root(tmp_path)
    corpus = write_jsonl(root / "uploads" / "more.jsonl", articles(3))
    config = ServerConfig(data_root=str(root), threads=4, generate_capacity=0)
    with running(config) as (_, base):  # capacity 0: accepted jobs only queue
        client = Client(base)
        for body, field in (({"sample": 0}, "sample"), ({"sample": "many"}, "sample"),
                            ({"seed": -1}, "seed"), ({"pages": 3}, "pages")):
            status, error = client.call("POST", "/api/datasets/ds/qa", body)
            assert status == 400 and error["field"] == field, (body, error)
        status, error = client.call("POST", "/api/datasets/nope/qa", {})
        assert status == 404 and "nope" in error["error"], error
        # A job writing the dataset (a generation replacing it) keeps QA out.
        status, writing = client.call("POST", "/api/dataset/generate", {
            "name": "ds", "source": str(corpus.relative_to(root)), "text_field": "article",
            "summary_field": "highlights", "overwrite": True, "page_size": "tiny"})
        assert status == 202 and writing["status"] == "queued", writing
        status, error = client.call("POST", "/api/datasets/ds/qa", {})
        assert status == 409 and writing["job_id"] in error["error"], error
        assert client.call("POST", f"/api/jobs/{writing['job_id']}/cancel")[0] == 200
        status, first = client.call("POST", "/api/datasets/ds/qa", {})
        assert status == 202 and first["status"] == "queued", first
        status, error = client.call("POST", "/api/datasets/ds/qa", {"seed": 1})
        assert status == 409 and "already" in error["error"], error
        status, error = client.call("DELETE", "/api/datasets/ds")  # a QA job reads it
        assert status == 409 and first["job_id"] in error["error"], error
        monkeypatch.setenv("PATH", str(tmp_path / "empty"))  # as on a server without Tesseract
        status, error = client.call("POST", "/api/datasets/ds/qa", {"seed": 2})
        assert status == 422 and error["field"] == "sample" and "Tesseract" in error["error"]
        status, error = client.call("POST", "/api/dataset/generate", {  # QA after generating
            "name": "checked", "source": str(corpus.relative_to(root)), "qa_sample": 2,
            "text_field": "article", "summary_field": "highlights", "page_size": "tiny"})
        assert status == 422 and error["field"] == "qa_sample" and "Tesseract" in error["error"]


def test_qa_refuses_to_store_a_report_of_pages_rewritten_meanwhile(tmp_path, monkeypatch):
    """A generation that replaced the dataset while QA read it: the report is not stored."""
    import deepsynth.data.qa as qa

    folder = dataset(tmp_path)
    real_report = qa.qa_report

    def report_then_regenerate(*args, **kwargs):
        report = real_report(*args, **kwargs)
        generate_dataset(GenerationConfig(
            out=str(folder), overwrite=True, workers=1,
            source=SourceConfig(source=str(write_jsonl(tmp_path / "b" / "train.jsonl",
                                                       articles(2)).parent),
                                text_field="article", summary_field="highlights"),
            render=RenderConfig(page_size="tiny")))
        return report

    monkeypatch.setattr(qa, "qa_report", report_then_regenerate)
    with pytest.raises(OutputError, match="written again while render QA read it"):
        qa.run_qa(folder, sample=2)
    assert "qa" not in json.loads((folder / MANIFEST_NAME).read_text())
