"""DeepSeek-OCR v1 without remote code: its checkpoint, in v1's own layout, runs in
transformers' native ``UnlimitedOcrForConditionalGeneration`` with full causal attention.

The proof of item 1 is :func:`v1_reference_logits`: v1's decoder written here from its
definition (DeepSeek-V2 with ``use_mla: false``, i.e. Llama-style multi-head attention with
rotate-half rotary embeddings of theta 10,000, an explicit lower-triangular causal mask,
RMSNorm, SiLU MLPs, layer 0 dense, then MoE layers: softmax router, greedy top-k weights
unnormalized and scaled by ``routed_scaling_factor``, every routed expert a separate MLP,
plus the shared experts), reading the weights by **v1's checkpoint names** from the
safetensors file the tiny v1 checkpoint wrote. It shares no code with transformers' decoder
and no names with the native class, so a wrong mask, a wrong rotary layout, a swapped
gate/up half of the fused experts or a misrouted weight all make it differ. This is more
convincing than the same native model with its mask swapped (that would share every other
line with what it checks) or transformers' ``deepseek_v2`` (always MLA: it cannot hold v1's
plain q/k/v projections). The image features are the native vision tower's, placed where
v1 places them; their layout (CLIP's features then SAM's, projected, a newline per row, the
view separator last) is checked separately from v1-named tensors.

Training, reloading, summarizing, the preset's loading path and the errors of a v1 folder:
``tests/test_ocr_v1_runs.py``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from support.v1_checkpoint import IMAGE_SIZE, write_v1_checkpoint
from torch.nn import functional as F
from transformers import AutoTokenizer, UnlimitedOcrForConditionalGeneration

from deepsynth.models import tiny
from deepsynth.models.registry import MODEL_PRESETS, load_model
from deepsynth.render.tokens import page_tokens
from deepsynth.training.data import ExampleEncoder, pixel_values
from deepsynth.workspace import Workspace

TOKENS_TINY = 21  # 4x4 features at 256 px: 4 * (4 + 1) + 1
TIGHT = {"rtol": 1e-5, "atol": 1e-5}  # float32, a few hundred additions deep


@pytest.fixture(scope="module")
def v1_folder(root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("v1") / "tiny-deepseek-ocr-v1"
    tokenizer = AutoTokenizer.from_pretrained(tiny.ensure_tokenizer(Workspace(root).cache))
    native, written = write_v1_checkpoint(folder, tokenizer)
    return folder, native, written


@pytest.fixture(scope="module")
def loaded(v1_folder, root):
    return load_model(str(v1_folder[0]), root=root)


@pytest.fixture(scope="module")
def batch(loaded):
    """Two sequences of one page each, the second shorter (right-padded as the collator
    pads): [bos] + 21 image tokens + prompt + summary + [eos]."""
    encoder = ExampleEncoder(loaded.tokenizer, loaded.image_token_id,
                             loaded.image_tokens_per_page, "Summarize:", 64)
    rows = [encoder.encode(1, "the river boat drifted").input_ids,
            encoder.encode(1, "pie").input_ids]
    ids = torch.full((2, len(rows[0])), loaded.tokenizer.pad_token_id)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = torch.tensor(row), 1
    pages = torch.from_numpy(np.random.default_rng(0).integers(0, 256, (2, 1, IMAGE_SIZE,
                                                                          IMAGE_SIZE), np.uint8))
    return {"input_ids": ids, "attention_mask": mask,
            "pixel_values": pixel_values(pages, torch.float32)}, [len(r) for r in rows]


def v1_weights(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model-00001-of-000001.safetensors"))


def v1_reference_logits(W: dict, language: dict, embeds: torch.Tensor,
                        causal: bool = True) -> torch.Tensor:
    """v1's decoder on ``embeds`` [T, H] (one unpadded sequence), from v1-named weights."""
    hidden, heads = language["hidden_size"], language["num_attention_heads"]
    dim, steps = hidden // heads, embeds.shape[0]
    inverse = 1.0 / 10000.0 ** (torch.arange(0, dim, 2).float() / dim)
    angles = torch.outer(torch.arange(steps).float(), inverse).repeat(1, 2)
    cos, sin = angles.cos(), angles.sin()

    def rotate(x):
        first, second = x.chunk(2, dim=-1)
        return x * cos + torch.cat([-second, first], dim=-1) * sin

    def rms(x, weight):
        return weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)

    def mlp(x, prefix):
        gate = F.linear(x, W[f"{prefix}gate_proj.weight"])
        return F.linear(F.silu(gate) * F.linear(x, W[f"{prefix}up_proj.weight"]),
                        W[f"{prefix}down_proj.weight"])

    mask = torch.full((steps, steps), float("-inf")).triu(1) if causal else 0.0
    h = embeds
    for layer in range(language["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        x = rms(h, W[p + "input_layernorm.weight"])
        q, k, v = (F.linear(x, W[f"{p}self_attn.{n}_proj.weight"]).view(steps, heads, dim)
                   .transpose(0, 1) for n in "qkv")
        scores = rotate(q) @ rotate(k).transpose(-1, -2) / dim ** 0.5 + mask
        attended = (scores.softmax(-1) @ v).transpose(0, 1).reshape(steps, hidden)
        h = h + F.linear(attended, W[p + "self_attn.o_proj.weight"])
        x = rms(h, W[p + "post_attention_layernorm.weight"])
        if layer < language["first_k_dense_replace"]:
            h = h + mlp(x, p + "mlp.")
            continue
        routing = F.linear(x, W[p + "mlp.gate.weight"]).softmax(-1)
        weights, chosen = routing.topk(language["num_experts_per_tok"], dim=-1)
        routed = sum((weights * (chosen == e)).sum(-1, keepdim=True) * mlp(
            x, f"{p}mlp.experts.{e}.") for e in range(language["n_routed_experts"]))
        h = h + routed + mlp(x, p + "mlp.shared_experts.")
    return F.linear(rms(h, W["model.norm.weight"]), W["lm_head.weight"])


def reference_inputs(W: dict, model, ids: torch.Tensor, pixels: torch.Tensor, image_id: int):
    """v1's input embeddings: token embeddings, image positions replaced by the features."""
    embeds = W["model.embed_tokens.weight"][ids]
    with torch.no_grad():
        features = torch.cat(model.model.get_image_features(pixels).pooler_output)
    embeds[ids == image_id] = features
    return embeds


# ------------------------------------------------------------------- the checkpoint's names


def test_every_tensor_of_v1s_layout_lands_in_the_native_model(v1_folder, loaded):
    _, native, written = v1_folder
    state = loaded.model.state_dict()
    assert set(state) == set(native)
    assert all(torch.equal(state[k], native[k]) for k in native)
    assert any(k.startswith("model.sam_model.blocks.") for k in written)
    assert "model.vision_model.transformer.layers.0.self_attn.qkv_proj.weight" in written
    assert "model.layers.1.mlp.experts.3.up_proj.weight" in written
    assert (loaded.family, loaded.image_size) == ("deepseek_ocr", IMAGE_SIZE)
    assert type(loaded.model).__name__ == "UnlimitedOcrForConditionalGeneration"
    assert loaded.model.config.text_config.layer_types == ["full_attention"] * 2


# ----------------------------------------------------------------- item 1: plain causal


def _variant(loaded, layer_type: str, window: int):
    config = loaded.model.config.__class__.from_dict(loaded.model.config.to_dict())
    config.text_config.layer_types = [layer_type] * config.text_config.num_hidden_layers
    config.text_config.sliding_window = window
    model = UnlimitedOcrForConditionalGeneration(config).eval()
    model.load_state_dict(loaded.model.state_dict())
    return model


VARIANTS = {"as loaded: full_attention": ("full_attention", 1024),
            "sliding window >= length": ("reference_sliding_attention", 1024)}


@pytest.mark.parametrize("variant", VARIANTS)
def test_native_logits_equal_the_plain_causal_reference(v1_folder, loaded, batch, variant):
    model = _variant(loaded, *VARIANTS[variant])
    inputs, lengths = batch
    W = v1_weights(v1_folder[0])
    language = json.loads((v1_folder[0] / "config.json").read_text())["language_config"]
    with torch.no_grad():
        logits = model(**inputs).logits
    for row, length in enumerate(lengths):
        ids = inputs["input_ids"][row, :length]
        embeds = reference_inputs(W, model, ids, inputs["pixel_values"][row:row + 1],
                                  loaded.image_token_id)
        expected = v1_reference_logits(W, language, embeds)
        assert torch.allclose(logits[row, :length], expected, **TIGHT), \
            (logits[row, :length] - expected).abs().max()
        # The comparison sees the mask: the same reference without it is far off.
        unmasked = v1_reference_logits(W, language, embeds, causal=False)
        assert not torch.allclose(logits[row, :length], unmasked, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("variant,equal", [("as loaded: full_attention", True),
                                           ("sliding window >= length", True),
                                           ("sliding window of 3", False)])
def test_cached_generation_equals_the_reference_step_by_step(v1_folder, loaded, batch,
                                                             variant, equal):
    """Greedy decoding with the KV cache: each step's logits equal the reference's on the
    whole sequence so far. Unlimited-OCR's own window (3 here) makes decoded tokens lose
    sight of older decoded ones, and the logits differ: the check would catch it."""
    layer_type, window = VARIANTS.get(variant, ("reference_sliding_attention", 3))
    model = _variant(loaded, layer_type, window)
    inputs, lengths = batch
    ids = inputs["input_ids"][1:, :lengths[1] - 4]  # the prompt, without the summary
    pixels = inputs["pixel_values"][1:]
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids),
                         pixel_values=pixels, max_new_tokens=8, min_new_tokens=8,
                         do_sample=False, output_logits=True, return_dict_in_generate=True,
                         pad_token_id=loaded.tokenizer.pad_token_id)
    W = v1_weights(v1_folder[0])
    language = json.loads((v1_folder[0] / "config.json").read_text())["language_config"]
    sequence = out.sequences[0]
    matches = []
    for step, logits in enumerate(out.logits):
        so_far = sequence[:ids.shape[1] + step]
        embeds = reference_inputs(W, model, so_far, pixels, loaded.image_token_id)
        expected = v1_reference_logits(W, language, embeds)[-1]
        matches.append(torch.allclose(logits[0], expected, **TIGHT))
    assert all(matches[:4])  # up to 3 decoded tokens back, the window sees everything
    assert all(matches[4:]) if equal else not any(matches[4:])


# --------------------------------------------------------------------- image tokens


def test_image_features_are_v1s_layout_and_counts_agree(v1_folder, loaded, batch):
    """CLIP's features (class token dropped) then SAM's, projected by v1's
    ``projector.layers``, rows ended by ``image_newline``, ``view_seperator`` last: as many
    as the project's count, which is transformers' processor's count."""
    from transformers import DeepseekOcr2ImageProcessorPil, UnlimitedOcrProcessor

    W = v1_weights(v1_folder[0])
    pixels = batch[0]["pixel_values"][:1]
    tower = loaded.model.model.vision_tower
    with torch.no_grad():
        sam = tower.sam_encoder(pixels).last_hidden_state
        clip = tower.vision_encoder(sam).last_hidden_state
        features = loaded.model.model.get_image_features(pixels).pooler_output[0]
    side = sam.shape[-1]
    both = torch.cat([clip[:, 1:], sam.flatten(2).transpose(1, 2)], dim=-1)[0]
    projected = F.linear(both, W["model.projector.layers.weight"],
                         W["model.projector.layers.bias"]).view(side, side, -1)
    newline = W["model.image_newline"].expand(side, 1, -1)
    expected = torch.cat([torch.cat([projected, newline], 1).flatten(0, 1),
                          W["model.view_seperator"][None]])
    assert torch.allclose(features, expected, **TIGHT)
    assert len(features) == loaded.image_tokens_per_page == TOKENS_TINY
    # transformers' processor counts the same (its count takes the size it is given; the
    # image processor instance is DeepSeek-OCR-2's PIL one, as UnlimitedOcr's needs
    # torchvision, which DeepSynth does not install).
    processor = UnlimitedOcrProcessor(image_processor=DeepseekOcr2ImageProcessorPil(),
                                      tokenizer=loaded.tokenizer)
    for size in (IMAGE_SIZE, 640, 1024):
        text = processor.replace_image_token({"patches_grid": [[1, 1]],
                                              "num_local_patches": [0]}, 0,
                                             size={"height": size, "width": size},
                                             tile_size=640)
        assert text.count("<image>") == page_tokens("deepseek_ocr", size)
    assert page_tokens("deepseek_ocr", 1024) == 273  # (16 + 1) x 16 + 1, v1's real page
    assert page_tokens("deepseek_ocr2", 1024) == 257  # DeepSeek-OCR-2 keeps its own


# ------------------------------------------------------------------------ the preset


def test_the_preset_needs_no_remote_code():
    preset = MODEL_PRESETS["deepseek-ocr"]
    assert (preset.family, preset.source) == ("deepseek_ocr", "deepseek-ai/DeepSeek-OCR")
    assert "remote code" not in preset.description.replace("no remote code", "")
    assert "needs_remote_code" not in preset.to_dict()

