"""The activations a training step keeps: what autograd saves for backward in each decoder
layer, and the transient peaks (the frozen vision tower's forward, the loss over the
vocabulary), from the layer shapes of transformers' ``deepseek_ocr2`` (and the Llama-like
decoder of a causal LM).

Read off the modeling code and PEFT's LoRA layers, and checked against what autograd saved
in real steps (``benchmarks/bench_memory_estimate.py``): under autocast a frozen half-precision
base saves no weight copies, but each LoRA adapter casts its input to float32 (and saves the
dropout mask), then to the compute dtype (saved again); RMSNorm saves a float32 copy of its
input; the routed experts keep their gate/up output, the activation and the down output of
every (token, expert) pair. ``N`` is tokens in the micro-batch, ``S = N * top_k`` the
token-expert pairs.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from deepsynth.training.estimate_model import Adapted, ModelFacts

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")


@dataclass(frozen=True)
class Numerics:
    """Bytes per element where it matters, and the device's habits."""

    compute: int  # matrix outputs: 2 under bf16/fp16 autocast (or a half base), else 4
    residual: int  # the residual stream: the embeddings' dtype
    weights: int  # frozen decoder weights as loaded (experts run in their own dtype)
    autocast: bool
    cpu: bool  # CPU dropout keeps a mask of the input's dtype; CUDA one byte
    lora_dropout: bool
    hidden_dropout: bool
    attention_dropout: bool
    full: bool  # the whole decoder trains (its weights are float32 masters)
    quantized: bool = False  # QLoRA: the linear layers but the head are 4-bit (bitsandbytes)

    @property
    def casts(self) -> bool:
        """Whether autocast copies the residual stream's activations into each matmul."""
        return self.autocast and self.compute != self.residual

    def mask(self, dtype_bytes: int) -> int:
        return dtype_bytes if self.cpu else 1


def _norm(n: int, hidden: int, num: Numerics, input_grad: bool) -> int:
    """RMSNorm: a float32 copy of its input (for the variance), its rsqrt, and the normed
    values when its weight trains."""
    saved = (n * hidden * 4 + n * 4) if input_grad or num.full else 0
    return saved + (n * hidden * num.residual if num.full else 0)


def _adapter(n: int, adapted: Adapted, num: Numerics, input_grad: bool) -> int:
    """A LoRA-family adapter on a linear layer: its input cast to float32 (the adapter's
    dtype), the dropout mask, the input of lora_A in the compute dtype, lora_A's output.
    AdaLoRA keeps its product once more; DoRA the base and adapter outputs and two
    weight-sized products (for its norm)."""
    width = adapted.in_features
    saved = n * adapted.rank * num.compute
    if num.compute != 4 or num.lora_dropout:  # lora_A saves a new tensor, not x itself
        saved += n * width * num.compute
    if num.lora_dropout and input_grad:
        saved += n * width * num.mask(4)
    if adapted.adalora:  # the SVD-form product before its division by the rank budget
        saved += n * adapted.out_features * num.compute
    if adapted.dora:  # base and adapter outputs; the weight through the adapter (an identity in)
        saved += (2 * n * adapted.out_features + width * width
                  + width * adapted.out_features) * num.compute
    return saved


def _linear(n: int, width: int, out: int, adapted: Adapted | None, num: Numerics,
            input_grad: bool, first: bool = True, kept: bool = False) -> int:
    """A linear layer's saved tensors: when its weight trains, its input (cast to the compute
    dtype: a copy per layer; uncast, one tensor shared by the layers reading it, counted by
    the ``first``; ``kept``: already saved by what made it) and, for float32 weights under
    autocast, the weight's half-precision copy; and its adapter's."""
    saved = 0
    if num.full:
        if not kept and (num.casts or first):
            saved += n * width * num.compute
        if num.autocast:
            saved += width * out * num.compute
    elif input_grad and num.autocast and num.weights == 4 and not num.quantized:
        saved += width * out * num.compute  # a frozen float32 weight: autocast's half copy
    # A 4-bit layer (QLoRA) keeps nothing of its own: bitsandbytes' MatMul4Bit saves only
    # its packed weight (already counted) and dequantizes it again in backward.
    if adapted is not None:
        saved += _adapter(n, adapted, num, input_grad)
    return saved


def _attention(n: int, tokens: int, batch: int, text: dict, adapters: dict,
               num: Numerics, input_grad: bool) -> int:
    hidden, heads, kv, dim = text["hidden"], text["heads"], text["kv_heads"], text["head_dim"]
    widths = {"q_proj": heads * dim, "k_proj": kv * dim, "v_proj": kv * dim,
              "o_proj": hidden}
    # q, k and v read the normed input; o_proj reads attention's output, which the
    # attention keeps anyway (so o_proj's input is never a second copy)
    saved = sum(_linear(n, hidden, widths[name], adapters.get(f"self_attn.{name}"), num,
                        input_grad, first=name == "q_proj") for name in ATTENTION[:3])
    saved += _linear(n, heads * dim, hidden, adapters.get("self_attn.o_proj"), num, True,
                     first=False, kept=True)
    # scaled_dot_product_attention keeps q and k (after RoPE), v, its output and the
    # log-sum-exp; with dropout on the CPU it falls back to the math path, which keeps the
    # attention probabilities and the mask (heads x tokens^2 each).
    saved += n * (2 * heads + 2 * kv) * dim * num.compute + batch * heads * tokens * 4
    if num.attention_dropout and num.cpu:
        saved += batch * heads * tokens * tokens * (num.compute + num.mask(num.compute))
    if num.hidden_dropout:
        saved += n * hidden * num.mask(num.compute)
    return saved


