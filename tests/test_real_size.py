"""DeepSeek-OCR-2 at its real size (``random:deepseek-ocr-2``): the shipped architecture builds
at the published parameter counts, the spec is parsed and refused exactly, and the random
model loads, trains and is labeled as random weights.

"Vision side" is what ``components.VISION_PREFIXES`` freezes: everything but the language
model (``model.language_model.*``) and ``lm_head``, i.e. the SAM encoder (94,979,328), the
vision encoder (357,898,112) with its query embeddings (129,024 + 229,376), the projector
(1,148,160) and the view separator (1,280): 454,385,280.
"""

from __future__ import annotations

import pytest
import torch

from deepsynth.errors import ConfigError
from deepsynth.models.components import is_vision
from deepsynth.models.random_spec import (
    REAL_MODELS,
    meta_model,
    parse_random_spec,
    real_config,
)

REAL = "deepseek-ocr-2"
TOTAL = 3_389_119_360
VISION = 454_385_280


@pytest.fixture(scope="module")
def meta():
    return meta_model(REAL)


def test_the_meta_model_has_the_published_parameter_counts(meta):
    counts = [(name, p.numel()) for name, p in meta.named_parameters()]
    assert sum(n for _, n in counts) == TOTAL
    assert sum(n for name, n in counts if is_vision(name, "deepseek_ocr2")) == VISION
    assert all(p.device.type == "meta" for p in meta.parameters())  # no memory was used


def test_the_decoder_is_the_published_moe(meta):
    layers = meta.model.language_model.layers
    assert len(layers) == 12 and meta.config.text_config.num_experts_per_tok == 6
    assert type(layers[0].mlp).__name__ == "DeepseekOcr2TextMLP"  # layer 0 dense
    for layer in layers[1:]:
        experts = layer.mlp.experts
        assert experts.gate_up_proj.shape == (64, 2 * 896, 1280)  # 64 experts, fused 3-D
        assert experts.down_proj.shape == (64, 1280, 896)
        assert layer.mlp.gate.weight.shape == (64, 1280)
        assert layer.mlp.gate.weight.dtype == torch.float32  # the class keeps it so


def test_layers_truncates_the_decoder_consistently():
    config = real_config(REAL, 3)
    assert config.text_config.num_hidden_layers == 3
    assert config.text_config.mlp_layer_types == ["dense", "sparse", "sparse"]
    model = meta_model(REAL, 2)
    assert [type(l.mlp).__name__ for l in model.model.language_model.layers] == [
        "DeepseekOcr2TextMLP", "DeepseekOcr2TextMoe"]
    assert sum(p.numel() for n, p in model.named_parameters()
               if is_vision(n, "deepseek_ocr2")) == VISION  # the vision side is whole


def test_random_specs_parse():
    assert REAL_MODELS == (REAL,)
    assert parse_random_spec("random:deepseek-ocr-2") == (REAL, None)
    assert parse_random_spec("random:deepseek-ocr-2?layers=4") == (REAL, 4)
    assert parse_random_spec("random:deepseek-ocr-2?layers=12") == (REAL, 12)
    assert parse_random_spec("deepseek-ocr-2") is None
    assert parse_random_spec("tiny-deepseek-ocr-2") is None


@pytest.mark.parametrize("spec", [
    "random:deepseek-ocr-3", "random:", "random:deepseek-ocr-2?layers=0",
    "random:deepseek-ocr-2?layers=13", "random:deepseek-ocr-2?layers=", "random:deepseek-ocr-2?",
    "random:deepseek-ocr-2?layers=2&x=1", "random:deepseek-ocr-2?depth=2",
    "random:deepseek-ocr-2?layers=-1", "random:deepseek-ocr-2?layers=٣"])
def test_bad_random_specs_name_what_is_allowed(spec):
    with pytest.raises(ConfigError) as raised:
        parse_random_spec(spec)
    assert raised.value.field == "model"
    assert raised.value.allowed == "random:deepseek-ocr-2[?layers=N] with N 1-12"
