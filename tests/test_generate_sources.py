"""The data people bring, read right or refused naming the line, the field and the fix:
byte-order marks, JSON Lines in a ``.json`` file, JSON arrays streamed, file line numbers,
``null`` and non-string values, empty texts and summaries, duplicates that draw the same
pages. Real files made here, the real readers and generation, the real job manager and CLI.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import logging
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import articles, run_cli, write_jsonl

from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig
from deepsynth.data.file_formats import ReadLimits, read_file
from deepsynth.data.generate import generate_dataset
from deepsynth.data.json_stream import json_records
from deepsynth.data.records import to_document
from deepsynth.data.sources import FieldMapping, open_source
from deepsynth.errors import DeepSynthError, SourceError
from deepsynth.render.renderer import build_renderer

BOM = b"\xef\xbb\xbf"
FIELDS = {"text_field": "article", "summary_field": "highlights", "id_field": "id"}
MAPPING = FieldMapping("article", "highlights", "id")


def generation(source: Path, out: Path, on_error: str = "fail", **fields) -> GenerationConfig:
    return GenerationConfig(out=str(out), source=SourceConfig(
        source=str(source), on_error=on_error, **(fields or FIELDS)),
        render=RenderConfig(page_size="tiny"), workers=1)


def written(out: Path, column: str = "id") -> list:
    return [value for shard in sorted((out / "data").glob("train-*.parquet"))
            for value in pq.read_table(shard, columns=[column]).column(column).to_pylist()]


def jsonl_bytes(rows: list[dict]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows)


def csv_bytes(rows: list[dict], delimiter: str = ",") -> bytes:
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=list(rows[0]), delimiter=delimiter)
    writer.writeheader()
    writer.writerows(rows)
    return text.getvalue().encode()


# 1. Byte-order marks.

@pytest.mark.parametrize("name", ["c.csv", "c.tsv", "c.json", "c.jsonl", "c.csv.gz",
                                  "c.tsv.gz", "c.json.gz", "c.jsonl.gz", "lines.json"])
def test_byte_order_marks_are_dropped_in_every_text_format(tmp_path, name):
    """Excel's UTF-8 CSV starts with a BOM; a file saved again as UTF-8 with BOM can hold
    two; JSON Lines files joined with ``cat`` hold one at the start of a later line."""
    rows = articles(3)
    if name.startswith("c.csv"):
        data = csv_bytes(rows)
    elif name.startswith("c.tsv"):
        data = csv_bytes(rows, "\t")
    elif name.startswith("c.jsonl"):
        data = jsonl_bytes(rows[:2]) + BOM + jsonl_bytes(rows[2:])
    elif name == "lines.json":  # JSON Lines in a .json file
        data = jsonl_bytes(rows)
    else:
        data = json.dumps(rows, indent=1).encode()
    path = tmp_path / name
    data = BOM + BOM + data
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    read = list(read_file(path))
    assert [row.error for row in read] == [None] * 3
    assert [row.fields for row in read] == rows


def test_a_utf16_file_is_refused_naming_the_encoding(tmp_path):
    path = tmp_path / "excel.tsv"  # Excel's "Unicode Text": UTF-16 with a BOM, tabs
    path.write_bytes(csv_bytes(articles(2), "\t").decode().encode("utf-16"))
    with pytest.raises(SourceError, match="excel.tsv is UTF-16 .*save it as UTF-8"):
        list(read_file(path))


def test_invisible_characters_in_column_names_are_shown(tmp_path):
    """A BOM kept inside a column name (a CSV converted to Parquet without dropping it) and
    a zero-width space are shown as escapes: the names look like the ones asked for."""
    path = tmp_path / "hidden.parquet"
    pq.write_table(pa.table({"\ufeffarticle": ["text"], "highlights\u200b": ["s"]}), path)
    done = run_cli("generate", "--source", str(path), "--out", str(tmp_path / "out"),
                   "--text-field", "article", "--summary-field", "highlights",
                   "--page-size", "tiny", env={"HF_HUB_OFFLINE": "1"})
    assert done.returncode == 2, done.stderr
    error = next(line for line in done.stderr.splitlines() if line.startswith("error:"))
    assert error == ("error: text_field 'article' is not a column of this source; columns "
                     "present: \\ufeffarticle, highlights\\u200b")
    with pytest.raises(SourceError, match=r"columns present: \\ufeffarticle, "
                       r"highlights\\u200b, 'id '$"):
        to_document({"\ufeffarticle": "x", "highlights\u200b": "y", "id ": "1"}, MAPPING, "d")


# 2. JSON Lines in a .json file, JSON arrays streamed.

def test_json_lines_in_a_json_file_are_read(tmp_path):
    """transformers' XSum sample (examples/.../sample.json) is one object a line; datasets'
    "json" loader reads it, and so does a source."""
    rows = [{"document": r["article"], "summary": r["highlights"], "id": r["id"]}
            for r in articles(5)]
    path = write_jsonl(tmp_path / "sample.json", rows)
    source = open_source(str(path))
    assert source.num_rows("train") == 5  # counted as JSON Lines: ETA and disk check
    out = tmp_path / "out"
    result = generate_dataset(generation(path, out, text_field="document",
                                         summary_field="summary", id_field="id"))
    assert result.rows == {"train": 5} and written(out) == [r["id"] for r in rows]


def big_array(path: Path, records: int) -> Path:
    """A gzipped JSON array of ``records`` small objects, written in pieces."""
    with gzip.open(path, "wb", compresslevel=1) as handle:
        handle.write(b"[\n")
        for i in range(records):
            row = {"id": f"r{i}", "article": f"text {i} " + "x" * 150, "highlights": "s"}
            handle.write((b",\n" if i else b"") + json.dumps(row).encode())
        handle.write(b"\n]\n")
    return path


def test_a_json_array_is_streamed_in_bounded_memory(tmp_path):
    path = big_array(tmp_path / "big.json.gz", 40_000)  # about 7 MB once inflated
    tracemalloc.start()
    try:
        count, last = 0, None
        for row in read_file(path, ReadLimits(line_bytes=2**20)):
            count, last = count + 1, row
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 40_000 and last.fields["id"] == "r39999"
    assert last.where == "big.json.gz line 40001 (record 40000)"
    assert peak < 2**20, peak  # the array parsed whole takes over 30 MiB


def test_a_json_record_over_the_limit_fails_naming_it(tmp_path):
    path = tmp_path / "long.json"
    rows = articles(3)
    rows[1]["article"] = "a" * 3_000_000
    path.write_text("[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]")
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match=r"long.json line 3 \(record 2\): longer than "
                           r"1,048,576 bytes \(the limit for one record\)"):
            ids = [row.fields["id"] for row in read_file(path, ReadLimits(2**20))]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 2**20, peak
    assert "ids" not in locals()


def test_json_documents_name_the_line_and_record(tmp_path):
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"version": 2, "data": articles(2) + [7]}, indent=2))
    read = list(read_file(wrapped))
    assert [r.fields["id"] for r in read[:2]] == ["doc-0", "doc-1"]
    assert read[0].where == "wrapped.json line 4 (record 1)"
    assert read[2].error == "wrapped.json line 14 (record 3): expected a JSON object, found " \
                            "a number"
    broken = tmp_path / "broken.json"
    broken.write_text('[{"id": "a"},\n {"id": "b"},\n {"id": "c" "article": 1}]')
    rows = []
    with pytest.raises(SourceError, match=r"broken.json line 3 \(record 3\): invalid JSON "
                       r"\(Expecting ',' delimiter\)"):
        rows.extend(read_file(broken))
    assert [r.fields["id"] for r in rows] == ["a", "b"]  # the records before it are read
    other = tmp_path / "splits.json"
    other.write_text('{\n "train": [{"id": "a"}],\n "test": []\n}')
    with pytest.raises(SourceError, match="without a 'data', 'rows' or 'examples' array "
                       r"\(members: 'train', 'test'\)"):
        list(read_file(other))


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8])
def test_json_records_are_the_same_whatever_the_chunk_boundaries(chunk):
    """Chunks cut numbers ("-2." decodes as -2), escapes, literals and UTF-8 sequences."""
    records = [{"n": -2.5e10, "i": 12345678901234567890, "s": "a\\\"b\u00e9\u65e5\n\U0001F600",
                "t": True, "z": None, "l": [1, [2.0, {}], "x"]}, 7, -0.125, "text", []]
    for document in (records, {"version": [1, {"data": 2}], "rows": records, "after": 1}):
        for indent in (None, 2):
            data = BOM + json.dumps(document, indent=indent, ensure_ascii=False).encode()
            got = [value for value, _ in json_records(io.BytesIO(data), "f.json", 2**20,
                                                      chunk)]
            assert got == records


def test_json_that_breaks_off_fails_the_run_and_keeps_the_rows_before(tmp_path):
    path = tmp_path / "array.json"
    path.write_text("[\n" + ",\n".join(json.dumps(r) for r in articles(3)[:2])
                    + '\n{"id": "doc-2"}\n]')  # no ',' before the third record
    out = tmp_path / "out"
    with pytest.raises(SourceError, match=r"^array.json line 4 \(after record 2\): invalid "
                       r"JSON \(expected ',' or '\]', found '\{'\)$"):
        generate_dataset(generation(path, out, on_error="skip"))
    assert written(out) == ["doc-0", "doc-1"]
    assert json.loads((out / "deepsynth-manifest.json").read_text())["status"] == "failed"


# 3. Row numbers are file lines and record indexes.

def test_messages_name_the_file_line_and_the_record(tmp_path):
    """Blank JSON Lines lines and multi-line CSV records make line and record differ."""
    rows = articles(14)
    lines = [json.dumps(r) for r in rows[:12]]
    lines[3:3] = ["", ""]
    lines.append(json.dumps(dict(rows[12], highlights=None)))
    jsonl = tmp_path / "news.jsonl"
    jsonl.write_text("\n".join(lines) + "\n")
    with pytest.raises(DeepSynthError, match=r"^news.jsonl line 15 \(record 13\): "
                       r"summary_field 'highlights' is null \(use --on-error skip"):
        generate_dataset(generation(jsonl, tmp_path / "a"))
    table = csv_bytes(rows[:12]).decode().splitlines()
    table[2] = table[2].replace("Story doc-1.", '"Story doc-1.\nsecond line"', 1)
    table.append("doc-12,only two cells")
    table_file = tmp_path / "news.csv"
    table_file.write_text("\n".join(table) + "\n")
    result = generate_dataset(generation(table_file, tmp_path / "b", on_error="skip"))
    assert result.rows == {"train": 12}
    assert result.skipped["invalid"] == [("news.csv line 15 (record 13): 2 cells, the "
                                          "header has 3")]


# 4. null, missing and values that are not strings.

def test_null_is_null_and_missing_is_missing():
    with pytest.raises(SourceError, match="^text_field 'article' is null$"):
        to_document({"article": None, "highlights": "s"}, MAPPING, "d")
    with pytest.raises(SourceError, match="^text_field 'article' is missing; columns "
                       "present: highlights$"):
        to_document({"highlights": "s"}, MAPPING, "d")


@pytest.mark.parametrize("article,highlights,refusal", [
    ({"en": "text"}, "s", "text_field 'article' is an object"),
    ("text", True, "summary_field 'highlights' is a boolean"),
    (["one", {"x": 1}], "s", "text_field 'article' item 2 is an object"),
    ("text", [["nested"]], "summary_field 'highlights' item 1 is an array"),
    (float("nan"), "s", "text_field 'article' is not a finite number"),
    (b"bytes", "s", "text_field 'article' is bytes"),
])
def test_values_that_are_not_text_are_refused(article, highlights, refusal):
    with pytest.raises(SourceError, match=f"^{refusal}; expected a string or a number"):
        to_document({"article": article, "highlights": highlights}, MAPPING, "d")


def test_numbers_become_their_json_text(tmp_path):
    path = write_jsonl(tmp_path / "numbers.jsonl", [
        {"id": 7, "article": ["Population", 1_500_000, "in", 2024.5], "highlights": 0.1},
        {"id": True, "article": "text", "highlights": "s"}])
    out = tmp_path / "out"
    result = generate_dataset(generation(path, out, on_error="skip"))
    assert result.rows == {"train": 1}
    assert written(out) == ["7"] and written(out, "text") == ["Population 1500000 in 2024.5"]
    assert written(out, "summary") == ["0.1"]
    assert result.skipped["invalid"] == [("numbers.jsonl line 2 (record 2): id_field 'id' "
                                          "is a boolean; expected a string or a number (a "
                                          "list of them for the text and summary)")]


# 5. Empty texts and summaries, and duplicates, on the text the renderer draws.

def test_blank_texts_and_summaries_are_counted_and_skipped_with_a_reason(tmp_path, caplog):
    rows = articles(5)
    rows[1]["article"] = "\u200b \u2060\n\t\u00ad\ufeff"  # zero-width, whitespace, soft hyphen
    rows[2]["highlights"] = ""
    rows[3]["highlights"] = " \u200b "
    path = write_jsonl(tmp_path / "blank.jsonl", rows)
    out = tmp_path / "out"
    with caplog.at_level(logging.WARNING, logger="deepsynth.data.generate"):
        result = generate_dataset(generation(path, out))
    assert written(out) == ["doc-0", "doc-4"]
    assert result.totals["empty"] == 1 and result.totals["empty_summary"] == 2
    assert result.skipped["empty"] == [("blank.jsonl line 2 (record 2): no text to draw "
                                        "(empty, whitespace or invisible characters)")]
    assert result.skipped["empty_summary"][1].startswith("blank.jsonl line 4 (record 4): "
                                                         "empty summary")
    assert "skipped blank.jsonl line 3 (record 3): empty summary" in caplog.text
    assert "| empty_summary | 2 |" in (out / "README.md").read_text()


def test_texts_that_draw_the_same_pages_are_duplicates(tmp_path):
    rows = articles(3)
    hidden = rows[0]["article"].replace(" ", " \u200b", 3).replace("Story", "Sto\u00adry")
    rows.insert(1, dict(rows[0], id="hidden-dup", article=hidden))
    renderer = build_renderer(RenderConfig(page_size="tiny"))
    assert hidden != rows[0]["article"]
    assert renderer.render(hidden).pages == renderer.render(rows[0]["article"]).pages
    out = tmp_path / "out"
    result = generate_dataset(generation(write_jsonl(tmp_path / "d.jsonl", rows), out))
    assert result.totals["duplicates"] == 1 and written(out) == ["doc-0", "doc-1", "doc-2"]


def test_the_generation_job_logs_why_rows_were_skipped(tmp_path):
    from deepsynth.jobs.kinds import job_kinds
    from deepsynth.jobs.manager import JobManager
    from deepsynth.jobs.state import JobStore

    rows = articles(3)
    rows[1]["highlights"] = "\u200b"
    root = tmp_path / "data"
    jobs = JobManager(JobStore(root / "jobs"), job_kinds(root))
    source = write_jsonl(tmp_path / "c.jsonl", rows)
    record = jobs.submit("generate", {"name": "news", "options": {
        "source": str(source), **FIELDS, "page_size": "tiny", "workers": 1}}, name="news")
    done = jobs.wait(record.job_id)
    assert done.status == "completed", done.error
    assert done.result["counts"]["empty_summary"] == 1
    log = (root / "jobs" / record.job_id / "job.log").read_text()
    assert ("empty_summary: 1 row(s) skipped; first in this run: c.jsonl line 2 (record 2): "
            "empty summary") in log
