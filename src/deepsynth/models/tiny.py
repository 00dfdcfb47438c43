"""The tiny DeepSeek-OCR-2: the real transformers class at a few million parameters.

Random weights (a fixed seed) and a byte-level BPE tokenizer trained offline on the built-in
corpus. It is a demo and test model, not a pretrained one: its outputs mean nothing until it
is trained. Built once and cached under ``<data root>/cache/models/``; its tokenizer alone is
also the tokenizer of the ``random:`` models (:func:`ensure_tokenizer`).
"""

from __future__ import annotations

import gzip
import json
import shutil
import tempfile
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from deepsynth.models.model_info import info_path, write_info

NAME = "tiny-deepseek-ocr-2"
VERSION = 1  # bump when the recipe changes, so caches are rebuilt
IMAGE_SIZE = 256
VOCAB_SIZE = 2048
SPECIAL_TOKENS = ("<|bos|>", "<|eos|>", "<|pad|>", "<image>")
SEED = 1234


def _corpus() -> Iterator[str]:
    folder = resources.files("deepsynth.resources") / "scitldr"
    for name in ("train.jsonl.gz", "validation.jsonl.gz"):
        with gzip.open(str(folder / name), "rt", encoding="utf-8") as handle:
            for line in handle:
                row = json.loads(line)
                yield " ".join(row["source"])
                yield from row["target"]


def train_bpe(special_tokens: tuple[str, ...]):
    """A byte-level BPE tokenizer (every script round-trips) trained on the built-in corpus,
    with ``special_tokens`` first in its vocabulary."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=list(special_tokens),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    core.train_from_iterator(_corpus(), trainer=trainer)
    return core


def build_tokenizer():
    from transformers import PreTrainedTokenizerFast

    core = train_bpe(SPECIAL_TOKENS)
    bos, eos, pad, image = SPECIAL_TOKENS
    return PreTrainedTokenizerFast(tokenizer_object=core, bos_token=bos, eos_token=eos,
                                   pad_token=pad, additional_special_tokens=[image])


def tiny_config(tokenizer):
    from transformers import DeepseekOcr2Config

    image_token = tokenizer.convert_tokens_to_ids(SPECIAL_TOKENS[3])
    return DeepseekOcr2Config(
        vision_config={
            # initializer_range: SAM's default (1e-10) gives the same features for every image.
            "sam_config": {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                           "output_channels": 16, "image_size": IMAGE_SIZE, "patch_size": 16,
                           "window_size": 4, "global_attn_indexes": [1], "mlp_ratio": 2.0,
                           "downsample_channels": [32, 64], "initializer_range": 0.02},
            "encoder_config": {"hidden_size": 64, "intermediate_size": 128,
                               "num_hidden_layers": 2, "num_attention_heads": 2,
                               "num_key_value_heads": 2, "vocab_size": 8,
                               "max_position_embeddings": 1024},
        },
        text_config={
            "vocab_size": len(tokenizer), "hidden_size": 128, "intermediate_size": 256,
            "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 4,
            # Set explicitly: transformers has no usable defaults for these three.
            "mlp_layer_types": ["dense", "sparse"], "num_experts_per_tok": 2,
            "n_routed_experts": 8, "n_shared_experts": 1, "moe_intermediate_size": 64,
            "max_position_embeddings": 2048, "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id,
        },
        image_token_id=image_token,
    )


def _build(folder: Path) -> None:
    import torch
    from transformers import DeepseekOcr2ForConditionalGeneration

    tokenizer = build_tokenizer()
    with torch.random.fork_rng():  # the caller's random state must not depend on the cache
        torch.manual_seed(SEED)
        model = DeepseekOcr2ForConditionalGeneration(tiny_config(tokenizer))
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def ensure_tiny_model(cache: Path) -> Path:
    """The cached tiny model folder, built on first use (atomically: a temp folder renamed)."""
    return cached_build(Path(cache) / "models" / f"{NAME}-v{VERSION}", _build, {
        "preset": NAME, "family": "deepseek_ocr2", "image_size": IMAGE_SIZE,
        "randomly_initialized": True, "recipe_version": VERSION})


def ensure_tokenizer(cache: Path) -> Path:
    """The cached folder of the tiny model's tokenizer alone (a few hundred kB): the tokenizer
    of the ``random:`` models, whose weights are built in memory and never cached."""
    return cached_build(Path(cache) / "models" / f"{NAME}-tokenizer-v{VERSION}",
                        lambda folder: build_tokenizer().save_pretrained(folder),
                        {"tokenizer_of": NAME, "recipe_version": VERSION})


def cached_build(folder: Path, build, info: dict) -> Path:
    """``folder``, made by ``build(temp folder)`` on first use and renamed into place."""
    marker = info_path(folder)
    if marker.exists():
        return folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    building = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}."))
    try:
        build(building)
        write_info(building, info)
        try:
            building.rename(folder)
        except OSError:  # another process finished first; its copy is identical
            pass
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return folder
