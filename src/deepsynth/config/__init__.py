"""The configuration tree: dataclasses validated where they enter (CLI, REST, UI)."""

from deepsynth.config.dataset import (
    EVAL_SPLITS, PAGE_SIZES, GenerationConfig, RenderConfig, SourceConfig, normalize_split,
    parse_page_size,
)
from deepsynth.config.spec import add_arguments, from_dict, from_namespace, to_dict, validate

__all__ = [
    "EVAL_SPLITS", "PAGE_SIZES", "GenerationConfig", "RenderConfig", "SourceConfig",
    "normalize_split", "parse_page_size", "add_arguments", "from_dict",
    "from_namespace", "to_dict", "validate",
]
