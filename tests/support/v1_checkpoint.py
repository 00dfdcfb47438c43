"""A tiny DeepSeek-OCR v1 checkpoint written in v1's own layout, for tests.

``config.json`` is v1's (model_type ``deepseek_vl_v2``, ``architectures`` and ``auto_map``
naming v1's remote code, the decoder under ``language_config`` and repeated at the top level,
the encoders under ``vision_config.width``), with small numbers. The weights carry the names
of v1's published checkpoint (``model.sam_model.blocks.N.attn.qkv``,
``model.vision_model.transformer.layers.N.self_attn.qkv_proj``, ``model.projector.layers``,
``model.view_seperator``, one tensor per routed expert...), including CLIP's
``patch_embedding``, which v1 stores and never uses. They are random numbers drawn into a
native model and renamed here by this module's own table (:func:`v1_state`), written from
v1's checkpoint listing and independent of transformers' conversion mapping, which the tests
check against it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from safetensors.torch import save_file

from deepsynth.models import deepseek_ocr_v1

IMAGE_SIZE = 256  # 16x16 SAM patches, 4x4 features: 4 * 5 + 1 = 21 image tokens per page
SEED = 4321

# native name prefix -> v1 name prefix; first match wins.
_SAM, _CLIP = r"model\.vision_tower\.sam_encoder\.", r"model\.vision_tower\.vision_encoder\."
_RENAMES = (
    (_SAM + r"layers\.(\d+)\.layer_norm1\.", r"model.sam_model.blocks.\1.norm1."),
    (_SAM + r"layers\.(\d+)\.layer_norm2\.", r"model.sam_model.blocks.\1.norm2."),
    (_SAM + r"layers\.", "model.sam_model.blocks."),
    (_SAM + r"patch_embed\.projection\.", "model.sam_model.patch_embed.proj."),
    (_SAM + r"neck\.conv1\.", "model.sam_model.neck.0."),
    (_SAM + r"neck\.layer_norm1\.", "model.sam_model.neck.1."),
    (_SAM + r"neck\.conv2\.", "model.sam_model.neck.2."),
    (_SAM + r"neck\.layer_norm2\.", "model.sam_model.neck.3."),
    (_SAM + r"proj\.conv1\.", "model.sam_model.net_2."),
    (_SAM + r"proj\.conv2\.", "model.sam_model.net_3."),
    (_SAM, "model.sam_model."),
    (_CLIP + r"encoder\.", "model.vision_model.transformer."),
    (_CLIP, "model.vision_model."),
    (r"model\.multi_modal_projector\.", "model.projector.layers."),
    (r"model\.view_separator", "model.view_seperator"),
    (r"model\.language_model\.", "model."),
)


def v1_config(vocab_size: int, bos: int, eos: int) -> dict:
    """config.json as v1 writes it, at a tiny size (2 decoder layers: dense, then MoE)."""
    language = {
        "architectures": ["DeepseekV2ForCausalLM"], "bos_token_id": bos, "eos_token_id": eos,
        "first_k_dense_replace": 1, "hidden_size": 64, "intermediate_size": 128,
        "kv_lora_rank": None, "lm_head": True, "max_position_embeddings": 1024,
        "moe_intermediate_size": 32, "n_group": 1, "n_routed_experts": 4,
        "n_shared_experts": 1, "num_attention_heads": 4, "num_experts_per_tok": 2,
        "num_hidden_layers": 2, "num_key_value_heads": 4, "q_lora_rank": None,
        "qk_nope_head_dim": 0, "qk_rope_head_dim": 0, "rm_head": False, "topk_group": 1,
        "topk_method": "greedy", "torch_dtype": "float32", "use_mla": False,
        "v_head_dim": 0, "vocab_size": vocab_size}
    return {
        "_name_or_path": "tiny-deepseek-ocr-v1", "candidate_resolutions": [[IMAGE_SIZE] * 2],
        "global_view_pos": "head", "architectures": [deepseek_ocr_v1.V1_ARCHITECTURE],
        "auto_map": {"AutoConfig": "modeling_deepseekocr.DeepseekOCRConfig",
                     "AutoModel": "modeling_deepseekocr.DeepseekOCRForCausalLM"},
        "language_config": language, "model_type": deepseek_ocr_v1.V1_MODEL_TYPE,
        "projector_config": {"input_dim": 128, "model_type": "mlp_projector", "n_embed": 64,
                             "projector_type": "linear"},
        "tile_tag": "2D", "torch_dtype": "float32", "transformers_version": "4.46.3",
        "vision_config": {
            "image_size": IMAGE_SIZE, "mlp_ratio": 3.7362, "model_name": "deeplip_b_l",
            "model_type": "vision", "width": {
                "clip-l-14-224": {"heads": 2, "image_size": 56, "layers": 2, "patch_size": 14,
                                  "width": 64},
                "sam_vit_b": {"downsample_channels": [32, 64], "global_attn_indexes": [1],
                              "heads": 2, "layers": 2, "width": 32}}},
        **{k: v for k, v in language.items() if k not in ("architectures", "torch_dtype")},
    }


def v1_state(native: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A native state dict under v1's names: CLIP's q/k/v fused into qkv_proj, each routed
    expert's gate_proj/up_proj/down_proj split out of the fused 3-D tensors."""
    out = {}
    for name, tensor in native.items():
        match = re.match(r"(.*\.self_attn\.)([qkv])_proj\.(weight|bias)$", name)
        if "vision_encoder" in name and match:
            if match.group(2) == "q":
                parts = [native[f"{match.group(1)}{p}_proj.{match.group(3)}"] for p in "qkv"]
                out[_rename(f"{match.group(1)}qkv_proj.{match.group(3)}")] = torch.cat(parts)
            continue
        experts = re.match(r"(.*\.mlp\.experts\.)(gate_up_proj|down_proj)$", name)
        if experts:
            for e, weights in enumerate(tensor):
                prefix = _rename(f"{experts.group(1)}{e}.")
                if experts.group(2) == "down_proj":
                    out[f"{prefix}down_proj.weight"] = weights.clone()
                else:
                    gate, up = weights.chunk(2)
                    out[f"{prefix}gate_proj.weight"] = gate.clone()
                    out[f"{prefix}up_proj.weight"] = up.clone()
            continue
        out[_rename(name)] = tensor.clone()
    return out


