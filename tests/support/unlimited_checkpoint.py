"""A tiny Unlimited-OCR checkpoint written in its own layout, for tests.

``config.json`` is Unlimited-OCR's (model_type ``unlimited-ocr``, ``UnlimitedOCRForCausalLM``,
v1's layout: the decoder under ``language_config`` and repeated at the top level, with the
context and ``sliding_window_size`` of the published checkpoint) at v1's tiny test size; the
weights are v1's names (Unlimited-OCR keeps them), written by ``support.v1_checkpoint``.
"""

from __future__ import annotations

from pathlib import Path

from deepsynth.models import unlimited_ocr
from support.v1_checkpoint import v1_config, write_v1_checkpoint

WINDOW = 128
CONTEXT = 32768


def unlimited_config(vocab_size: int, bos: int, eos: int) -> dict:
    raw = v1_config(vocab_size, bos, eos)
    raw.update(_name_or_path="tiny-unlimited-ocr", model_type=unlimited_ocr.MODEL_TYPE,
               architectures=[unlimited_ocr.ARCHITECTURE], sliding_window=WINDOW,
               auto_map={"AutoConfig": "modeling_unlimitedocr.UnlimitedOCRConfig",
                         "AutoModel": "modeling_unlimitedocr.UnlimitedOCRForCausalLM"})
    for section in (raw, raw["language_config"]):
        section.update(max_position_embeddings=CONTEXT, sliding_window_size=WINDOW)
    return raw


def write_unlimited_checkpoint(folder: Path, tokenizer):
    raw = unlimited_config(len(tokenizer), tokenizer.bos_token_id, tokenizer.eos_token_id)
    return write_v1_checkpoint(folder, tokenizer, raw)
