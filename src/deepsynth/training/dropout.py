"""Residual dropout for the decoder while training: dropout on each layer's attention and MLP
outputs (GPT-2's ``resid_pdrop``), added with forward hooks.

transformers' ``deepseek_ocr2`` has only attention dropout, which forces scaled-dot-product
attention onto its slow path on CPU (half the speed here). This is the cheap source of
dropout that Bi-Drop's passes need to differ.
"""

from __future__ import annotations

from torch.nn import functional

# transformers names decoder layers *DecoderLayer (DeepseekOcr2TextDecoderLayer,
# Qwen2DecoderLayer, LlamaDecoderLayer...); DeepSeek-OCR's vision layers are encoder layers.
DECODER_LAYER_SUFFIX = "DecoderLayer"


class ResidualDropout:
    def __init__(self, model, rate: float):
        self.rate = rate
        self._handles = []
        for module in model.modules():
            if type(module).__name__.endswith(DECODER_LAYER_SUFFIX) and hasattr(
                    module, "self_attn") and hasattr(module, "mlp"):
                for part in (module.self_attn, module.mlp):
                    self._handles.append(part.register_forward_hook(self._drop))

    def _drop(self, module, inputs, output):
        if not module.training:
            return output
        if isinstance(output, tuple):
            return (functional.dropout(output[0], self.rate, training=True), *output[1:])
        return functional.dropout(output, self.rate, training=True)

    def close(self) -> None:
        for handle in self._handles:
            handle.remove()


def residual_dropout(model, rate: float) -> ResidualDropout | None:
    return ResidualDropout(model, rate) if rate > 0 else None

