"""Training runs end to end with the real tiny DeepSeek-OCR-2, accelerate and the CLI.

Covers exact resume (an interrupted-and-resumed run equals an uninterrupted one, also with
the MoE regularizers' own random generators), pause at an optimizer-step boundary, the CLI
chain train -> evaluate -> summarize -> export, two-process data-parallel training with
torchrun, and user errors of ``deepsynth train``.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file

from deepsynth.config.training import training_config
from deepsynth.models.tiny import ensure_tiny_model
from deepsynth.training.loop import train
from deepsynth.workspace import Workspace

TESTS = Path(__file__).resolve().parent
VENV_BIN = Path(sys.executable).parent
DISTRIBUTED_SCRIPT = TESTS / "scripts" / "distributed_train.py"

# Small evaluation probes keep the runs quick; they do not affect the training steps.
CHEAP_EVAL = {"eval_samples": 2, "max_new_tokens": 4}


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """One data root for the module, with the tiny model built once and cached there (every
    run then starts from the same state, and the torchrun ranks only read the cache)."""
    folder = tmp_path_factory.mktemp("data-root")
    built = ensure_tiny_model(Workspace(folder).cache)
    assert (built / "model.safetensors").exists()
    return folder


@pytest.fixture(scope="module")
def env(root) -> dict:
    return {"DEEPSYNTH_DATA_ROOT": str(root)}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory, env) -> Path:
    out = tmp_path_factory.mktemp("datasets") / "scitldr"
    done = run_cli("generate", "--source", "builtin:scitldr", "--out", str(out),
                   "--max-samples", "12", "--page-size", "256x256", "--font-size", "12",
                   "--margin", "8", env=env)
    assert done.returncode == 0, done.stderr
    assert (out / "data").is_dir()
    return out


def quiet(_text: str) -> None:
    """Echo sink for in-process runs (the parameter table is checked through the CLI)."""


def config(dataset: Path, out: Path, **options):
    return training_config({"dataset": str(dataset), "out": str(out), "preset": "quick_test",
                            **CHEAP_EVAL, **options})


def loss_by_step(run_dir: Path) -> dict[int, float]:
    """Training-loss records of metrics_history.jsonl; a step logged twice fails."""
    losses: dict[int, float] = {}
    for line in (run_dir / "metrics_history.jsonl").read_text().splitlines():
        record = json.loads(line)
        if "loss" in record:
            assert record["step"] not in losses, f"step {record['step']} logged twice"
            losses[record["step"]] = record["loss"]
    return losses


def checkpoint_names(run_dir: Path) -> list[str]:
    return sorted(p.name for p in (run_dir / "checkpoints").iterdir())


def trainable_weights(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    return load_file(str(run_dir / "checkpoints" / f"step-{step:06d}" / "trainable.safetensors"))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


# ------------------------------------------------------- 1. interrupted == uninterrupted

RESUME_SETTINGS = {
    "full": {"peft": "full"},
    "lora_moe_regularized": {"peft": "lora", "lora_preset": "high_capacity_moe",
                             "expert_dropout_rate": 0.5, "gate_dropout_rate": 0.2},
}
# The same run resumed from a checkpoint in the older format: hook states as a list, by
# position, as DeepSynth wrote them before hooks had names.
RESUME_SETTINGS["lora_moe_regularized_old_checkpoint"] = RESUME_SETTINGS["lora_moe_regularized"]


def to_positional_hook_states(checkpoint: Path) -> None:
    path = checkpoint / "training_state.pt"
    blob = torch.load(path, weights_only=False)
    by_name = blob["extra_rng"]["hooks"]
    assert list(by_name) == ["expert_dropout", "gate_dropout"]
    blob["extra_rng"]["hooks"] = list(by_name.values())
    torch.save(blob, path)


@pytest.mark.parametrize("setting", list(RESUME_SETTINGS))
def test_interrupted_and_resumed_run_equals_uninterrupted_run(setting, dataset, root,
                                                              tmp_path):
    # 12 rows at batch 2 are 6 micro-batches per epoch; 2 per step puts step 4 mid-epoch 1.
    options = {"max_steps": 8, "save_steps": 4, "log_steps": 1, "eval_steps": 8,
               "batch_size": 2, "gradient_accumulation_steps": 2,
               **RESUME_SETTINGS[setting]}
    straight = train(config(dataset, tmp_path / "A", **options), root=root, echo=quiet)
    assert (straight.status, straight.step) == ("completed", 8)

    calls = []
    stopped = train(config(dataset, tmp_path / "B", **options), progress=calls.append,
                    should_stop=lambda: len(calls) >= 4, root=root, echo=quiet)
    assert (stopped.status, stopped.step, stopped.final_model) == ("stopped", 4, None)
    assert [p.done for p in calls] == [1, 2, 3, 4]
    assert checkpoint_names(tmp_path / "B") == ["step-000004"]
    saved = json.loads((tmp_path / "B/checkpoints/step-000004/trainer_state.json").read_text())
    assert (saved["step"], saved["epoch"], saved["batches_in_epoch"]) == (4, 1, 2)
    assert not (tmp_path / "B" / "final").exists()
    if setting.endswith("old_checkpoint"):
        to_positional_hook_states(tmp_path / "B/checkpoints/step-000004")

    resumed = train(config(dataset, tmp_path / "B", resume_from_checkpoint="latest",
                           **options),
                    root=root, echo=quiet)
    assert (resumed.status, resumed.step) == ("completed", 8)
    assert resumed.final_model == tmp_path / "B" / "final"

    expected, actual = loss_by_step(tmp_path / "A"), loss_by_step(tmp_path / "B")
    assert sorted(expected) == sorted(actual) == list(range(1, 9))
    losses_differ = {step: (expected[step], actual[step]) for step in expected
                     if abs(expected[step] - actual[step]) > 1e-5 * abs(expected[step])}
    final_a = trainable_weights(tmp_path / "A", 8)
    final_b = trainable_weights(tmp_path / "B", 8)
    assert final_a and sorted(final_a) == sorted(final_b)
    weights_differ = sorted(
        ((float((final_a[n] - final_b[n]).abs().max()), n) for n in final_a
         if not torch.allclose(final_b[n], final_a[n], rtol=1e-5, atol=1e-5)), reverse=True)
    assert not losses_differ and not weights_differ, (
        f"resumed run differs from the uninterrupted one; loss per step (uninterrupted, "
        f"resumed): {losses_differ}; {len(weights_differ)} of {len(final_a)} final tensors "
        f"differ, largest (max abs diff, name): {weights_differ[:3]}")
    # The comparison is not vacuous: training moved the weights after the resume point.
    middle = trainable_weights(tmp_path / "A", 4)
    assert any(not torch.equal(middle[n], final_a[n]) for n in final_a)
    if setting.startswith("lora_moe_regularized"):  # the regularizers had something to act on
        assert any(".mlp.experts." in n and ".lora_" in n for n in final_a)
        assert any(".mlp.gate.lora_" in n for n in final_a)


def test_first_run_on_a_fresh_data_root_is_reproducible(dataset, tmp_path):
    """The same seeded run gives the same weights whether or not the tiny model had to be
    built first (building it must not disturb the seeded random state, e.g. LoRA init)."""
    fresh_root = tmp_path / "fresh-root"
    weights = []
    for name in ("builds-the-model", "reads-the-cache"):
        result = train(config(dataset, tmp_path / name, peft="lora", max_steps=3),
                       should_stop=lambda: True, root=fresh_root, echo=quiet)
        assert (result.status, result.step) == ("stopped", 1)
        weights.append(trainable_weights(result.run_dir, 1))
    first, second = weights
    assert first and sorted(first) == sorted(second)
    differing = [n for n in first if not torch.allclose(first[n], second[n], rtol=1e-5,
                                                        atol=1e-6)]
    assert not differing, f"{len(differing)} of {len(first)} tensors differ, e.g. " \
                          f"{differing[:3]}"


# -------------------------------------------------------------- 2. pause at a step boundary


@pytest.fixture(scope="module")
def paused_run(dataset, root, tmp_path_factory):
    """A full fine-tuning run whose stop flag is set from the start."""
    out = tmp_path_factory.mktemp("paused") / "run"
    calls = []
    result = train(config(dataset, out, peft="full", max_steps=6,
                          gradient_accumulation_steps=2),
                   progress=calls.append, should_stop=lambda: True, root=root, echo=quiet)
    return result, calls


def test_stop_requested_from_the_start_stops_after_exactly_one_optimizer_step(paused_run):
    result, calls = paused_run
    run_dir = result.run_dir
    assert (result.status, result.step, result.final_model) == ("stopped", 1, None)
    assert [p.done for p in calls] == [1]
    assert checkpoint_names(run_dir) == ["step-000001"]
    state = json.loads((run_dir / "checkpoints/step-000001/trainer_state.json").read_text())
    # A whole optimizer step: both micro-batches of the accumulation were consumed.
    assert (state["step"], state["epoch"], state["batches_in_epoch"]) == (1, 0, 2)
    assert not (run_dir / "final").exists()
    assert sorted(loss_by_step(run_dir)) == [1]
    summary = json.loads((run_dir / "metrics.json").read_text())
    assert (summary["status"], summary["steps"]) == ("stopped", 1)


# ----------------------------------------------------------------------- 3. the CLI chain


def test_cli_train_evaluate_summarize_export(dataset, root, env, tmp_path):
    run_dir = tmp_path / "run"
    trained = run_cli("train", "--dataset", str(dataset), "--out", str(run_dir),
                      "--preset", "quick_test", "--max-steps", "4", "--eval-steps", "2",
                      "--save-steps", "2", "--max-new-tokens", "8", env=env)
    assert trained.returncode == 0, trained.stderr
    assert "Traceback" not in trained.stderr
    assert re.search(r"^sam encoder\s+[\d,]+\s+0\s+float32\s+frozen\s*$", trained.stderr, re.MULTILINE), \
        trained.stderr
    assert re.search(r"^note: tiny-deepseek-ocr-2 is a randomly initialized", trained.stderr,
                     re.MULTILINE), trained.stderr
    report = json.loads(trained.stdout)
    assert (report["status"], report["step"]) == ("completed", 4)
    final = Path(report["final_model"])
    assert final == run_dir / "final" and final.is_dir()
    assert json.loads((final / "deepsynth-model.json").read_text())["adapter"] is True
    evals = [json.loads(line)["eval"] for line in
             (run_dir / "metrics_history.jsonl").read_text().splitlines()
             if "eval" in json.loads(line)]
    assert len(evals) == 2  # at steps 2 and 4
    assert checkpoint_names(run_dir) == ["step-000002", "step-000004"]

    evaluated = run_cli("evaluate", "--model", str(final), "--dataset", str(dataset),
                        "--max-samples", "4", "--max-new-tokens", "8", env=env)
    assert evaluated.returncode == 0, evaluated.stderr
    results = json.loads(evaluated.stdout)
    for key in ("rouge1", "rouge2", "rougeL", "eval_loss", "perplexity", "best", "worst"):
        assert key in results, key
    assert results["samples"] == 4 and results["split"] == "validation"
    assert results["eval_loss"] > 0 and results["perplexity"] >= 1
    samples = (final / "evaluation" / "validation-samples.jsonl").read_text().splitlines()
    assert len(samples) == 4
    for line in samples:
        sample = json.loads(line)
        assert {"id", "reference", "prediction", "rouge1"} <= set(sample)
        assert isinstance(sample["prediction"], str) and sample["reference"]

    text_file = tmp_path / "document.txt"
    text_file.write_text("The harbour council met on Tuesday to discuss the railway budget. "
                         "Members agreed to fund a new library next to the museum. " * 6,
                         encoding="utf-8")
    from_text = run_cli("summarize", "--model", str(final), "--text-file", str(text_file),
                        "--max-new-tokens", "8", env=env)
    assert from_text.returncode == 0, from_text.stderr
    summary = json.loads(from_text.stdout)
    assert isinstance(summary["summary"], str)
    assert summary["render"]["num_pages"] >= 1
    assert summary["pages"] == summary["render"]["num_pages"]

    page = tmp_path / "pages" / "page.png"
    rendered = run_cli("render", "--text-file", str(text_file), "--out", str(page),
                       "--page-size", "256x256", env=env)
    assert rendered.returncode == 0, rendered.stderr
    assert page.exists()
    from_image = run_cli("summarize", "--model", str(final), "--image", str(page),
                         "--max-new-tokens", "8", env=env)
    assert from_image.returncode == 0, from_image.stderr
    image_summary = json.loads(from_image.stdout)
    assert isinstance(image_summary["summary"], str)
    assert image_summary["pages"] == 1 and image_summary["render"] is None

    exported_dir = tmp_path / "exported"
    exported = run_cli("export", "--model", str(final), "--out", str(exported_dir), "--merge",
                       env=env)
    assert exported.returncode == 0, exported.stderr
    export_report = json.loads(exported.stdout)
    assert export_report["merged"] is True
    assert "model.safetensors" in export_report["files"]
    info = json.loads((exported_dir / "deepsynth-model.json").read_text())
    assert info["adapter"] is False
    assert_merged_model_matches_adapter(final, exported_dir, dataset, root)


def assert_merged_model_matches_adapter(adapter_dir: Path, merged_dir: Path, dataset: Path,
                                        root: Path) -> None:
    """The exported (merged) model gives the adapter model's logits on a real example."""
    from deepsynth.evaluation.evaluate import encoder_for, model_settings
    from deepsynth.models.registry import load_model
    from deepsynth.training.data import Collator, PageDataset, load_split, pixel_values

    adapter, merged = load_model(str(adapter_dir), root=root), load_model(str(merged_dir),
                                                                          root=root)
    encoder = encoder_for(merged, model_settings(str(merged_dir)))
    item = PageDataset(load_split(str(dataset), "validation", 4), encoder, merged.image_size,
                       limit=1)[0]
    batch = Collator(merged.tokenizer.pad_token_id)([item])
    inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
              "pixel_values": pixel_values(batch["pages"], torch.float32)}
    with torch.no_grad():
        expected = adapter.model.eval()(**inputs).logits
        actual = merged.model.eval()(**inputs).logits
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)


