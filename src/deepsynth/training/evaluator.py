"""Evaluation during training on a fixed probe subset: loss, perplexity, ROUGE and samples
(written to the run folder's evaluation samples)."""

from __future__ import annotations

import math

import torch

from deepsynth.evaluation.evaluate import limit_metrics, scored_samples
from deepsynth.evaluation.generation import generate_summaries
from deepsynth.evaluation.loss import mean_loss
from deepsynth.evaluation.rouge import mean_rouge
from deepsynth.training.data import Collator, PageDataset
from deepsynth.training.run_folder import RunFolder


class ProbeEvaluator:
    def __init__(self, probe: PageDataset, tokenizer, collate: Collator, batch_size: int,
                 max_new_tokens: int, num_beams: int):
        self.probe, self.tokenizer, self.collate = probe, tokenizer, collate
        self.batch_size, self.max_new_tokens, self.num_beams = batch_size, max_new_tokens, \
            num_beams

    def run(self, model, dtype: torch.dtype, run: RunFolder, step: int) -> dict:
        items = [self.probe[i] for i in range(len(self.probe))]
        loss = mean_loss(model, self.probe, self.collate, self.batch_size, dtype)
        generated = generate_summaries(
            model, self.tokenizer, self.probe.encoder, items, self.batch_size,
            self.max_new_tokens, self.num_beams, dtype)
        samples = scored_samples(items, generated)
        run.write_eval_samples(step, samples)
        scores = mean_rouge([(s["reference"], s["prediction"]) for s in samples])
        return {"eval_loss": round(loss, 6), "perplexity": round(math.exp(min(loss, 50)), 4),
                **scores, "samples": len(samples),
                **limit_metrics(generated, self.max_new_tokens)}