def _rename(name: str) -> str:
    for pattern, target in _RENAMES:
        if re.match(pattern, name):
            return re.sub(pattern, target, name, count=1)
    return name


def write_v1_checkpoint(folder: Path, tokenizer, raw: dict | None = None
                        ) -> tuple[dict, dict[str, torch.Tensor]]:
    """Write the tiny checkpoint and ``tokenizer`` to ``folder``; returns the native state
    the weights came from and the v1-named tensors written. ``raw``: another config.json in
    v1's layout (Unlimited-OCR's: the same weights and names)."""
    from transformers import UnlimitedOcrForConditionalGeneration

    raw = raw or v1_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    config = deepseek_ocr_v1.native_config(raw, "tiny v1", deepseek_ocr_v1.image_token_id(
        tokenizer, "tiny v1"))
    config.vision_config.sam_config.initializer_range = 0.02  # SAM's 1e-10: no features
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        native = UnlimitedOcrForConditionalGeneration(config).state_dict()
        written = v1_state(native)
        clip = raw["vision_config"]["width"]["clip-l-14-224"]  # stored by v1, never used
        written["model.vision_model.embeddings.patch_embedding.weight"] = torch.randn(
            clip["width"], 3, clip["patch_size"], clip["patch_size"])
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in written.items()},
              str(folder / "model-00001-of-000001.safetensors"), metadata={"format": "pt"})
    index = {"metadata": {}, "weight_map": {k: "model-00001-of-000001.safetensors"
                                            for k in sorted(written)}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    (folder / "config.json").write_text(json.dumps(raw, indent=2))
    tokenizer.save_pretrained(folder)
    return native, written
