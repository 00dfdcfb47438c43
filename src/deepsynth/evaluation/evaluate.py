"""``deepsynth evaluate``: a trained model against a dataset split.

Batched generation (greedy or beam), ROUGE-1/2/L with a tokenizer that keeps every script,
teacher-forced loss and perplexity, a samples file and the best and worst cases. Offline:
``evaluate``'s ROUGE downloads code from the Hub at run time, so ``rouge-score`` is used.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from deepsynth.atomic_files import write_json_atomic
from deepsynth.config.training_presets import task_kind
from deepsynth.errors import DatasetDamaged, DeepSynthError
from deepsynth.evaluation.generation import Generated, generate_summaries
from deepsynth.evaluation.loss import mean_loss
from deepsynth.evaluation.rouge import mean_rouge, rouge
from deepsynth.models.model_info import read_info
from deepsynth.models.registry import LoadedModel, load_model
from deepsynth.training.data import Collator, ExampleEncoder, PageDataset, load_split
from deepsynth.training.pages import PageFormat
from deepsynth.training.run_folder import CONFIG_NAME

CASES = 3
# For a model without a recorded limit (not trained by DeepSynth, or before it recorded one).
FALLBACK_MAX_NEW_TOKENS = 64


def model_settings(model_dir: str) -> dict:
    """What the model was trained with (prompt, max_length, trainer type, image mode, the
    summary length limit its evaluations used), if DeepSynth did."""
    info = read_info(Path(model_dir))
    return {"prompt": info.get("prompt", "Summarize this document."),
            "max_length": info.get("max_length", 512),
            "trainer_type": info.get("trainer_type", "production"),
            "image_mode": info.get("image_mode", "global"),
            "max_new_tokens": trained_max_new_tokens(model_dir)}


def trained_max_new_tokens(model_dir: str) -> int:
    """``max_new_tokens`` of the model's training config (resolved there: by default the 95th
    percentile of its training summaries), else :data:`FALLBACK_MAX_NEW_TOKENS`."""
    try:
        value = json.loads((Path(model_dir) / CONFIG_NAME).read_text()).get("max_new_tokens")
    except (OSError, ValueError, AttributeError):
        value = None
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
    return value if ok else FALLBACK_MAX_NEW_TOKENS


def encoder_for(loaded: LoadedModel, settings: dict) -> ExampleEncoder:
    if task_kind(settings["trainer_type"]) == "chat" or loaded.family == "causal_lm":
        raise DeepSynthError("this is a chat model (trainer_type generic): it reads "
                             "conversations, not pages; it is evaluated during training on "
                             "its eval_dataset")
    return ExampleEncoder(loaded.tokenizer, loaded.image_token_id, loaded.image_tokens_per_page,
                          settings["prompt"], settings["max_length"])


def page_format(loaded: LoadedModel, settings: dict) -> PageFormat:
    """Pages as the model was trained on them (its image mode)."""
    return PageFormat(loaded.family, loaded.image_size, settings["image_mode"])


def scored_samples(items: list[dict], generated: Generated) -> list[dict]:
    """Each prediction with its reference, ROUGE and whether it stopped at the limit."""
    return [{"id": item["id"], "reference": item["summary"], "prediction": prediction,
             **rouge(item["summary"], prediction), "hit_max_new_tokens": hit}
            for item, prediction, hit in zip(items, generated.texts, generated.hit_limit,
                                             strict=True)]


LIMIT_METRICS = ("max_new_tokens", "eval_hit_max_new_tokens", "eval_hit_max_new_tokens_share")


def limit_metrics(generated: Generated, max_new_tokens: int) -> dict:
    """How many predictions stopped at ``max_new_tokens`` (cut short, lowering ROUGE)."""
    return dict(zip(LIMIT_METRICS, (max_new_tokens, generated.hits, generated.hit_share()),
                    strict=True))


def pick_split(dataset: str, split: str | None, max_pages: int):
    for candidate in ([split] if split else ["validation", "test"]):
        try:
            return candidate, load_split(dataset, candidate, max_pages)
        except DatasetDamaged:
            raise  # the split exists; hiding it would blame a missing split
        except DeepSynthError:
            if split:
                raise
    raise DeepSynthError(f"{dataset} has neither a validation nor a test split; pass --split")


def evaluate_model(model: str, dataset: str, split: str | None = None,
                   max_samples: int | None = None, batch_size: int = 8, num_beams: int = 1,
                   max_new_tokens: int | None = None, max_pages: int = 4,
                   out: str | None = None, root: Path | None = None) -> dict:
    """``max_new_tokens`` None: the limit the model was trained with (see model_settings)."""
    loaded = load_model(model, root=root)
    settings = model_settings(model)
    max_new_tokens = max_new_tokens or settings["max_new_tokens"]
    encoder = encoder_for(loaded, settings)
    split, rows = pick_split(dataset, split, max_pages)
    data = PageDataset(rows, encoder, page_format(loaded, settings), limit=max_samples)
    if not len(data):
        raise DeepSynthError(f"split {split!r} of {dataset} has no rows to evaluate")
    dtype = next(loaded.model.parameters()).dtype
    loss = mean_loss(loaded.model, data, Collator(loaded.tokenizer.pad_token_id), batch_size,
                     dtype)
    items = [data[i] for i in range(len(data))]
    generated = generate_summaries(loaded.model, loaded.tokenizer, encoder, items, batch_size,
                                   max_new_tokens, num_beams, dtype)
    samples = scored_samples(items, generated)
    ranked = sorted(samples, key=lambda s: s["rougeL"])
    results = {"model": model, "dataset": dataset, "split": split, "samples": len(samples),
               "eval_loss": round(loss, 6), "perplexity": round(math.exp(min(loss, 50)), 4),
               **mean_rouge([(s["reference"], s["prediction"]) for s in samples]),
               **limit_metrics(generated, max_new_tokens),
               "num_beams": num_beams, "skipped_too_many_pages": rows.skipped_too_many_pages,
               "randomly_initialized_base": loaded.randomly_initialized,
               "best": ranked[::-1][:CASES], "worst": ranked[:CASES]}
    folder = Path(out) if out else Path(model) / "evaluation"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{split}-samples.jsonl", "w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(s, ensure_ascii=False) + "\n" for s in samples)
    write_json_atomic(folder / f"{split}-results.json", results)
    results["output"] = str(folder)
    return results
