"""Teacher-forced loss over a dataset of encoded examples: the evaluation's loss and
perplexity, during training (the probe) and after it (``deepsynth evaluate``)."""

from __future__ import annotations

import torch

from deepsynth.training.data import Collator
from deepsynth.training.pages import vision_inputs


@torch.no_grad()
def mean_loss(model, dataset, collate: Collator, batch_size: int, dtype: torch.dtype) -> float:
    """Teacher-forced loss over every label token of ``dataset`` (token-weighted)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "labels")}
        inputs.update(vision_inputs(batch, dtype, device))
        tokens = int((batch["labels"][:, 1:] != -100).sum())
        total += float(model(**inputs).loss) * tokens
        count += tokens
    return total / max(count, 1)
