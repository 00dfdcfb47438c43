"""Pages as each model's processor prepares them (issue 13, item 3): DeepSynth's tensors,
image-token counts and image-token layout against transformers' own processors, for
square, portrait, landscape and small (under one tile) pages, in each image mode
(``global``, ``crops``) and each family (DeepSeek-OCR-2, DeepSeek-OCR v1, Unlimited-OCR:
v1's vision side with its processor's default of up to 32 tiles).

The references: DeepSeek-OCR-2's ``DeepseekOcr2ImageProcessorPil`` and
``DeepseekOcr2Processor``, called as they are; v1's ``UnlimitedOcrImageProcessor`` run
without torchvision (``tests/support/unlimited_processor.py``: transformers' own code, with
Pillow's bicubic resize in place of torchvision's) and ``UnlimitedOcrProcessor``'s count.
The counts are also the features the models produce: the tiny models (256 px global views,
real-size tiles) and the real architectures on the meta device (1024 px). Pages are real
rendered pages. DeepSynth's preparation (``deepsynth.training.pages``) shares no code with
these references; the old one (a stretch to a square, bilinear) fails every non-square
case here.
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from support.unlimited_checkpoint import write_unlimited_checkpoint
from support.unlimited_processor import MODULE as UNLIMITED
from support.unlimited_processor import preprocess as unlimited_preprocess
from support.v1_checkpoint import write_v1_checkpoint
from transformers import (
    AutoTokenizer,
    DeepseekOcr2ImageProcessorPil,
    DeepseekOcr2Processor,
    UnlimitedOcrProcessor,
)
from transformers.models.deepseek_ocr2.image_processing_pil_deepseek_ocr2 import (
    get_optimal_tiled_canvas,
)

from deepsynth.config import RenderConfig
from deepsynth.models import tiny
from deepsynth.models.random_spec import meta_model
from deepsynth.models.registry import load_model
from deepsynth.render.renderer import build_renderer
from deepsynth.render.tokens import (
    IMAGE_MODES,
    REAL_IMAGE_SIZE,
    VIEWS,
    crop_grid,
    page_tokens,
)
from deepsynth.training.data import ExampleEncoder, read_page
from deepsynth.training.pages import PageFormat, stack_pages, vision_inputs
from deepsynth.workspace import Workspace

SHAPES = {"square": (1024, 1024), "portrait": (768, 1024), "landscape": (1024, 700),
          "small": (600, 400)}
PROMPT = "Summarize this document."
EXACT = {"rtol": 0, "atol": 1e-6}  # the same uint8 pixels; normalization differs by an ulp


def rendered(width: int, height: int) -> Image.Image:
    text = " ".join(f"Line {i}: the council met to discuss the harbour." for i in range(60))
    config = RenderConfig(page_size=f"{width}x{height}", font_size=14, margin=12)
    return read_page(build_renderer(config).render(text).pages[0])


@pytest.fixture(scope="module")
def pages() -> list[Image.Image]:
    return [rendered(*size) for size in SHAPES.values()]


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return tmp_path_factory.mktemp("data-root")


@pytest.fixture(scope="module")
def tokenizer(root):
    return AutoTokenizer.from_pretrained(tiny.ensure_tokenizer(Workspace(root).cache))


def ours(family: str, size: int, mode: str, pages: list[Image.Image]) -> tuple[dict, dict]:
    """DeepSynth's example entries and the model inputs its collator and loop build."""
    entries = PageFormat(family, size, mode).prepare_all(pages)
    return entries, vision_inputs(stack_pages([entries]), torch.float32)


# ------------------------------------------------------------------------ the crop grid


def test_the_crop_grid_is_transformers_in_both_families():
    """``crop_grid`` (written out so the renderer never imports transformers) picks the
    grid of ``get_optimal_tiled_canvas``, DeepSeek-OCR-2's and UnlimitedOcr's (one copy
    each in transformers), for pages of every shape the renderer allows."""
    for width in range(128, 4097, 97):
        for height in range(128, 4097, 89):
            for family, views in VIEWS.items():
                tile, least, most = views.tile, views.min_crops, views.max_crops
                expected = get_optimal_tiled_canvas((height, width), (tile, tile), least, most)
                assert crop_grid(width, height, tile, least, most) == expected, (family,
                                                                                width, height)
                assert UNLIMITED.get_optimal_tiled_canvas(
                    (height, width), (tile, tile), least, most) == expected


