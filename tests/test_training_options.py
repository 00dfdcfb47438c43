"""Training options beyond the basics: multi-page documents and max_pages, the text-only
trainer, bf16, gradient checkpointing, augmentation, checkpoint pruning, early stopping,
beam search, freezing refusal and the LoRA recommendation."""

from __future__ import annotations

import json
import math

import pytest
import torch
from conftest import run_cli, write_jsonl

from deepsynth.config.training import training_config
from deepsynth.errors import DeepSynthError
from deepsynth.evaluation.evaluate import evaluate_model
from deepsynth.models.components import freeze_vision
from deepsynth.models.registry import load_model
from deepsynth.training.augment import Augmenter
from deepsynth.training.data import decode_page
from deepsynth.training.loop import train
from deepsynth.training.recommend import recommend_lora
from deepsynth.training.run_folder import RunFolder

LONG = " ".join(f"Sentence {i} of a long report about rivers." for i in range(40))


@pytest.fixture(scope="module")
def setup_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("root")
    rows = [{"id": f"s{i}", "text": f"Short note {i} about the harbour.", "summary": f"note {i}"}
            for i in range(6)]
    rows.append({"id": "long", "text": LONG, "summary": "a long report"})
    write_jsonl(root / "corpus" / "train.jsonl", rows)
    write_jsonl(root / "corpus" / "validation.jsonl", rows[:2])
    dataset = root / "ds"
    made = run_cli("generate", "--source", str(root / "corpus"), "--out", str(dataset),
                   "--text-field", "text", "--summary-field", "summary", "--id-field", "id",
                   "--page-size", "256x256", "--font-size", "12", "--margin", "8",
                   "--workers", "1", "--no-dedup")
    assert made.returncode == 0, made.stderr
    return root, dataset


def run(setup_root, name, **options):
    root, dataset = setup_root
    config = training_config({"dataset": str(dataset), "out": str(root / name),
                              "preset": "quick_test", "max_steps": 2, "eval_samples": 2,
                              "max_new_tokens": 4, **options})
    return train(config, root=root, echo=lambda _: None)


def history(result) -> list[dict]:
    lines = (result.run_dir / "metrics_history.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def test_multi_page_documents_train_and_longer_ones_are_skipped(setup_root):
    root, dataset = setup_root
    import datasets

    pages = datasets.load_dataset(str(dataset), split="train")["num_pages"]
    assert max(pages) in (2, 3, 4)  # the long document spans several 256 px pages
    several = run(setup_root, "pages", max_pages=4, batch_size=7)
    assert several.metrics["rows_skipped_too_many_pages"] == 0
    one = run(setup_root, "one_page", max_pages=1, eval_split="train")
    assert one.metrics["rows_skipped_too_many_pages"] >= 1
    assert all(math.isfinite(r["loss"]) for r in history(several) if "loss" in r)


def test_bf16_gradient_checkpointing_and_augmentation(setup_root):
    result = run(setup_root, "bf16", mixed_precision="bf16", gradient_checkpointing=True,
                 augment=True, peft="full")
    losses = [r["loss"] for r in history(result) if "loss" in r]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)


def test_augmentation_keeps_pages_legible_in_shape():
    page = decode_page(_page_png(), 256)
    augmented = Augmenter(seed=3, p=1.0)(page)
    assert augmented.size == page.size and augmented.mode == "L"
    before = torch.tensor(list(page.getdata()), dtype=torch.float32)
    after = torch.tensor(list(augmented.getdata()), dtype=torch.float32)
    assert 0 < (before - after).abs().mean() < 40  # changed, but not destroyed
    flipped = torch.tensor(list(page.transpose(0).getdata()), dtype=torch.float32)
    assert (after - before).abs().mean() < (after - flipped).abs().mean()  # never a flip


def _page_png() -> bytes:
    from deepsynth.config import RenderConfig
    from deepsynth.render.renderer import build_renderer

    return build_renderer(RenderConfig(page_size="256x256", font_size=12, margin=8)).render(
        LONG[:400]).pages[0]


def test_keep_last_prunes_old_checkpoints(setup_root):
    result = run(setup_root, "prune", max_steps=4, save_steps=1, keep_last=2, eval_steps=4)
    assert [p.name for p in RunFolder(result.run_dir).checkpoints()] == ["step-000003",
                                                                  "step-000004"]


def test_early_stopping_stops_when_the_metric_stops_improving(setup_root):
    # A learning rate of 0 cannot improve the loss: patience 1 stops at the 2nd evaluation.
    result = run(setup_root, "early", max_steps=10, eval_steps=1, learning_rate=1e-8,
                 early_stopping_patience=1, early_stopping_metric="rouge1")
    assert result.status == "early_stopped"
    assert result.step == 2


def test_evaluate_with_beam_search(setup_root):
    root, dataset = setup_root
    trained = run(setup_root, "beam")
    results = evaluate_model(str(trained.final_model), str(dataset), max_samples=2,
                             num_beams=2, max_new_tokens=4, root=root)
    assert results["num_beams"] == 2 and results["samples"] == 2
    assert set(results) >= {"rouge1", "rouge2", "rougeL", "eval_loss", "perplexity"}


def test_freezing_that_matches_nothing_is_refused(setup_root):
    root, _ = setup_root
    loaded = load_model("tiny-deepseek-ocr-2", root=root)
    with pytest.raises(DeepSynthError, match="matched no parameter"):
        freeze_vision(loaded.model, "causal_lm")  # a text-only family's (none) on an OCR model


@pytest.mark.parametrize("samples,preset", [(1, "tiny_data"), (9, "tiny_data"),
                                            (10, "balanced"), (49, "balanced"),
                                            (50, "high_capacity_moe"),
                                            (5000, "high_capacity_moe")])
def test_lora_recommendation_by_dataset_size(samples, preset):
    advice = recommend_lora(samples)
    assert advice["lora_preset"] == preset
    config = training_config({"dataset": "d", "out": "o", **advice["config"]})
    estimates = advice["estimates"]
    per_epoch = math.ceil(math.ceil(samples / config.schedule.batch_size)
                          / config.schedule.gradient_accumulation_steps)
    assert estimates["steps_per_epoch"] == per_epoch
    assert estimates["optimizer_steps"] == math.ceil(per_epoch * config.schedule.num_epochs)
    assert estimates["effective_batch_size"] == (config.schedule.batch_size
                                                 * config.schedule.gradient_accumulation_steps)
    assert bool(advice["notes"]) == (estimates["optimizer_steps"] < 20)


def test_recommend_cli(setup_root):
    _, dataset = setup_root
    result = run_cli("recommend", "--dataset", str(dataset))
    assert result.returncode == 0, result.stderr
    advice = json.loads(result.stdout)
    assert advice["lora_preset"] == "tiny_data" and advice["num_samples"] < 10


def test_tensorboard_tracker_receives_the_metrics(setup_root):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run(setup_root, "tracked", report_to="tensorboard", log_steps=1)
    events = sorted(result.run_dir.rglob("events.out.tfevents.*"))
    assert events
    scalars = set()
    for path in events:
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        scalars |= set(accumulator.Tags()["scalars"])
    assert {"loss", "lr", "grad_norm"} <= scalars
