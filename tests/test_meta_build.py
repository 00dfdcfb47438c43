"""Models are built without switching torch's process-wide default dtype.

The estimator and the random-weight bases build models in a service's request threads beside
running jobs; a switched default there made a training job's tensors bfloat16 mid-step (a
browser test's job failed with "Input type (c10::BFloat16) and bias type (float) should be
the same"). Checked deterministically: a build must not call ``torch.set_default_dtype`` at
all, and its dtypes must not depend on the default current while it runs.
"""

from __future__ import annotations

import pytest
import torch

from deepsynth.models import tiny_chat
from deepsynth.models.random_spec import random_model
from deepsynth.models.registry import load_model
from deepsynth.training.estimate_model import build_meta


def refuse(dtype):
    raise AssertionError(f"torch.set_default_dtype({dtype}) called during a build")


@pytest.fixture
def default_dtype_untouchable(monkeypatch):
    monkeypatch.setattr(torch, "set_default_dtype", refuse)


def dtypes(model) -> dict[str, torch.dtype]:
    return {name: p.dtype for name, p in model.named_parameters()}


@pytest.mark.parametrize("spec", ["random:deepseek-ocr-2?layers=2", "random:deepseek-ocr?layers=2",
                                  "tiny-deepseek-ocr-2"])
def test_the_estimators_meta_build_leaves_the_default_dtype_alone(spec, root,
                                                                  default_dtype_untouchable):
    model, _, _ = build_meta(spec, root, False, torch.bfloat16)
    kinds = dtypes(model)
    routers = {n for n in kinds if n.endswith(".gate.weight")}
    assert routers and all(kinds[n] == torch.float32 for n in routers)
    assert all(d == torch.bfloat16 for n, d in kinds.items() if n not in routers)
    assert torch.get_default_dtype() == torch.float32


def test_a_chat_models_meta_build_leaves_the_default_dtype_alone(root, monkeypatch):
    load_model(tiny_chat.NAME, root=root)  # builds the tiny chat model's folder first
    monkeypatch.setattr(torch, "set_default_dtype", refuse)
    model, kind, _ = build_meta(tiny_chat.NAME, root, True, torch.bfloat16)
    assert kind == "causal_lm" and set(dtypes(model).values()) == {torch.bfloat16}


def test_meta_dtypes_do_not_depend_on_the_default_current_during_the_build(root):
    expected = dtypes(build_meta("random:deepseek-ocr-2?layers=1", root, False, torch.bfloat16)[0])
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float16)  # as another thread's half-precision load leaves it
    try:
        built = build_meta("random:deepseek-ocr-2?layers=1", root, False, torch.bfloat16)[0]
    finally:
        torch.set_default_dtype(previous)
    assert dtypes(built) == expected


def test_a_random_base_is_built_without_switching_the_default(root, monkeypatch):
    tokenizer = load_model("tiny-deepseek-ocr-2", root=root).tokenizer
    monkeypatch.setattr(torch, "set_default_dtype", refuse)
    model = random_model("deepseek-ocr-2", 1, tokenizer, torch.float32)
    kinds = dtypes(model)
    assert set(kinds.values()) == {torch.float32}
    assert model.model.language_model.layers[0].self_attn.q_proj.weight.abs().sum() > 0
