"""Generating summaries from page images (or, for chat examples, the last assistant turn
from the turns before it) in batches, with which of them stopped at the length limit; and
that limit's default, from the lengths of the training summaries."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from deepsynth.training.data import ExampleEncoder
from deepsynth.training.pages import stack_pages, vision_inputs

LIMIT_PERCENTILE = 95


def summary_length_limit(tokenizer, summaries: Sequence[str], cap: int) -> int:
    """The default ``max_new_tokens``: the 95th percentile (nearest rank) of the summaries'
    token lengths, EOS included, at most ``cap``. 64 tokens, the old fixed default, cut
    summaries short and lowered ROUGE; this leaves room for all but the longest 5 %."""
    if not summaries:
        return cap
    lengths = sorted(len(ids) + 1 for ids in tokenizer(
        list(summaries), add_special_tokens=False).input_ids)
    rank = math.ceil(LIMIT_PERCENTILE / 100 * len(lengths))
    return max(1, min(lengths[rank - 1], cap))


@dataclass
class Generated:
    """Summaries in input order; ``hit_limit[i]``: the i-th stopped at ``max_new_tokens``
    without an end-of-sequence token, so it was probably cut short."""

    texts: list[str]
    hit_limit: list[bool]

    @property
    def hits(self) -> int:
        return sum(self.hit_limit)

    def hit_share(self) -> float:
        return round(self.hits / max(len(self.texts), 1), 4)


def _hit_limit(row: torch.Tensor, max_new_tokens: int, eos_token_id: int | None) -> bool:
    # A finished row holds its EOS (then padding); only a row cut by the limit has none.
    return len(row) >= max_new_tokens and (eos_token_id is None
                                           or not bool((row == eos_token_id).any()))


@torch.no_grad()
def generate_summaries(model, tokenizer, encoder: ExampleEncoder, items: list[dict],
                       batch_size: int, max_new_tokens: int, num_beams: int = 1,
                       dtype: torch.dtype = torch.float32) -> Generated:
    """``items``: dicts with ``pages`` (uint8 [H, W] tensors) and ``page_tokens`` (and
    crops, as :class:`deepsynth.training.pages.PageFormat` prepares them), or ``prompt_ids``.

    Items are grouped by prompt length so no batch needs padding (the prompt length depends
    only on the pages' image tokens); outputs come back in input order.
    """
    model.eval()
    groups: dict[int, list[int]] = defaultdict(list)
    # Chat examples carry their prompt; page examples build it from their pages' tokens.
    prefixes = [item.get("prompt_ids") or encoder.prefix(item.get("page_tokens")
                                                         or len(item["pages"]))
                for item in items]
    for index, prefix in enumerate(prefixes):
        groups[len(prefix)].append(index)
    outputs = Generated([""] * len(items), [False] * len(items))
    device = next(model.parameters()).device
    for indices in groups.values():
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            ids = torch.tensor([prefixes[i] for i in chunk], device=device)
            kwargs = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
            kwargs.update(vision_inputs(stack_pages([items[i] for i in chunk]), dtype, device))
            generated = model.generate(**kwargs, max_new_tokens=max_new_tokens,
                                       num_beams=num_beams, do_sample=False,
                                       pad_token_id=tokenizer.pad_token_id,
                                       eos_token_id=tokenizer.eos_token_id)
            for i, row in zip(chunk, generated[:, ids.shape[1]:], strict=True):
                outputs.texts[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
                outputs.hit_limit[i] = _hit_limit(row, max_new_tokens, tokenizer.eos_token_id)
    return outputs
