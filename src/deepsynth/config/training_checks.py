"""The refusals of a training config: options that would silently do nothing (or could not
run) under the chosen trainer, adapter and LoRA preset; and, in :func:`check_data`, what
the config names checked cheaply at submit (the dataset's splits, the prompt's length in
the model's tokenizer when that tokenizer is local or built in, the longest sequence within
the model's positions when its config is on this machine).

The MoE regularizers' rules come from their descriptors
(:data:`deepsynth.training.regularizers.REGULARIZERS`): which fields the chat trainer
refuses, which parameters a LoRA preset must train for a regularizer to act, and each one's
own rule. Adding a regularizer adds its rules here without editing this module.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from deepsynth.config.training_presets import (
    CHAT_LORA_PRESETS, LORA_PRESETS, OCR_LORA_PRESETS, default_lora_dropout,
)
from deepsynth.errors import ConfigError, ConfigRefused, DeepSynthError, OutputError

if TYPE_CHECKING:
    from deepsynth.config.training import TrainingConfig
    from deepsynth.training.regularizers import Regularizer


def regularizers() -> tuple[Regularizer, ...]:
    # Imported here: the descriptors build hooks (torch), which parsing needs only now.
    from deepsynth.training.regularizers import REGULARIZERS

    return REGULARIZERS


def active_regularizers(config: TrainingConfig) -> list[Regularizer]:
    return [r for r in regularizers() if r.active(config.moe)]


def adapted_parameters(config: TrainingConfig) -> tuple[str, ...]:
    """The parameters (router, routed experts) adapters reach: none with full fine-tuning."""
    adapter = config.adapter
    return () if adapter.peft == "full" else LORA_PRESETS[adapter.lora_preset]["parameters"]


def lora_dropout_of(config: TrainingConfig) -> float:
    """The adapters' dropout; a config built in Python without resolving may leave it None."""
    adapter = config.adapter
    if adapter.lora_dropout is not None:
        return adapter.lora_dropout
    return default_lora_dropout(adapter.lora_preset)


def check_conflicts(config: TrainingConfig) -> None:
    """Refuse options that would silently do nothing under the chosen setting."""
    if config.task.kind == "chat":
        check_chat(config)
    _check_regularizers(config)
    _check_adapter(config)
    if config.hub.push_to_hub and not config.hub.hub_model_id:
        raise ConfigError("hub_model_id", "is required with push_to_hub", "ORG/NAME")
    if config.task.kind == "ocr":
        _check_ocr(config)


def _check_regularizers(config: TrainingConfig) -> None:
    active = active_regularizers(config)
    if config.task.trainer_type == "deepsynth" and active:
        raise ConfigError("trainer_type", "deepsynth trains without MoE regularizers; unset "
                          "expert/gate dropout, bidrop_passes and router losses, or use "
                          "trainer_type production")
    adapted = adapted_parameters(config)
    for regularizer in active:
        if regularizer.trains and config.adapter.peft != "full" and (
                regularizer.trains.parameter not in adapted):
            raise ConfigError(regularizer.switches[0], f"acts on {regularizer.trains.what}, "
                              f"which lora_preset {config.adapter.lora_preset!r} does not "
                              f"train; use {regularizer.trains.advice}")
        if regularizer.check is not None:
            regularizer.check(config)


# Set while a config is resolved for a GPU this machine is not: `deepsynth estimate`
# describes a CUDA run before anyone rents the GPU, so "qlora needs CUDA here" does not apply.
_CUDA_ELSEWHERE = contextvars.ContextVar("cuda_elsewhere", default=False)


@contextlib.contextmanager
def for_a_cuda_machine():
    """Inside, configs are checked as a CUDA machine would check them (QLoRA allowed)."""
    token = _CUDA_ELSEWHERE.set(True)
    try:
        yield
    finally:
        _CUDA_ELSEWHERE.reset(token)


def _check_adapter(config: TrainingConfig) -> None:
    adapter = config.adapter
    adapted = adapted_parameters(config)
    if (adapter.peft == "qlora" or adapter.lora_preset == "qlora_4bit") and (
            not _CUDA_ELSEWHERE.get()):
        import torch

        if not torch.cuda.is_available():
            raise ConfigError("peft", "qlora (4-bit NF4 via bitsandbytes) needs a CUDA GPU; "
                              "use lora on this machine")
    if adapter.peft in ("dora", "adalora") and adapted:
        raise ConfigError("peft", f"{adapter.peft} cannot adapt the router or experts "
                          f"(lora_preset {adapter.lora_preset!r}); use lora, or lora_preset "
                          f"standard, tiny_data or balanced")
    if lora_dropout_of(config) and adapted:
        raise ConfigError("lora_dropout", f"must be 0 with lora_preset {adapter.lora_preset!r}: "
                          f"PEFT cannot apply dropout to adapters of the router or experts")


