"""Rendering variety: each row's style sampled from ranges (seeded by the row id), refused
ranges named at the edge, and a generated dataset whose rows record and show their style.
Real rendering and generation; the CLI in a subprocess."""

from __future__ import annotations

import io
import json

import datasets
import pyarrow.parquet as pq
import pytest
from conftest import articles, run_cli, write_jsonl
from PIL import Image
from support.server import HubDouble

from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig, from_dict
from deepsynth.data.generate import generate_dataset
from deepsynth.data.manifest import MANIFEST_NAME
from deepsynth.errors import ConfigError
from deepsynth.render.ocr import installed_languages, tesseract_path
from deepsynth.render.renderer import Renderer
from deepsynth.render.tokens import token_counter
from deepsynth.render.variety import VarietyRenderer, build_row_renderer, sample_params

RANGES = {"vary_fonts": ["DejaVuSans", "DejaVuSerif", "DejaVuSansMono"],
          "vary_font_size_min": 11, "vary_font_size_max": 20,
          "vary_line_spacing_min": 1.0, "vary_line_spacing_max": 1.6,
          "vary_margin_min": 8, "vary_margin_max": 40}


def varied(**overrides) -> RenderConfig:
    return from_dict(RenderConfig, {"page_size": "small", **RANGES, **overrides})


def test_styles_are_seeded_by_row_id_and_within_their_ranges():
    config = varied()
    styles = [sample_params(config, f"train-{i}") for i in range(300)]
    again = varied()
    assert styles == [sample_params(again, f"train-{i}") for i in range(300)]  # seeded
    assert {s["font"] for s in styles} == set(RANGES["vary_fonts"])
    assert {s["font_size"] for s in styles} == set(range(11, 21))  # both ends reached
    assert {s["margin"] for s in styles} <= set(range(8, 41))
    spacings = {s["line_spacing"] for s in styles}
    assert min(spacings) == 1.0 and max(spacings) == 1.6 and len(spacings) == 13  # 0.05 grid
    reseeded = varied(vary_seed=7)
    other_seed = [sample_params(reseeded, f"train-{i}") for i in range(300)]
    assert other_seed != styles
    # A parameter's draw does not move when another range is dropped; unset keeps the option.
    sizes_only = varied(vary_fonts=[], vary_margin_min=None, vary_margin_max=None)
    for i, style in enumerate(styles[:50]):
        alone = sample_params(sizes_only, f"train-{i}")
        assert alone["font_size"] == style["font_size"]
        assert alone["font"] == "DejaVuSans" and alone["margin"] == 40


def test_without_ranges_rows_render_with_the_plain_renderer():
    config = RenderConfig(page_size="small")
    assert not config.variety.enabled
    renderer = build_row_renderer(config)
    assert type(renderer) is Renderer
    assert renderer.render_row("a b c", "row-1").render_params is None
    assert isinstance(build_row_renderer(varied()), VarietyRenderer)


def test_caches_are_shared_out_among_the_font_sizes_variety_may_use(monkeypatch):
    """Word and mask caches per (font, size) split a per-process budget (3 fonts at 10-40 px
    once took 2.3 GB a worker), and a row drawn after evictions is drawn the same."""
    import random

    import deepsynth.render.variety as variety

    assert variety.font_size_pairs(varied()) == 3 * 10
    assert variety.font_size_pairs(varied(overflow="shrink", min_font_size=6)) == 3 * 15
    assert variety.font_size_pairs(RenderConfig(page_size="small")) == 1
    monkeypatch.setattr(variety, "WORDS_BUDGET", 600)  # small, so a test fills them
    monkeypatch.setattr(variety, "MASKS_BUDGET", 300)
    renderer = variety.VarietyRenderer(varied(), token_counter(None))
    assert (renderer.words_cached, renderer.masks_cached) == (
        variety.WORDS_FLOOR, variety.MASKS_FLOOR)  # 600 // 30 is under the floor
    monkeypatch.setattr(variety, "WORDS_FLOOR", 20)
    monkeypatch.setattr(variety, "MASKS_FLOOR", 10)
    renderer = variety.VarietyRenderer(varied(), token_counter(None))
    assert (renderer.words_cached, renderer.masks_cached) == (20, 10)
    rng = random.Random(0)  # 60 made-up words a row: more than any cache keeps
    texts = {f"row-{i}": " ".join("".join(rng.choice("abcdefghij") for _ in range(6))
                                  for _ in range(60)) for i in range(40)}
    first = {row: renderer.render_row(text, row).pages for row, text in texts.items()}
    for measurer, masks in renderer._shared.values():
        assert len(measurer._cache) <= 20 and len(masks) <= 10
    fresh = variety.VarietyRenderer(varied(), token_counter(None))
    assert all(fresh.render_row(text, row).pages == first[row] for row, text in texts.items())



@pytest.mark.parametrize(("values", "field", "allowed"), [
    ({"vary_font_size_min": 12}, "vary_font_size_max",
     "both vary_font_size_min and vary_font_size_max, or neither"),
    ({"vary_margin_min": 30, "vary_margin_max": 10}, "vary_margin_min", "at most 10"),
    ({"vary_line_spacing_min": 0.5, "vary_line_spacing_max": 1.0}, "vary_line_spacing_min",
     "0.8-3"),
    ({"vary_margin_min": 0, "vary_margin_max": 320}, "vary_margin_max", None),
])
def test_bad_ranges_are_refused_naming_the_field(values, field, allowed):
    with pytest.raises(ConfigError) as caught:
        from_dict(RenderConfig, {"page_size": "small", **values})
    assert caught.value.field == field
    if allowed:
        assert caught.value.allowed == allowed


