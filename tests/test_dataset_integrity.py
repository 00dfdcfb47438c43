"""A damaged shard is never used silently: a re-run of generate finds it by its SHA-256 and
renders its rows again (the dataset then equals a clean run), and readers (the samples and
page routes of the real server, training through the CLI) name it in a clear error."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import articles, run_cli, write_jsonl
from support.server import Client, running

from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig
from deepsynth.config.server import ServerConfig
from deepsynth.data.generate import generate_dataset
from deepsynth.data.manifest import MANIFEST_NAME
from deepsynth.workspace import Workspace

FIELDS = {"text_field": "article", "summary_field": "highlights", "id_field": "id"}
SHARD_SIZE = 4


def config(out: Path, source: Path) -> GenerationConfig:
    return GenerationConfig(
        out=str(out), workers=1, shard_size=SHARD_SIZE, render=RenderConfig(page_size="tiny"),
        source=SourceConfig(source=str(source), validation_fraction=0.25, **FIELDS))


def manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_NAME).read_text())


def rows(folder: Path) -> dict[str, list[dict]]:
    """Every row of every split, page bytes included, in shard order."""
    return {split: [r for f in sorted((folder / "data").glob(f"{split}-*.parquet"))
                    for r in pq.read_table(f).to_pylist()]
            for split in manifest(folder)["split_order"]}


def truncate(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)


def flip(path: Path) -> None:
    """Change bytes in the middle of the file (page image data) at the same size."""
    data = bytearray(path.read_bytes())
    for offset in range(len(data) // 2, len(data) // 2 + 8):
        data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def break_footer(path: Path) -> None:
    """Overwrite the footer's length field (before the closing ``PAR1``) at the same size."""
    data = bytearray(path.read_bytes())
    data[-8:-4] = b"\xff\xff\xff\x7f"
    path.write_bytes(bytes(data))


def remove(path: Path) -> None:
    path.unlink()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("corpus") / "all.jsonl", articles(40, words=30))


@pytest.fixture(scope="module")
def clean(tmp_path_factory, corpus) -> Path:
    """An uninterrupted generation: what every repaired dataset must equal."""
    out = tmp_path_factory.mktemp("clean") / "ds"
    result = generate_dataset(config(out, corpus))
    assert result.status == "complete"
    assert len(manifest(out)["splits"]["train"]["shards"]) >= 3
    assert len(manifest(out)["splits"]["validation"]["shards"]) >= 2
    return out


@pytest.fixture
def copy(clean, tmp_path) -> Path:
    target = tmp_path / "ds"
    shutil.copytree(clean, target)
    return target


def assert_same_dataset(folder: Path, clean: Path) -> None:
    assert rows(folder) == rows(clean)
    repaired, expected = manifest(folder), manifest(clean)
    assert repaired["status"] == "complete"
    assert repaired["splits"] == expected["splits"]  # shards (with checksums), counts
    assert sorted(p.name for p in (folder / "data").iterdir()) == \
        sorted(p.name for p in (clean / "data").iterdir())


# ------------------------------------------------------------ generate: verified on resume


@pytest.mark.parametrize("damage", [truncate, flip, remove], ids=lambda d: d.__name__)
@pytest.mark.parametrize("split", ["train", "validation"])
def test_rerun_names_a_damaged_shard_and_renders_it_again(copy, clean, corpus, caplog, damage,
                                                          split):
    shard = f"data/{split}-00001.parquet"
    before = copy / f"data/{split}-00000.parquet"
    untouched = before.stat().st_ino
    damage(copy / shard)
    with caplog.at_level(logging.WARNING, logger="deepsynth"):
        result = generate_dataset(config(copy, corpus))
    assert result.status == "complete"
    assert len(result.damaged_shards) == 1 and result.damaged_shards[0].startswith(shard)
    assert any(shard in r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING)
    assert_same_dataset(copy, clean)
    assert before.stat().st_ino == untouched  # shards before the damaged one are kept


def test_rerun_over_an_intact_dataset_renders_nothing(copy, clean, corpus):
    inodes = {p.name: p.stat().st_ino for p in (copy / "data").iterdir()}
    result = generate_dataset(config(copy, corpus))
    assert result.status == "complete" and result.damaged_shards == []
    assert {p.name: p.stat().st_ino for p in (copy / "data").iterdir()} == inodes
    assert_same_dataset(copy, clean)


