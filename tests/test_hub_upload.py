"""Publishing to the Hugging Face Hub during and after generation.

The Hub cannot be reached from the test machine, so the in-process tests use ``FakeHub``, a
test double of the Hub client protocol (``deepsynth.hub.upload.HubClient``). Everything else is
real: the corpus files, the rendering, the Parquet shards, the manifest and the CLI subprocess.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from conftest import articles, run_cli, write_jsonl
from deepsynth.config import GenerationConfig, RenderConfig, SourceConfig
from deepsynth.data.generate import generate_dataset
from deepsynth.data.manifest import MANIFEST_NAME
from deepsynth.hub.publish import push_dataset
from deepsynth.hub.upload import HubUploader, HubUploadError

SENTINEL = "hf_SENTINEL_TOKEN_123"


class FakeHub:
    """TEST DOUBLE of the Hugging Face Hub client (the real Hub is unreachable from here).

    Implements the ``HubClient`` protocol and records every call, in order, in ``calls``.
    For each ``upload_file`` attempt it also records which shard files exist locally in the
    dataset folder at that moment, and (when the attempt succeeds) the uploaded bytes.

    ``fail_uploads``: the first N ``upload_file`` calls raise ``error``; ``-1``: all of them do.
    ``existing``: files the repository already holds (returned by ``list_files``).
    """

    def __init__(self, folder: Path, fail_uploads: int = 0, existing: tuple[str, ...] = (),
                 error: Exception | None = None):
        self.folder = Path(folder)
        self.fail_uploads = fail_uploads
        self.error = error or ConnectionError("connection reset by peer")
        self.calls: list[dict] = []
        self.repo_files: dict[str, bytes] = {name: b"already there" for name in existing}
        self.upload_attempts = 0

    def _local_shards(self) -> list[str]:
        return sorted(p.relative_to(self.folder).as_posix()
                      for p in (self.folder / "data").glob("*.parquet"))

    def create_repo(self, repo_id: str, *, private: bool) -> None:
        self.calls.append({"op": "create_repo", "repo_id": repo_id, "private": private})

    def upload_file(self, local_path: Path, path_in_repo: str, repo_id: str) -> None:
        self.upload_attempts += 1
        call = {"op": "upload_file", "path": path_in_repo, "repo_id": repo_id,
                "local_path": Path(local_path), "local_shards": self._local_shards(),
                "ok": False}
        self.calls.append(call)
        if self.fail_uploads < 0 or self.upload_attempts <= self.fail_uploads:
            raise self.error
        self.repo_files[path_in_repo] = Path(local_path).read_bytes()
        call["ok"] = True

    def list_files(self, repo_id: str) -> list[str]:
        self.calls.append({"op": "list_files", "repo_id": repo_id})
        return sorted(self.repo_files)

    def uploads(self, ok_only: bool = True) -> list[str]:
        return [c["path"] for c in self.calls
                if c["op"] == "upload_file" and (c["ok"] or not ok_only)]


def make_config(out: Path, source: Path, shard_size: int = 5, **options) -> GenerationConfig:
    return GenerationConfig(
        out=str(out),
        source=SourceConfig(source=str(source), text_field="article",
                            summary_field="highlights", id_field="id"),
        render=RenderConfig(page_size="tiny"), workers=1, shard_size=shard_size, **options)


def read_manifest(folder: Path) -> dict:
    return json.loads((folder / MANIFEST_NAME).read_text())


def local_shards(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in (folder / "data").glob("*.parquet"))


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "corpus.jsonl", articles(12))


# 1. Shards are uploaded as they complete, then the card, then the manifest.

@pytest.mark.parametrize("public", [False, True])
def test_shards_are_uploaded_as_they_complete(tmp_path, corpus, public):
    """Uses FakeHub, a test double of the Hub (unreachable from the test machine)."""
    out = tmp_path / "out"
    hub = FakeHub(out)
    result = generate_dataset(make_config(out, corpus, shard_size=5, push_to_hub="me/ds",
                                          public=public), hub_client=hub, backoff_seconds=0)

    assert result.status == "complete"
    assert result.hub_error is None
    shards = local_shards(out)
    assert shards == [f"data/train-{i:05d}.parquet" for i in range(3)]  # 5 + 5 + 2 rows

    # The repository is created first, private unless --public.
    assert hub.calls[0] == {"op": "create_repo", "repo_id": "me/ds", "private": not public}
    assert [c["op"] for c in hub.calls].count("create_repo") == 1
    assert all(c["repo_id"] == "me/ds" for c in hub.calls)

    uploads = hub.uploads()
    assert uploads == hub.uploads(ok_only=False)  # nothing failed
    # Each shard exactly once, in order, then README.md, then the manifest last.
    assert uploads == [*shards, "README.md", MANIFEST_NAME]
    for shard in shards:
        assert hub.repo_files[shard] == (out / shard).read_bytes()

    # Each shard was uploaded as soon as it was finished: before the next shard existed.
    upload_calls = {c["path"]: c for c in hub.calls if c["op"] == "upload_file"}
    for index, shard in enumerate(shards):
        assert upload_calls[shard]["local_shards"] == shards[:index + 1], shard
    assert upload_calls["README.md"]["local_shards"] == shards

    manifest = read_manifest(out)
    assert manifest["hub"]["repo_id"] == "me/ds"
    assert manifest["hub"]["error"] is None
    uploaded = manifest["hub"]["uploaded"]
    for shard in shards:
        assert uploaded[shard] == (out / shard).stat().st_size
    assert "README.md" in uploaded
    # The uploaded manifest is the final one (status complete, every shard recorded).
    sent = json.loads(hub.repo_files[MANIFEST_NAME])
    assert sent["status"] == "complete"
    assert set(shards) <= set(sent["hub"]["uploaded"])


# 2. Retries with exponential backoff.

def test_upload_is_retried_until_it_succeeds(tmp_path):
    """Uses FakeHub, a test double of the Hub (unreachable from the test machine): its first
    two upload_file calls fail with ConnectionError, the third succeeds."""
    source = write_jsonl(tmp_path / "corpus.jsonl", articles(5))
    out = tmp_path / "out"
    hub = FakeHub(out, fail_uploads=2)
    result = generate_dataset(make_config(out, source, shard_size=5, push_to_hub="me/ds"),
                              hub_client=hub, backoff_seconds=0)

    shard = "data/train-00000.parquet"
    assert result.status == "complete"
    assert result.hub_error is None
    assert hub.uploads(ok_only=False) == [shard, shard, shard, "README.md", MANIFEST_NAME]
    assert hub.uploads() == [shard, "README.md", MANIFEST_NAME]
    assert hub.repo_files[shard] == (out / shard).read_bytes()
    manifest = read_manifest(out)
    assert shard in manifest["hub"]["uploaded"]
    assert manifest["hub"]["error"] is None


class _FlakyClient:
    """TEST DOUBLE of the Hub client (the real Hub is unreachable): fails ``failures`` times."""

    def __init__(self, failures: int):
        self.failures = failures
        self.attempts = 0

    def create_repo(self, repo_id: str, *, private: bool) -> None:
        pass

    def upload_file(self, local_path: Path, path_in_repo: str, repo_id: str) -> None:
        self.attempts += 1
        if self.attempts <= self.failures:
            raise ConnectionError(f"attempt {self.attempts} failed")

    def list_files(self, repo_id: str) -> list[str]:
        return []


def test_backoff_delays_grow_exponentially(tmp_path):
    """Uses _FlakyClient, a test double of the Hub (unreachable from the test machine)."""
    sleeps: list[float] = []
    client = _FlakyClient(failures=3)
    uploader = HubUploader(client, "me/ds", backoff_seconds=1.5, sleep=sleeps.append)
    uploader.upload(tmp_path, "data/train-00000.parquet")
    assert client.attempts == 4
    assert sleeps == [1.5, 3.0, 6.0]


def test_upload_gives_up_after_its_retries(tmp_path):
    """Uses _FlakyClient, a test double of the Hub (unreachable from the test machine)."""
    sleeps: list[float] = []
    client = _FlakyClient(failures=100)
    uploader = HubUploader(client, "me/ds", retries=4, backoff_seconds=0.5,
                               sleep=sleeps.append)
    with pytest.raises(HubUploadError, match=r"data/x.parquet failed after 5 attempts"):
        uploader.upload(tmp_path, "data/x.parquet")
    assert client.attempts == 5
    assert sleeps == [0.5, 1.0, 2.0, 4.0]


# 3. A failed upload keeps the local data; push uploads only what is missing.

def test_upload_failure_keeps_local_data_and_push_uploads_the_rest(tmp_path, corpus):
    """Uses FakeHub, a test double of the Hub (unreachable from the test machine): first one
    whose upload_file always fails, then a working one that already holds one shard."""
    out = tmp_path / "out"
    broken = FakeHub(out, fail_uploads=-1)
    result = generate_dataset(make_config(out, corpus, shard_size=5, push_to_hub="me/ds"),
                              hub_client=broken, backoff_seconds=0)

    shards = local_shards(out)
    assert result.status == "complete"
    assert result.rows == {"train": 12}
    assert shards == [f"data/train-{i:05d}.parquet" for i in range(3)]
    assert result.hub_error and "failed after" in result.hub_error
    assert broken.uploads() == []
    manifest = read_manifest(out)
    assert manifest["status"] == "complete"
    assert manifest["hub"]["error"] == result.hub_error
    assert manifest["hub"]["uploaded"] == {}
    assert [s["file"] for s in manifest["splits"]["train"]["shards"]] == shards

    present = shards[1]
    working = FakeHub(out, existing=(present,))
    report = push_dataset(out, "me/ds", working, backoff_seconds=0)

    missing = [s for s in shards if s != present]
    assert working.calls[0] == {"op": "create_repo", "repo_id": "me/ds", "private": True}
    assert working.uploads() == [*missing, "README.md", MANIFEST_NAME]
    assert working.repo_files[present] == b"already there"  # not re-uploaded
    for shard in missing:
        assert working.repo_files[shard] == (out / shard).read_bytes()
    assert report["already_present"] == [present]
    assert report["uploaded"] == [*missing, "README.md", MANIFEST_NAME]
    manifest = read_manifest(out)
    assert manifest["hub"]["error"] is None
    assert set(shards) <= set(manifest["hub"]["uploaded"])


# 4. The token never ends up in files, logs or output.

def _files_containing(folder: Path, needle: str) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and needle.encode() in p.read_bytes()]


def test_token_is_not_written_or_logged(tmp_path, corpus, monkeypatch, caplog):
    """Uses FakeHub, a test double of the Hub (unreachable from the test machine)."""
    monkeypatch.setenv("HF_TOKEN", SENTINEL)
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    hub = FakeHub(out)
    result = generate_dataset(make_config(out, corpus, push_to_hub="me/ds"), hub_client=hub,
                              backoff_seconds=0)
    assert result.status == "complete" and result.hub_error is None
    assert any("uploaded" in r.getMessage() for r in caplog.records)  # logs were captured
    assert _files_containing(out, SENTINEL) == []
    assert SENTINEL not in caplog.text
    assert all(SENTINEL.encode() not in data for data in hub.repo_files.values())


def test_token_quoted_by_a_hub_error_is_not_recorded(tmp_path, corpus, caplog):
    """Uses FakeHub, a test double of the Hub (unreachable from the test machine), whose
    errors quote the request headers (with the token) after their first line."""
    caplog.set_level(logging.DEBUG)
    out = tmp_path / "out"
    error = ConnectionError(f"401 Client Error: Unauthorized\n"
                            f"request headers: {{'authorization': 'Bearer {SENTINEL}'}}")
    hub = FakeHub(out, fail_uploads=-1, error=error)
    result = generate_dataset(make_config(out, corpus, push_to_hub="me/ds"), hub_client=hub,
                              backoff_seconds=0)
    assert result.hub_error and "401 Client Error" in result.hub_error
    assert SENTINEL not in result.hub_error
    assert "401 Client Error" in caplog.text
    assert SENTINEL not in caplog.text
    assert _files_containing(out, SENTINEL) == []
    assert len(local_shards(out)) == 3


def test_real_cli_push_without_hub_access_keeps_data_and_leaks_no_token(tmp_path):
    """The real CLI with the real Hub client, offline: the first upload fails at once (offline
    mode is not retried), generation goes on locally, and the exit status says to push later."""
    source = write_jsonl(tmp_path / "corpus.jsonl", articles(6))
    out = tmp_path / "out"
    result = run_cli("generate", "--source", str(source), "--text-field", "article",
                     "--summary-field", "highlights", "--id-field", "id", "--out", str(out),
                     "--page-size", "tiny", "--workers", "1", "--shard-size", "3",
                     "--push-to-hub", "me/ds",
                     env={"HF_TOKEN": SENTINEL, "HF_HUB_OFFLINE": "1",
                          "HF_HOME": str(tmp_path / "hf_home")})
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert f"deepsynth push {out} --to me/ds" in errors[0]
    assert SENTINEL not in result.stdout + result.stderr
    assert len(local_shards(out)) == 2
    manifest = json.loads((out / "deepsynth-manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["hub"]["error"]
    assert _files_containing(out, SENTINEL) == []


def test_real_client_calls_match_the_installed_huggingface_hub(tmp_path):
    """The real client's calls, checked against huggingface_hub's own signatures: the Hub is
    unreachable here, so each HfApi method is replaced by a recorder that binds the call to
    the real method's signature (a test double that fails on any argument drift)."""
    import inspect

    from huggingface_hub import HfApi

    from deepsynth.hub.upload import HfHubClient

    client = HfHubClient(token=None)
    bound = {}

    def recorder(name):
        signature = inspect.signature(getattr(HfApi, name))

        def call(*args, **kwargs):
            bound[name] = signature.bind(client._api, *args, **kwargs).arguments
            return []
        return call

    for name in ("create_repo", "upload_file", "list_repo_files"):
        setattr(client._api, name, recorder(name))
    client.create_repo("me/ds", private=True)
    client.upload_file(tmp_path / "f.parquet", "data/f.parquet", "me/ds")
    client.list_files("me/ds")
    assert bound["create_repo"]["repo_type"] == "dataset"
    assert bound["create_repo"]["private"] is True and bound["create_repo"]["exist_ok"] is True
    assert bound["upload_file"]["path_in_repo"] == "data/f.parquet"
    assert bound["upload_file"]["repo_type"] == "dataset"
    assert bound["list_repo_files"]["repo_type"] == "dataset"
