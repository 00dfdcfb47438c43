"""The tiny chat model: a Qwen2 causal LM (a standard transformers family) at a few hundred
thousand parameters, random weights, and a byte-level BPE tokenizer trained offline on the
built-in corpus with the ChatML tokens. A demo and test model for the chat trainer,
not a pretrained one. Its tokenizer has no chat template, so the built-in one is used.
"""

from __future__ import annotations

from pathlib import Path

from deepsynth.chat.template import CHAT_SPECIAL_TOKENS
from deepsynth.models.tiny import SEED, cached_build, train_bpe

NAME = "tiny-chat-lm"
VERSION = 1
SPECIAL_TOKENS = ("<|bos|>", "<|pad|>") + CHAT_SPECIAL_TOKENS


def build_tokenizer():
    from transformers import PreTrainedTokenizerFast

    bos, pad, _, end, *extra = SPECIAL_TOKENS
    # <|im_end|> ends every assistant turn: generation stops there.
    return PreTrainedTokenizerFast(tokenizer_object=train_bpe(SPECIAL_TOKENS), bos_token=bos,
                                   eos_token=end, pad_token=pad,
                                   additional_special_tokens=[SPECIAL_TOKENS[2], *extra])


def _build(folder: Path) -> None:
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    tokenizer = build_tokenizer()
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=4096, tie_word_embeddings=True,
                         bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    with torch.random.fork_rng():
        torch.manual_seed(SEED)
        model = Qwen2ForCausalLM(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def ensure_tiny_chat_model(cache: Path) -> Path:
    return cached_build(Path(cache) / "models" / f"{NAME}-v{VERSION}", _build, {
        "preset": NAME, "family": "causal_lm", "randomly_initialized": True,
        "recipe_version": VERSION})