# --------------------------------------------------------------------- DeepSeek-OCR-2


@pytest.mark.parametrize("size", [1024, 256])  # the real model, the tiny one
@pytest.mark.parametrize("mode", IMAGE_MODES)
def test_deepseek_ocr2_pixels_are_its_image_processors(pages, size, mode):
    """``global``: the processor's global view, its ``size`` (crop_to_patches off with the
    tile at the model's size); ``crops``: the processor's default (2 to 6 tiles of 768 px)."""
    processor = DeepseekOcr2ImageProcessorPil()
    crops = mode == "crops"
    reference = processor(pages, size={"height": size, "width": size}, crop_to_patches=crops,
                          tile_size=768 if crops else size, return_tensors="pt")
    _, inputs = ours("deepseek_ocr2", size, mode, pages)
    torch.testing.assert_close(inputs["pixel_values"], reference["pixel_values"], **EXACT)
    assert inputs.get("num_local_patches", [0] * len(pages)) == \
        reference["num_local_patches"].tolist()
    if crops:  # square 2 x 2, portrait 2 x 3, landscape 3 x 2, small none
        assert inputs["num_local_patches"] == [4, 6, 6, 0]
        torch.testing.assert_close(inputs["pixel_values_local"],
                                   reference["pixel_values_local"], **EXACT)
    else:
        assert "pixel_values_local" not in reference and "pixel_values_local" not in inputs
    assert "patches_grid" not in inputs  # DeepSeek-OCR-2's forward takes none


@pytest.mark.parametrize("mode", IMAGE_MODES)
def test_deepseek_ocr2_tokens_and_layout_are_its_processors(pages, tokenizer, mode):
    """At the real size, the processor's ``input_ids`` for the pages and the prompt are
    DeepSynth's prefix after its BOS: each page one block of image tokens, in order."""
    processor = DeepseekOcr2Processor(image_processor=DeepseekOcr2ImageProcessorPil(),
                                      tokenizer=tokenizer)
    crops = mode == "crops"
    text = "<image>" * len(pages) + PROMPT + "\n"
    made = processor(images=pages, text=text, crop_to_patches=crops,
                     tile_size=768 if crops else 1024, return_tensors="pt")
    entries, _ = ours("deepseek_ocr2", 1024, mode, pages)
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    encoder = ExampleEncoder(tokenizer, image_id, 257, PROMPT, 512)
    assert encoder.prefix(entries["page_tokens"]) == [tokenizer.bos_token_id] + \
        made["input_ids"][0].tolist()
    expected = [257 + 144 * n for n in (4, 6, 6, 0)] if crops else [257] * 4
    assert entries["page_tokens"] == expected == [
        page_tokens("deepseek_ocr2", 1024, mode, *size) for size in SHAPES.values()]


# -------------------------------------------------------------------- DeepSeek-OCR v1


V1_LAYOUT = [("deepseek_ocr", [[2, 2], [2, 3], [3, 2], [1, 1]]),
             ("unlimited_ocr", [[2, 2], [3, 4], [3, 2], [1, 1]])]  # 32 tiles: portrait 3 x 4


@pytest.mark.parametrize("family, grids", V1_LAYOUT)
@pytest.mark.parametrize("size", [1024, 256])
@pytest.mark.parametrize("mode", IMAGE_MODES)
def test_v1_pixels_are_unlimited_ocrs_image_processor(pages, family, grids, size, mode):
    """v1's processor: ``global`` is crop_to_patches off (a 1024 px view is padded, a
    256 px one stretched: ``maximum_pad_value`` 640), ``crops`` on, with 640 px tiles, at
    most 6 for v1 (v1's own code), 32 for Unlimited-OCR (the processor's default)."""
    most = VIEWS[family].max_crops
    reference = unlimited_preprocess(pages, size, mode == "crops", max_patches=most)
    _, inputs = ours(family, size, mode, pages)
    torch.testing.assert_close(inputs["pixel_values"], torch.stack(reference["pixel_values"]),
                               **EXACT)
    assert inputs.get("num_local_patches", [0] * 4) == reference["num_local_patches"]
    if mode == "crops":
        assert inputs["patches_grid"] == reference["patches_grid"] == grids
        torch.testing.assert_close(inputs["pixel_values_local"],
                                   torch.stack(reference["pixel_values_local"]), **EXACT)
    else:
        assert "pixel_values_local" not in reference and "pixel_values_local" not in inputs


