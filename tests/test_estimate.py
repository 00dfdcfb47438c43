"""The memory and time estimator: exact parameter counts on the meta model, the CLI offline,
the REST route (and its errors), and the submit-time warning against a GPU too small.

Whether the estimate matches measured memory is the benchmark's job
(``benchmarks/bench_memory_estimate.py``, figures in docs/BENCHMARKS.md): no timing here.
"""

from __future__ import annotations

import json
import re

import pytest
from support.server import Client, running, wait_job

from deepsynth.config.server import ServerConfig
from deepsynth.config.spec import replace
from deepsynth.config.training import training_config
from deepsynth.training.estimate import GiB, Accelerator, estimate, fit_warnings
from deepsynth.training.estimate_model import model_facts

OFFLINE = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
REAL_PARAMETERS = 3_389_119_360  # DeepSeek-OCR-2 as published


def config(root, **values):
    return training_config({"dataset": "-", "out": "-", **values})


def test_cli_estimates_deepseek_ocr_2_offline(cli, tmp_path):
    done = cli("estimate", "--model", "deepseek-ocr-2", "--peft", "lora",
               env={**OFFLINE, "DEEPSYNTH_DATA_ROOT": str(tmp_path)}, timeout=240)
    assert done.returncode == 0, done.stderr
    assert "peak at" in done.stdout and "weights" in done.stdout and "GiB" in done.stdout
    assert "fits: 16 GB" in done.stdout and "H100" in done.stdout
    done = cli("estimate", "--model", "deepseek-ocr-2", "--lora-preset", "standard", "--json",
               env={**OFFLINE, "DEEPSYNTH_DATA_ROOT": str(tmp_path)}, timeout=240)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # standard: r 16 on q, k, v, o of 12 layers of width 1280: 4 * 16 * (1280 + 1280) each
    assert result["trainable_parameters"] == 12 * 4 * 16 * 2560
    assert result["parameters"] == REAL_PARAMETERS + result["trainable_parameters"]
    # the frozen base in bf16 (the run's precision), the router in float32
    assert 6.2 < result["memory_gib"]["weights"] < 6.4
    assert set(result["fits"]) == {"16", "24", "40", "48", "80", "141"}


def test_cli_estimates_qlora_for_a_gpu_with_its_experts_unquantized(cli, tmp_path):
    """QLoRA is estimated for a CUDA run on any machine (the GPU is the one to rent), with its
    real saving: bitsandbytes quantizes linear layers only, so the fused routed experts stay
    float32 and the weights exceed bf16 LoRA's. On the CPU it is refused, as train is."""
    env = {**OFFLINE, "DEEPSYNTH_DATA_ROOT": str(tmp_path)}
    done = cli("estimate", "--model", "deepseek-ocr-2", "--peft", "qlora", "--json",
               env=env, timeout=240)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    weights = result["memory_gib"]["weights"]
    # 0.63 billion linear weights at 0.516 bytes, 2.76 billion float32 (experts among them)
    assert 10.4 < weights < 10.8, weights
    assert any(note.startswith("qlora: 628,519,936 of") for note in result["notes"])
    done = cli("estimate", "--model", "deepseek-ocr-2", "--peft", "qlora", "--device", "cpu",
               env=env, timeout=240)
    assert done.returncode == 2 and "peft" in done.stderr, done.stderr


def test_a_4bit_layer_keeps_nothing_but_its_adapter_does():
    """bitsandbytes' MatMul4Bit saves only its packed weight (no input, no dequantized
    copy); the LoRA adapter on it keeps its own tensors; the float32 output head under
    autocast keeps its bf16 copy."""
    from dataclasses import replace as with_

    from deepsynth.training import estimate_memory as mem
    from deepsynth.training.estimate_model import Adapted

    num = mem.Numerics(compute=2, residual=4, weights=4, autocast=True, cpu=False,
                       lora_dropout=False, hidden_dropout=False, attention_dropout=False,
                       full=False, quantized=True)
    assert mem._linear(100, 1280, 1280, None, num, True) == 0
    adapter = Adapted(1, "self_attn.q_proj", 1280, 1280, 16)
    assert mem._linear(100, 1280, 1280, adapter, num, True) == mem._adapter(
        100, adapter, num, True) > 0
    # the same float32 layer unquantized: autocast's bf16 copy of its weight
    assert mem._linear(100, 1280, 1280, None, with_(num, quantized=False), True) == (
        1280 * 1280 * 2)


def test_cli_errors_name_the_option_as_train_does(cli, tmp_path):
    done = cli("estimate", "--model", "deepseek-ocr-2", "--batch-size", "0",
               env={**OFFLINE, "DEEPSYNTH_DATA_ROOT": str(tmp_path)})
    assert done.returncode == 2 and "batch_size" in done.stderr
    done = cli("estimate", "--model", "random:deepseek-ocr-2?layers=99",
               env={**OFFLINE, "DEEPSYNTH_DATA_ROOT": str(tmp_path)})
    assert done.returncode == 2 and "model" in done.stderr