def test_an_unknown_variety_font_names_vary_fonts():
    with pytest.raises(ConfigError) as caught:
        build_row_renderer(varied(vary_fonts=["DejaVuSans", "NoSuchFont"]))
    assert caught.value.field == "vary_fonts"


def test_deepsynth_render_refuses_variety_naming_the_option(tmp_path):
    result = run_cli("render", "--text", "Hi", "--out", str(tmp_path / "p.png"),
                     "--vary-margin-min", "4", "--vary-margin-max", "9")
    assert result.returncode == 2
    assert result.stderr.startswith("error: vary_margin_min is not an option of deepsynth "
                                    "render"), result.stderr


def generate(tmp_path, render: RenderConfig, rows: int = 12, hub=None, **options):
    corpus = write_jsonl(tmp_path / "corpus" / "train.jsonl", articles(rows, words=60))
    out = tmp_path / "ds"
    generate_dataset(GenerationConfig(
        out=str(out), source=SourceConfig(source=str(corpus), text_field="article",
                                          summary_field="highlights", id_field="id"),
        render=render, workers=1, **options), hub_client=hub, backoff_seconds=0)
    return out


def test_a_varied_dataset_records_each_rows_style_and_draws_it(tmp_path):
    config = varied()
    out = generate(tmp_path, config)
    rows = pq.read_table(out / "data" / "train-00000.parquet").to_pylist()
    styles = [row["render_params"] for row in rows]
    assert styles == [sample_params(config, row["id"]) for row in rows]
    assert len({tuple(s.values()) for s in styles}) == len(rows)
    assert [row["font_size"] for row in rows] == [s["font_size"] for s in styles]
    # Each page is the row's text drawn in its own style, and styles differ in pixels: the
    # same text in two rows' styles gives different pages.
    renderer = build_row_renderer(config)
    for row in rows[:3]:
        assert row["images"][0]["bytes"] == renderer.for_row(row["id"]).render(
            row["text"]).pages[0]
    text = rows[0]["text"]
    drawn = {renderer.for_row(row["id"]).render(text).pages[0] for row in rows}
    assert len(drawn) == len(rows)
    fixed = Image.open(io.BytesIO(build_row_renderer(RenderConfig(page_size="small")).render(
        rows[0]["text"]).pages[0]))
    assert Image.open(io.BytesIO(rows[0]["images"][0]["bytes"])).tobytes() != fixed.tobytes()
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert loaded[0]["render_params"] == styles[0]
    card = (out / "README.md").read_text()
    assert "Rendering variety" in card and "render_params" in card


def test_without_variety_shards_have_no_style_column(tmp_path):
    out = generate(tmp_path, RenderConfig(page_size="small"), rows=2)
    names = pq.read_schema(out / "data" / "train-00000.parquet").names
    assert "render_params" not in names
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert manifest["config"]["render"]["vary_fonts"] == []


needs_tesseract = pytest.mark.skipif(
    not tesseract_path() or "eng" not in installed_languages(),
    reason="Tesseract with its eng pack is not installed (scripts/setup.sh)")


@needs_tesseract
def test_generate_with_variety_and_qa_sample_stores_the_report(tmp_path):
    # Rows of several pages: a row laid out in another style breaks its pages elsewhere.
    corpus = write_jsonl(tmp_path / "corpus" / "train.jsonl", articles(3, words=250))
    out = tmp_path / "ds"
    result = run_cli("generate", "--source", str(corpus), "--out", str(out),
                     "--text-field", "article", "--summary-field", "highlights",
                     "--id-field", "id", "--page-size", "small", "--workers", "1",
                     "--vary-font", "DejaVuSerif", "--vary-font", "DejaVuSansMono",
                     "--vary-font-size-min", "14", "--vary-font-size-max", "22",
                     "--qa-sample", "4")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    assert summary["qa"] == manifest["qa"]
    report = manifest["qa"]
    assert report["sample"] == 4 and report["of_pages"] > 4 and report["seed"] == 0
    # QA lays each row out again in its own style: a wrong style would read as errors.
    assert report["cer"] < 0.05, report
    assert report["worst"] and {"split", "row", "page", "cer", "script"} <= set(
        report["worst"][0])
    assert "render QA: 4 of" in result.stderr and "| overall |" in result.stderr
    assert "## Render QA" in (out / "README.md").read_text()
    assert {r["font"] for r in pq.read_table(out / "data" / "train-00000.parquet").column(
        "render_params").to_pylist()} <= {"DejaVuSerif", "DejaVuSansMono"}


@needs_tesseract
def test_the_card_pushed_to_the_hub_has_the_qa_section(tmp_path):
    """Uses HubDouble, a test double of the Hub client (the Hub is unreachable here)."""
    hub = HubDouble("token", "dataset")
    out = generate(tmp_path, RenderConfig(page_size="small"), rows=1, hub=hub, qa_sample=1,
                   push_to_hub="me/qa")
    files = HubDouble.repositories[("dataset", "me/qa")]
    card = files["README.md"].decode()
    assert "## Render QA" in card and card == (out / "README.md").read_text()
    assert json.loads(files[MANIFEST_NAME])["qa"]["sample"] == 1
