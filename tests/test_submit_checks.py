"""Everything that can be known cheaply is checked when a job is submitted, and sources are
read within bounds.

A generation request naming a split the source lacks, a field its first row lacks (column
names shown with their invisible characters), a first row the generation would stop at
(unreadable, or its text null, under on_error fail), or an unknown font, and a training
request naming a split the dataset lacks or a max_length the prompt fills, are a 422 (values
the OpenAPI document allows, refused by what the source or dataset holds; an unknown font
names nothing: a 404) naming the field and what is allowed (REST) or one ``error:`` line
before any work (CLI); nothing is queued. Source lines that are not UTF-8 or longer than
the line limit are bad rows (skipped and counted under ``on_error skip``, named under
``fail``), never read whole. A real waitress server with capacities 0 (accepted jobs only
queue), the real CLI in subprocesses, real files.
"""

from __future__ import annotations

import csv
import gzip
import json
import tracemalloc
import urllib.request
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import articles, run_cli, write_jsonl
from support.server import Client, running

from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig
from deepsynth.config.server import ServerConfig
from deepsynth.data import output_folder
from deepsynth.data.file_formats import GENERATION_LIMITS, PREVIEW_LIMITS, ReadLimits, read_file
from deepsynth.data.generate import generate_dataset
from deepsynth.data.manifest import MANIFEST_NAME
from deepsynth.errors import DeepSynthError, OutputError

OFFLINE = {"HF_HUB_OFFLINE": "1"}
FIELDS = {"text_field": "article", "summary_field": "highlights", "id_field": "id"}


def gzip_with_long_line(path: Path, length: int, before: int = 1, after: int = 1) -> Path:
    """A .jsonl.gz whose line ``before + 1`` is a JSON object of ``length`` bytes, written in
    chunks (it compresses to almost nothing: a small file that inflates)."""
    rows = articles(before + after)
    with gzip.open(path, "wb", compresslevel=1) as handle:
        for row in rows[:before]:
            handle.write(json.dumps(row).encode() + b"\n")
        head = b'{"id": "long", "highlights": "h", "article": "'
        handle.write(head)
        left = length - len(head) - 2
        while left > 0:
            handle.write(b"a" * min(left, 2**20))
            left -= 2**20
        handle.write(b'"}\n')
        for row in rows[before:]:
            handle.write(json.dumps(row).encode() + b"\n")
    return path


def generation(source: Path, out: Path, on_error: str) -> GenerationConfig:
    return GenerationConfig(out=str(out), source=SourceConfig(
        source=str(source), on_error=on_error, **FIELDS),
        render=RenderConfig(page_size="tiny"), workers=1)


