"""Every loop feature for each DeepSeek-OCR family: DeepSeek-OCR-2 (``deepseek_ocr2``),
v1 (``deepseek_ocr``) and Unlimited-OCR (``unlimited_ocr``), as docs/training.md's table
"The family and the loop" lists them, a test per cell (tests/test_training_docs.py checks
that every test the table names exists). DeepSeek-OCR-2's cells are mostly older tests;
these fill in v1 and Unlimited-OCR on tiny checkpoints in each one's own layout, and check
every LoRA preset on all three at the published size on the meta device.

The Hub is the only test double (``RecordingHub`` of test_export_push.py).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file
from support.unlimited_checkpoint import write_unlimited_checkpoint
from support.v1_checkpoint import write_v1_checkpoint
from test_export_push import RecordingHub
from transformers import AutoTokenizer

from deepsynth.config.training import LORA_PRESETS, OCR_LORA_PRESETS, training_config
from deepsynth.evaluation.evaluate import evaluate_model
from deepsynth.models import tiny
from deepsynth.models.adapters import apply_adapters, peft_config
from deepsynth.models.components import freeze_vision
from deepsynth.models.export import export_model
from deepsynth.models.random_spec import meta_model
from deepsynth.models.registry import load_model
from deepsynth.training.data import Collator, ExampleEncoder, PageDataset, load_split
from deepsynth.training.dropout import residual_dropout
from deepsynth.training.loop import train
from deepsynth.training.moe import RouterMonitor, expert_slices, router_parameters
from deepsynth.training.pages import PageFormat, vision_inputs
from deepsynth.training.setup import build_hooks, build_optimizer, make_trainable
from deepsynth.workspace import Workspace

WRITERS = {"deepseek_ocr": write_v1_checkpoint, "unlimited_ocr": write_unlimited_checkpoint}
REAL = {"deepseek_ocr2": "deepseek-ocr-2", "deepseek_ocr": "deepseek-ocr",
        "unlimited_ocr": "unlimited-ocr"}
# The vision side of each family's native class, spelled out here (not the library's table).
_V1_VISION = ("model.vision_tower.sam_encoder.", "model.vision_tower.vision_encoder.",
              "model.multi_modal_projector.", "model.image_newline", "model.view_separator")
VISION = {"deepseek_ocr2": ("model.vision_tower.", "model.multi_modal_projector.",
                            "model.view_separator"),
          "deepseek_ocr": _V1_VISION, "unlimited_ocr": _V1_VISION}
ROUTER = "model.language_model.layers.1.mlp.gate.weight"  # the tiny checkpoints' MoE layer
EXPERTS = "model.language_model.layers.1.mlp.experts"
NUM_EXPERTS = 4


@pytest.fixture(scope="module")
def folders(root, tmp_path_factory) -> dict[str, Path]:
    tokenizer = AutoTokenizer.from_pretrained(tiny.ensure_tokenizer(Workspace(root).cache))
    out = {}
    for family, write in WRITERS.items():
        out[family] = tmp_path_factory.mktemp(family) / f"tiny-{family}"
        write(out[family], tokenizer)
    return out


@pytest.fixture(scope="module")
def dataset(root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("datasets") / "scitldr"
    done = run_cli("generate", "--source", "builtin:scitldr", "--out", str(out),
                   "--max-samples", "8", "--page-size", "256x256", "--font-size", "12",
                   "--margin", "8", env={"DEEPSYNTH_DATA_ROOT": str(root)})
    assert done.returncode == 0, done.stderr
    return out


def batch_of(loaded, dataset: Path, rows: int = 2) -> dict:
    """Real rendered pages and their sequences as the loop's collator builds them, labels
    on the summaries."""
    encoder = ExampleEncoder(loaded.tokenizer, loaded.image_token_id,
                             loaded.image_tokens_per_page, "Summarize:", 64)
    data = PageDataset(load_split(str(dataset), "train", 4), encoder,
                       PageFormat(loaded.family, loaded.image_size))
    batch = Collator(loaded.tokenizer.pad_token_id)([data[i] for i in range(rows)])
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
            "labels": batch["labels"], **vision_inputs(batch, torch.float32)}


def trainable(root: Path, folder: Path, **fields):
    """The tiny checkpoint as the loop makes it trainable, and its config."""
    config = training_config({"dataset": "d", "out": "o", "model": str(folder),
                              "learning_rate": 1e-3, "weight_decay": 0.1, **fields})
    loaded = load_model(str(folder), root=root)
    return loaded, make_trainable(loaded, config, 10), config


def hooks_of(config, model) -> list:
    monitor = RouterMonitor(model)
    try:
        return build_hooks(config, model, monitor)
    finally:
        monitor.close()


def values(model) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


FAMILIES = pytest.mark.parametrize("family", list(WRITERS))


# ------------------------------------------------------------------------- freezing


@FAMILIES
def test_the_vision_side_is_frozen_by_its_prefixes(root, folders, dataset, family):
    """Full fine-tuning, one AdamW step: nothing under the family's vision prefixes has a
    gradient or moves; everything else (the decoder, lm_head) trains."""
    loaded, model, config = trainable(root, folders[family], peft="full")
    names = [n for n, _ in model.named_parameters()]
    for prefix in VISION[family]:  # each prefix names real parameters
        assert any(n.startswith(prefix) for n in names), prefix
    before, optimizer = values(model), build_optimizer(model, config)
    model(**batch_of(loaded, dataset)).loss.backward()
    optimizer.step()
    for name, parameter in model.named_parameters():
        if name.startswith(VISION[family]):
            assert not parameter.requires_grad and parameter.grad is None, name
            assert torch.equal(parameter.detach(), before[name]), f"{name} moved"
        else:
            assert name.startswith(("model.language_model.", "lm_head.")), name
            assert parameter.requires_grad, name


# --------------------------------------------------------- LoRA presets at full size


def expected_adapters(preset: dict) -> Counter:
    """What a preset adapts in the 12 published decoder layers: layer 0 dense, 11 MoE."""
    expected = Counter()
    for module in preset["modules"]:
        if module.endswith(("q_proj", "k_proj", "v_proj", "o_proj")):
            expected[f"self_attn.{module}"] = 12
        else:  # the dense MLP of layer 0 and the shared experts of the MoE layers
            expected[f"mlp.{module}"], expected[f"mlp.shared_experts.{module}"] = 1, 11
    for parameter in preset["parameters"]:
        expected[parameter] = 11  # mlp.gate.weight, mlp.experts.gate_up_proj / down_proj
    return expected


@pytest.mark.parametrize("family", list(REAL))
def test_every_lora_preset_reaches_real_modules_at_full_size(family):
    """On the meta device at the published size, each OCR LoRA preset adapts exactly the
    decoder modules and parameters it names, in every layer that has them; never the
    vision side (whose CLIP/SAM layers have q_proj names too)."""
    for name in OCR_LORA_PRESETS:
        preset, model = LORA_PRESETS[name], meta_model(REAL[family])
        freeze_vision(model, family)
        wrapped = apply_adapters(model, peft_config(
            "lora", preset["modules"], preset["parameters"], 4, 8, 0.0, 10, family), family)
        found = Counter()
        for module_name, module in wrapped.named_modules():
            if not hasattr(module, "lora_A") or not module.lora_A:
                continue
            assert ".language_model.layers." in module_name, (name, module_name)
            where = re.sub(r"^.*\.layers\.\d+\.", "", module_name)
            parameter = getattr(module, "parameter_name", None)
            where = re.sub(r"(\.base_layer)+$", "", where)
            found[f"{where}.{parameter}" if parameter else where] += 1
        assert found == expected_adapters(preset), name


# ----------------------------------------------------------------- MoE regularizers


@FAMILIES
@pytest.mark.parametrize("peft", ["full", "lora"])
def test_expert_gradient_dropout_freezes_the_dropped_experts(root, folders, dataset, family,
                                                             peft):
    """Full fine-tuning (the fused expert tensors) and LoRA on the experts (each expert's
    slices of A and B): a dropped expert's weights and AdamW moments do not move; the kept
    ones do."""
    loaded, model, config = trainable(root, folders[family], peft=peft, seed=3,
                                      lora_preset="high_capacity_moe", expert_dropout_rate=0.5)
    (hook,) = hooks_of(config, model)
    (layer,) = expert_slices(model)
    assert layer.num_experts == NUM_EXPERTS and EXPERTS in layer.layer
    assert all(len(pairs) == (2 if peft == "full" else 4) for pairs in layer.slices)
    optimizer = build_optimizer(model, config)
    batch = batch_of(loaded, dataset)
    model(**batch).loss.backward()  # one plain step: AdamW's moments are non-zero after it
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    model(**batch).loss.backward()
    hook.before_optimizer_step(optimizer)
    dropped = hook.last_dropped[layer.layer]
    assert list(hook.last_dropped) == [layer.layer] and 0 < len(dropped) < NUM_EXPERTS
    before = [[(p.detach()[i].clone(), optimizer.state[p]["exp_avg"][i].clone())
               for p, i in pairs] for pairs in layer.slices]
    optimizer.step()
    hook.after_optimizer_step(optimizer)
    for e, pairs in enumerate(layer.slices):
        same = [torch.equal(p.detach()[i], before[e][k][0]) for k, (p, i) in enumerate(pairs)]
        if e in dropped:
            assert all(same), (e, dropped)
            assert all(torch.equal(optimizer.state[p]["exp_avg"][i], before[e][k][1])
                       for k, (p, i) in enumerate(pairs)), e
        else:
            assert not all(same), (e, dropped)


@FAMILIES
def test_gate_gradient_dropout_masks_only_the_router(root, folders, dataset, family):
    loaded, model, config = trainable(root, folders[family], peft="full",
                                      gate_dropout_rate=0.5)
    (hook,) = hooks_of(config, model)
    router = model.get_parameter(ROUTER)
    assert router_parameters(model) == [router]
    model(**batch_of(loaded, dataset)).loss.backward()
    before = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert torch.count_nonzero(before[ROUTER]) > 0
    hook.before_optimizer_step(build_optimizer(model, config))
    new, old = router.grad, before[ROUTER]
    assert torch.all((new == 0) | (new == old * 2.0))  # kept entries scaled by 1 / (1 - 0.5)
    assert 0 < int(((new == 0) & (old != 0)).sum()) < old.numel()
    for name, parameter in model.named_parameters():
        if name != ROUTER and name in before:
            assert torch.equal(parameter.grad, before[name]), name


@FAMILIES
def test_bidrop_passes_differ_and_are_averaged(root, folders, dataset, family):
    """Residual dropout reaches the family's decoder layers, so the passes differ; Bi-Drop's
    gradient is their mean."""
    loaded, model, config = trainable(root, folders[family], peft="full", bidrop_passes=2,
                                      hidden_dropout=0.3)
    (bidrop,) = hooks_of(config, model)
    dropout = residual_dropout(model, config.schedule.hidden_dropout)
    model.train()
    batch = batch_of(loaded, dataset)
    try:
        passes = []
        for seed in (1, 2):
            model.zero_grad(set_to_none=True)
            torch.manual_seed(seed)
            model(**batch).loss.backward()
            passes.append([p.grad.clone() for p in bidrop.parameters])
        model.zero_grad(set_to_none=True)
        bidrop.start_batch()
        for seed in (1, 2):
            torch.manual_seed(seed)
            (model(**batch).loss / 2).backward()
            bidrop.pass_done()
        bidrop.finish_batch()
    finally:
        dropout.close()
    assert any(not torch.allclose(a, b) for a, b in zip(*passes, strict=True))
    for parameter, first, second in zip(bidrop.parameters, *passes, strict=True):
        assert (parameter.grad - (first + second) / 2).abs().max() <= 1e-6


@FAMILIES
def test_router_losses_are_positive_and_reach_the_router(root, folders, dataset, family):
    loaded, model, config = trainable(root, folders[family], peft="full", aux_loss_coef=0.01,
                                      z_loss_coef=0.001)
    monitor = RouterMonitor(model)
    monitor.keep_outputs = True
    try:
        (losses,) = build_hooks(config, model, monitor)
        batch = batch_of(loaded, dataset)
        model(**{k: v for k, v in batch.items() if k != "labels"})
        loss = losses.extra_loss(batch["attention_mask"])
        assert loss is not None and float(loss.detach()) > 0
        loss.backward()
        router = model.get_parameter(ROUTER)
        assert router.grad is not None and torch.count_nonzero(router.grad) > 0
        assert model.lm_head.weight.grad is None  # only the router loss was backpropagated
        assert list(monitor.read_stats()) == [ROUTER.removesuffix(".weight")]
    finally:
        monitor.close()


# ------------------------------------------- the loop: resume, evaluate, export, push

# LoRA on the routed experts and the router, with the regularizers' generators to restore.
RUN = {"preset": "quick_test", "peft": "lora", "lora_preset": "high_capacity_moe",
       "expert_dropout_rate": 0.5, "gate_dropout_rate": 0.2, "aux_loss_coef": 0.01,
       "max_steps": 2, "save_steps": 1, "log_steps": 1, "eval_steps": 2, "batch_size": 2,
       "gradient_accumulation_steps": 1, "eval_samples": 2, "max_new_tokens": 4,
       "max_pages": 4}


def run_config(folder: Path, dataset: Path, out: Path, **options):
    return training_config({"dataset": str(dataset), "out": str(out), "model": str(folder),
                            **RUN, **options})


def losses(run_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in
               (run_dir / "metrics_history.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


@pytest.fixture(scope="module", params=list(WRITERS))
def trained(request, root, folders, dataset, tmp_path_factory):
    """One uninterrupted 2-step run per family: (family, its run folder)."""
    family = request.param
    out = tmp_path_factory.mktemp(f"run-{family}") / "A"
    result = train(run_config(folders[family], dataset, out), root=root, echo=lambda *_: None)
    assert (result.status, result.step) == ("completed", 2)
    return family, out


def test_interrupted_and_resumed_run_equals_uninterrupted_run(trained, root, folders,
                                                              dataset, tmp_path):
    family, straight = trained
    out, calls = tmp_path / "B", []
    stopped = train(run_config(folders[family], dataset, out), progress=calls.append,
                    should_stop=lambda: len(calls) >= 1, root=root, echo=lambda *_: None)
    assert (stopped.status, stopped.step) == ("stopped", 1)
    resumed = train(run_config(folders[family], dataset, out, resume_from_checkpoint="latest"),
                    root=root, echo=lambda *_: None)
    assert (resumed.status, resumed.step) == ("completed", 2)
    expected, actual = losses(straight), losses(out)
    assert sorted(expected) == sorted(actual) == [1, 2]
    assert all(abs(expected[s] - actual[s]) <= 1e-5 * abs(expected[s]) for s in expected)
    a, b = (load_file(str(run / "checkpoints" / "step-000002" / "trainable.safetensors"))
            for run in (straight, out))
    assert any(".mlp.experts." in n for n in a) and sorted(a) == sorted(b)
    for name, tensor in a.items():
        torch.testing.assert_close(b[name], tensor, rtol=1e-5, atol=1e-5)


def test_evaluate_scores_the_trained_model(trained, root, dataset, tmp_path):
    _, run = trained
    results = evaluate_model(str(run / "final"), str(dataset), max_samples=2,
                             max_new_tokens=4, out=str(tmp_path / "evaluation"), root=root)
    assert results["samples"] == 2 and results["split"] == "validation"
    assert results["eval_loss"] > 0 and results["perplexity"] >= 1
    assert {"rouge1", "rouge2", "rougeL"} <= set(results)
    assert len((tmp_path / "evaluation" / "validation-samples.jsonl").read_text()
               .splitlines()) == 2


def test_export_merges_the_adapters_into_the_same_outputs(trained, root, folders, dataset,
                                                         tmp_path):
    family, run = trained
    report = export_model(str(run / "final"), str(tmp_path / "merged"), merge=True, root=root)
    assert report["merged"] and "model.safetensors" in report["files"]
    adapter, merged, base = (load_model(str(p), root=root) for p in (
        run / "final", tmp_path / "merged", folders[family]))
    assert merged.family == family
    assert not any("lora_" in n or "base_layer" in n for n, _ in
                   merged.model.named_parameters())
    batch = {k: v for k, v in batch_of(merged, dataset).items() if k != "labels"}
    with torch.no_grad():
        expected, actual, untrained = (loaded.model.eval()(**batch).logits
                                       for loaded in (adapter, merged, base))
    torch.testing.assert_close(actual, expected, rtol=1e-4, atol=1e-4)
    assert (actual - untrained).abs().max() > 1e-3  # the merged adapters changed the model


def test_push_uploads_the_merged_model_privately(trained, root, tmp_path):
    """Uses RecordingHub, a test double of the Hub."""
    family, run = trained
    hub = RecordingHub()
    report = export_model(str(run / "final"), str(tmp_path / "export"), merge=True,
                          push_to_hub=f"me/{family}", hub_client=hub, root=root)
    assert hub.created == [(f"me/{family}", True)]
    assert sorted(hub.uploaded) == report["files"]
    assert {"model.safetensors", "config.json", "README.md"} <= set(hub.uploaded)
    assert not any("checkpoint" in n or "adapter" in n for n in hub.uploaded)
