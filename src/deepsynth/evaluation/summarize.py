"""``deepsynth summarize``: a summary from a text (rendered first, with the training
dataset's render settings) or from page images."""

from __future__ import annotations

import json
from pathlib import Path

from deepsynth.config import RenderConfig, from_dict
from deepsynth.data.manifest import MANIFEST_NAME, is_dataset
from deepsynth.errors import DeepSynthError
from deepsynth.evaluation.evaluate import encoder_for, model_settings, page_format
from deepsynth.evaluation.generation import generate_summaries
from deepsynth.models.registry import load_model
from deepsynth.render.renderer import build_renderer
from deepsynth.training.data import read_page
from deepsynth.training.run_folder import CONFIG_NAME


def training_render_config(model_dir: str) -> RenderConfig | None:
    """The render options of the dataset the model was trained on, when known."""
    config_path = Path(model_dir) / CONFIG_NAME
    if not config_path.exists():
        return None
    dataset = json.loads(config_path.read_text()).get("dataset", "")
    if not is_dataset(Path(dataset)):
        return None
    manifest = Path(dataset) / MANIFEST_NAME
    return from_dict(RenderConfig, json.loads(manifest.read_text())["config"]["render"])


def summarize(model: str, text: str | None = None, images: list[str] | None = None,
              max_new_tokens: int | None = None, num_beams: int = 1, root: Path | None = None,
              render: RenderConfig | None = None, like: str | None = None) -> dict:
    """``max_new_tokens`` None: the limit the model was trained with (see model_settings).
    ``like``: a trained model whose prompt, image mode, length limit and render options are
    used instead of ``model``'s own, so a base model reads the same page the same way as
    the run trained from it."""
    if bool(text) == bool(images):
        raise DeepSynthError("give either a text or page images, not both")
    loaded = load_model(model, root=root)
    settings = model_settings(like or model)
    max_new_tokens = max_new_tokens or settings["max_new_tokens"]
    encoder = encoder_for(loaded, settings)
    rendered_stats = None
    if text is not None:
        render = render or training_render_config(like or model) or RenderConfig(
            page_size=f"{loaded.image_size}x{loaded.image_size}")
        renderer = build_renderer(render)
        document = renderer.render(text)
        rendered_stats = document.stats.to_dict()
        pngs = document.pages
    else:
        pngs = []
        for path in images:
            try:
                pngs.append(Path(path).read_bytes())
            except OSError as exc:
                raise DeepSynthError(f"cannot read image {path}: {exc.strerror}") from None
    try:
        pages = page_format(loaded, settings).prepare_all([read_page(png) for png in pngs])
    except OSError as exc:
        raise DeepSynthError(f"not a readable image: {exc}") from None
    dtype = next(loaded.model.parameters()).dtype
    summary = generate_summaries(loaded.model, loaded.tokenizer, encoder,
                                 [{**pages, "text": text or ""}], 1, max_new_tokens,
                                 num_beams, dtype).texts[0]
    return {"summary": summary, "pages": len(pngs), "render": rendered_stats,
            "randomly_initialized_base": loaded.randomly_initialized, "model": model,
            "page_pngs": pngs}
