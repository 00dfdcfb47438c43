"""Training data: rows of a generated dataset to token ids, labels and page pixels.

A sequence is ``[bos] + image tokens per page + prompt + summary + [eos]``; labels are set on
the summary and EOS only. ``max_length`` counts text tokens (prompt and summary), never image
tokens, since the model fails when image tokens and image features disagree. Pages are
prepared as the model family's image processor does (``deepsynth.training.pages``) and stay
uint8 (1 channel) until they reach the model, which keeps loader workers cheap.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image

from deepsynth.data.manifest import Manifest, is_dataset
from deepsynth.data.shards import check_shards, damaged, shard_problem
from deepsynth.errors import DeepSynthError, OutputError
from deepsynth.training.augment import Augmenter
from deepsynth.training.pages import (  # pixel_values: where callers have imported it
    PageFormat,
    global_view,
    pixel_values,
    stack_pages,
)

__all__ = ["Collator", "ExampleEncoder", "PageDataset", "SplitRows", "decode_page",
           "load_split", "pixel_values", "read_page"]

IGNORE = -100


@dataclass
class EncodedText:
    input_ids: list[int]
    labels: list[int]
    truncated: bool


class ExampleEncoder:
    """Builds input ids and labels; plain parameters so any caller can use it."""

    def __init__(self, tokenizer, image_token_id: int, tokens_per_page: int, prompt: str,
                 max_length: int):
        self.tokenizer = tokenizer
        self.image_token_id = image_token_id
        self.tokens_per_page = tokens_per_page
        self.prompt_ids = tokenizer(prompt + "\n", add_special_tokens=False).input_ids
        self.max_length = max_length
        if len(self.prompt_ids) + 2 > max_length:
            raise DeepSynthError(f"max_length {max_length} leaves no room for a summary after "
                                 f"the {len(self.prompt_ids)}-token prompt")

    def prefix(self, pages: int | list[int]) -> list[int]:
        """Everything before the summary: what generation starts from. ``pages``: the image
        tokens of each page, or a page count (of ``tokens_per_page`` each)."""
        counts = [self.tokens_per_page] * pages if isinstance(pages, int) else pages
        return ([self.tokenizer.bos_token_id] + [self.image_token_id] * sum(counts)
                + self.prompt_ids)

    def encode(self, pages: int | list[int], summary: str) -> EncodedText:
        prefix = self.prefix(pages)
        text_in_prefix = len(self.prompt_ids)
        summary_ids = self.tokenizer(summary, add_special_tokens=False).input_ids
        room = self.max_length - text_in_prefix - 1
        truncated = len(summary_ids) > room
        target = summary_ids[:max(room, 0)] + [self.tokenizer.eos_token_id]
        return EncodedText(prefix + target, [IGNORE] * len(prefix) + target, truncated)


def read_page(png: bytes) -> Image.Image:
    """A page image as grayscale, at its own size. DeepSynth's pages are black on white, so
    nothing is lost; a colour page (a dataset made elsewhere) loses its colour."""
    with Image.open(io.BytesIO(png)) as image:
        return image.convert("L")


def decode_page(png: bytes, size: int) -> Image.Image:
    """A page's global view for DeepSeek-OCR-2 at ``size`` px (fitted and padded as its
    processor does)."""
    page = read_page(png)
    return global_view(page, PageFormat("deepseek_ocr2", size).view(*page.size))


@dataclass
class SplitRows:
    """The rows of one split that fit ``max_pages``, with how many were skipped."""

    table: object  # a datasets.Dataset with images not decoded
    skipped_too_many_pages: int = 0
    indices: list[int] = field(default_factory=list)


def _shards(folder: Path) -> list[dict]:
    """The shards a DeepSynth manifest lists; none for a folder without a readable one (such
    as a dataset downloaded without it), which is read as it is."""
    try:
        manifest = Manifest.load(folder) if is_dataset(folder) else None
    except OutputError:
        return []
    return [] if manifest is None else [s for st in manifest.splits.values() for s in st.shards]


def _load(folder: Path, split: str):
    """``load_dataset`` of the folder. It prepares every split, so every shard is checked
    first (size and footer); for a shard it still cannot read, the full check names it."""
    import datasets
    import pyarrow as pa

    shards = _shards(folder)
    check_shards(folder, shards)
    try:
        return datasets.load_dataset(str(folder), split=split)
    except (datasets.exceptions.DatasetGenerationError, pa.ArrowException, OSError) as exc:
        for entry in shards:
            problem = shard_problem(folder, entry, full=True)
            if problem is not None:
                raise damaged(folder, entry, problem) from exc
        raise
    except ValueError as exc:  # an unknown split
        raise DeepSynthError(f"dataset {str(folder)!r} has no split {split!r} "
                             f"({str(exc).splitlines()[0]})") from None


def load_split(dataset_dir: str, split: str, max_pages: int) -> SplitRows:
    """The rows of ``split`` that fit ``max_pages``; a damaged shard raises
    ``DatasetDamaged`` naming it."""
    import datasets

    folder = Path(dataset_dir)
    if not is_dataset(folder) and not (folder / "README.md").exists():
        raise DeepSynthError(f"dataset {dataset_dir!r} is not a dataset folder (generate one "
                             f"with deepsynth generate)")
    loaded = _load(folder, split)
    table = loaded.cast_column("images", datasets.List(datasets.Image(decode=False)))
    pages = table["num_pages"]
    keep = [i for i, n in enumerate(pages) if n <= max_pages]
    return SplitRows(table, len(pages) - len(keep), keep)


class PageDataset(torch.utils.data.Dataset):
    """Encoded examples of one split; index i is the i-th kept row. ``pages``: how the model
    sees pages (an int: DeepSeek-OCR-2's global view at that size)."""

    def __init__(self, rows: SplitRows, encoder: ExampleEncoder, pages: PageFormat | int,
                 augmenter: Augmenter | None = None, limit: int | None = None):
        self.rows = rows
        self.encoder = encoder
        if not isinstance(pages, PageFormat):
            pages = PageFormat("deepseek_ocr2", pages)
            if pages.tokens(pages.image_size, pages.image_size) != encoder.tokens_per_page:
                raise ValueError("an image size stands for DeepSeek-OCR-2's pages; pass the "
                                 "model's PageFormat")
        self.format = pages
        self.augmenter = augmenter
        self.indices = rows.indices[:limit] if limit else rows.indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict:
        row = self.rows.table[self.indices[index]]
        pages = []
        for image in row["images"]:
            page = read_page(image["bytes"])
            pages.append(self.augmenter(page) if self.augmenter is not None else page)
        entries = self.format.prepare_all(pages)
        encoded = self.encoder.encode(entries["page_tokens"], row["summary"])
        return {"id": row["id"], "input_ids": encoded.input_ids, "labels": encoded.labels,
                **entries, "summary": row["summary"], "truncated": encoded.truncated}


class Collator:
    def __init__(self, pad_token_id: int):
        self.pad_token_id = pad_token_id

    def __call__(self, examples: list[dict]) -> dict:
        longest = max(len(e["input_ids"]) for e in examples)
        ids = torch.full((len(examples), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(examples), longest), IGNORE, dtype=torch.long)
        mask = torch.zeros((len(examples), longest), dtype=torch.long)
        for row, example in enumerate(examples):
            n = len(example["input_ids"])
            ids[row, :n] = torch.tensor(example["input_ids"])
            labels[row, :n] = torch.tensor(example["labels"])
            mask[row, :n] = 1
        return {"input_ids": ids, "labels": labels, "attention_mask": mask,
                "ids": [e["id"] for e in examples], **stack_pages(examples)}
