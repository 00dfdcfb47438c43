"""Evaluation during training on a fixed probe subset: loss, perplexity, ROUGE and samples."""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from deepsynth.config.training import TrainingConfig
from deepsynth.evaluation.generation import generate_summaries
from deepsynth.evaluation.rouge import mean_rouge, rouge
from deepsynth.training.data import Collator, PageDataset, pixel_values


@torch.no_grad()
def mean_loss(model, dataset: PageDataset, collate: Collator, batch_size: int,
              dtype: torch.dtype) -> float:
    """Teacher-forced loss over every label token of ``dataset`` (token-weighted)."""
    model.eval()
    device = next(model.parameters()).device
    total, count = 0.0, 0
    for start in range(0, len(dataset), batch_size):
        batch = collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask", "labels")}
        if "pages" in batch:
            inputs["pixel_values"] = pixel_values(batch["pages"].to(device), dtype)
        tokens = int((batch["labels"][:, 1:] != -100).sum())
        total += float(model(**inputs).loss) * tokens
        count += tokens
    return total / max(count, 1)


class ProbeEvaluator:
    def __init__(self, probe: PageDataset, tokenizer, collate: Collator, config: TrainingConfig):
        self.probe, self.tokenizer, self.collate, self.config = probe, tokenizer, collate, config

    def run(self, model, dtype: torch.dtype, run_dir: Path, step: int) -> dict:
        items = [self.probe[i] for i in range(len(self.probe))]
        loss = mean_loss(model, self.probe, self.collate, self.config.batch_size, dtype)
        predictions = generate_summaries(
            model, self.tokenizer, self.probe.encoder, items, self.config.batch_size,
            self.config.max_new_tokens, self.config.num_beams, dtype)
        samples = [{"id": item["id"], "reference": item["summary"], "prediction": prediction,
                    **rouge(item["summary"], prediction)}
                   for item, prediction in zip(items, predictions, strict=True)]
        folder = Path(run_dir) / "eval_samples"
        folder.mkdir(exist_ok=True)
        (folder / f"step-{step:06d}.json").write_text(json.dumps(samples, indent=1,
                                                                ensure_ascii=False))
        scores = mean_rouge([(s["reference"], s["prediction"]) for s in samples])
        return {"eval_loss": round(loss, 6), "perplexity": round(math.exp(min(loss, 50)), 4),
                **scores, "samples": len(samples)}
