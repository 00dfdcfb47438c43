"""Uploading to the Hugging Face Hub (datasets shard by shard, models file by file), with
retries.

The token comes from ``HF_TOKEN`` or the Hub login cache (``huggingface_hub`` resolves it) and
is never logged or written anywhere. Uploads are recorded in the manifest, and
:func:`push_dataset` uploads only what the repository is missing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from deepsynth.errors import DeepSynthError

log = logging.getLogger(__name__)


class HubUploadError(DeepSynthError):
    """An upload failed after its retries; local data is kept."""


class HubClient(Protocol):
    """The few Hub operations DeepSynth uses (a test double implements the same)."""

    def create_repo(self, repo_id: str, *, private: bool) -> None: ...

    def upload_file(self, local_path: Path, path_in_repo: str, repo_id: str) -> None: ...

    def list_files(self, repo_id: str) -> list[str]: ...

    def download(self, repo_id: str, local_dir: Path) -> Path: ...


class HfHubClient:
    """The real client: ``huggingface_hub.HfApi`` on a dataset (or model) repository."""

    def __init__(self, token: str | None = None, repo_type: str = "dataset"):
        from huggingface_hub import HfApi

        self._api = HfApi(token=token)  # None: HF_TOKEN or the login cache
        self.repo_type = repo_type

    def create_repo(self, repo_id: str, *, private: bool) -> None:
        self._api.create_repo(repo_id, repo_type=self.repo_type, private=private,
                              exist_ok=True)

    def upload_file(self, local_path: Path, path_in_repo: str, repo_id: str) -> None:
        self._api.upload_file(path_or_fileobj=str(local_path), path_in_repo=path_in_repo,
                              repo_id=repo_id, repo_type=self.repo_type,
                              commit_message=f"DeepSynth: add {path_in_repo}")

    def list_files(self, repo_id: str) -> list[str]:
        return list(self._api.list_repo_files(repo_id, repo_type=self.repo_type))

    def download(self, repo_id: str, local_dir: Path) -> Path:
        """The repository's files into ``local_dir`` (only what changed, on a re-run)."""
        return Path(self._api.snapshot_download(repo_id, repo_type=self.repo_type,
                                                local_dir=str(local_dir)))


def is_transient(exc: Exception) -> bool:
    """Worth retrying: network trouble, rate limits and server errors; not auth or offline."""
    if type(exc).__name__ == "OfflineModeIsEnabled":
        return False
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    if status is not None:
        return status == 429 or status >= 500
    return isinstance(exc, (ConnectionError, TimeoutError, OSError))


def _describe(exc: Exception) -> str:
    # Hub errors can quote request headers; keep the type and the first line only.
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:300]


class HubUploader:
    """Creates the repository once, then uploads files with exponential backoff."""

    def __init__(self, client: HubClient, repo_id: str, private: bool = True,
                 retries: int = 4, backoff_seconds: float = 2.0,
                 sleep: Callable[[float], None] = time.sleep):
        self.client, self.repo_id, self.private = client, repo_id, private
        self.retries, self.backoff_seconds, self.sleep = retries, backoff_seconds, sleep
        self._created = False

    def _with_retries(self, what: str, action: Callable[[], object]) -> None:
        for attempt in range(self.retries + 1):
            try:
                action()
                return
            except Exception as exc:
                if not is_transient(exc):
                    raise HubUploadError(f"{what} failed ({_describe(exc)})") from None
                if attempt == self.retries:
                    raise HubUploadError(f"{what} failed after {self.retries + 1} attempts "
                                         f"({_describe(exc)})") from None
                delay = self.backoff_seconds * 2 ** attempt
                log.warning("%s failed (%s); retrying in %.0f s", what, _describe(exc), delay)
                self.sleep(delay)

    def ensure_repo(self) -> None:
        if not self._created:
            self._with_retries(f"creating {self.repo_id}", lambda: self.client.create_repo(
                self.repo_id, private=self.private))
            self._created = True

    def upload(self, folder: Path, relative: str) -> None:
        self.ensure_repo()
        self._with_retries(f"uploading {relative}", lambda: self.client.upload_file(
            Path(folder) / relative, relative, self.repo_id))
        log.info("uploaded %s to %s", relative, self.repo_id)

    def remote_files(self) -> set[str]:
        found: list[str] = []
        self._with_retries(f"listing {self.repo_id}",
                           lambda: found.extend(self.client.list_files(self.repo_id)))
        return set(found)