@pytest.mark.parametrize("family, grids", V1_LAYOUT)
@pytest.mark.parametrize("size", [1024, 256])
@pytest.mark.parametrize("mode", IMAGE_MODES)
def test_v1_tokens_and_layout_are_unlimited_ocrs_processor(pages, tokenizer, family, grids,
                                                           size, mode):
    """``UnlimitedOcrProcessor.replace_image_token`` on the image processor's output, page
    by page, then the prompt, tokenized: DeepSynth's prefix after its BOS."""
    processor = UnlimitedOcrProcessor(image_processor=DeepseekOcr2ImageProcessorPil(),
                                      tokenizer=tokenizer)
    reference = unlimited_preprocess(pages, size, mode == "crops",
                                     max_patches=VIEWS[family].max_crops)
    text = "".join(processor.replace_image_token(reference, i, size={"height": size,
                                                                     "width": size},
                                                 tile_size=640) for i in range(len(pages)))
    entries, _ = ours(family, size, mode, pages)
    image_id = tokenizer.convert_tokens_to_ids("<image>")
    encoder = ExampleEncoder(tokenizer, image_id, 0, PROMPT, 512)
    expected = tokenizer(text + PROMPT + "\n", add_special_tokens=False).input_ids
    assert encoder.prefix(entries["page_tokens"]) == [tokenizer.bos_token_id] + expected
    if size == 1024 and mode == "crops":  # global 16 x 17 + 1; tiles (rows x 10) x (cols x 10 + 1)
        assert entries["page_tokens"] == [273 + 10 * r * (10 * c + 1) for c, r in grids[:3]] + [
            273]


# ---------------------------------------------------------------- the models' features


@pytest.fixture(scope="module")
def tiny_models(root, tokenizer, tmp_path_factory):
    v1, unlimited = (tmp_path_factory.mktemp(name) / name for name in ("v1", "unlimited"))
    write_v1_checkpoint(v1, tokenizer)
    write_unlimited_checkpoint(unlimited, tokenizer)
    return [load_model(spec, root=root) for spec in ("tiny-deepseek-ocr-2", str(v1),
                                                      str(unlimited))]


@pytest.mark.parametrize("mode", IMAGE_MODES)
def test_the_tiny_models_produce_as_many_features_as_counted(tiny_models, pages, mode):
    """Each page's features are its count, and a forward pass with the encoder's ids runs
    (the models refuse image tokens and features that disagree)."""
    for loaded in tiny_models:
        entries, inputs = ours(loaded.family, loaded.image_size, mode, pages)
        with torch.no_grad():
            features = loaded.model.model.get_image_features(**inputs).pooler_output
            assert [len(f) for f in features] == entries["page_tokens"]
            encoder = ExampleEncoder(loaded.tokenizer, loaded.image_token_id,
                                     loaded.image_tokens_per_page, PROMPT, 64)
            ids = torch.tensor([encoder.encode(entries["page_tokens"], "a summary").input_ids])
            assert torch.isfinite(loaded.model(input_ids=ids, **inputs).logits).all()
        if mode == "global":
            assert entries["page_tokens"] == [loaded.image_tokens_per_page] * len(pages)


@pytest.mark.parametrize("name, family", [("deepseek-ocr-2", "deepseek_ocr2"),
                                          ("deepseek-ocr", "deepseek_ocr"),
                                          ("unlimited-ocr", "unlimited_ocr")])
def test_the_real_architectures_produce_as_many_features_as_counted(name, family):
    """On the meta device (shapes only): the published models at 1024 px, both modes."""
    model = meta_model(name, 1)
    assert model.config.vision_config.sam_config.image_size == REAL_IMAGE_SIZE == 1024
    for mode in IMAGE_MODES:
        views = [PageFormat(family, 1024, mode).view(*size) for size in SHAPES.values()]
        inputs = {"pixel_values": torch.empty(len(views), 3, 1024, 1024, device="meta")}
        if mode == "crops":
            tile = VIEWS[family].tile
            inputs["pixel_values_local"] = torch.empty(sum(v.crops for v in views), 3, tile,
                                                       tile, device="meta")
            inputs["num_local_patches"] = [v.crops for v in views]
            if VIEWS[family].row_newlines:
                inputs["patches_grid"] = [[max(v.columns, 1), max(v.rows, 1)] for v in views]
        features = model.model.get_image_features(**inputs).pooler_output
        assert [len(f) for f in features] == [v.tokens for v in views]