def test_cli_rerun_logs_the_damaged_shard(copy, clean, corpus):
    flip(copy / "data/train-00002.parquet")
    command = ["generate", "--source", str(corpus), "--out", str(copy), "--page-size", "tiny",
               "--shard-size", str(SHARD_SIZE), "--workers", "1",
               "--validation-fraction", "0.25", "--text-field", "article",
               "--summary-field", "highlights", "--id-field", "id"]
    done = run_cli(*command)
    assert done.returncode == 0, done.stderr
    assert "data/train-00002.parquet does not match its SHA-256 checksum" in done.stderr
    assert json.loads(done.stdout)["status"] == "complete"
    assert_same_dataset(copy, clean)


def test_manifest_without_checksums_keeps_working(copy, clean, corpus):
    """An older manifest (entries with file, rows and bytes only) resumes; a shard of the
    wrong size is still found, and its split is rendered again from the start."""
    old = manifest(copy)
    for state in old["splits"].values():
        state["shards"] = [{k: s[k] for k in ("file", "rows", "bytes")} for s in state["shards"]]
    (copy / MANIFEST_NAME).write_text(json.dumps(old))
    assert generate_dataset(config(copy, corpus)).damaged_shards == []  # unverified, kept
    truncate(copy / "data/train-00002.parquet")
    result = generate_dataset(config(copy, corpus))
    assert result.damaged_shards and result.damaged_shards[0].startswith(
        "data/train-00002.parquet has")
    assert rows(copy) == rows(clean)
    assert manifest(copy)["splits"]["train"] == manifest(clean)["splits"]["train"]


# -------------------------------------------------------------- readers: checked cheaply


@pytest.mark.parametrize("damage", [truncate, break_footer], ids=lambda d: d.__name__)
def test_samples_and_pages_of_a_damaged_shard_are_409s_naming_it(tmp_path, corpus, damage):
    root = tmp_path / "root"
    folder = Workspace(root).datasets / "news"
    generate_dataset(config(folder, corpus))
    damage(folder / "data/train-00001.parquet")  # rows 4 to 7 of train
    with running(ServerConfig(data_root=str(root))) as (_app, base):
        client = Client(base)
        status, body = client.call("GET", "/api/datasets/news/samples?split=train&limit=4")
        assert status == 200 and len(body["samples"]) == 4  # shard 0 is intact
        for path in ("/api/datasets/news/samples?split=train&offset=4&limit=2",
                     "/api/datasets/news/samples/5/pages/0.png?split=train"):
            status, body = client.call("GET", path)
            assert status == 409, (path, body)
            assert body["shard"] == "data/train-00001.parquet" and body["dataset"] == "news"
            assert "data/train-00001.parquet" in body["error"] and "generate" in body["error"]
            assert str(root) not in body["error"]
        status, _ = client.call("GET", "/api/health")
        assert status == 200
        status, listed = client.call("GET", "/api/datasets/news")
        assert status == 200 and listed["name"] == "news"


def test_training_on_a_damaged_dataset_names_the_shard(copy, tmp_path):
    truncate(copy / "data/validation-00001.parquet")  # even an evaluation split's shard
    done = run_cli("train", "--dataset", str(copy), "--out", str(tmp_path / "run"),
                   "--preset", "quick_test", env={"DEEPSYNTH_DATA_ROOT": str(tmp_path / "r")})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert "data/validation-00001.parquet" in errors[0] and "generate" in errors[0]


def test_evaluating_a_damaged_dataset_names_the_shard(copy, tmp_path):
    """Looking for a validation, then a test split must not read a damaged one as missing."""
    truncate(copy / "data/validation-00001.parquet")
    done = run_cli("evaluate", "--model", "tiny-deepseek-ocr-2", "--dataset", str(copy),
                   "--max-samples", "1", "--out", str(tmp_path / "eval"),
                   env={"DEEPSYNTH_DATA_ROOT": str(tmp_path / "r")})
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "data/validation-00001.parquet" in done.stderr, done.stderr
    assert "neither a validation nor a test split" not in done.stderr