@pytest.mark.parametrize("values", [
    {"peft": "lora", "lora_preset": "standard"},
    {"peft": "lora", "lora_preset": "balanced"},
    {"peft": "lora", "lora_preset": "high_capacity_moe"},
    {"peft": "dora", "lora_preset": "tiny_data"},
    {"peft": "adalora", "lora_preset": "balanced", "max_steps": 20},
    {"peft": "full"},
], ids=lambda v: f"{v['peft']}-{v.get('lora_preset', '')}")
def test_tiny_counts_on_the_meta_model_equal_the_real_model(tmp_path, values):
    """The meta model made trainable by the trainer's builder has exactly the real one's
    parameters, trainable ones and bytes (the real one loaded as training loads it)."""
    from deepsynth.models.components import is_vision
    from deepsynth.training import setup

    cfg = config(tmp_path, model="tiny-deepseek-ocr-2", mixed_precision="bf16", **values)
    facts = model_facts(cfg, tmp_path)
    loaded = setup.load_base_model(cfg, tmp_path)
    real = setup.make_trainable(loaded, cfg, 20)
    parameters = list(real.named_parameters())
    assert facts.parameters == sum(p.numel() for _, p in parameters)
    assert facts.trainable == sum(p.numel() for _, p in parameters if p.requires_grad)
    assert facts.trainable_bytes == sum(p.numel() * p.element_size() for _, p in parameters
                                        if p.requires_grad)
    assert facts.weight_bytes == sum(p.numel() * p.element_size() for _, p in parameters)
    assert facts.vision_parameters == sum(p.numel() for n, p in parameters
                                          if is_vision(n, "deepseek_ocr2"))


def test_random_spec_depths_and_the_preset_share_the_real_architecture(tmp_path):
    one = model_facts(config(tmp_path, model="random:deepseek-ocr-2?layers=2"), tmp_path)
    full = model_facts(config(tmp_path, model="deepseek-ocr-2"), tmp_path)
    assert (one.dense_layers, one.sparse_layers) == (1, 1)
    assert (full.dense_layers, full.sparse_layers) == (1, 11)
    assert full.parameters - full.trainable == REAL_PARAMETERS
    assert one.vision_parameters == full.vision_parameters == 454_385_280


def test_the_estimate_follows_the_options(tmp_path):
    base = config(tmp_path, model="deepseek-ocr-2", batch_size=1, max_pages=1)
    plain = estimate(base, root=tmp_path)
    assert plain.peak_bytes == max(plain.phases.values())
    assert sum(plain.memory.values()) == plain.peak_bytes
    checkpointed = estimate(replace(base, gradient_checkpointing=True), root=tmp_path)
    assert checkpointed.phases["start of backward"] < plain.phases["start of backward"]
    doubled = estimate(replace(base, batch_size=2), root=tmp_path)
    assert doubled.memory["activations"] > 1.9 * plain.memory["activations"]
    full = estimate(replace(base, peft="full"), root=tmp_path)
    # float32 masters: 4 bytes a weight, and AdamW's two float32 states per decoder weight
    assert full.phases["optimizer step"] > 4 * 2.9e9 + 8 * 2.9e9
    # high_capacity_moe folds W + BA of every MoE layer's experts into new tensors
    moe = estimate(replace(base, lora_preset="high_capacity_moe", lora_dropout=0.0),
                   root=tmp_path)
    assert moe.memory["activations"] > plain.memory["activations"] + 11 * 0.4 * GiB


def test_regularizer_copies(tmp_path):
    base = config(tmp_path, model="tiny-deepseek-ocr-2", peft="full", hidden_dropout=0.1)
    assert estimate(base, root=tmp_path).phases.get("bi-drop agreement") is None
    agreement = estimate(replace(base, bidrop_passes=2, bidrop_agreement=True), root=tmp_path)
    assert agreement.phases["bi-drop agreement"] > 4 * model_facts(base, tmp_path).trainable_bytes
    dropped = estimate(replace(base, expert_dropout_rate=0.2), root=tmp_path)
    plain = estimate(base, root=tmp_path)
    assert dropped.phases["optimizer step"] > plain.phases["optimizer step"]


def test_fit_warnings_against_an_injected_gpu(tmp_path):
    cfg = config(tmp_path, model="deepseek-ocr-2", batch_size=8, max_pages=4)
    small = fit_warnings(cfg, Accelerator("Small GPU", 16 * GiB), tmp_path)
    assert small and "Small GPU" in small[0] and "16.0 GiB" in small[0]
    assert fit_warnings(cfg, Accelerator("Huge GPU", 10_000 * GiB), tmp_path) == []
    assert fit_warnings(cfg, None, tmp_path) == []


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("estimate") / "data"
    with running(ServerConfig(data_root=str(root), threads=4, accelerator_capacity=0)) as (app, base):
        client = Client(base)
        status, made = client.call("POST", "/api/benchmark/create", {
            "preset": "scitldr", "max_samples": 3, "name": "ds", "page_size": "256x256",
            "font_size": 12, "margin": 8, "workers": 1})
        assert status == 202, made
        assert wait_job(client, made["job_id"], 120)["status"] == "completed"
        yield client, app