# ------------------------------------------------------------------ 4. two CPU processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_process_data_parallel_training_keeps_replicas_identical(dataset, root, env,
                                                                     tmp_path):
    from deepsynth.models.registry import load_model

    # Also builds the cached tiny model, so the two ranks only read it.
    initial = {n: p.detach().clone() for n, p in
               load_model("tiny-deepseek-ocr-2", root=root).model.named_parameters()}
    out = tmp_path / "ddp"
    command = [str(VENV_BIN / "torchrun"), "--nproc_per_node", "2", "--master_port",
               str(free_port()), str(DISTRIBUTED_SCRIPT), str(dataset), str(out / "run"),
               str(root), str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False,
                          env={**os.environ, **env, "OMP_NUM_THREADS": "1"},
                          cwd=TESTS.parent)
    rank_lines = [line for line in done.stderr.splitlines() if line.startswith("[rank")]
    assert done.returncode == 0, "\n".join(rank_lines)[-5000:] or done.stderr[-5000:]

    ranks = [torch.load(out / f"rank{r}.pt", weights_only=True) for r in (0, 1)]
    for launcher_rank, saved in enumerate(ranks):
        assert (saved["launcher_rank"], saved["launcher_world_size"]) == (launcher_rank, 2)
        # accelerate inside the loop must see the same process group as torchrun.
        assert (saved["rank"], saved["world_size"]) == (launcher_rank, 2), (
            f"torchrun rank {launcher_rank} of 2 trained as process {saved['rank']} of "
            f"{saved['world_size']}")
        assert (saved["status"], saved["step"]) == ("completed", 3)
    # Each rank trained on its own share of every batch...
    ids0, ids1 = set(ranks[0]["epoch0_ids"]), set(ranks[1]["epoch0_ids"])
    assert ids0 and ids1 and not ids0 & ids1
    # ...and gradients were averaged, so the replicas stayed identical.
    weights0, weights1 = ranks[0]["weights"], ranks[1]["weights"]
    assert weights0 and sorted(weights0) == sorted(weights1)
    different = [n for n in weights0 if not torch.equal(weights0[n], weights1[n])]
    assert not different, f"replicas differ in {different[:5]}"
    assert set(weights0) <= set(initial)
    assert any(not torch.equal(weights0[n], initial[n]) for n in weights0)
    # Rank 0 wrote the checkpoint of the final step, holding the same weights.
    saved = trainable_weights(out / "run", 3)
    assert sorted(saved) == sorted(weights0)
    assert all(torch.equal(saved[n], weights0[n]) for n in saved)


