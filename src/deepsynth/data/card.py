"""The dataset card (README.md): the front matter ``load_dataset`` reads, and the statistics."""

from __future__ import annotations

from pathlib import Path

import yaml

from deepsynth.atomic_files import write_text_atomic
from deepsynth.config import RenderConfig, from_dict
from deepsynth.config.dataset import VARIETY_RANGES, VarietyConfig, parse_page_size
from deepsynth.data.manifest import COUNT_NAMES, MANIFEST_NAME, Manifest
from deepsynth.data.presets import PRESETS, BenchmarkPreset
from deepsynth.data.shards import card_features
from deepsynth.render.legibility import LOSSY_RATIO, UNREADABLE_RATIO, dataset_warnings
from deepsynth.render.tokens import IMAGE_MODES, vision_token_table

COUNT_HELP = {
    "read": "rows read from the source", "written": "rows written",
    "duplicates": "dropped: same normalized text earlier in the split",
    "leaked": "dropped: text also in an evaluation split",
    "empty": "dropped: no text to draw (empty, whitespace or invisible characters)",
    "empty_summary": "dropped: empty summary (empty, whitespace or invisible characters)",
    "invalid": "skipped: unreadable row, or a field missing, null or not text",
    "truncated": "rows whose text did not all fit (see truncated_chars)",
    "missing_glyphs": "characters no font could draw",
    "rows_with_missing_glyphs": "rows with at least one such character",
    "pages": "page images",
    "lossy_pages": f"pages over {LOSSY_RATIO:g} text tokens per vision token (lossy)",
    "unreadable_pages": f"pages over {UNREADABLE_RATIO:g} text tokens per vision token "
                        "(likely unreadable)",
}


def _preset(source: str) -> BenchmarkPreset | None:
    if not source.startswith(("preset:", "builtin:")):
        return None
    return PRESETS.get(source.removeprefix("preset:").removeprefix("builtin:"))


def _license_line(source: str) -> str:
    preset = _preset(source)
    if preset is None:
        return "The license is that of the source corpus; check it before sharing this dataset."
    return f"Source corpus: {preset.title}; license: {preset.license}."


def _variety(render: dict) -> VarietyConfig:
    return from_dict(RenderConfig, render).variety


def _variety_text(render: dict) -> str:
    """The rendering-variety sentence of the card ("" without variety)."""
    vary = _variety(render)
    if not vary.enabled:
        return ""
    parts = [f"fonts {', '.join(vary.vary_fonts)}"] if vary.vary_fonts else []
    parts += [f"{name.replace('_', ' ')} {low}-{high}" for name in VARIETY_RANGES
              for low, high in [vary.range(name)] if low is not None]
    return (f"\nRendering variety: each row's style is sampled (seed {vary.vary_seed} and the "
            f"row id) from {'; '.join(parts)}, and recorded in its `render_params` column; "
            f"the fixed options above hold where no range is given.\n")


def front_matter(manifest: Manifest) -> dict:
    splits = [s for s in manifest.data["split_order"] if manifest.splits[s].shards]
    matter: dict = {
        "configs": [{"config_name": "default", "data_files": [
            {"split": s, "path": f"data/{s}-*.parquet"} for s in splits]}],
        "dataset_info": {
            "features": card_features(_variety(manifest.data["config"]["render"]).enabled),
            "splits": [{"name": s, "num_bytes": sum(x["bytes"] for x in manifest.splits[s].shards),
                        "num_examples": manifest.splits[s].rows} for s in splits],
        },
        "tags": ["deepsynth", "summarization", "document-images"],
        "task_categories": ["image-to-text", "summarization"],
    }
    preset = _preset(manifest.data["config"]["source"]["source"])
    if preset is not None:
        matter["license"] = preset.license_id
    return matter


def _stats_table(manifest: Manifest) -> str:
    splits = [s for s in manifest.data["split_order"]]
    lines = ["| count | " + " | ".join(splits) + " | meaning |",
             "|---|" + "---|" * len(splits) + "---|"]
    for name in COUNT_NAMES:
        values = " | ".join(str(manifest.splits[s].counts.get(name, 0)) for s in splits)
        lines.append(f"| {name} | {values} | {COUNT_HELP[name]} |")
    return "\n".join(lines)