def _check_ocr(config: TrainingConfig) -> None:
    """The OCR trainers read page images with a DeepSeek-OCR model."""
    if config.adapter.lora_preset not in OCR_LORA_PRESETS:
        raise ConfigError("lora_preset", f"{config.adapter.lora_preset} is for causal LMs "
                          f"(trainer_type generic); it would reach the vision encoder",
                          ", ".join(OCR_LORA_PRESETS))
    if config.evaluation.eval_dataset:
        raise ConfigError("eval_dataset", "is for trainer_type generic; the OCR trainers "
                          "evaluate on the dataset's eval_split", "unset")
    if config.task.model == "tiny-chat-lm":
        raise ConfigError("model", "tiny-chat-lm is a text-only causal LM: use it with "
                          "trainer_type generic", "a DeepSeek-OCR preset or folder")
    from deepsynth.models.registry import preset_of

    preset = preset_of(config.task.model)
    if preset is not None:
        _check_window(config, preset.family)


def _check_window(config: TrainingConfig, family: str) -> None:
    """``sliding_window`` is Unlimited-OCR's (the other families attend to everything)."""
    if config.task.sliding_window is not None and family != "unlimited_ocr":
        raise ConfigError("sliding_window", f"applies to Unlimited-OCR models only; "
                          f"{config.task.model} is a {family} model (leave it unset)",
                          "unset, or an Unlimited-OCR model")


def check_chat(config: TrainingConfig) -> None:
    """The chat trainer trains a text-only causal LM."""
    from deepsynth.models.registry import preset_of

    if config.schedule.augment:
        raise ConfigError("augment", "acts on page images; trainer_type generic has none")
    if config.task.image_mode != "global":
        raise ConfigError("image_mode", f"{config.task.image_mode} crops page images; "
                          f"trainer_type generic has none", "global (the default)")
    _check_window(config, "causal_lm")
    preset = preset_of(config.task.model)
    if preset is not None and preset.family != "causal_lm":
        raise ConfigError("model", f"{config.task.model} reads page images; trainer_type "
                          f"generic trains a causal LM",
                          "tiny-chat-lm, a causal LM folder or ORG/NAME")
    for regularizer in regularizers():
        if not regularizer.routed:
            continue
        for name in regularizer.switches:
            if regularizer.switched_on(config.moe, name):
                raise ConfigError(name, "acts on DeepSeek MoE routers and experts, which the "
                                  "chat trainer does not use", "0")
    if config.adapter.lora_preset not in CHAT_LORA_PRESETS:
        raise ConfigError("lora_preset", f"{config.adapter.lora_preset} names DeepSeek-OCR "
                          f"modules; trainer_type generic adapts", ", ".join(CHAT_LORA_PRESETS))


def check_data(config: TrainingConfig) -> None:
    """Refuse what the run would refuse once it has loaded its model and data: a split the
    dataset does not have, a max_length the prompt fills. Read cheaply: the dataset's
    manifest, and the model's tokenizer only when it is on this machine (a Hub model's is
    checked when the run starts)."""
    if config.task.kind != "ocr":
        return
    _check_model_folder(config)
    _check_splits(config)
    _check_prompt_length(config)
    _check_sequence_length(config)


def _check_model_folder(config: TrainingConfig) -> None:
    """A model folder is of a DeepSeek-OCR family (its config.json says; the weights are
    read when the run starts)."""
    from deepsynth.models.model_info import read_info
    from deepsynth.models.registry import model_family

    folder = Path(config.task.model).expanduser()
    if not folder.is_dir():
        return  # a preset or random: spec, checked as the config is parsed
    family = model_family(str(folder), None, read_info(folder), config.task.model)
    if family == "causal_lm":
        raise ConfigError("model", f"{config.task.model} is a causal LM; the OCR trainers "
                          f"read page images", "a DeepSeek-OCR preset or folder, or "
                          "trainer_type generic")
    _check_window(config, family)


def _check_splits(config: TrainingConfig) -> None:
    from deepsynth.data.manifest import Manifest

    folder = Path(config.task.dataset)
    try:
        manifest = Manifest.load(folder) if folder.is_dir() else None  # hf: read at start
    except OutputError:
        return  # an unreadable manifest: loading the dataset reports what is wrong
    if manifest is None:
        return
    names = list(manifest.splits)
    for field, split in (("train_split", config.task.train_split),
                         ("eval_split", config.evaluation.eval_split)):
        if split is not None and split not in names:
            raise ConfigError(field, f"{split!r} is not a split of dataset {folder.name!r}; "
                              f"it has: {', '.join(names)}", ", ".join(names))


def _check_prompt_length(config: TrainingConfig) -> None:
    task = config.task
    prompt = _prompt_tokens(task.model, task.prompt)
    # ExampleEncoder's rule (checked again when the run starts): the prompt, one summary
    # token and EOS fit in max_length.
    if prompt is not None and prompt + 2 > task.max_length:
        raise ConfigError("max_length", f"{task.max_length} leaves no room for a summary after "
                          f"the {prompt}-token prompt", f"at least {prompt + 2}, or a shorter "
                          f"prompt")