def manifest(out: Path) -> dict:
    return json.loads((out / MANIFEST_NAME).read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """Capacities 0 over a data root with a generated dataset ``ds`` (train, validation) and
    uploaded corpora."""
    root = tmp_path_factory.mktemp("submit") / "data"
    generate_dataset(GenerationConfig(
        out=str(root / "datasets" / "ds"),
        source=SourceConfig(source="builtin:scitldr", max_samples=2),
        render=RenderConfig(page_size="256x256", font_size=12, margin=8), workers=1))
    uploads = root / "uploads"
    write_jsonl(uploads / "x.jsonl", articles(3))
    write_jsonl(uploads / "body.jsonl", [{"id": "a", "body": "text", "highlights": "s"}])
    (uploads / "bad-first.jsonl").write_bytes(
        b'{"id": "a", "article": "\xff\xfe", "highlights": "s"}\n'
        + json.dumps(articles(1)[0]).encode() + b"\n")
    with open(uploads / "nosummary.csv", "w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([["id", "article"], ["1", "text"]])
    pq.write_table(pa.table({"\ufeffarticle": ["t"], "highlights": ["s"]}),
                   uploads / "hidden.parquet")  # a BOM kept in a column name
    write_jsonl(uploads / "null-first.jsonl", [dict(articles(1)[0], article=None),
                                               *articles(2)])
    config = ServerConfig(data_root=str(root), threads=4, generate_capacity=0,
                          accelerator_capacity=0)
    with running(config) as (_, base):
        yield Client(base), root


def job_count(client: Client) -> int:
    status, listing = client.call("GET", "/api/jobs")
    assert status == 200
    return listing["total"]


def refused(client: Client, path: str, body: dict, field: str, code: int = 422) -> dict:
    """POST ``body``: a ``code`` naming ``field`` with what is allowed, and no job queued."""
    before = job_count(client)
    status, answer = client.call("POST", path, body)
    assert status == code, answer
    assert answer["field"] == field, answer
    assert answer["allowed"], answer
    assert job_count(client) == before
    return answer


# 1. Generation requests the generation would refuse: a 422 at submit.

def gen(name: str, **extra) -> dict:
    return {"name": name, "source": "uploads/x.jsonl", "page_size": "tiny", **FIELDS, **extra}


@pytest.mark.parametrize("body,field,allowed", [
    (gen("s1", splits=["test"]), "source.splits", "train"),
    (gen("s2", source="builtin:scitldr", splits=["test"], text_field=None, summary_field=None,
         id_field=None), "source.splits", "train, validation"),
    (gen("s3", validation_fraction=0.2, source="builtin:scitldr", text_field=None,
         summary_field=None, id_field=None), "source.validation_fraction", None),
    (gen("f1", text_field="body"), "source.text_field", "id, article, highlights"),
    (gen("f2", source="uploads/body.jsonl"), "source.text_field", "id, body, highlights"),
    (gen("f3", source="uploads/nosummary.csv", id_field=None), "source.summary_field",
     "id, article"),
    (gen("f4", text_field=None), "source.text_field", "id, article, highlights"),
    (gen("f5", source="uploads/hidden.parquet", id_field=None), "source.text_field",
     "\\ufeffarticle, highlights"),
    (gen("r1", source="uploads/bad-first.jsonl"), "source", None),
    (gen("r3", source="uploads/null-first.jsonl"), "source", "on_error skip"),
    (gen("t1", font="NoSuchFont"), "font", "DejaVuSans"),  # already refused before
], ids=["local split", "builtin split", "fraction of a split source", "unknown text field",
        "first row lacks it", "csv lacks summary", "no mapping", "invisible column name",
        "bad first row", "null first text", "font"])
def test_generation_refused_at_submit(server, body, field, allowed):
    client, _ = server
    answer = refused(client, "/api/dataset/generate", body, field,
                     404 if field == "font" else 422)
    if allowed:
        assert allowed in answer["allowed"], answer


def test_benchmark_with_an_unknown_split_is_refused(server):
    client, _ = server
    answer = refused(client, "/api/benchmark/create",
                     {"preset": "scitldr", "name": "b1", "splits": ["test"]}, "source.splits")
    assert answer["allowed"] == "train, validation"


def test_an_empty_list_of_splits_is_refused(server):
    """It generated every split (what the user had unchecked): issue 18 item 3."""
    client, _ = server
    answer = refused(client, "/api/benchmark/create",
                     {"preset": "scitldr", "name": "b2", "splits": []}, "source.splits")
    assert answer["allowed"] == "train, validation"
    refused(client, "/api/dataset/generate", gen("s4", splits=[]), "source.splits")


@pytest.mark.parametrize("name", ["bad-first.jsonl", "null-first.jsonl"])
def test_bad_first_row_is_accepted_with_on_error_skip(server, name):
    client, _ = server
    status, answer = client.call("POST", "/api/dataset/generate",
                                 gen(f"skip-{name[:4]}", source=f"uploads/{name}",
                                     on_error="skip"))
    assert status == 202 and answer["status"] == "queued", answer


def test_bad_first_row_names_the_line(server):
    client, _ = server
    answer = refused(client, "/api/dataset/generate", gen("r2", source="uploads/bad-first.jsonl"),
                     "source")
    assert "bad-first.jsonl line 1 (record 1): invalid UTF-8" in answer["error"], answer
    answer = refused(client, "/api/dataset/generate",
                     gen("r4", source="uploads/null-first.jsonl"), "source")
    assert answer["error"] == ("source null-first.jsonl line 1 (record 1): text_field 'article' "
                               "is null (set on_error to skip to skip bad rows)"), answer


# 1. Training requests: the dataset's splits and the prompt's length.

def train_body(name: str, **extra) -> dict:
    return {"dataset": "ds", "preset": "quick_test", "max_steps": 1, "name": name, **extra}


@pytest.mark.parametrize("extra,field,allowed", [
    ({"train_split": "nope"}, "train_split", "validation, train"),
    ({"eval_split": "test"}, "eval_split", "validation, train"),
    ({"max_length": 12}, "max_length", "at least 13"),  # the default prompt is 11 tokens
], ids=["train split", "eval split", "max_length"])
def test_training_refused_at_submit(server, extra, field, allowed):
    client, _ = server
    answer = refused(client, "/api/model/train", train_body(f"m-{field}", **extra), field)
    assert answer["allowed"].startswith(allowed), answer


def test_training_at_the_smallest_max_length_is_accepted(server):
    client, _ = server
    status, answer = client.call("POST", "/api/model/train",
                                 train_body("m-ok", max_length=13, eval_split="validation"))
    assert status == 202 and answer["status"] == "queued", answer


def test_cli_train_refuses_an_unknown_split_before_any_work(server, tmp_path):
    _, root = server
    dataset = root / "datasets" / "ds"
    for flags, words in ((("--train-split", "nope"), ("train_split 'nope'", "validation")),
                         (("--max-length", "9"), ("max_length 9", "11-token prompt"))):
        out = tmp_path / flags[0].strip("-")
        done = run_cli("train", "--dataset", str(dataset), "--out", str(out), "--preset",
                       "quick_test", *flags, env=OFFLINE)
        assert done.returncode == 2, done.stderr
        assert "Traceback" not in done.stderr
        error = [line for line in done.stderr.splitlines() if line.startswith("error:")]
        assert len(error) == 1 and all(w in error[0] for w in words), done.stderr
        assert not out.exists()  # refused before the run folder (or the model) was made


def test_cli_generate_refuses_an_unknown_split(tmp_path):
    source = write_jsonl(tmp_path / "corpus.jsonl", articles(2))
    done = run_cli("generate", "--source", str(source), "--out", str(tmp_path / "out"),
                   "--text-field", "article", "--summary-field", "highlights", "--split",
                   "test", "--page-size", "tiny", env=OFFLINE)
    assert done.returncode == 2
    assert "error: splits names 'test'" in done.stderr and "available: train" in done.stderr
    assert not (tmp_path / "out").exists()


# 2. Lines that are not UTF-8: bad rows.

def test_invalid_utf8_lines_are_skipped_and_counted(tmp_path):
    rows = articles(4)
    jsonl = tmp_path / "corpus.jsonl"
    lines = [json.dumps(r).encode() for r in rows]
    lines[1] = b'{"id": "x", "article": "caf\xe9", "highlights": "s"}'  # Latin-1, not UTF-8
    jsonl.write_bytes(b"\n".join(lines) + b"\n")
    table = [["id", "article", "highlights"], *([r["id"], r["article"], r["highlights"]]
                                                  for r in rows)]
    text = "\n".join(",".join(f'"{cell}"' for cell in line) for line in table) + "\n"
    csv_file = tmp_path / "corpus.csv"
    csv_file.write_bytes(text.encode().replace(b"Story doc-2", b"Story \xff\xfe"))
    for source, bad_line, record in ((jsonl, 2, 2), (csv_file, 4, 3)):  # CSV: a header
        out = tmp_path / f"out-{source.suffix[1:]}"
        result = generate_dataset(generation(source, out, "skip"))
        assert result.rows == {"train": 3}
        assert manifest(out)["totals"]["invalid"] == 1
        with pytest.raises(DeepSynthError, match=f"{source.name} line {bad_line} \\(record "
                           f"{record}\\): invalid UTF-8.*--on-error skip"):
            generate_dataset(generation(source, tmp_path / f"fail-{source.suffix[1:]}",
                                        "fail"))


# 3. Lines longer than the limit: never read whole.

def test_a_long_line_is_not_held_in_memory(tmp_path):
    source = gzip_with_long_line(tmp_path / "bomb.jsonl.gz", 24 * 2**20)
    assert source.stat().st_size < 2**20  # a small file that inflates to 24 MiB
    tracemalloc.start()
    try:
        rows = list(read_file(source, ReadLimits(line_bytes=2**20)))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [r[0]["id"] if r[0] else None for r in rows] == ["doc-0", None, "doc-1"]
    assert rows[1][1] == ("bomb.jsonl.gz line 2 (record 2): longer than 1,048,576 bytes (the "
                          "line limit)")
    assert peak < 8 * 2**20, peak


def test_preview_reports_a_line_over_its_limit(server):
    client, root = server
    gzip_with_long_line(root / "uploads" / "long.jsonl.gz", PREVIEW_LIMITS.line_bytes + 10)
    status, answer = client.call("POST", "/api/sources/preview",
                                 {"source": "uploads/long.jsonl.gz"})
    assert status == 200, answer
    assert answer["rows"][0]["id"] == "doc-0" and answer["rows"][2]["id"] == "doc-1"
    assert answer["rows"][1] == {"error": f"long.jsonl.gz line 2 (record 2): longer than "
                                          f"{PREVIEW_LIMITS.line_bytes:,} bytes (the line limit)"}


def test_generation_skips_or_names_a_line_over_the_limit(tmp_path):
    source = gzip_with_long_line(tmp_path / "long.jsonl.gz", GENERATION_LIMITS.line_bytes + 1,
                                 before=2, after=2)
    out = tmp_path / "skip"
    result = generate_dataset(generation(source, out, "skip"))
    assert result.rows == {"train": 4}
    assert manifest(out)["totals"]["invalid"] == 1
    with pytest.raises(DeepSynthError, match=r"long.jsonl.gz line 3 \(record 3\): longer than "
                       r"67,108,864 bytes"):
        generate_dataset(generation(source, tmp_path / "fail", "fail"))


# 4. Source preview answers valid JSON.

def test_preview_of_non_finite_numbers_is_strict_json(server):
    client, root = server
    (root / "uploads" / "nan.jsonl").write_text(
        '{"article": NaN, "highlights": Infinity, "nested": [-Infinity, {"x": NaN}]}\n')
    pq.write_table(pa.table({"article": [float("nan")], "highlights": [float("inf")]}),
                   root / "uploads" / "nan.parquet")

    def refuse(constant):
        raise AssertionError(f"{constant} is not JSON")

    for name in ("nan.jsonl", "nan.parquet"):
        request = urllib.request.Request(client.base + "/api/sources/preview", method="POST",
                                         data=json.dumps({"source": f"uploads/{name}"}).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            answer = json.loads(response.read(), parse_constant=refuse)  # strict JSON
        assert answer["rows"][0]["article"] == "nan"


# 5. The free-space message gives exact figures.

def test_free_space_message_gives_exact_bytes(tmp_path, monkeypatch):
    monkeypatch.setattr(output_folder, "free_bytes", lambda folder: 1_048_576)
    with pytest.raises(OutputError) as caught:
        output_folder.check_disk_space(tmp_path, 2_000_000, 10)
    message = str(caught.value)
    # 2,000,000 bytes x 10 rows x 1.1 + 16 MiB
    assert "needs about 38,777,216 bytes (37.0 MiB) for 10 rows" in message, message
    assert "rows of about 2,000,000 bytes (1.91 MiB) each" in message, message
    assert "; 1,048,576 bytes (1.00 MiB) free" in message, message
