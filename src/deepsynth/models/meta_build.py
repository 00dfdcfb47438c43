"""Models built on the meta device in a chosen dtype, without touching torch's default dtype.

``torch.set_default_dtype`` is process-wide. A service builds models in request threads (the
estimator, random-weight bases) beside jobs that are training: switching the default there
makes the other thread's new tensors half precision mid-step ("Input type (BFloat16) and bias
type (float) should be the same"). So a model is built under whatever default is current and
each floating parameter is then given its dtype explicitly: the one asked for, or float32 for
what the class declares it keeps so (``_keep_in_fp32_modules_strict``: the MoE router), as
transformers keeps them when it loads in half precision. The result does not depend on the
default dtype at the moment of the build.
"""

from __future__ import annotations

from collections.abc import Callable


def keeps_float32(model, name: str) -> bool:
    """Whether parameter ``name`` is one the model's class keeps in float32."""
    kept = getattr(model, "_keep_in_fp32_modules_strict", None) or ()
    return any(name == entry or name.endswith("." + entry) for entry in kept)


def build_on_meta(factory: Callable[[], object], dtype):
    """``factory()`` called on the meta device; its floating parameters in ``dtype`` (those
    the class keeps in float32 stay float32). Meta tensors hold no data: the casts are free."""
    import torch

    with torch.device("meta"):
        model = factory()
    for name, parameter in model.named_parameters():
        if not parameter.is_floating_point():
            continue
        wanted = torch.float32 if keeps_float32(model, name) else dtype
        if parameter.dtype != wanted:
            parameter.data = parameter.data.to(wanted)
    return model
