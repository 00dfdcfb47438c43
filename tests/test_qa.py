"""``deepsynth qa``: a generated dataset's pages read back with Tesseract, CER per script,
stored in the manifest and the card. Real generation, real Tesseract (skipped, saying so,
where it or its Arabic/Hebrew packs are missing; scripts/setup.sh installs them)."""

from __future__ import annotations

import json

import pytest

from conftest import articles, run_cli, write_jsonl
from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig
from deepsynth.data.generate import generate_dataset
from deepsynth.data.manifest import MANIFEST_NAME
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