def _gated_mlp(n: int, hidden: int, inner: int, prefix: str, adapters: dict,
               num: Numerics, first: bool = True) -> int:
    """gate/up/down with SiLU: the gate output (SiLU's input), SiLU's output and up's."""
    saved = _linear(n, hidden, inner, adapters.get(f"{prefix}gate_proj"), num, True, first)
    saved += _linear(n, hidden, inner, adapters.get(f"{prefix}up_proj"), num, True, False)
    saved += 3 * n * inner * num.compute
    return saved + _linear(n, inner, hidden, adapters.get(f"{prefix}down_proj"), num, True)


def _moe(n: int, text: dict, adapters: dict, num: Numerics) -> int:
    hidden, experts, top_k = text["hidden"], text["experts"], text["top_k"]
    inner, pairs = text["moe_intermediate"], n * top_k
    expert_bytes = 4 if num.full else num.weights  # grouped_mm runs in the experts' dtype
    router_trains = num.full or "mlp.gate.weight" in adapters
    saved = n * experts * 4 + n * top_k * 8  # softmax scores, chosen experts
    if router_trains:  # its input: cast by autocast, else the normed input itself
        saved += n * hidden * (num.compute if num.autocast else 4)
    # per (token, expert) pair: the gate/up output, SiLU's output, the down output, routing
    saved += pairs * (3 * inner + hidden) * expert_bytes + pairs * (8 + 4 + 8)
    fused = [adapters[k] for k in ("mlp.experts.gate_up_proj", "mlp.experts.down_proj")
             if k in adapters]
    if num.full or fused:  # the weights train: grouped_mm keeps its inputs too
        saved += pairs * (hidden + inner) * expert_bytes
    # LoRA on a fused parameter folds W + BA into a new tensor the size of W, every forward
    # (from the factors cast to W's dtype)
    saved += sum((a.fused + a.adapter_parameters) * expert_bytes for a in fused)
    shared = inner * text["shared_experts"]
    saved += _gated_mlp(n, hidden, shared, "mlp.shared_experts.", adapters, num,
                        first=not router_trains)
    return saved


def layer_tape(facts: ModelFacts, layer: int, tokens: int, batch: int, num: Numerics) -> int:
    """Bytes autograd keeps for one decoder layer of a micro-batch."""
    text, n = facts.text, tokens * batch
    adapters = {a.name: a for a in facts.adapted if a.layer == layer}
    # Under adapters the first layer's input needs no gradient: its norm keeps nothing and
    # its adapters no dropout masks.
    input_grad = num.full or layer > 0
    saved = _norm(n, text["hidden"], num, input_grad)
    saved += _attention(n, tokens, batch, text, adapters, num, input_grad)
    saved += _norm(n, text["hidden"], num, True)
    if text["mlp_layer_types"][layer] == "sparse":
        saved += _moe(n, text, adapters, num)
    else:
        saved += _gated_mlp(n, text["hidden"], text["intermediate"], "mlp.", adapters, num)
    if num.hidden_dropout:
        saved += n * text["hidden"] * num.mask(num.compute)
    return saved


def head_tape(facts: ModelFacts, n: int, num: Numerics) -> int:
    """The final norm, the output head and log-softmax's float32 output over the vocabulary."""
    text = facts.text
    saved = _norm(n, text["hidden"], num, True) + n * text["vocab"] * 4
    saved += 2 * n * text["head_dim"] * num.compute  # RoPE's cos and sin, shared by layers
    if num.full or (num.autocast and num.weights == 4):  # QLoRA's head is not quantized
        saved += _linear(n, text["hidden"], text["vocab"], None,
                         replace(num, quantized=False), True)
    return saved + n * 16  # labels, positions


def loss_transient(facts: ModelFacts, n: int, num: Numerics) -> int:
    """Beyond the saved log-softmax: at the start of backward, the loss's gradient and
    log-softmax's, float32 over the vocabulary. (At the end of forward the logits in the
    compute dtype and their float32 copies are alive instead: as much or less.)"""
    return n * facts.text["vocab"] * (4 + 4)


def vision_transient(facts: ModelFacts, pages: int, num: Numerics) -> int:
    """The frozen vision tower's forward keeps nothing, but its global-attention layers build
    a relative-position bias of heads x patches^2 per view, and on the CPU the attention with
    that bias materializes the weights as well (measured: 0.93 GiB a 1024 px page in bf16).
    A page's views (global and crops) go through SAM together."""
    vision = facts.vision
    if not vision:
        return 0
    heads, width = vision["sam_heads"], vision["sam_hidden"]
    views = facts.view_patches
    bias = heads * sum(patches * patches for patches in views) * num.compute
    return pages * ((2 if num.cpu else 1) * bias
                    + sum(views) * width * (4 * num.compute + 44))


def checkpointed_tape(facts: ModelFacts, tokens: int, batch: int, num: Numerics) -> int:
    """With gradient checkpointing each decoder layer keeps only its input."""
    return facts.layers * tokens * batch * facts.text["hidden"] * num.residual