def _vision_tokens(page_size: str) -> str:
    """Image tokens of one page for each model family and image mode."""
    lines = ["| model | " + " | ".join(f"`{mode}`" for mode in IMAGE_MODES) + " |",
             "|---|" + "---|" * len(IMAGE_MODES)]
    lines += [f"| {row['model']} | " + " | ".join(str(row[m]) for m in IMAGE_MODES) + " |"
              for row in vision_token_table(*parse_page_size(page_size))]
    return "\n".join(lines)


def _warnings(manifest: Manifest) -> str:
    found = dataset_warnings(manifest.totals())
    if not found:
        return ""
    return "## Warnings\n\n" + "\n".join(f"- {w['message']}" for w in found) + "\n\n"


def _percent(rate: float | None) -> str:
    return "—" if rate is None else f"{100 * rate:.1f}%"


def qa_table(report: dict) -> str:
    """The render QA report as a Markdown table (the card; ``deepsynth qa`` prints it)."""
    lines = ["| script | pages | characters | CER |", "|---|---|---|---|"]
    lines += [f"| {script} | {e['pages']} | {e['chars']} | {_percent(e['cer'])} |"
              for script, e in report["by_script"].items()]
    read = sum(e["pages"] for e in report["by_script"].values())
    chars = sum(e["chars"] for e in report["by_script"].values())
    lines.append(f"| overall | {read} | {chars} | {_percent(report['cer'])} |")
    text = "\n".join(lines)
    if report["not_read"]:
        text += "\n\nNot read (no Tesseract language pack): " + ", ".join(
            f"{script} ({count} pages)" for script, count in report["not_read"].items())
    if report["worst"]:
        text += "\n\nWorst pages: " + "; ".join(
            f"{w['split']} row {w['row']} (`{w['id']}`) page {w['page'] + 1}: "
            f"{_percent(w['cer'])}" for w in report["worst"])
    return text


def _qa(manifest: Manifest) -> str:
    report = manifest.data.get("qa")
    if not report:
        return ""
    return (f"## Render QA\n\n{report['sample']} of {report['of_pages']} pages (seed "
            f"{report['seed']}) read back with Tesseract; character error rate (CER) per "
            f"script of the page's text:\n\n{qa_table(report)}\n\n")


def render_card(manifest: Manifest) -> str:
    config = manifest.data["config"]
    render = config["render"]
    tokens = (f"counted with {render['tokenizer']}" if render["tokenizer"] else
              "an estimate (~4 characters per token, 1 per CJK character)")
    body = f"""# Rendered summarization dataset

Generated by DeepSynth from `{config['source']['source']}`:
each row is a document rendered to page images (`images`), its text and its reference summary.
{_license_line(config['source']['source'])}

Load it with `datasets.load_dataset("<this folder or repo>")`.

## Rendering

Page size `{render['page_size']}`, font `{render['font']}` at {render['font_size']} px,
margin {render['margin']} px, line spacing {render['line_spacing']}, `{render['color_mode']}`
pages, overflow policy `{render['overflow']}`, max pages {render['max_pages'] or 'unlimited'}.
{_variety_text(render)}`vision_tokens` counts DeepSeek-OCR-2's image tokens in image mode `global` (the
default); `text_tokens` is {tokens}. Image tokens of one page, by model and image mode
(the training option `image_mode`):

{_vision_tokens(render['page_size'])}

{_warnings(manifest)}{_qa(manifest)}## Statistics

{_stats_table(manifest)}

Status: {manifest.data['status']}. The full configuration and package versions are in
`{MANIFEST_NAME}`.
"""
    matter = yaml.safe_dump(front_matter(manifest), sort_keys=False, allow_unicode=True)
    return f"---\n{matter}---\n\n{body}"


def write_card(folder: Path, manifest: Manifest) -> Path:
    path = Path(folder) / "README.md"
    write_text_atomic(path, render_card(manifest))
    return path