def test_rest_estimate_answers_the_breakdown(server):
    client, _ = server
    status, answer = client.call("POST", "/api/training/estimate", {
        "dataset": "ds", "model": "tiny-deepseek-ocr-2", "preset": "quick_test"})
    assert status == 200, answer
    assert answer["model"] == "tiny-deepseek-ocr-2" and answer["device"] == "cuda"
    assert answer["peak_bytes"] == max(answer["phases"].values()) > 0
    assert {"weights", "optimizer_state", "gradients"} <= set(answer["memory"])
    assert answer["warnings"] == [] and answer["step_time"]
    status, cpu = client.call("POST", "/api/training/estimate?device=cpu", {
        "dataset": "ds", "model": "random:deepseek-ocr-2?layers=2", "name": "x"})
    assert status == 200 and cpu["device"] == "cpu", cpu


@pytest.mark.parametrize("body, path, status, field", [
    ({"dataset": "ds", "batch_size": 0}, "", 400, "batch_size"),
    ({"dataset": "ds", "model": "nope"}, "", 404, "model"),
    ({}, "", 400, "dataset"),
    ({"dataset": "nope"}, "", 404, None),
    ({"dataset": "ds", "name": "../x"}, "", 400, "name"),
    ({"dataset": "ds", "peft": "dora", "lora_preset": "high_capacity_moe"}, "", 422, "peft"),
    ({"dataset": "ds", "trust_remote_code": True}, "", 422, "trust_remote_code"),
    ({"dataset": "ds", "peft": "qlora"}, "", 422, "peft"),  # no CUDA on the test machine
    ({"dataset": "ds", "foo": 1}, "", 400, "foo"),
    ({"dataset": "ds"}, "?device=tpu", 400, "device"),
])
def test_rest_estimate_errors_as_train_would(server, body, path, status, field):
    """Each refusal of the estimate is the train submission's: the same status and field
    (400: the document refuses the value; 422: refused together or by this server; 404:
    names nothing)."""
    client, _ = server
    if field == "peft" and body.get("peft") == "qlora":
        torch = pytest.importorskip("torch")
        if torch.cuda.is_available():
            pytest.skip("qlora is refused only without CUDA")
    answer_status, answer = client.call("POST", "/api/training/estimate" + path, body)
    assert answer_status == status and answer["field"] == field, answer
    if path:
        return
    trained_status, trained = client.call("POST", "/api/model/train", body)
    assert trained_status == status and trained["field"] == field, trained


def test_submit_warns_when_the_gpu_is_too_small(server):
    client, app = server
    app.config["ACCELERATOR"] = Accelerator("Test GPU", 64 * 2**20)
    try:
        status, started = client.call("POST", "/api/model/train", {
            "dataset": "ds", "preset": "quick_test", "name": "warned"})
        assert status == 202, started
        assert started["warnings"] and "Test GPU" in started["warnings"][0]
        app.config["ACCELERATOR"] = Accelerator("Big GPU", 10_000 * GiB)
        status, started = client.call("POST", "/api/model/train", {
            "dataset": "ds", "preset": "quick_test", "name": "fine"})
        assert status == 202 and started["warnings"] == [], started
    finally:
        del app.config["ACCELERATOR"]


def test_train_page_shows_the_estimate_and_the_submit_warning(server):
    """The Train page's live line beside "Start training", asked again as options change;
    a submission the estimate puts above the (injected) GPU shows the warning."""
    playwright = pytest.importorskip("playwright.sync_api")
    from support.ui import ARGS, CHROMIUM

    client, app = server
    with playwright.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(client.base + "/train")
        line = page.locator("#estimate-line")
        playwright.expect(line).to_contain_text("Estimated peak GPU memory", timeout=60_000)
        playwright.expect(line).to_have_attribute("data-peak-gib", re.compile(r"[0-9.]+"))
        small = float(line.get_attribute("data-peak-gib"))
        page.get_by_label("batch size").fill("64")
        playwright.expect(line).not_to_have_attribute("data-peak-gib", str(small),
                                                      timeout=60_000)
        assert float(line.get_attribute("data-peak-gib")) > small
        page.get_by_label("batch size").fill("0")
        playwright.expect(line).to_contain_text("Estimate: fix the highlighted fields")
        page.get_by_label("batch size").fill("1")
        page.locator('[data-preset="quick_test"]').click()
        app.config["ACCELERATOR"] = Accelerator("Test GPU", 64 * 2**20)
        try:
            page.locator("#t-name").fill("warned-ui")
            page.get_by_role("button", name="Start training").click()
            playwright.expect(page.locator("#train-warning")).to_contain_text("Test GPU")
        finally:
            del app.config["ACCELERATOR"]
        browser.close()
    assert not errors, errors
