"""Publishing generated datasets: during generation (each shard as it completes) or afterwards
(``deepsynth push``, which uploads only what the repository is missing)."""

from __future__ import annotations

import logging
from pathlib import Path

from deepsynth.data.manifest import MANIFEST_NAME, Manifest
from deepsynth.errors import DeepSynthError
from deepsynth.hub.upload import HubUploader, HubClient, HubUploadError

log = logging.getLogger(__name__)


class NoPublish:
    """The null publisher: generation without ``--push-to-hub``."""

    error: str | None = None

    def shard_done(self, folder: Path, manifest: Manifest, relative: str) -> None:
        """Nothing to upload."""

    def finish(self, folder: Path, manifest: Manifest) -> None:
        """Nothing to upload."""


class ShardPublisher:
    """Uploads each finished shard, then the card and manifest; records uploads in the manifest.

    After a failed upload it stops trying (generation goes on locally) and remembers the error;
    ``deepsynth push`` or a re-run uploads what is missing.
    """

    def __init__(self, uploader: HubUploader):
        self.uploader = uploader
        self.error: str | None = None

    def _upload(self, folder: Path, manifest: Manifest, relative: str) -> None:
        if self.error:
            return
        try:
            self.uploader.upload(folder, relative)
        except HubUploadError as exc:
            self.error = str(exc)
            manifest.data["hub"]["error"] = self.error
            log.error("%s; local data is kept: run 'deepsynth push %s --to %s' later",
                      exc, folder, self.uploader.repo_id)
            return
        path = Path(folder) / relative
        manifest.data["hub"]["uploaded"][relative] = path.stat().st_size

    def shard_done(self, folder: Path, manifest: Manifest, relative: str) -> None:
        manifest.data["hub"]["repo_id"] = self.uploader.repo_id
        self._upload(folder, manifest, relative)
        manifest.save()

    def finish(self, folder: Path, manifest: Manifest) -> None:
        manifest.data["hub"]["repo_id"] = self.uploader.repo_id
        pending = [f for f in manifest.shard_files() if f not in manifest.data["hub"]["uploaded"]]
        for relative in pending:  # shards of an earlier run whose upload failed
            self._upload(folder, manifest, relative)
        self._upload(folder, manifest, "README.md")
        if not self.error:
            manifest.data["hub"]["error"] = None
        manifest.save()
        if not self.error:
            self._upload(folder, manifest, MANIFEST_NAME)


def push_dataset(folder: Path, repo_id: str, client: HubClient, private: bool = True,
                 backoff_seconds: float = 2.0) -> dict:
    """Upload the shards the repository lacks, then the card and manifest."""
    folder = Path(folder)
    manifest = Manifest.load(folder)
    if manifest is None:
        raise DeepSynthError(f"{folder} is not a DeepSynth dataset (no {MANIFEST_NAME})")
    uploader = HubUploader(client, repo_id, private, backoff_seconds=backoff_seconds)
    uploader.ensure_repo()
    remote = uploader.remote_files()
    missing = [f for f in manifest.shard_files() if f not in remote]
    publisher = ShardPublisher(uploader)
    manifest.data["hub"]["uploaded"] = {f: (folder / f).stat().st_size
                                        for f in manifest.shard_files() if f in remote}
    for relative in missing:
        publisher.shard_done(folder, manifest, relative)
    publisher.finish(folder, manifest)
    if publisher.error:
        raise HubUploadError(publisher.error)
    return {"repo_id": repo_id, "uploaded": missing + ["README.md", MANIFEST_NAME],
            "already_present": sorted(set(manifest.shard_files()) & remote)}
