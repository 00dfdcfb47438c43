"""Compression and missing-glyph warnings: at the thresholds and not below, in every place a
user looks (``deepsynth render``, the render preview, the generation summary, its job
result, the dataset card). Real renderer, real CLI in subprocesses, real server."""

from __future__ import annotations

import json

import pytest
from support.server import Client, running, wait_job

from conftest import articles, run_cli, write_jsonl
from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig
from deepsynth.config.server import ServerConfig
from deepsynth.data.generate import generate_dataset
from deepsynth.render.legibility import dataset_warnings, document_warnings
from deepsynth.render.renderer import build_renderer

# 6 px text with no margin on a 1024 px page holds over 20 text tokens per vision token.
DENSE = {"page_size": "base", "font_size": 6, "margin": 0}
DENSE_FLAGS = ["--page-size", "base", "--font-size", "6", "--margin", "0"]


def text_of(characters: int) -> str:
    """Plain ASCII prose of exactly ``characters`` characters: ceil(n / 4) estimated tokens."""
    text = ("lorem ipsum dolor sit amet consectetur " * (characters // 30 + 1))[:characters]
    return text[:-1] + "x"  # no trailing space


def kinds(warnings: list[dict]) -> list[str]:
    return [w["kind"] for w in warnings]


@pytest.mark.parametrize("tokens, expected", [
    (2570, []),  # exactly 10x: not over
    (2571, ["lossy"]),
    (3855, ["lossy"]),  # exactly 15x
    (3856, ["likely_unreadable"]),
])
def test_one_page_at_and_past_the_thresholds(tokens, expected):
    # one page holds 257 vision tokens (DeepSeek-OCR-2, global); the estimate counts 4
    # ASCII characters a token
    rendered = build_renderer(RenderConfig(**DENSE)).render(text_of(tokens * 4))
    assert rendered.stats.num_pages == 1 and rendered.stats.text_tokens == tokens
    assert rendered.page_compression == [round(tokens / 257, 4)]
    assert kinds(rendered.warnings()) == expected


def test_each_page_is_judged_on_its_own_text():
    # A dense first page, then pages of one-dot lines: the document's ratio is under 10x,
    # its first page's over 15x.
    rendered = build_renderer(RenderConfig(**DENSE)).render(text_of(30_000) + "\n." * 600)
    ratios = rendered.page_compression
    assert len(ratios) == rendered.stats.num_pages >= 4
    assert rendered.stats.compression_ratio < 10 and ratios[0] > 15
    assert all(ratio < 1 for ratio in ratios[1:])
    (warning,) = rendered.warnings()
    assert warning["kind"] == "likely_unreadable" and warning["pages"] == 1


def test_readable_pages_and_drawn_glyphs_give_no_warning():
    rendered = build_renderer(RenderConfig(page_size="tiny")).render(text_of(3000))
    assert max(rendered.page_compression) < 10 and rendered.warnings() == []
    assert document_warnings([10.0], 0, "") == []


def test_missing_glyphs_are_warned_about():
    rendered = build_renderer(RenderConfig(page_size="tiny", fallback_fonts=False)).render(
        "中文摘要 text")
    assert kinds(rendered.warnings()) == ["missing_glyphs"]
    assert "4 character(s)" in rendered.warnings()[0]["message"]
    assert "中文摘要" in rendered.warnings()[0]["message"]


def test_cli_render_prints_the_warnings(tmp_path):
    result = run_cli("render", "--text", text_of(4 * 3000), "--out", str(tmp_path / "p.png"),
                     *DENSE_FLAGS)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert kinds(report["warnings"]) == ["lossy"] and report["page_compression"][0] > 10
    assert "warning: 1 page(s) hold over 10 text tokens per vision token" in result.stderr
    quiet = run_cli("render", "--text", "short text", "--out", str(tmp_path / "q.png"))
    assert json.loads(quiet.stdout)["warnings"] == [] and "warning" not in quiet.stderr


def _corpus(tmp_path, characters: int):
    rows = [dict(row, article=f"{row['article']} {text_of(characters)}") for row in articles(3)]
    return write_jsonl(tmp_path / "corpus" / "train.jsonl", rows).parent


def test_generation_counts_dense_pages_and_says_so_in_summary_and_card(tmp_path):
    out = tmp_path / "dense"
    result = run_cli("generate", "--source", str(_corpus(tmp_path, 4 * 4000)), "--out", str(out),
                     "--text-field", "article", "--summary-field", "highlights",
                     "--workers", "1", *DENSE_FLAGS)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["counts"]["unreadable_pages"] == summary["counts"]["lossy_pages"] == 3
    assert kinds(summary["warnings"]) == ["likely_unreadable"]
    assert "warning: 3 page(s) of 3 hold over 15 text tokens" in result.stderr
    card = (out / "README.md").read_text()
    assert "## Warnings" in card and "likely unreadable" in card
    assert "| unreadable_pages | 3 |" in card


def test_a_readable_dataset_has_no_warnings(tmp_path):
    out = tmp_path / "fine"
    result = generate_dataset(GenerationConfig(
        out=str(out), source=SourceConfig(source=str(_corpus(tmp_path, 400)),
                                          text_field="article", summary_field="highlights"),
        render=RenderConfig(page_size="tiny"), workers=1))
    assert result.totals["lossy_pages"] == 0 and dataset_warnings(result.totals) == []
    assert "## Warnings" not in (out / "README.md").read_text()


def test_dataset_warnings_at_the_thresholds():
    assert dataset_warnings({"pages": 9, "lossy_pages": 0, "unreadable_pages": 0}) == []
    assert kinds(dataset_warnings({"pages": 9, "lossy_pages": 2})) == ["lossy"]
    assert kinds(dataset_warnings({"pages": 9, "lossy_pages": 2, "unreadable_pages": 1,
                                   "missing_glyphs": 5, "rows_with_missing_glyphs": 2})) \
        == ["likely_unreadable", "missing_glyphs"]


def test_preview_job_result_and_dataset_listing_carry_the_warnings(tmp_path):
    with running(ServerConfig(data_root=str(tmp_path / "data"), threads=4)) as (_, base):
        client = Client(base)
        status, preview = client.call("POST", "/api/render/preview",
                                      {"text": text_of(4 * 3000), **DENSE})
        assert status == 200 and kinds(preview["warnings"]) == ["lossy"]
        assert preview["page_compression"][0] == preview["stats"]["compression_ratio"]
        uploads = tmp_path / "data" / "uploads"
        write_jsonl(uploads / "dense.jsonl", [dict(r, article=text_of(4 * 4000))
                                              for r in articles(2)])
        status, created = client.call("POST", "/api/dataset/generate", {
            "source": "uploads/dense.jsonl", "text_field": "article",
            "summary_field": "highlights", "name": "dense", "workers": 1, **DENSE})
        assert status == 202, created
        job = wait_job(client, created["job_id"])
        assert job["status"] == "completed", job
        assert kinds(job["result"]["warnings"]) == ["likely_unreadable"]
        # The dataset keeps saying so where the Datasets page lists it.
        status, listed = client.call("GET", "/api/datasets/dense")
        assert status == 200 and listed["warnings"] == job["result"]["warnings"], listed


@pytest.mark.parametrize("target", [3.0, 6.0])
def test_target_compression_lands_within_15_percent_on_a_real_corpus(target):
    from deepsynth.data.sources import open_source

    sources = [" ".join(row.fields["source"]) for row in open_source("builtin:scitldr").rows(
        "train")]
    documents = [" ".join(sources[:25])]  # ~27,000 characters
    options = {"page_size": "small", "font_size": 24}
    renderer = build_renderer(RenderConfig(**options, target_compression=target,
                                           min_font_size=6))
    plain = build_renderer(RenderConfig(**options))
    for document in documents:
        stats = renderer.render(document).stats
        assert abs(stats.compression_ratio / target - 1) <= 0.15, stats
        assert 6 <= stats.font_size < 24  # recorded per row in the font_size column
        assert plain.render(document).stats.compression_ratio < 0.85 * target


def test_target_compression_needs_paginate_and_a_smaller_minimum():
    from deepsynth.config import from_dict
    from deepsynth.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        from_dict(RenderConfig, {"target_compression": 10, "overflow": "shrink"})
    assert info.value.field == "target_compression"
    with pytest.raises(ConfigError) as info:
        from_dict(RenderConfig, {"target_compression": 10, "font_size": 8})
    assert info.value.field == "min_font_size"
