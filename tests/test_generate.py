"""Dataset generation end to end: the folder load_dataset reads, counts, splits and sources."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
from PIL import Image

from conftest import articles, run_cli, write_jsonl
from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig
from deepsynth.data.generate import generate_dataset
from deepsynth.data.manifest import MANIFEST_NAME
from deepsynth.data.presets import PRESETS
from deepsynth.data.sources import open_source
from deepsynth.errors import ConfigError

FIELDS = {"text_field": "article", "summary_field": "highlights", "id_field": "id"}


def config(out: Path, source: str, workers: int = 1, shard_size: int = 500,
           **source_options) -> GenerationConfig:
    return GenerationConfig(out=str(out), source=SourceConfig(source=source, **source_options),
                            render=RenderConfig(page_size="tiny"), workers=workers,
                            shard_size=shard_size)


def manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_NAME).read_text())


def ids(folder: Path, split: str) -> list[str]:
    files = sorted((folder / "data").glob(f"{split}-*.parquet"))
    return [i for f in files for i in pq.read_table(f, columns=["id"]).column("id").to_pylist()]


def test_builtin_corpus_loads_with_load_dataset(tmp_path):
    out = tmp_path / "scitldr"
    result = run_cli("generate", "--source", "builtin:scitldr", "--out", str(out),
                     "--max-samples", "12", "--workers", "2", "--page-size", "small")
    assert result.returncode == 0, result.stderr
    # Its own cache: datasets keys a local folder's cache by a hash that can repeat across
    # runs (same tmp path), and would hand back rows an older build of this code wrote.
    loaded = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    assert set(loaded) == {"train", "validation"}
    assert loaded["train"].num_rows == 12 and loaded["validation"].num_rows == 12
    row = loaded["train"][0]
    assert isinstance(row["images"][0], Image.Image)
    assert row["images"][0].size == (640, 640) and row["images"][0].mode == "L"
    assert row["num_pages"] == len(row["images"]) >= 1
    assert row["vision_tokens"] == 257 * row["num_pages"]  # DeepSeek-OCR-2, global mode
    # SciTLDR's source is a list of sentences (joined) and target a list (first taken).
    raw = next(iter(open_source("builtin:scitldr").rows("train"))).fields
    assert row["text"] == " ".join(raw["source"]) and row["summary"] == raw["target"][0]
    assert row["id"] == raw["paper_id"]
    card = (out / "README.md").read_text()
    assert "configs:" in card and "data/train-*.parquet" in card and "license: apache-2.0" in card
    info = manifest(out)
    assert info["status"] == "complete" and info["format_version"] == 1
    assert info["config"]["render"]["page_size"] == "small"
    assert info["versions"]["pillow"] and info["versions"]["deepsynth"]


def test_dedup_leakage_and_empty_counts(tmp_path):
    rows = articles(10)
    train = rows[:6] + [dict(rows[0], id="dup-of-0"),  # duplicate inside train
                        dict(rows[7], id="leak-of-7"),  # also in validation
                        {"id": "empty", "article": "  \n ", "highlights": "x"},
                        dict(rows[1], id="dup-ws", article=rows[1]["article"].replace(" ", "  "))]
    folder = tmp_path / "corpus"
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "dev.jsonl", rows[6:10])
    out = tmp_path / "out"
    result = generate_dataset(config(out, str(folder), **FIELDS))
    assert result.rows == {"validation": 4, "train": 6}
    counts = manifest(out)["splits"]["train"]["counts"]
    assert counts["read"] == 10 and counts["written"] == 6
    assert counts["duplicates"] == 2 and counts["leaked"] == 1 and counts["empty"] == 1
    assert manifest(out)["split_order"] == ["validation", "train"]  # evaluation first
    assert ids(out, "train") == [f"doc-{i}" for i in range(6)]
    card = (out / "README.md").read_text()
    assert "| duplicates | 0 | 2 |" in card and "| leaked | 0 | 1 |" in card


def test_validation_fraction_is_deterministic_and_disjoint(tmp_path):
    source = write_jsonl(tmp_path / "all.jsonl", articles(40))
    first = generate_dataset(config(tmp_path / "a", str(source), validation_fraction=0.25,
                                    **FIELDS))
    second = generate_dataset(config(tmp_path / "b", str(source), validation_fraction=0.25,
                                     **FIELDS))
    assert first.rows == second.rows
    assert first.rows["validation"] + first.rows["train"] == 40
    assert 3 <= first.rows["validation"] <= 18
    validation, train = ids(tmp_path / "a", "validation"), ids(tmp_path / "a", "train")
    assert not set(validation) & set(train)
    assert validation == ids(tmp_path / "b", "validation")


def test_split_selection_caps_and_aliases(tmp_path):
    folder = tmp_path / "corpus"
    write_jsonl(folder / "train.jsonl", articles(8))
    write_jsonl(folder / "val.jsonl", articles(5, prefix="v"))
    out = tmp_path / "out"
    result = generate_dataset(config(out, str(folder), splits=["dev"], max_samples=3, **FIELDS))
    assert result.rows == {"validation": 3}  # "dev" and "val" both mean validation
    assert ids(out, "validation") == ["v-0", "v-1", "v-2"]
    with pytest.raises(ConfigError, match="available: train, validation"):
        generate_dataset(config(tmp_path / "o2", str(folder), splits=["test"], **FIELDS))


@pytest.mark.parametrize("suffix", ["csv", "parquet", "json"])
def test_other_local_formats(tmp_path, suffix):
    rows = articles(5)
    path = tmp_path / f"corpus.{suffix}"
    if suffix == "csv":
        import csv

        with open(path, "w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    elif suffix == "parquet":
        import pyarrow as pa

        pq.write_table(pa.Table.from_pylist(rows), path)
    else:
        path.write_text(json.dumps(rows))
    out = tmp_path / "out"
    generate_dataset(config(out, str(path), **FIELDS))
    assert ids(out, "train") == [r["id"] for r in rows]


def test_hub_source_reads_through_datasets_streaming(tmp_path, monkeypatch):
    """The Hub is unreachable here: a test double of the Hub maps the repository org/name to
    a local dataset folder, read through the same streaming ``datasets.load_dataset`` call
    that hf: sources use."""
    import datasets

    hub_like = tmp_path / "org_name"
    write_jsonl(hub_like / "data" / "train.jsonl", articles(7))
    write_jsonl(hub_like / "data" / "validation.jsonl", articles(3, prefix="v"))
    load, split_names = datasets.load_dataset, datasets.get_dataset_split_names

    def on_the_hub(repo: str) -> str:
        assert repo == "org/name"
        return str(hub_like)

    monkeypatch.setattr(datasets, "load_dataset",
                        lambda repo, *args, **kw: load(on_the_hub(repo), *args, **kw))
    monkeypatch.setattr(datasets, "get_dataset_split_names",
                        lambda repo, *args, **kw: split_names(on_the_hub(repo), *args, **kw))
    out = tmp_path / "out"
    result = generate_dataset(config(out, "hf:org/name", **FIELDS))
    assert result.rows == {"validation": 3, "train": 7}
    assert ids(out, "train") == [f"doc-{i}" for i in range(7)]
    source = open_source("hf:org/name")
    assert [r.position for r in source.rows("train", start=5)] == [5, 6]


def test_every_benchmark_preset_resolves(tmp_path):
    for name, preset in PRESETS.items():
        source = open_source(f"preset:{name}")
        assert source.fields.text == preset.text_field
        assert source.fields.summary == preset.summary_field
        if preset.source.startswith("builtin:"):
            assert source.splits() == ["train", "validation"]
        else:
            assert source.repo == preset.source.removeprefix("hf:")
            assert source.num_rows("train") == preset.sizes["train"]
    assert PRESETS["cnn_dailymail"].config == "3.0.0"
    out = tmp_path / "preset"
    result = generate_dataset(config(out, "preset:scitldr", max_samples=2))
    assert result.rows == {"validation": 2, "train": 2}


def test_stop_flag_writes_rendered_rows_and_resume_continues(tmp_path):
    source = write_jsonl(tmp_path / "c.jsonl", articles(30))
    out = tmp_path / "out"
    seen = []

    def stop_after_eleven() -> bool:
        return len(seen) >= 11

    result = generate_dataset(config(out, str(source), shard_size=5, **FIELDS),
                              progress=lambda p: seen.append(p.done),
                              should_stop=stop_after_eleven)
    assert result.status == "stopped"
    assert manifest(out)["status"] == "stopped"
    assert ids(out, "train") == [f"doc-{i}" for i in range(11)]  # 5 + 5 + a shorter 1
    assert [s["rows"] for s in manifest(out)["splits"]["train"]["shards"]] == [5, 5, 1]
    resumed = generate_dataset(config(out, str(source), shard_size=5, **FIELDS))
    assert resumed.status == "complete"
    assert ids(out, "train") == [f"doc-{i}" for i in range(30)]
    assert manifest(out)["splits"]["train"]["counts"]["read"] == 30


def test_parallel_workers_keep_source_order(tmp_path):
    source = write_jsonl(tmp_path / "c.jsonl", articles(45))
    out = tmp_path / "out"
    generate_dataset(config(out, str(source), workers=2, shard_size=20, **FIELDS))
    assert ids(out, "train") == [f"doc-{i}" for i in range(45)]
    table = pq.read_table(out / "data" / "train-00000.parquet")
    page = table.column("images")[0].as_py()[0]["bytes"]
    assert Image.open(io.BytesIO(page)).size == (512, 512)


def test_datasets_list_and_show(tmp_path):
    source = write_jsonl(tmp_path / "c.jsonl", articles(4))
    generate_dataset(config(tmp_path / "root" / "news", str(source), **FIELDS))
    listing = run_cli("datasets", "list", str(tmp_path / "root"))
    assert listing.returncode == 0
    assert "news" in listing.stdout and "complete" in listing.stdout
    shown = run_cli("datasets", "show", str(tmp_path / "root" / "news"))
    detail = json.loads(shown.stdout)
    assert detail["rows"] == {"train": 4}
    assert detail["splits"]["train"]["counts"]["written"] == 4


def test_shard_schema_matches_what_datasets_would_write():
    from deepsynth.data.shards import arrow_schema, card_features

    features = datasets.Features.from_arrow_schema(arrow_schema())
    assert isinstance(features["images"], datasets.List)
    assert isinstance(features["images"].feature, datasets.Image)
    for variety in (False, True):  # True: with the render_params column
        features = datasets.Features.from_arrow_schema(arrow_schema(variety))
        assert features.arrow_schema.equals(arrow_schema(variety), check_metadata=True)
        assert features._to_yaml_list() == card_features(variety)
    assert "render_params" in features and "render_params" not in arrow_schema().names


def test_written_files_are_readable_by_others(tmp_path):
    source = write_jsonl(tmp_path / "c.jsonl", articles(2))
    out = tmp_path / "out"
    generate_dataset(config(out, str(source), **FIELDS))
    for name in (MANIFEST_NAME, "README.md", "data/train-00000.parquet"):
        assert (out / name).stat().st_mode & 0o777 == 0o644, name
