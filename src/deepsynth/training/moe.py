"""Finding the MoE parts that are actually trained, and watching the routers.

Routed experts in transformers 5.x are fused 3-D parameters (``mlp.experts.gate_up_proj``
[E, 2I, H] and ``mlp.experts.down_proj`` [E, H, I]); the router is ``mlp.gate.weight`` [E, H].
Under LoRA with ``target_parameters`` the trained tensors are the adapter matrices instead, where
expert e owns rows ``e*r:(e+1)*r`` of A and columns ``e::E`` of B.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch

# The same decoder in both families' transformers classes (DeepSeek-OCR-2's, and v1's through
# UnlimitedOcr): routers and fused experts by class name.
ROUTER_CLASSES = ("DeepseekOcr2TextTopkRouter", "UnlimitedOcrTextTopkRouter")
EXPERTS_CLASSES = ("DeepseekOcr2TextExperts", "UnlimitedOcrTextExperts")


@dataclass
class ExpertSlices:
    """For one MoE layer: per expert, the (parameter, index) pairs that hold its weights."""

    layer: str
    num_experts: int
    slices: list[list[tuple[torch.nn.Parameter, tuple]]] = field(default_factory=list)


def _lora_pairs(wrapper, experts: int) -> list[list[tuple[torch.nn.Parameter, tuple]]]:
    pairs: list[list[tuple[torch.nn.Parameter, tuple]]] = [[] for _ in range(experts)]
    for name in wrapper.lora_A:
        a, b = wrapper.lora_A[name].weight, wrapper.lora_B[name].weight
        rank = wrapper.r[name]
        for e in range(experts):
            pairs[e].append((a, (slice(e * rank, (e + 1) * rank),)))
            pairs[e].append((b, (slice(None), slice(e, None, experts))))
    return pairs


def expert_slices(model) -> list[ExpertSlices]:
    """The trainable weights of every routed expert, per MoE layer (empty when none train)."""
    layers = []
    for name, module in model.named_modules():
        if type(module).__name__ not in EXPERTS_CLASSES:
            continue
        experts = module.num_experts
        entry = ExpertSlices(name, experts, [[] for _ in range(experts)])
        for parameter in (module.gate_up_proj, module.down_proj):
            if parameter.requires_grad:
                for e in range(experts):
                    entry.slices[e].append((parameter, (e,)))
        layers.append(entry)
    # LoRA wrappers of the fused tensors sit on the experts module's parents' path.
    for name, module in model.named_modules():
        if type(module).__name__ == "ParamWrapper" and module.parameter_name in (
                "gate_up_proj", "down_proj") and module.num_experts > 1:
            owner = next((e for e in layers if name.startswith(e.layer.rsplit(".experts", 1)[0])),
                         None)
            if owner is not None:
                for e, pairs in enumerate(_lora_pairs(module, owner.num_experts)):
                    owner.slices[e].extend(pairs)
    return [layer for layer in layers if any(layer.slices)]


def router_parameters(model) -> list[torch.nn.Parameter]:
    """What trains the routers: their weights (full fine-tuning) or their LoRA matrices."""
    found = []
    for module in model.modules():
        if type(module).__name__ in ROUTER_CLASSES and module.weight.requires_grad:
            found.append(module.weight)
        elif type(module).__name__ == "ParamWrapper" and module.parameter_name == "weight" \
                and type(module.get_base_layer()).__name__ in ROUTER_CLASSES:
            for adapter in module.lora_A:
                found += [module.lora_A[adapter].weight, module.lora_B[adapter].weight]
    return found


def routers(model) -> list[tuple[str, torch.nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if type(m).__name__ in ROUTER_CLASSES]


class RouterMonitor:
    """Captures each router's output in the forward pass: for auxiliary losses (with grad) and
    for observability (token share per expert, router entropy), accumulated between reads.

    A router runs more often than the training forward passes: in evaluation, and in backward
    under gradient checkpointing, which re-runs each checkpointed decoder layer (the router
    inside it, forward hooks included) to recompute its activations. The loop records neither:
    it runs both inside :meth:`paused`. Recorded there, the recomputed outputs would be counted
    twice and read by the next forward's router losses (of another micro-batch's length).
    """

    def __init__(self, model):
        self.layers = routers(model)
        self.keep_outputs = False  # only the router losses need the logits with their graph
        self.enabled = True  # see paused()
        self.outputs: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._counts = {name: None for name, _ in self.layers}
        self._entropy = {name: [0.0, 0] for name, _ in self.layers}
        self._handles = [module.register_forward_hook(self._hook(name))
                         for name, module in self.layers]

    def _hook(self, name: str):
        def capture(module, inputs, output):
            if not self.enabled:
                return
            logits, _, indices = output
            if self.keep_outputs:
                self.outputs.append((logits, indices))
            with torch.no_grad():
                counts = torch.bincount(indices.flatten(), minlength=module.num_experts).cpu()
                self._counts[name] = counts if self._counts[name] is None else (
                    self._counts[name] + counts)
                probs = logits.float().softmax(-1)
                entropy = -(probs * probs.clamp_min(1e-9).log()).sum(-1)
                self._entropy[name][0] += float(entropy.sum())
                self._entropy[name][1] += entropy.numel()
        return capture

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Nothing is recorded inside (evaluation, backward); then as before."""
        enabled, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = enabled

    def take_outputs(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        outputs, self.outputs = self.outputs, []
        return outputs

    def read_stats(self) -> dict[str, dict]:
        """Per MoE layer: the share of routed tokens per expert, the mean router entropy and
        how many token positions (padding included) were routed since the last read."""
        stats = {}
        for name, counts in self._counts.items():
            if counts is None:
                continue
            total = max(int(counts.sum()), 1)
            total_entropy, tokens = self._entropy[name]
            stats[name.removeprefix("base_model.model.").removesuffix(".base_layer")] = {
                "expert_share": [round(int(c) / total, 4) for c in counts],
                "router_entropy": round(total_entropy / max(tokens, 1), 4),
                "routed_tokens": tokens}
        self._counts = {name: None for name in self._counts}
        self._entropy = {name: [0.0, 0] for name in self._entropy}
        return stats

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()
