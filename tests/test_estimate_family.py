"""The estimator across the DeepSeek-OCR family: DeepSeek-OCR v1 and Unlimited-OCR counted on
the meta model exactly as the trainer loads and adapts them (tiny checkpoints in each
family's own layout, ``support/``), their real architectures at the published size, and a
page's image tokens in each image mode from the one home of that count
(``render/tokens.page_view``)."""

from __future__ import annotations

import pytest
from support.unlimited_checkpoint import write_unlimited_checkpoint
from support.v1_checkpoint import IMAGE_SIZE, write_v1_checkpoint
from transformers import AutoTokenizer

from deepsynth.config.training import training_config
from deepsynth.models import tiny
from deepsynth.render.tokens import page_tokens
from deepsynth.training.estimate import estimate
from deepsynth.training.estimate_model import model_facts
from deepsynth.workspace import Workspace

V1_PARAMETERS = 3_335_504_128  # DeepSeek-OCR v1's tensors (Unlimited-OCR has the same)
LORA = {"peft": "lora", "lora_preset": "balanced"}


def config(**values):
    return training_config({"dataset": "-", "out": "-", **values})


@pytest.fixture(scope="module")
def checkpoints(root, tmp_path_factory):
    tokenizer = AutoTokenizer.from_pretrained(tiny.ensure_tokenizer(Workspace(root).cache))
    base = tmp_path_factory.mktemp("checkpoints")
    write_v1_checkpoint(base / "v1", tokenizer)
    write_unlimited_checkpoint(base / "unlimited", tokenizer)
    return {"deepseek_ocr": base / "v1", "unlimited_ocr": base / "unlimited"}


@pytest.mark.parametrize("family", ["deepseek_ocr", "unlimited_ocr"])
@pytest.mark.parametrize("values", [LORA, {"peft": "lora", "lora_preset": "high_capacity_moe",
                                           "lora_dropout": 0.0}, {"peft": "full"}],
                         ids=lambda v: f"{v['peft']}-{v.get('lora_preset', '')}")
def test_meta_counts_equal_the_loaded_checkpoint(root, checkpoints, family, values):
    """A checkpoint in the family's own layout, loaded and made trainable by the trainer's
    builders, has exactly the parameters, trainable ones and bytes the meta model counts."""
    from deepsynth.models.components import is_vision
    from deepsynth.training import setup

    cfg = config(model=str(checkpoints[family]), mixed_precision="bf16", **values)
    facts = model_facts(cfg, root)
    assert facts.family == family
    real = setup.make_trainable(setup.load_base_model(cfg, root), cfg, 20)
    parameters = list(real.named_parameters())
    assert facts.parameters == sum(p.numel() for _, p in parameters)
    assert facts.trainable == sum(p.numel() for _, p in parameters if p.requires_grad)
    assert facts.weight_bytes == sum(p.numel() * p.element_size() for _, p in parameters)
    assert facts.vision_parameters == sum(p.numel() for n, p in parameters
                                          if is_vision(n, family))
    assert facts.image_size == IMAGE_SIZE
    assert facts.tokens_per_page == page_tokens(family, IMAGE_SIZE) == 21


@pytest.mark.parametrize("model,family", [("deepseek-ocr", "deepseek_ocr"),
                                          ("unlimited-ocr", "unlimited_ocr"),
                                          ("random:deepseek-ocr?layers=2", "deepseek_ocr")])
def test_real_architectures_at_the_published_size(root, model, family):
    facts = model_facts(config(model=model, **LORA), root)
    assert facts.family == family
    if "layers" not in model:
        assert facts.parameters - facts.trainable == V1_PARAMETERS
    else:
        assert (facts.dense_layers, facts.sparse_layers) == (1, 1)
    # CLIP-L, not DeepSeek-OCR-2's Qwen2 encoder: two MLP matrices, no learned queries
    assert facts.vision["encoder_layers"] == 24
    assert facts.vision["encoder_mlp_matrices"] == 2 and not facts.vision["encoder_queries"]


@pytest.mark.parametrize("model,family", [("deepseek-ocr-2", "deepseek_ocr2"),
                                          ("deepseek-ocr", "deepseek_ocr"),
                                          ("unlimited-ocr", "unlimited_ocr")])
def test_crops_add_image_tokens_vision_work_and_memory(root, model, family):
    """In image mode crops a 1024 px page is its global view and 2x2 crops: the sequence
    holds the tokens page_tokens counts, and the vision forward does the crops' work too."""
    values = {"model": model, "max_pages": 2, "max_length": 128, **LORA}
    flat, crops = (estimate(config(**values, image_mode=mode), root=root)
                   for mode in ("global", "crops"))
    for result, mode in ((flat, "global"), (crops, "crops")):
        assert result.sequence_tokens == 1 + 2 * page_tokens(family, 1024, mode) + 128
    assert page_tokens(family, 1024, "crops") > 2 * page_tokens(family, 1024, "global")
    assert crops.peak_bytes > flat.peak_bytes
    assert crops.step_time[0]["seconds"] > flat.step_time[0]["seconds"]
