"""The image mode, one training option (``image_mode``: ``global`` or ``crops``), from the
CLI, the REST API (and its OpenAPI document) to the loader; training, evaluating and
summarizing in crops mode for both families (a run succeeds only if the crops reach the
model: it refuses image tokens its features do not match); a sequence the crops make too
long for the model refused naming the field. The tensors themselves:
``tests/test_processor_parity.py``; the Train page's field: ``tests/test_ui.py``."""

from __future__ import annotations

import json

import pytest
from conftest import run_cli, write_jsonl
from support.server import Client, running
from support.v1_checkpoint import write_v1_checkpoint
from transformers import AutoTokenizer

from deepsynth.config.server import ServerConfig
from deepsynth.config.training import train_command, training_config
from deepsynth.errors import ConfigError, ConfigRefused
from deepsynth.evaluation.evaluate import evaluate_model, model_settings
from deepsynth.evaluation.summarize import summarize
from deepsynth.models import tiny
from deepsynth.models.model_info import read_info
from deepsynth.training.loop import train
from deepsynth.training.request import resolve_training
from deepsynth.workspace import Workspace

PAGE = "800x300"  # landscape, wider than a tile: 3 x 1 crops in both families


@pytest.fixture(scope="module")
def dataset(root):
    rows = [{"id": f"d{i}", "text": f"Note {i}: the harbour opened at dawn.",
             "summary": f"harbour {i}"} for i in range(3)]
    write_jsonl(root / "corpus" / "train.jsonl", rows)
    write_jsonl(root / "corpus" / "validation.jsonl", rows[:1])
    out = root / "datasets" / "wide"
    made = run_cli("generate", "--source", str(root / "corpus"), "--out", str(out),
                   "--text-field", "text", "--summary-field", "summary", "--id-field", "id",
                   "--page-size", PAGE, "--font-size", "14", "--margin", "8",
                   "--workers", "1", "--no-dedup")
    assert made.returncode == 0, made.stderr
    return out


@pytest.fixture(scope="module")
def v1_folder(root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("v1") / "tiny-v1"
    tokenizer = AutoTokenizer.from_pretrained(tiny.ensure_tokenizer(Workspace(root).cache))
    write_v1_checkpoint(folder, tokenizer)
    return folder


def config(dataset, out, model, **options):
    return training_config({"dataset": str(dataset), "out": str(out), "model": model,
                            "preset": "quick_test", "max_steps": 2, "eval_steps": 2,
                            "save_steps": 2, "eval_samples": 1, "max_new_tokens": 2,
                            **options})


def test_the_option_is_one_field_of_the_config_and_the_cli(tmp_path):
    chosen = training_config({"dataset": "d", "out": "o", "image_mode": "crops"})
    assert chosen.task.image_mode == "crops"
    assert training_config({"dataset": "d", "out": "o"}).task.image_mode == "global"
    assert "--image-mode crops" in train_command(chosen)
    with pytest.raises(ConfigError) as refused:
        training_config({"dataset": "d", "out": "o", "image_mode": "tiles"})
    assert refused.value.field == "image_mode" and "crops" in str(refused.value)
    result = run_cli("train", "--dataset", str(tmp_path), "--out", str(tmp_path / "o"),
                     "--image-mode", "tiles")
    assert result.returncode == 2 and "image_mode" in result.stderr.replace("-", "_")
    assert "Traceback" not in result.stderr


def test_the_rest_api_takes_it_and_its_openapi_document_states_it(root, dataset):
    with running(ServerConfig(data_root=str(root))) as (_, base):
        client = Client(base)
        status, spec = client.call("GET", "/api/openapi.json")
        body = spec["paths"]["/api/model/train"]["post"]["requestBody"]["content"]
        field = body["application/json"]["schema"]["properties"]["image_mode"]
        assert status == 200 and field["enum"] == ["global", "crops"]
        assert field["default"] == "global" and "crops" in field["description"]
        status, error = client.call("POST", "/api/model/train",
                                    {"dataset": "wide", "image_mode": "tiles"})
        assert status == 400 and error["field"] == "image_mode"
        assert "global" in json.dumps(error["allowed"])


@pytest.mark.parametrize("family", ["deepseek_ocr2", "deepseek_ocr"])
def test_a_model_trains_evaluates_and_summarizes_in_crops_mode(root, dataset, v1_folder,
                                                               family):
    model = "tiny-deepseek-ocr-2" if family == "deepseek_ocr2" else str(v1_folder)
    result = train(config(dataset, root / f"crops-{family}", model, image_mode="crops"),
                   root=root, echo=lambda _: None)
    final = str(result.final_model)
    assert read_info(result.final_model)["image_mode"] == "crops"
    assert model_settings(final)["image_mode"] == "crops"  # evaluation reads it back
    assert "best_eval_loss" in result.metrics  # the probe ran, pages cropped
    scores = evaluate_model(final, str(dataset), max_samples=1, max_new_tokens=2, root=root)
    assert scores["samples"] == 1
    summary = summarize(final, text="The harbour opened at dawn.", max_new_tokens=2,
                        root=root)
    assert summary["pages"] == 1 and isinstance(summary["summary"], str)


def test_a_sequence_the_crops_make_too_long_is_refused_naming_image_mode(root, dataset,
                                                                          v1_folder):
    """The tiny v1 has 1,024 positions: an 800x300 page is 21 image tokens in global mode,
    331 with its 3 x 1 crops (21 + 10 x 31); with 700 text tokens only global fits."""
    with pytest.raises(ConfigRefused) as refused:
        train(config(dataset, root / "long", str(v1_folder), image_mode="crops",
                     max_length=700), root=root, echo=lambda _: None)
    error = refused.value
    assert error.field == "image_mode" and "331 image tokens" in error.message
    assert "1032 tokens exceeds the model's 1024 positions" in error.message
    assert "image_mode global (21 image tokens a page)" in error.allowed
    fits = train(config(dataset, root / "fits", str(v1_folder), max_length=700,
                        max_steps=1), root=root, echo=lambda _: None)
    assert fits.step == 1


def test_the_too_long_sequence_is_refused_at_submit_from_the_models_config(dataset, v1_folder,
                                                                         tmp_path):
    """resolve_training (what the CLI and POST /api/model/train parse into) refuses it before
    any job: the model's config and the dataset's page counts are read, nothing is loaded."""
    values = {"dataset": str(dataset), "out": str(tmp_path / "o"), "model": str(v1_folder),
              "image_mode": "crops", "max_length": 700}
    with pytest.raises(ConfigRefused) as refused:
        resolve_training(values)
    assert refused.value.field == "image_mode"
    assert "1032 tokens exceeds the model's 1024 positions" in refused.value.message
    assert not (tmp_path / "o").exists()
    assert resolve_training({**values, "image_mode": "global"}).task.max_length == 700
    with pytest.raises(ConfigRefused) as refused:  # global pages that still do not fit
        resolve_training({**values, "image_mode": "global", "max_length": 1010})
    assert refused.value.field == "max_pages" and "1032 tokens" in refused.value.message
    # Only configs that are here are read: a preset (or an adapter run on one) would be
    # built to be read, so the run checks it once loaded instead.
    from deepsynth.config.training_checks import _config_is_here
    from deepsynth.models.model_info import write_info

    adapter_run = tmp_path / "adapter-run"
    adapter_run.mkdir()
    write_info(adapter_run, {"adapter": True, "base_model": tiny.NAME})
    assert _config_is_here(str(v1_folder)) and _config_is_here("random:deepseek-ocr-2")
    assert not _config_is_here(tiny.NAME) and not _config_is_here(str(adapter_run))
