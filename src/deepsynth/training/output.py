"""The final model folder: weights (full model, or adapter + base reference), tokenizer,
model card, training config and the metadata DeepSynth needs to reload it."""

from __future__ import annotations

import json
from pathlib import Path

from deepsynth.atomic_files import write_json_atomic
from deepsynth.config import to_dict
from deepsynth.config.training import TrainingConfig, train_command
from deepsynth.data.manifest import package_versions
from deepsynth.models import unlimited_ocr
from deepsynth.models.adapters import save_adapter
from deepsynth.models.model_info import write_info
from deepsynth.models.registry import LoadedModel
from deepsynth.training.run_folder import CONFIG_NAME

# Per task: the model card's tags and its first sentence.
_CARD_HEADINGS = {
    "chat": ("[deepsynth, chat, causal-lm]", "A causal language model fine-tuned by DeepSynth "
             "on chat conversations (labels on assistant tokens only)."),
    "ocr": ("[deepsynth, deepseek-ocr, summarization, document-images]", "A "
            "DeepSeek-OCR-family model fine-tuned by DeepSynth to summarize a document from "
            "images of its pages."),
}


def model_card(info: dict, metrics: dict, config: TrainingConfig) -> str:
    warning = (f"\n**This model started from RANDOM weights (`{info['base_model']}`, not "
               f"pretrained): it knows only what it was trained on here.**\n"
               if info["randomly_initialized"] else "")
    rows = "\n".join(f"| {k} | {v} |" for k, v in to_dict(config).items())
    tags, what = _CARD_HEADINGS[config.task.kind]
    return f"""---
tags: {tags}
---

# {Path(config.task.out).name}

{what} Base model: `{info['base_model']}`; method: `{info['peft']}`; dataset:
`{config.task.dataset}`.
{warning}
## Metrics

```json
{json.dumps(metrics, indent=2)}
```

## Hyperparameters

| option | value |
|---|---|
{rows}
"""


def save_final_model(folder: Path, model, loaded: LoadedModel, config: TrainingConfig,
                     metrics: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    info = {"family": loaded.family, "image_size": loaded.image_size,
            "randomly_initialized": loaded.randomly_initialized,
            "base_model": loaded.name, "peft": config.adapter.peft, "prompt": config.task.prompt,
            "max_length": config.task.max_length, "trainer_type": config.task.trainer_type,
            "image_mode": config.task.image_mode,
            "versions": package_versions()}
    window = unlimited_ocr.window(model)
    if window is not None:  # generation slides it: evaluate and summarize read it here
        info["sliding_window"] = window
    if config.adapter.peft == "full":
        model.save_pretrained(folder)
    else:
        save_adapter(model, folder)
        info["adapter"] = True
    loaded.tokenizer.save_pretrained(folder)
    write_info(folder, info)
    write_json_atomic(folder / CONFIG_NAME, to_dict(config))
    (folder / "README.md").write_text(model_card(info, metrics, config) + "\n## Reproduce\n\n"
                                      f"```\n{train_command(config)}\n```\n")
    return folder
