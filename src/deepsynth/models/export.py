"""``deepsynth export``: a standalone model folder (adapters merged), optionally pushed to the
Hub as a private model repository. Intermediate checkpoints are never included."""

from __future__ import annotations

import shutil
from pathlib import Path

from deepsynth.errors import DeepSynthError
from deepsynth.hub.upload import HfHubClient, HubClient, HubUploader
from deepsynth.models.model_info import info_path, read_info, write_info
from deepsynth.models.registry import load_model
from deepsynth.training.run_folder import CONFIG_NAME

CARRIED_FILES = ("README.md", CONFIG_NAME)


def export_model(model_dir: str, out: str, merge: bool = True, push_to_hub: str | None = None,
                 public: bool = False, hub_client: HubClient | None = None,
                 root: Path | None = None, backoff_seconds: float = 2.0) -> dict:
    source, target = Path(model_dir), Path(out)
    if not info_path(source).is_file():
        raise DeepSynthError(f"{model_dir} is not a model folder saved by DeepSynth")
    info = read_info(source)
    if target.resolve() == source.resolve():
        raise DeepSynthError("--out must differ from --model")
    target.mkdir(parents=True, exist_ok=True)
    if info.get("adapter") and merge:
        loaded = load_model(model_dir, root=root)
        merged = loaded.model.merge_and_unload()
        merged.save_pretrained(target)
        loaded.tokenizer.save_pretrained(target)
        info = {**info, "adapter": False, "merged_from": str(source)}
    else:
        for item in source.iterdir():
            if item.is_file():
                shutil.copy2(item, target / item.name)
    for name in CARRIED_FILES:
        if (source / name).exists():
            shutil.copy2(source / name, target / name)
    write_info(target, info)
    report = {"folder": str(target), "merged": bool(info.get("merged_from")),
              "files": sorted(p.name for p in target.iterdir() if p.is_file())}
    if push_to_hub:
        client = hub_client or HfHubClient(repo_type="model")
        uploader = HubUploader(client, push_to_hub, private=not public,
                               backoff_seconds=backoff_seconds)
        for name in report["files"]:
            uploader.upload(target, name)
        report["pushed_to"] = push_to_hub
    return report


def push_trained_model(final_model: Path, repo_id: str, public: bool, scratch: Path,
                       hub_client: HubClient | None = None, root: Path | None = None) -> dict:
    """``push_to_hub`` at the end of training: export (merged) to ``scratch`` and upload.

    A Hub failure is reported in the result (``hub_error``), never raised: the trained model
    is already saved and must not be lost to a network error; push it later by name.
    """
    try:
        return export_model(str(final_model), str(scratch), merge=True, push_to_hub=repo_id,
                            public=public, hub_client=hub_client, root=root)
    except DeepSynthError as exc:
        return {"hub_error": str(exc), "pushed_to": None}
