"""User errors of ``deepsynth generate``: one clear ``error:`` line, exit code 2, no traceback,
and finished work kept. Real corpus files, real rendering and the real CLI in a subprocess."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from conftest import articles, run_cli, write_jsonl
from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig
from deepsynth.data import output_folder
from deepsynth.data.folder_lock import FolderLock
from deepsynth.data.generate import generate_dataset
from deepsynth.data.manifest import MANIFEST_NAME
from deepsynth.errors import OutputError

OFFLINE = {"HF_HUB_OFFLINE": "1"}


def generate_args(source: Path, out: Path, *extra: str) -> tuple[str, ...]:
    return ("generate", "--source", str(source), "--text-field", "article",
            "--summary-field", "highlights", "--id-field", "id", "--out", str(out),
            "--page-size", "tiny", "--workers", "1", *extra)


def generate(source: Path, out: Path, *extra: str):
    return run_cli(*generate_args(source, out, *extra), env=OFFLINE)


def user_error(completed) -> str:
    """The one ``error:`` line of a failed run (progress bars and log lines are ignored)."""
    assert completed.returncode == 2, (completed.stdout, completed.stderr)
    assert "Traceback" not in completed.stderr, completed.stderr
    errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, completed.stderr
    return errors[0]


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_NAME).read_text())


def shard_files(folder: Path) -> list[Path]:
    return sorted((folder / "data").glob("*.parquet"))


def ids_in(folder: Path) -> list[str]:
    return [i for shard in shard_files(folder)
            for i in pq.read_table(shard, columns=["id"]).column("id").to_pylist()]


def with_bad_line(path: Path, rows: list[dict], line: int) -> Path:
    """A JSONL file whose ``line`` (1-based) is not JSON; the other lines are ``rows``."""
    lines = [json.dumps(r) for r in rows]
    lines[line - 1] = '{"id": "broken", "article": "unterminated'
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "corpus.jsonl", articles(6))


# 1. A source that cannot be read.

def test_missing_source_file_is_named(tmp_path):
    missing = tmp_path / "nowhere" / "corpus.jsonl"
    line = user_error(generate(missing, tmp_path / "out"))
    assert str(missing) in line


def test_undecodable_source_file_is_named(tmp_path):
    garbage = tmp_path / "garbage.jsonl"
    garbage.write_bytes(b"\x81\xfe\x00\xff not utf-8 \xc3\x28\n" * 4)  # no UTF-16 mark
    line = user_error(generate(garbage, tmp_path / "out"))
    # A bad row: --on-error applies.
    assert "garbage.jsonl line 1 (record 1): invalid UTF-8" in line
    assert "--on-error skip" in line
    assert not shard_files(tmp_path / "out")
    line = user_error(generate(garbage, tmp_path / "out", "--on-error", "skip"))
    assert str(garbage) in line and "no readable rows" in line


# 2. Invalid JSON on one line.

def test_invalid_json_line_fails_naming_the_line(tmp_path):
    source = with_bad_line(tmp_path / "corpus.jsonl", articles(6), line=3)
    line = user_error(generate(source, tmp_path / "out"))
    assert "line 3" in line
    assert "corpus.jsonl" in line
    assert "--on-error skip" in line
    assert read_manifest(tmp_path / "out")["status"] == "failed"


def test_invalid_json_line_is_skipped_and_counted(tmp_path):
    rows = articles(6)
    source = with_bad_line(tmp_path / "corpus.jsonl", rows, line=3)
    out = tmp_path / "out"
    completed = generate(source, out, "--on-error", "skip")
    assert completed.returncode == 0, completed.stderr
    assert "Traceback" not in completed.stderr
    manifest = read_manifest(out)
    assert manifest["status"] == "complete"
    assert manifest["totals"]["invalid"] == 1
    assert manifest["totals"]["written"] == len(rows) - 1
    assert ids_in(out) == [r["id"] for i, r in enumerate(rows) if i != 2]


# 3. A field that is not a column.

def test_missing_text_field_names_it_and_the_columns(tmp_path, corpus):
    args = list(generate_args(corpus, tmp_path / "out"))
    args[args.index("--text-field") + 1] = "body"
    line = user_error(run_cli(*args, env=OFFLINE))
    assert "'body'" in line
    for column in ("article", "highlights", "id"):
        assert column in line.split("columns present:")[1]


# 4. An unknown preset.

def test_unknown_preset_lists_the_presets(tmp_path):
    line = user_error(run_cli("generate", "--source", "preset:nope", "--out",
                              str(tmp_path / "out"), "--page-size", "tiny", env=OFFLINE))
    assert "'nope'" in line
    for name in ("scitldr", "cnn_dailymail", "xsum", "arxiv", "gigaword", "samsum"):
        assert name in line


# 5. An output folder that cannot be created.

def test_unwritable_output_folder_is_named(tmp_path, corpus):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    out = blocker / "dataset"  # below a regular file: cannot be created, even by root
    line = user_error(generate(corpus, out))
    assert str(out) in line
    assert blocker.read_text() == "not a folder"


def test_output_path_that_is_a_file_is_refused(tmp_path, corpus):
    out = tmp_path / "dataset"
    out.write_text("a regular file")
    line = user_error(generate(corpus, out))
    assert str(out) in line
    assert out.read_text() == "a regular file"


# 6. Resuming, refusing a changed configuration, overwriting.

def test_changed_configuration_is_refused_unless_overwrite(tmp_path):
    source = write_jsonl(tmp_path / "corpus.jsonl", articles(5))
    out = tmp_path / "out"
    first = generate(source, out, "--shard-size", "2")
    assert first.returncode == 0, first.stderr
    ids = ids_in(out)
    assert ids == [f"doc-{i}" for i in range(5)]
    shard_bytes = {p.name: p.read_bytes() for p in shard_files(out)}

    # The identical command again: nothing to do, nothing changes.
    again = generate(source, out, "--shard-size", "2")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["rows"] == {"train": 5}
    manifest = read_manifest(out)
    assert manifest["status"] == "complete"
    assert ids_in(out) == ids
    assert {p.name: p.read_bytes() for p in shard_files(out)} == shard_bytes

    changed = generate(source, out, "--shard-size", "2", "--font-size", "20")
    line = user_error(changed)
    assert "--overwrite" in line
    assert "render.font_size" in line
    assert read_manifest(out)["config"]["render"]["font_size"] == 18  # untouched
    assert {p.name: p.read_bytes() for p in shard_files(out)} == shard_bytes

    replaced = generate(source, out, "--shard-size", "2", "--font-size", "20", "--overwrite")
    assert replaced.returncode == 0, replaced.stderr
    manifest = read_manifest(out)
    assert manifest["status"] == "complete"
    assert manifest["config"]["render"]["font_size"] == 20
    assert ids_in(out) == ids
    sizes = {s for p in shard_files(out)
             for s in pq.read_table(p, columns=["font_size"]).column("font_size").to_pylist()}
    assert sizes == {20}


# 7. Another process holds the folder.

def test_locked_folder_is_refused(tmp_path, corpus):
    out = tmp_path / "out"
    out.mkdir()
    with FolderLock(out):
        line = user_error(generate(corpus, out))
    assert "another deepsynth process" in line
    assert f"pid {os.getpid()}" in line
    assert not shard_files(out)


# 8. Not enough disk space.

def test_not_enough_disk_space_is_refused_before_writing(tmp_path, corpus, monkeypatch):
    # A full disk cannot be created here, so the OS free-space figure is replaced.
    monkeypatch.setattr(output_folder, "free_bytes", lambda folder: 1000)
    out = tmp_path / "out"
    config = GenerationConfig(
        out=str(out), source=SourceConfig(source=str(corpus), text_field="article",
                                          summary_field="highlights", id_field="id",
                                          max_samples=4),
        render=RenderConfig(page_size="tiny"), workers=1, shard_size=2)
    with pytest.raises(OutputError, match="not enough disk space") as caught:
        generate_dataset(config)
    assert str(out) in str(caught.value)
    assert "4 rows" in str(caught.value)
    assert not shard_files(out)
    assert not any((out / ".partial").glob("*"))


# 9. Finished shards survive an error; a re-run resumes.

def test_finished_shards_are_kept_and_resumed_after_a_bad_row(tmp_path):
    rows = articles(12)
    source = with_bad_line(tmp_path / "corpus.jsonl", rows, line=8)  # row doc-7
    out = tmp_path / "out"
    line = user_error(generate(source, out, "--shard-size", "3"))
    assert "line 8" in line

    assert [p.name for p in shard_files(out)] == [
        "train-00000.parquet", "train-00001.parquet", "train-00002.parquet"]
    assert ids_in(out) == [f"doc-{i}" for i in range(7)]
    manifest = read_manifest(out)
    assert manifest["status"] == "failed"
    assert manifest["splits"]["train"]["source_rows_read"] == 7

    resumed = generate(source, out, "--shard-size", "3", "--on-error", "skip")
    assert resumed.returncode == 0, resumed.stderr
    expected = [r["id"] for i, r in enumerate(rows) if i != 7]
    assert ids_in(out) == expected
    manifest = read_manifest(out)
    assert manifest["status"] == "complete"
    assert manifest["totals"]["written"] == 11
    assert manifest["totals"]["invalid"] == 1
    assert manifest["totals"]["read"] == 12


# 10. Bad option values.

@pytest.mark.parametrize("flag, value, field", [
    ("--page-size", "huge", "page_size"),
    ("--png-level", "12", "png_level"),
    ("--overflow", "wrap", "overflow"),
    ("--validation-fraction", "2", "validation_fraction"),
])
def test_bad_option_values_name_the_field(tmp_path, corpus, flag, value, field):
    out = tmp_path / "out"
    completed = generate(corpus, out, flag, value)
    assert completed.returncode == 2, completed.stderr
    assert "Traceback" not in completed.stderr
    # Values checked by the configuration print "error: FIELD ..."; a value outside an
    # argparse choice list prints argparse's "deepsynth generate: error: argument --FLAG ...".
    errors = [line for line in completed.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, completed.stderr
    assert field in errors[0] or flag in errors[0]
    assert value in errors[0]
    assert not shard_files(out)


def test_missing_required_flags_are_named(tmp_path):
    result = run_cli("generate", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "required: --source" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_hf_source_with_extra_colons_is_refused(tmp_path):
    result = run_cli("generate", "--source", "hf:org/name:cfg:extra", "--out",
                     str(tmp_path / "out"))
    assert result.returncode == 2
    assert "hf:ORG/NAME[:CONFIG]" in result.stderr


def test_a_refused_source_leaves_no_output_folder(tmp_path):
    result = run_cli("generate", "--source", "preset:nope", "--out", str(tmp_path / "out"))
    assert result.returncode == 2
    assert not (tmp_path / "out").exists()
