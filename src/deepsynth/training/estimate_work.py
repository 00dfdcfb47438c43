"""The floating-point work and memory traffic of one optimizer step, for the step time.

Forward work is two operations per weight each token passes through (the routed experts a
token is sent to, not all of them) plus attention's; backward costs one forward for the
input gradients and another for the weight gradients when the decoder trains in full
(adapters: only the first); gradient checkpointing adds a forward. The vision tower runs
forward only. Traffic: every weight read in each forward and backward, and AdamW reading
and writing its parameters, gradients and states.
"""

from __future__ import annotations

from deepsynth.config.training import TrainingConfig
from deepsynth.training.estimate_model import ModelFacts
from deepsynth.training.estimate_time import StepWork

ADAMW_BYTES = 28  # per float32 trainable: read weight, gradient, 2 states; write weight, 2


def decoder_flops(facts: ModelFacts, tokens: int) -> float:
    """Forward FLOPs of the decoder and output head for one sequence of ``tokens``."""
    text = facts.text
    hidden, dim = text["hidden"], text["head_dim"]
    attention = hidden * dim * (2 * text["heads"] + 2 * text["kv_heads"])
    per_token = 0.0
    for kind in text["mlp_layer_types"]:
        if kind == "sparse":
            inner = text["moe_intermediate"]
            mlp = 3 * hidden * inner * (text["top_k"] + text["shared_experts"]) \
                + hidden * text["experts"]
        else:
            mlp = 3 * hidden * text["intermediate"]
        # causal attention: each token attends to half the sequence on average
        per_token += 2 * (attention + mlp) + 2 * tokens * text["heads"] * dim
    per_token += 2 * hidden * text["vocab"]
    return per_token * tokens


def vision_flops(facts: ModelFacts, pages: int) -> float:
    """Forward FLOPs of the SAM encoder and the second vision encoder for ``pages`` pages,
    each a global view and, in image mode crops, its local crops."""
    if not facts.vision or not pages:
        return 0.0
    return pages * sum(_view_flops(facts.vision, patches) for patches in facts.view_patches)


def _view_flops(vision: dict, patches: int) -> float:
    width = vision["sam_hidden"]
    layers, global_layers = vision["sam_layers"], vision["global_layers"]
    sam = 2 * patches * layers * (4 * width * width + 2 * width * vision["sam_mlp"])
    window = vision["window"] ** 2
    sam += 4 * patches * width * (global_layers * patches + (layers - global_layers) * window)
    features = patches // 16  # SAM's neck downsamples 4x each way
    # DeepSeek-OCR-2's encoder: the features, then as many queries; v1's CLIP: + a class token
    tokens = 2 * features if vision["encoder_queries"] else features + 1
    encoder_width = vision["encoder_hidden"]
    kv = vision["encoder_kv_heads"] / vision["encoder_heads"]
    per_layer = (2 + 2 * kv) * encoder_width ** 2 + vision["encoder_mlp_matrices"] * \
        encoder_width * vision["encoder_intermediate"]
    return sam + vision["encoder_layers"] * tokens * (2 * per_layer + 4 * tokens * encoder_width)


def step_work(config: TrainingConfig, facts: ModelFacts, tokens: int, batch: int) -> StepWork:
    schedule = config.schedule
    full = config.adapter.peft == "full"
    forward = batch * decoder_flops(facts, tokens)
    backward = forward * (2 if full else 1)
    recompute = forward if schedule.gradient_checkpointing else 0
    pages = batch * config.task.max_pages if facts.vision else 0
    micro = forward + backward + recompute + vision_flops(facts, pages)
    runs = schedule.gradient_accumulation_steps * config.moe.bidrop_passes
    decoder_weights = facts.weight_bytes * (1 - facts.vision_parameters / max(facts.parameters, 1))
    traffic = runs * (facts.weight_bytes + decoder_weights * (2 if full else 1)) \
        + facts.trainable * ADAMW_BYTES
    return StepWork(runs * micro, traffic)
