"""Named components of a model: which parameters are the vision side, the router, the routed
experts...; freezing the vision side by explicit prefixes, and the parameter summary table
(``parameters.txt``: per component its parameters, trainable ones, dtypes and state)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from deepsynth.errors import DeepSynthError

# The vision side per model family: SAM encoder, vision encoder (with its queries), projector
# and the view separator (v1 and Unlimited-OCR: and the row newline), as transformers' native
# classes name them (v1's own checkpoint names are converted as it loads). Names are matched
# after stripping PEFT's "base_model.model." prefix.
_V1_VISION = ("model.vision_tower.sam_encoder.", "model.vision_tower.vision_encoder.",
              "model.multi_modal_projector.", "model.image_newline", "model.view_separator")
VISION_PREFIXES = {
    "deepseek_ocr2": ("model.vision_tower.sam_encoder.", "model.vision_tower.vision_encoder.",
                      "model.vision_tower.query_", "model.multi_modal_projector.",
                      "model.view_separator"),
    "deepseek_ocr": _V1_VISION,
    "unlimited_ocr": _V1_VISION,  # v1's architecture, the same native class
    "causal_lm": (),  # text only: nothing to freeze
}
_COMPONENTS = (  # (component, pattern), first match wins
    ("adapters", re.compile(r"lora_|\.adapter|ranknum")),
    ("sam encoder", re.compile(r"vision_tower\.sam_encoder\.|sam_model\.")),
    ("vision encoder", re.compile(r"vision_tower\.|vision_model\.")),
    ("projector", re.compile(r"multi_modal_projector\.|\.projector\.")),
    ("view separator", re.compile(r"view_sep|image_newline")),
    ("router", re.compile(r"\.mlp\.gate\.weight$")),
    ("routed experts", re.compile(r"\.mlp\.experts\.")),
    ("shared experts", re.compile(r"\.mlp\.shared_experts\.")),
    ("dense mlp", re.compile(r"\.mlp\.")),
    ("attention", re.compile(r"\.self_attn\.")),
    ("embeddings", re.compile(r"embed_tokens")),
    ("lm head", re.compile(r"lm_head")),
    ("norms", re.compile(r"norm")),
)


def plain_name(name: str) -> str:
    """A parameter name without PEFT's wrappers, as in the base model."""
    name = name.removeprefix("base_model.model.")
    while ".base_layer." in name:  # adapters on several parameters of one module nest
        name = name.replace(".base_layer.", ".")
    return name.replace("modules_to_save.default.", "")


def component_of(name: str) -> str:
    plain = plain_name(name)
    for component, pattern in _COMPONENTS:
        if pattern.search(plain):
            return component
    return "other"


def is_vision(name: str, family: str) -> bool:
    return plain_name(name).startswith(VISION_PREFIXES[family])


def freeze_vision(model, family: str) -> int:
    """Freeze the vision side; returns how many parameters were frozen (must be > 0)."""
    frozen = 0
    for name, parameter in model.named_parameters():
        if is_vision(name, family):
            parameter.requires_grad_(False)
            frozen += parameter.numel()
    if frozen == 0:
        raise DeepSynthError(f"freezing the vision side matched no parameter for model family "
                             f"{family!r}; refusing to train the whole model by accident")
    return frozen


@dataclass
class ComponentRow:
    component: str
    parameters: int
    trainable: int
    dtypes: set[str] = field(default_factory=set)

    @property
    def dtype(self) -> str:
        """The component's dtypes, one word (``bfloat16+float32`` when it mixes them)."""
        return "+".join(sorted(self.dtypes))

    @property
    def state(self) -> str:
        if self.trainable == 0:
            return "frozen"
        return "trainable" if self.trainable == self.parameters else "partly trainable"


def parameter_summary(model) -> list[ComponentRow]:
    rows: dict[str, ComponentRow] = {}
    for name, parameter in model.named_parameters():
        row = rows.setdefault(component_of(name), ComponentRow(component_of(name), 0, 0))
        row.parameters += parameter.numel()
        row.dtypes.add(str(parameter.dtype).removeprefix("torch."))
        if parameter.requires_grad:
            row.trainable += parameter.numel()
    return list(rows.values())


def format_summary(rows: list[ComponentRow]) -> str:
    total = sum(r.parameters for r in rows)
    trainable = sum(r.trainable for r in rows)
    every = "+".join(sorted(set().union(*(r.dtypes for r in rows))))
    width = max([len(every), 5] + [len(r.dtype) for r in rows])
    lines = [f"{'component':<16} {'parameters':>13} {'trainable':>13}  {'dtype':<{width}}  state"]
    lines += [f"{r.component:<16} {r.parameters:>13,} {r.trainable:>13,}  "
              f"{r.dtype:<{width}}  {r.state}" for r in rows]
    lines.append(f"{'total':<16} {total:>13,} {trainable:>13,}  {every:<{width}}  "
                 f"{100 * trainable / max(total, 1):.2f}% trainable")
    return "\n".join(lines)