_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")
_tiny_lock = threading.Lock()  # one shared tokenizer: fast tokenizers are not thread-safe


def _prompt_tokens(model: str, prompt: str) -> int | None:
    """The prompt's length in ``model``'s tokens, as ExampleEncoder counts them, when the
    tokenizer is built in or in a local folder; else None."""
    from deepsynth.models import tiny
    from deepsynth.training.data import ExampleEncoder

    def count(tokenizer) -> int:
        return len(ExampleEncoder(tokenizer, -1, 0, prompt, sys.maxsize).prompt_ids)

    if model == tiny.NAME:
        with _tiny_lock:
            return count(_tiny_tokenizer())
    folder = Path(model).expanduser()
    if not any((folder / name).is_file() for name in _TOKENIZER_FILES):
        return None
    from deepsynth.models.deepseek_ocr_v1 import is_v1_folder, ocr_tokenizer

    try:
        tokenizer = ocr_tokenizer(str(folder), v1=is_v1_folder(folder))
    except Exception:  # a tokenizer needing remote code or extra packages: checked at start
        return None
    return count(tokenizer)


@lru_cache(maxsize=1)
def _tiny_tokenizer():
    from deepsynth.models import tiny

    return tiny.build_tokenizer()  # what the tiny model saves; trained offline, ~2 s once


def sequence_refusal(family: str, image_size: int, mode: str, width: int, height: int,
                     most_pages: int, max_length: int, positions: int) -> ConfigRefused | None:
    """The refusal of a run whose longest sequence, [bos] + the image tokens of its longest
    row's ``most_pages`` pages of ``width`` x ``height`` px + ``max_length`` text tokens,
    exceeds the decoder's ``positions``; None when it fits. Named ``image_mode`` in crops
    mode, else ``max_pages``."""
    from deepsynth.render.tokens import page_view

    image = page_view(family, image_size, mode, width, height).tokens * most_pages
    if 1 + image + max_length <= positions:
        return None
    single = page_view(family, image_size, "global", width, height).tokens
    return ConfigRefused(
        "image_mode" if mode == "crops" else "max_pages",
        f"{mode}: {most_pages} page{'s' * (most_pages != 1)} of {width}x{height} px are "
        f"{image} image tokens; with max_length {max_length} a sequence of "
        f"{1 + image + max_length} tokens exceeds the model's {positions} positions",
        f"image_mode global ({single} image tokens a page), a smaller max_pages or "
        f"max_length")


def _model_positions(spec: str) -> tuple[str, int, int] | None:
    """(family, image size, decoder positions) of an OCR model whose config is on this
    machine (a folder, a random: spec or a published architecture DeepSynth ships); None
    for others (a preset, a Hub id), which the run checks once loaded."""
    if not _config_is_here(spec):
        return None
    from deepsynth.training.estimate_model import model_config

    try:
        config, family, image_size = model_config(spec, None, chat=False)
    except (DeepSynthError, ValueError, OSError):
        return None  # the run reports what is wrong with the model
    if family == "causal_lm" or not image_size:
        return None
    return family, image_size, config.text_config.max_position_embeddings


def _config_is_here(spec: str) -> bool:
    """Whether the config of ``spec`` can be read without building or fetching anything: a
    preset is built on first use (under the data root), so an adapter run on a preset is
    not."""
    from deepsynth.models.model_info import read_info
    from deepsynth.models.random_spec import REAL_MODELS, parse_random_spec

    if spec in REAL_MODELS or parse_random_spec(spec):
        return True
    folder = Path(spec).expanduser()
    if not folder.is_dir():
        return False
    info = read_info(folder)
    if info.get("adapter") and info.get("base_model"):
        return _config_is_here(info["base_model"])
    return True


def _check_sequence_length(config: TrainingConfig) -> None:
    """The longest training row's sequence within the model's positions (the run checks it
    again once loaded): the row with the most pages of the train split that fit max_pages."""
    from deepsynth.config.dataset import parse_page_size
    from deepsynth.data.manifest import Manifest, is_dataset
    from deepsynth.data.shards import read_column

    task, folder = config.task, Path(config.task.dataset)
    model = _model_positions(task.model)
    if model is None or not is_dataset(folder):
        return
    try:
        manifest = Manifest.load(folder)
        split = manifest.splits.get(task.train_split)
        counts = [n for n in read_column(folder, split.shards, "num_pages")
                  if n <= task.max_pages] if split else []
        width, height = parse_page_size(manifest.data["config"]["render"]["page_size"])
    except (DeepSynthError, OSError, ValueError, KeyError):
        return  # a damaged or older dataset: loading it reports what is wrong
    if counts:
        family, image_size, positions = model
        refusal = sequence_refusal(family, image_size, task.image_mode, width, height,
                                   max(counts), task.max_length, positions)
        if refusal is not None:
            raise refusal
