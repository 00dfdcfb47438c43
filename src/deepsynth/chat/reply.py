"""A trained chat model's reply to a conversation (the playground): the conversation rendered
with the chat template the run trained with, then greedy generation up to the length limit
the run's evaluations used, stopping at the template's end-of-turn token."""

from __future__ import annotations

import json
from pathlib import Path

from deepsynth.chat.template import ChatEncoder
from deepsynth.errors import ConfigRefused
from deepsynth.evaluation.evaluate import model_settings
from deepsynth.evaluation.generation import generate_summaries
from deepsynth.models.registry import load_model
from deepsynth.training.run_folder import CONFIG_NAME

ROLES = ("system", "user", "assistant")


def check_conversation(messages: list[dict]) -> None:
    """A conversation a reply can follow: not empty, and ending with the user's turn."""
    if not messages:
        raise ConfigRefused("messages", "is empty: give at least one user message",
                            "a list of {role, content} ending with a user message")
    if messages[-1]["role"] != "user":
        raise ConfigRefused(f"messages[{len(messages) - 1}].role",
                            "must be user: the reply follows the user's last message", "user")


def _chat_settings(model_dir: Path) -> dict:
    """The chat options the run trained with (its final folder's copy of the resolved
    configuration); the trainer's defaults where it has none."""
    try:
        config = json.loads((model_dir / CONFIG_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    config = config if isinstance(config, dict) else {}
    return {"template": config.get("chat_template", "auto"),
            "reasoning": config.get("chat_reasoning", "render"),
            "max_length": config.get("max_length", 2048)}


def chat_reply(model: str, messages: list[dict], max_new_tokens: int | None = None,
               root: Path | None = None) -> dict:
    """``model``: a chat run's final folder; ``messages``: OpenAI-style ``{role, content}``
    ending with a user message. ``max_new_tokens`` None: the run's own limit."""
    check_conversation(messages)
    settings = model_settings(model)
    chat = _chat_settings(Path(model))
    loaded = load_model(model, root=root)
    if loaded.family != "causal_lm":
        raise ConfigRefused("model", "is an OCR model: it reads pages, not conversations",
                            "a model trained with trainer_type generic")
    encoder = ChatEncoder(loaded.tokenizer, chat["template"], chat["reasoning"],
                          max_length=chat["max_length"])
    prompt = encoder.generation_prompt({"messages": messages})
    prompt_ids = encoder._tokenize(prompt)[0]
    if len(prompt_ids) >= chat["max_length"]:
        raise ConfigRefused("messages", f"is {len(prompt_ids)} tokens with the chat template; "
                            f"the model was trained on at most {chat['max_length']}",
                            f"a shorter conversation (under {chat['max_length']} tokens)")
    limit = max_new_tokens or settings["max_new_tokens"]
    dtype = next(loaded.model.parameters()).dtype
    generated = generate_summaries(loaded.model, loaded.tokenizer, encoder,
                                   [{"prompt_ids": prompt_ids, "pages": []}], 1, limit, 1, dtype)
    return {"reply": generated.texts[0], "hit_max_new_tokens": generated.hit_limit[0],
            "max_new_tokens": limit, "prompt_tokens": len(prompt_ids),
            "template": "model" if encoder.use_model_template else "builtin",
            "randomly_initialized_base": loaded.randomly_initialized}