# ---------------------------------------------------------------------- 5. user errors


def test_train_with_missing_dataset_is_a_one_line_user_error(env, tmp_path):
    done = run_cli("train", "--dataset", "/nonexistent", "--out", str(tmp_path / "run"),
                   env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "/nonexistent" in lines[0], done.stderr


def test_train_resuming_from_a_missing_checkpoint_is_a_user_error(dataset, env, tmp_path):
    done = run_cli("train", "--dataset", str(dataset), "--out", str(tmp_path / "run"),
                   "--preset", "quick_test", "--resume-from-checkpoint",
                   "/nonexistent/ckpt", env=env)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1 and "/nonexistent/ckpt" in lines[0], done.stderr


@pytest.fixture(scope="module")
def paused_lora_run(dataset, root, tmp_path_factory):
    out = tmp_path_factory.mktemp("paused-lora") / "run"
    result = train(config(dataset, out, peft="lora", max_steps=3), should_stop=lambda: True,
                   root=root, echo=quiet)
    assert (result.status, result.step) == ("stopped", 1)
    return result


@pytest.mark.parametrize(("trained_with", "resumed_with"), [("full", "lora"),
                                                             ("lora", "dora")])
def test_train_resuming_with_another_peft_names_the_mismatch(trained_with, resumed_with,
                                                             request, dataset, env, tmp_path):
    run = request.getfixturevalue("paused_run")[0] if trained_with == "full" else \
        request.getfixturevalue("paused_lora_run")
    checkpoint = run.run_dir / "checkpoints" / "step-000001"
    done = run_cli("train", "--dataset", str(dataset), "--out", str(tmp_path / "run"),
                   "--preset", "quick_test", "--peft", resumed_with, "--resume-from-checkpoint",
                   str(checkpoint), env=env)
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode == 2, done.stderr
    lines = error_lines(done.stderr)
    assert len(lines) == 1, done.stderr
    assert str(checkpoint) in lines[0] and re.search(r"adapter|peft", lines[0]), lines[0]


# ------------------------------------ 6. router losses and statistics, gradient checkpointing

# One example per micro-batch (so the micro-batches differ in length), three per step; the
# router losses and expert dropout on. Without the fix, the routers re-run by checkpointing in
# backward were recorded: the next micro-batch's router losses read logits of another length
# (IndexError), and the statistics counted every routed token twice.
ROUTED = {"peft": "full", "max_steps": 2, "batch_size": 1, "gradient_accumulation_steps": 3,
          "log_steps": 1, "eval_steps": 2, "save_steps": 2, "expert_dropout_rate": 0.3}
ROUTER_LOSSES = {"aux_loss_coef": 0.01, "z_loss_coef": 0.001}
ROUTER_WEIGHT = "model.language_model.layers.1.mlp.gate.weight"


def moe_by_step(run_dir: Path) -> dict[int, dict]:
    return {r["step"]: r["moe"] for r in map(json.loads, (run_dir / "metrics_history.jsonl")
                                              .read_text().splitlines()) if "moe" in r}


def routed_run(dataset: Path, root: Path, out: Path, checkpointing: bool, **options) -> Path:
    result = train(config(dataset, out, gradient_checkpointing=checkpointing, **ROUTED,
                          **options), root=root, echo=quiet)
    assert (result.status, result.step) == ("completed", 2)
    return result.run_dir


def test_training_rows_differ_in_length(dataset, root):
    """The runs below need micro-batches of different lengths (one summary each)."""
    from deepsynth.models.registry import load_model
    from deepsynth.training.data import load_split

    tokenizer = load_model("tiny-deepseek-ocr-2", root=root).tokenizer
    summaries = load_split(str(dataset), "train", 4).table["summary"]
    assert len({len(tokenizer(s).input_ids) for s in summaries}) > 1


def test_router_losses_with_gradient_checkpointing_train_as_without_it(dataset, root,
                                                                       tmp_path):
    plain = routed_run(dataset, root, tmp_path / "plain", False, **ROUTER_LOSSES)
    checkpointed = routed_run(dataset, root, tmp_path / "checkpointed", True, **ROUTER_LOSSES)
    assert loss_by_step(checkpointed) == pytest.approx(loss_by_step(plain), rel=1e-5)
    # The router's update includes the router losses' gradient: the same with checkpointing.
    routers = [trainable_weights(run, 2)[ROUTER_WEIGHT] for run in (plain, checkpointed)]
    torch.testing.assert_close(routers[1], routers[0], rtol=1e-5, atol=1e-6)
    assert moe_by_step(checkpointed) == moe_by_step(plain)


def test_router_statistics_are_counted_once_under_gradient_checkpointing(dataset, root,
                                                                         tmp_path):
    plain = moe_by_step(routed_run(dataset, root, tmp_path / "plain", False))
    checkpointed = moe_by_step(routed_run(dataset, root, tmp_path / "checkpointed", True))
    assert sorted(plain) == [1, 2]
    for step, layers in plain.items():
        assert list(layers) == ["model.language_model.layers.1.mlp.gate"]
        for layer, stats in layers.items():
            assert stats["routed_tokens"] > 0 and sum(stats["expert_share"]) > 0.99
            assert checkpointed[step][layer] == stats, (step, layer)


# ------------------------------------------------------- 7. the summary length limit


def p95_of_training_summaries(dataset: Path, root: Path) -> int:
    """The 95th percentile (numpy's inverted CDF, a nearest rank) of the training summaries'
    token lengths with their EOS: computed here, not with the library's function."""
    import numpy as np

    from deepsynth.models.registry import load_model
    from deepsynth.training.data import load_split

    tokenizer = load_model("tiny-deepseek-ocr-2", root=root).tokenizer
    rows = load_split(str(dataset), "train", 4)
    lengths = [len(tokenizer(rows.table[i]["summary"], add_special_tokens=False).input_ids) + 1
               for i in rows.indices]
    assert len(set(lengths)) > 1
    return int(np.percentile(lengths, 95, method="inverted_cdf"))


def test_max_new_tokens_defaults_to_the_95th_percentile_of_training_summaries(dataset, root,
                                                                             tmp_path):
    expected = p95_of_training_summaries(dataset, root)
    assert expected > 64  # the old fixed default would cut these summaries short
    # Stopped after step 1 of 2, before any evaluation: only the recorded value is checked.
    result = train(config(dataset, tmp_path / "run", max_new_tokens=None, max_steps=2,
                          eval_steps=2), should_stop=lambda: True, root=root, echo=quiet)
    assert result.step == 1
    recorded = json.loads((result.run_dir / "training_config.json").read_text())
    assert recorded["max_new_tokens"] == expected
    assert f"--max-new-tokens {expected}" in (result.run_dir / "command.txt").read_text()


def test_max_new_tokens_default_is_capped_by_max_length_and_counted_when_hit(dataset, root,
                                                                             tmp_path):
    result = train(config(dataset, tmp_path / "run", max_new_tokens=None, max_length=24,
                          max_steps=1, eval_samples=2), root=root, echo=quiet)
    assert result.status == "completed"
    assert json.loads((result.run_dir / "training_config.json").read_text())[
        "max_new_tokens"] == 24
    (evaluation,) = [r["eval"] for r in map(json.loads, (result.run_dir / "metrics_history.jsonl")
                                            .read_text().splitlines()) if "eval" in r]
    # The tiny model's random weights never end a summary within 24 tokens.
    assert (evaluation["max_new_tokens"], evaluation["eval_hit_max_new_tokens"],
            evaluation["eval_hit_max_new_tokens_share"]) == (24, 2, 1.0)
    samples = json.loads((result.run_dir / "eval_samples" / "step-000001.json").read_text())
    assert [s["hit_max_new_tokens"] for s in samples] == [True, True]
    summary = json.loads((result.run_dir / "metrics.json").read_text())
    assert (summary["max_new_tokens"], summary["eval_hit_max_new_tokens"],
            summary["eval_hit_max_new_tokens_share"]) == (24, 2, 1.0)


def test_an_explicit_max_new_tokens_wins(dataset, root, tmp_path):
    result = train(config(dataset, tmp_path / "run", max_new_tokens=3, max_steps=1,
                          eval_samples=1), root=root, echo=quiet)
    assert json.loads((result.run_dir / "training_config.json").read_text())[
        "max_new_tokens"] == 3
    assert json.loads((result.run_dir / "metrics.json").read_text())["max_new_tokens"] == 3
    # deepsynth evaluate (and summarize) default to the limit the model was trained with.
    from deepsynth.evaluation.evaluate import evaluate_model

    evaluated = evaluate_model(str(result.final_model), str(dataset), max_samples=1,
                               out=str(tmp_path / "evaluation"), root=root)
    assert (evaluated["max_new_tokens"], evaluated["eval_hit_max_new_tokens"]) == (3, 1)


def test_generation_tells_summaries_cut_at_the_limit_from_finished_ones(dataset, root):
    """One batch of two: the first row is made to end (a real forward hook raising its EOS
    logit from the second generated token on), the second runs into the limit."""
    from deepsynth.config.training_presets import DEFAULT_PROMPT
    from deepsynth.evaluation.generation import generate_summaries
    from deepsynth.models.registry import load_model
    from deepsynth.training.data import ExampleEncoder, PageDataset, load_split

    loaded = load_model("tiny-deepseek-ocr-2", root=root)
    tokenizer, model = loaded.tokenizer, loaded.model
    encoder = ExampleEncoder(tokenizer, loaded.image_token_id, loaded.image_tokens_per_page,
                             DEFAULT_PROMPT, 512)
    probe = PageDataset(load_split(str(dataset), "validation", 4), encoder, loaded.image_size)
    by_pages: dict[int, list[dict]] = {}
    for i in range(len(probe)):
        by_pages.setdefault(len(probe[i]["pages"]), []).append(probe[i])
    items = next(group[:2] for group in by_pages.values() if len(group) >= 2)  # one batch

    plain = generate_summaries(model, tokenizer, encoder, items, 2, max_new_tokens=6)
    assert plain.hit_limit == [True, True] and plain.hits == 2

    calls = []

    def end_first_row(module, inputs, logits):
        calls.append(1)
        if len(calls) < 2:
            return logits
        logits = logits.clone()
        logits[0, -1, tokenizer.eos_token_id] = logits[0, -1].max() + 100
        return logits

    handle = model.lm_head.register_forward_hook(end_first_row)
    try:
        ended = generate_summaries(model, tokenizer, encoder, items, 2, max_new_tokens=6)
    finally:
        handle.remove()
    assert ended.hit_limit == [False, True] and ended.hit_share() == 0.5
    assert ended.texts[1] == plain.texts[1]
    assert len(tokenizer(ended.texts[0]).input_ids) < len(tokenizer(plain.texts[0]).input_ids)
