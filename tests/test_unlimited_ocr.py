"""Unlimited-OCR (``baidu/Unlimited-OCR``) natively, without remote code: the preset and its
real size, the window acting in cached generation only, several pages in one sequence as
the native processor lays them out, and a tiny checkpoint in Unlimited-OCR's own layout
(``support/unlimited_checkpoint.py``) through the loop (LoRA and full, 2+ pages per
document): trains, saves, reloads to identical outputs, summarizes. A bad window is a 4xx
naming ``sliding_window``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import articles, run_cli, write_jsonl
from support.server import Client, running
from support.unlimited_checkpoint import WINDOW, write_unlimited_checkpoint
from transformers import AutoTokenizer

from deepsynth.config.server import ServerConfig
from deepsynth.config.training import training_config
from deepsynth.errors import ConfigError
from deepsynth.models import tiny, unlimited_ocr
from deepsynth.models.model_info import MODEL_INFO_NAME
from deepsynth.models.random_spec import meta_model
from deepsynth.models.registry import MODEL_PRESETS, load_model
from deepsynth.render.tokens import page_tokens
from deepsynth.training.data import (
    Collator,
    ExampleEncoder,
    PageDataset,
    load_split,
    pixel_values,
)
from deepsynth.training.loop import train
from deepsynth.training.pages import PageFormat
from deepsynth.workspace import Workspace

TOKENS_TINY = 21  # 256 px pages: 4 * (4 + 1) + 1
# The published checkpoint: 6,672,212,480 bytes of bfloat16 in model.safetensors.index.json,
# 2,710 tensors (v1's), less CLIP's patch_embedding, which the native class does not have.
PUBLISHED = 6_672_212_480 // 2
UNUSED = 1024 * 3 * 14 * 14
TOTAL = 3_335_504_128
LAYERS_1 = 764_580_608  # the vision side, embeddings, lm_head and layer 0 (dense)


@pytest.fixture(scope="module")
def folder(root, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("unlimited") / "tiny-unlimited-ocr"
    tokenizer = AutoTokenizer.from_pretrained(tiny.ensure_tokenizer(Workspace(root).cache))
    write_unlimited_checkpoint(out, tokenizer)
    return out


@pytest.fixture(scope="module")
def dataset(root, tmp_path_factory) -> Path:
    """Long documents on small pages: every document is 2 to 4 pages."""
    source = write_jsonl(tmp_path_factory.mktemp("src") / "docs.jsonl", articles(6, 160))
    out = tmp_path_factory.mktemp("datasets") / "long"
    done = run_cli("generate", "--source", str(source), "--text-field", "article",
                   "--summary-field", "highlights", "--out", str(out), "--page-size",
                   "256x256", "--font-size", "14", "--margin", "8",
                   env={"DEEPSYNTH_DATA_ROOT": str(root)})
    assert done.returncode == 0, done.stderr[-2000:]
    pages = load_split(str(out), "train", 64).table["num_pages"]
    assert pages and min(pages) >= 2 and max(pages) <= 4, pages
    return out


def batch_of(loaded, dataset: Path) -> dict:
    encoder = ExampleEncoder(loaded.tokenizer, loaded.image_token_id,
                             loaded.image_tokens_per_page, "Summarize:", 64)
    rows = PageDataset(load_split(str(dataset), "train", 4), encoder,
                       PageFormat(loaded.family, loaded.image_size))
    batch = Collator(loaded.tokenizer.pad_token_id)([rows[0], rows[1]])
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"],
            "pixel_values": pixel_values(batch["pages"], torch.float32)}


@torch.no_grad()
def logits_of(model, batch: dict) -> torch.Tensor:
    model.eval()
    return model(**batch).logits


# ------------------------------------------------------------------ preset and real size


def test_the_preset_is_native_with_the_published_window():
    preset = MODEL_PRESETS["unlimited-ocr"]
    assert (preset.family, preset.source) == ("unlimited_ocr", "baidu/Unlimited-OCR")
    assert MODEL_PRESETS["random:unlimited-ocr"].randomly_initialized
    text = meta_model("unlimited-ocr", 1).config.text_config
    assert text.layer_types == ["reference_sliding_attention"]
    assert (text.sliding_window, text.max_position_embeddings) == (128, 32768)


def test_random_unlimited_ocr_has_the_published_size():
    assert sum(p.numel() for p in meta_model("unlimited-ocr").parameters()) == TOTAL
    assert TOTAL == PUBLISHED - UNUSED
    one = meta_model("unlimited-ocr", 1)
    assert sum(p.numel() for p in one.parameters()) == LAYERS_1
    pages = torch.empty(2, 3, 1024, 1024, device="meta")
    features = one.model.get_image_features(pages).pooler_output
    assert [f.shape for f in features] == [(273, 1280)] * 2  # each page its own view


# ------------------------------------------------------- the window, pages in a sequence


def with_window(model, window: int):
    unlimited_ocr.set_window(model, window)
    return model


def test_one_pass_without_a_cache_is_causal_whatever_the_window(folder, dataset, root):
    """Training's forward: the R-SWA mask has no prefill length without a cache, so every
    token sees every earlier one; the same weights with full attention agree."""
    loaded = load_model(str(folder), root=root)
    batch = batch_of(loaded, dataset)
    assert batch["input_ids"].shape[1] > 2 * TOKENS_TINY + 8  # longer than a window of 8
    narrow = logits_of(with_window(loaded.model, 1), batch)
    wide = logits_of(with_window(loaded.model, 4096), batch)
    assert torch.equal(narrow, wide)
    loaded.model.config.text_config.layer_types = ["full_attention"] * 2
    assert torch.allclose(logits_of(loaded.model, batch), wide, rtol=1e-5, atol=1e-6)


def test_the_window_acts_in_cached_generation(folder, dataset, root):
    loaded = load_model(str(folder), root=root)
    batch = {k: v[:1] for k, v in batch_of(loaded, dataset).items() if k != "pixel_values"}
    pages = int((batch["input_ids"] == loaded.image_token_id).sum()) // TOKENS_TINY
    batch["pixel_values"] = batch_of(loaded, dataset)["pixel_values"][:pages]
    keep = batch["attention_mask"][0].bool()
    batch = {**batch, "input_ids": batch["input_ids"][:, keep],
             "attention_mask": batch["attention_mask"][:, keep]}

    def scores(window: int) -> torch.Tensor:
        with_window(loaded.model, window)
        out = loaded.model.generate(**batch, max_new_tokens=8, do_sample=False,
                                    output_scores=True, return_dict_in_generate=True,
                                    pad_token_id=loaded.tokenizer.pad_token_id)
        return torch.stack(out.scores)

    narrow, wide = scores(2), scores(4096)
    assert torch.equal(narrow[:3], wide[:3])  # within the window: the same attention
    assert not torch.allclose(narrow[3:], wide[3:])  # past it: older tokens are dropped


def test_pages_follow_each_other_as_the_native_processor_lays_them_out(folder, root):
    """``<image>`` per page, each replaced by its view (rows, newlines, separator): the
    encoder's prefix is the processor's, and the features come in page order."""
    from transformers import DeepseekOcr2ImageProcessorPil, UnlimitedOcrProcessor

    loaded = load_model(str(folder), root=root)
    tokenizer = loaded.tokenizer
    processor = UnlimitedOcrProcessor(image_processor=DeepseekOcr2ImageProcessorPil(),
                                      tokenizer=tokenizer)
    view = processor.replace_image_token({"patches_grid": [[1, 1]], "num_local_patches": [0]},
                                         0, size={"height": 256, "width": 256}, tile_size=640)
    encoder = ExampleEncoder(tokenizer, loaded.image_token_id, loaded.image_tokens_per_page,
                             "Summarize:", 64)
    for pages in (1, 3):
        text = tokenizer.bos_token + view * pages + "Summarize:\n"
        assert encoder.prefix(pages) == tokenizer(text, add_special_tokens=False).input_ids
    assert page_tokens("unlimited_ocr", 1024) == 273
    pixels = torch.rand(3, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        together = loaded.model.model.get_image_features(pixels).pooler_output
        alone = [loaded.model.model.get_image_features(p[None]).pooler_output[0]
                 for p in pixels]
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(together, alone, strict=True))


# ------------------------------------------------------------------------- the loop


def config(dataset: Path, out: Path, model: str, steps: int, **options):
    return training_config({"dataset": str(dataset), "out": str(out), "model": model,
                            "preset": "quick_test", "max_steps": steps, "eval_steps": steps,
                            "save_steps": steps, "eval_samples": 2, "max_new_tokens": 4,
                            "max_pages": 4, **options})


@pytest.mark.parametrize("peft,steps,window", [("lora", 2, None), ("full", 1, 48)])
def test_a_tiny_unlimited_ocr_trains_saves_reloads_and_summarizes(
        folder, dataset, root, tmp_path, peft, steps, window):
    options = {"sliding_window": window} if window else {}
    run_config = config(dataset, tmp_path / "run", str(folder), steps, peft=peft, **options)
    result = train(run_config, root=root, echo=lambda *_: None)
    assert (result.status, result.step) == ("completed", steps)
    info = json.loads((result.final_model / MODEL_INFO_NAME).read_text())
    assert info["family"] == "unlimited_ocr" and info["sliding_window"] == (window or WINDOW)
    rows = {line[:16].strip(): line[16:].split() for line in
            (result.run_dir / "parameters.txt").read_text().splitlines()[1:]}
    for component in ("sam encoder", "vision encoder", "projector", "view separator"):
        assert rows[component][-1] == "frozen", component

    base = load_model(str(folder), root=root)
    batch = batch_of(base, dataset)
    first = load_model(str(result.final_model), root=root)
    second = load_model(str(result.final_model), root=root)
    assert first.family == "unlimited_ocr" and first.image_tokens_per_page == TOKENS_TINY
    assert unlimited_ocr.window(first.model) == (window or WINDOW)
    reloaded = logits_of(first.model, batch)
    assert torch.equal(reloaded, logits_of(second.model, batch))
    assert (reloaded - logits_of(base.model, batch)).abs().max() > 1e-4  # it trained

    document = tmp_path / "document.txt"
    document.write_text(articles(1, 160)[0]["article"])
    summarized = run_cli("summarize", "--model", str(result.final_model), "--text-file",
                         str(document), "--max-new-tokens", "4",
                         env={"DEEPSYNTH_DATA_ROOT": str(root)})
    assert summarized.returncode == 0, summarized.stderr[-2000:]
    assert "Traceback" not in summarized.stderr
    assert json.loads(summarized.stdout)["pages"] >= 2


def test_the_preset_loads_and_trains_from_the_hub_without_remote_code(
        folder, dataset, root, tmp_path):
    """The Hub is the only double: the tiny checkpoint as the cached baidu/Unlimited-OCR."""
    from test_ocr_v1_runs import hub_cache_with

    env = {"DEEPSYNTH_DATA_ROOT": str(root),
           **hub_cache_with(folder, tmp_path / "hub", "baidu/Unlimited-OCR")}
    out = tmp_path / "run"
    done = run_cli("train", "--dataset", str(dataset), "--out", str(out), "--model",
                   "unlimited-ocr", "--preset", "quick_test", "--max-steps", "1",
                   "--eval-steps", "1", "--eval-samples", "1", "--max-new-tokens", "2",
                   "--sliding-window", "32", env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "remote code" not in done.stderr and "Traceback" not in done.stderr
    info = json.loads((out / "final" / MODEL_INFO_NAME).read_text())
    assert (info["base_model"], info["family"], info["sliding_window"]) == (
        "unlimited-ocr", "unlimited_ocr", 32)


# ---------------------------------------------------------------------------- errors


@pytest.mark.parametrize("value", [0, -3, 40000, "wide", 1.5, True])
def test_a_bad_window_names_the_field(value):
    with pytest.raises(ConfigError) as raised:
        training_config({"dataset": "d", "out": "o", "model": "unlimited-ocr",
                         "sliding_window": value})
    assert raised.value.field == "sliding_window"


def test_a_window_for_another_family_is_refused(dataset, root, tmp_path):
    with pytest.raises(ConfigError) as raised:
        training_config({"dataset": "d", "out": "o", "model": "random:deepseek-ocr-2",
                         "sliding_window": 64})
    assert raised.value.field == "sliding_window" and "Unlimited-OCR" in raised.value.message
    done = run_cli("train", "--dataset", str(dataset), "--out", str(tmp_path / "run"),
                   "--model", "unlimited-ocr", "--sliding-window", "0",
                   env={"DEEPSYNTH_DATA_ROOT": str(root)})
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert "sliding" in done.stderr.strip().splitlines()[-1]


def test_the_api_refuses_a_bad_window_with_4xx_naming_the_field(dataset, root):
    import shutil

    shutil.copytree(dataset, Workspace(root).datasets / "long", dirs_exist_ok=True)
    with running(ServerConfig(data_root=str(root), threads=2)) as (_, base):
        client = Client(base)
        for model, window in (("unlimited-ocr", 0), ("unlimited-ocr", 99999),
                              ("tiny-deepseek-ocr-2", 64)):
            status, answer = client.call("POST", "/api/model/train", {
                "name": "w", "dataset": "long", "model": model, "sliding_window": window})
            assert 400 <= status < 500 and answer["field"] == "sliding_window", answer
        status, spec = client.call("GET", "/api/openapi.json")
        window = spec["paths"]["/api/model/train"]["post"]["requestBody"]["content"][
            "application/json"]["schema"]["properties"]["sliding_window"]
        assert status == 200 and window["minimum"] == 1 and window["maximum"] == 32768
