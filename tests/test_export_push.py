"""Exporting a trained model and pushing it to the Hub (through a test double of the Hub
client: the Hub is unreachable from here)."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from deepsynth.config.training import training_config
from deepsynth.models.export import export_model
from deepsynth.training.loop import train


class RecordingHub:
    """TEST DOUBLE of the Hub client protocol: records repository creation and uploads."""

    def __init__(self):
        self.created: list[tuple[str, bool]] = []
        self.uploaded: list[str] = []

    def create_repo(self, repo_id, *, private):
        self.created.append((repo_id, private))

    def upload_file(self, local_path, path_in_repo, repo_id):
        assert local_path.is_file()
        self.uploaded.append(path_in_repo)

    def list_files(self, repo_id):
        return list(self.uploaded)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    dataset = root / "ds"
    made = run_cli("generate", "--source", "builtin:scitldr", "--out", str(dataset),
                   "--max-samples", "4", "--page-size", "256x256", "--font-size", "12",
                   "--margin", "8", "--workers", "1")
    assert made.returncode == 0, made.stderr
    run = root / "run"
    train(training_config({"dataset": str(dataset), "out": str(run), "preset": "quick_test",
                           "max_steps": 2, "save_steps": 1, "eval_steps": 2}),
          root=root, echo=lambda _: None)
    return root, run


def test_export_push_uploads_the_model_privately_without_checkpoints(trained, tmp_path):
    """Uses RecordingHub, a test double of the Hub."""
    root, run = trained
    hub = RecordingHub()
    report = export_model(str(run / "final"), str(tmp_path / "export"), merge=True,
                          push_to_hub="me/model", hub_client=hub, root=root)
    assert hub.created == [("me/model", True)]
    assert sorted(hub.uploaded) == report["files"]
    assert "model.safetensors" in hub.uploaded and "README.md" in hub.uploaded
    assert "training_config.json" in hub.uploaded
    assert not any("checkpoint" in name or "adapter" in name for name in hub.uploaded)
    info = json.loads((tmp_path / "export" / "deepsynth-model.json").read_text())
    assert info["adapter"] is False and info["merged_from"]


def test_export_public_and_unmerged(trained, tmp_path):
    """Uses RecordingHub, a test double of the Hub."""
    root, run = trained
    hub = RecordingHub()
    report = export_model(str(run / "final"), str(tmp_path / "adapter"), merge=False,
                          push_to_hub="me/adapter", public=True, hub_client=hub, root=root)
    assert hub.created == [("me/adapter", False)]
    assert "adapter_weights.safetensors" in report["files"]
    assert report["merged"] is False


def test_export_refuses_a_folder_not_saved_by_deepsynth(tmp_path):
    result = run_cli("export", "--model", str(tmp_path), "--out", str(tmp_path / "x"))
    assert result.returncode == 2
    assert "not a model folder saved by DeepSynth" in result.stderr
    assert "Traceback" not in result.stderr
