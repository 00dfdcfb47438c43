"""Generating summaries from page images (or, for chat examples, the last assistant turn
from the turns before it) in batches."""

from __future__ import annotations

from collections import defaultdict

import torch

from deepsynth.training.data import ExampleEncoder, pixel_values


@torch.no_grad()
def generate_summaries(model, tokenizer, encoder: ExampleEncoder, items: list[dict],
                       batch_size: int, max_new_tokens: int, num_beams: int = 1,
                       dtype: torch.dtype = torch.float32) -> list[str]:
    """``items``: dicts with ``pages`` (uint8 [1, H, W] tensors), or ``prompt_ids``.

    Items are grouped by prompt length so no batch needs padding (the prompt length depends
    only on the page count); outputs come back in input order.
    """
    model.eval()
    groups: dict[int, list[int]] = defaultdict(list)
    # Chat examples carry their prompt; page examples build it from their page count.
    prefixes = [item.get("prompt_ids") or encoder.prefix(len(item["pages"]))
                for item in items]
    for index, prefix in enumerate(prefixes):
        groups[len(prefix)].append(index)
    outputs: list[str] = [""] * len(items)
    device = next(model.parameters()).device
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            ids = torch.tensor([prefixes[i] for i in chunk], device=device)
            kwargs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            pages = [p for i in chunk for p in items[i]["pages"]]
            if pages:
                kwargs["pixel_values"] = pixel_values(torch.stack(pages).unsqueeze(1)
                                                      .to(device), dtype)
            generated = model.generate(**kwargs, max_new_tokens=max_new_tokens,
                                       num_beams=num_beams, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id,
                                       eos_token_id=tokenizer.eos_token_id)
            for i, row in zip(chunk, generated[:, ids.shape[1]:], strict=True):
                outputs[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    return outputs
