"""Configuration of rendering, corpus sources and dataset generation (one tree, one place).

These dataclasses are what the CLI flags, the REST bodies and the UI forms parse into; every
range, choice and default lives here.
"""

from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from deepsynth.config.spec import hub_repo_id, option, section
from deepsynth.errors import ConfigError

PAGE_SIZES: dict[str, tuple[int, int]] = {
    "tiny": (512, 512),
    "small": (640, 640),
    "base": (1024, 1024),
    "large": (1280, 1280),
}
_WXH = re.compile(r"^(\d{2,5})x(\d{2,5})$")
SPLIT_ALIASES = {"dev": "validation", "val": "validation", "valid": "validation"}
EVAL_SPLITS = ("validation", "test")


def parse_page_size(value: str) -> tuple[int, int]:
    """``tiny|small|base|large`` or ``WxH`` (128 to 4096 px a side) to (width, height)."""
    if value in PAGE_SIZES:
        return PAGE_SIZES[value]
    match = _WXH.match(value)
    if match:
        w, h = int(match.group(1)), int(match.group(2))
        if 128 <= w <= 4096 and 128 <= h <= 4096:
            return w, h
    raise ConfigError(
        "page_size", f"must be one of {', '.join(PAGE_SIZES)} or WxH with sides 128-4096; "
        f"got {value!r}")


def normalize_split(name: str) -> str:
    """Split names as written: ``dev`` and ``val`` become ``validation``."""
    name = name.strip().lower()
    return SPLIT_ALIASES.get(name, name)


def _page_size_problem(value: str) -> str | None:
    try:
        parse_page_size(value)
    except ConfigError as exc:
        return exc.message
    return None


def _split_name_problem(value: list[str]) -> str | None:
    for name in value:
        if not re.match(r"^[A-Za-z][A-Za-z0-9_]*$", name):
            return f"split names are letters, digits and _; got {name!r}"
    return None


VARIETY_RANGES = ("font_size", "line_spacing", "margin")


@dataclass
class VarietyConfig:
    """Rendering variety (opt-in): each row drawn with a font, size, line spacing and margin
    sampled from these (seeded by ``vary_seed`` and the row's id; see render/variety.py).
    A range left unset keeps the fixed option; all unset is no variety."""

    vary_fonts: list[str] = option(
        default_factory=list, flag="--vary-font", help="a font each row may be drawn with, "
        "one chosen per row (repeatable; bundled names such as DejaVuSerif, or font files)")
    vary_font_size_min: int | None = option(None, help="variety: smallest font size in px",
                                            min=6, max=96)
    vary_font_size_max: int | None = option(None, help="variety: largest font size in px",
                                            min=6, max=96)
    vary_line_spacing_min: float | None = option(None, help="variety: smallest line spacing",
                                                 min=0.8, max=3.0)
    vary_line_spacing_max: float | None = option(None, help="variety: largest line spacing",
                                                 min=0.8, max=3.0)
    vary_margin_min: int | None = option(None, help="variety: smallest margin in px",
                                         min=0, max=512)
    vary_margin_max: int | None = option(None, help="variety: largest margin in px",
                                         min=0, max=512)
    vary_seed: int = option(0, help="variety: the seed that, with each row's id, picks its "
                            "style", min=0, max=2**31 - 1)

    def check(self) -> None:
        if len(self.vary_fonts) > 32:
            raise ConfigError("vary_fonts", f"lists {len(self.vary_fonts)} fonts",
                              "at most 32 fonts")
        for name in VARIETY_RANGES:
            low, high = self.range(name)
            if (low is None) != (high is None):
                given = f"vary_{name}_min" if high is None else f"vary_{name}_max"
                missing = f"vary_{name}_max" if high is None else f"vary_{name}_min"
                raise ConfigError(missing, f"is needed with {given} (a range has both ends)",
                                  f"both vary_{name}_min and vary_{name}_max, or neither")
            if low is not None and low > high:
                raise ConfigError(f"vary_{name}_min", f"must be at most vary_{name}_max "
                                  f"({high}); got {low}", f"at most {high}")

    def range(self, name: str) -> tuple:
        return getattr(self, f"vary_{name}_min"), getattr(self, f"vary_{name}_max")

    @property
    def enabled(self) -> bool:
        return bool(self.vary_fonts) or any(self.range(n)[0] is not None
                                            for n in VARIETY_RANGES)


@dataclass
class RenderConfig:
    """How text becomes page images."""

    page_size: str = option("base", help="page size: tiny (512), small (640), base (1024), "
                            "large (1280) or WxH", check=_page_size_problem)
    font: str = option("DejaVuSans", help="a bundled font name (DejaVuSans, DejaVuSansMono, "
                       "DejaVuSerif) or a path to a .ttf/.otf/.ttc file")
    font_size: int = option(18, help="font size in px", min=6, max=96)
    min_font_size: int = option(10, help="smallest font size the shrink policy or "
                                "--target-compression may use", min=6, max=96)
    margin: int = option(40, help="page margin in px", min=0, max=512)
    line_spacing: float = option(1.2, help="line height as a multiple of the font's height",
                                 min=0.8, max=3.0)
    color_mode: str = option("gray", help="page colour mode", choices=("gray", "rgb"))
    png_level: int = option(1, help="PNG compression level (0 fastest, 9 smallest)",
                            min=0, max=9)
    overflow: str = option("paginate", help="text that does not fit: continue on further pages, "
                           "cut it (recorded), or shrink the font (recorded if still too long)",
                           choices=("paginate", "truncate", "shrink"))
    max_pages: int | None = option(None, help="at most this many pages per document "
                                   "(paginate: unlimited by default; truncate/shrink: 1)",
                                   min=1, max=1000)
    fallback_fonts: bool = option(True, help="draw characters the font lacks with other fonts "
                                  "installed on the system (for example Noto CJK)")
    tokenizer: str | None = option(None, help="a local tokenizer folder or tokenizer.json used "
                                   "to count text tokens (default: an estimate)")
    target_compression: float | None = option(
        None, help="per document, the largest font size (min_font_size..font_size) whose "
        "pages hold about this many text tokens per vision token (paginate only)",
        min=0.1, max=50.0)
    variety: VarietyConfig = section(VarietyConfig, help="rendering variety (opt-in)")

    def check(self) -> None:
        width, height = parse_page_size(self.page_size)
        vary = self.variety
        widest = self.margin if vary.vary_margin_max is None else vary.vary_margin_max
        largest = self.font_size if vary.vary_font_size_max is None else vary.vary_font_size_max
        for name, margin, size, at in (
                ("margin", self.margin, self.font_size, ""),
                ("vary_margin_max", widest, largest, f" at font size {largest}")):
            if 2 * margin >= min(width, height) - size:
                raise ConfigError(name, f"leaves no room for text on a {width}x{height} "
                                  f"page{at}; use at most {(min(width, height) - size) // 2 - 1}")
        if (self.overflow == "shrink" or self.target_compression) \
                and self.min_font_size > self.font_size:
            raise ConfigError("min_font_size", f"must be at most font_size ({self.font_size})")
        if self.target_compression and self.overflow != "paginate":
            raise ConfigError("target_compression", f"chooses the font size, so it needs "
                              f"overflow paginate; got overflow {self.overflow}", "paginate")

    @property
    def size(self) -> tuple[int, int]:
        return parse_page_size(self.page_size)


@dataclass
class SourceConfig:
    """Where the documents come from and which fields hold text, summary and id."""

    source: str = option(help="a file or folder (JSONL, JSON, CSV, Parquet), builtin:scitldr, "
                         "hf:ORG/NAME[:CONFIG] or preset:NAME")
    text_field: str | None = option(None, help="column with the document text")
    summary_field: str | None = option(None, help="column with the reference summary")
    id_field: str | None = option(None, help="column with a row id (default: split-index)")
    splits: list[str] = option(default_factory=list, flag="--split",
                               help="split to generate (repeatable; default: every split)",
                               check=_split_name_problem)
    max_samples: int | None = option(None, help="at most this many rows written per split",
                                     min=1)
    validation_fraction: float | None = option(
        None, help="carve a deterministic validation split of this fraction from a source "
        "that has only a train split (for example a single file)", min=0.001, max=0.9)
    on_error: str = option("fail", help="a bad row (invalid JSON or UTF-8, a line over the "
                           "limit, a field missing, null or not text): stop, or skip it and "
                           "count it",
                           choices=("fail", "skip"))

    def check(self) -> None:
        if not self.source.strip():
            raise ConfigError("source", "must not be empty")
        self.splits = [normalize_split(s) for s in self.splits]


ENGINES = ("local", "ray")
RAY_MISSING = "ray needs Ray, which is not installed: pip install deepsynth[ray]"
_RAY_ADDRESS = re.compile(r"^(auto|(ray://)?[A-Za-z0-9.\-]+:\d{1,5}|(ray://)?\[[0-9A-Fa-f:.]+\]"
                          r":\d{1,5})$")


def ray_installed() -> bool:
    """Whether ``import ray`` would find Ray, without importing it (a second)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # ValueError: blocked (sys.modules["ray"] = None)
        return False


def ray_address_problem(value: str | None) -> str | None:
    if value is None or _RAY_ADDRESS.match(value):
        return None
    return f"must be HOST:PORT, ray://HOST:PORT or auto; got {value!r}"


@dataclass
class GenerationConfig:
    """A dataset generation run: source, rendering and output options."""

    out: str = option(help="output folder")
    source: SourceConfig = option(cli=False, help="the corpus", default=None)
    render: RenderConfig = option(cli=False, help="rendering options",
                                  default_factory=RenderConfig)
    workers: int | None = option(None, help="rendering processes (default: the CPU count)",
                                 min=1, max=256)
    shard_size: int = option(500, help="rows per Parquet shard", min=1, max=1_000_000)
    dedup: bool = option(True, help="drop rows whose text, as the renderer draws it, was "
                         "already written in the split")
    overwrite: bool = option(False, help="replace a folder generated with another "
                             "configuration")
    push_to_hub: str | None = option(None, help="upload to this Hub dataset repo (ORG/NAME)",
                                     check=hub_repo_id)
    public: bool = option(False, help="create the Hub repository public, not private")
    engine: str = option("local", choices=ENGINES, help="where rows are rendered: local (a "
                         "process pool on this machine) or ray (tasks on a Ray cluster that "
                         "write shards to the output folder; pip install deepsynth[ray])")
    ray_address: str | None = option(None, help="the Ray cluster of --engine ray: HOST:PORT, "
                                     "ray://HOST:PORT or auto (default: $RAY_ADDRESS, else "
                                     "Ray started on this machine)",
                                     check=ray_address_problem, max_chars=300)
    qa_sample: int = option(0, help="after writing, read this many seeded pages back with "
                            "Tesseract (as deepsynth qa does; 0: no QA)", min=0, max=10_000)

    def check(self) -> None:
        if self.source is None:
            raise ConfigError("source", "is required")
        if not self.out.strip():
            raise ConfigError("out", "must not be empty")
        scheme = self.out.partition("://")[0] if "://" in self.out else None
        if scheme is not None and scheme != "file":
            raise ConfigError("out", f"is a {scheme}:// URL; deepsynth writes to a path or a "
                              "file:// URL (mount object storage, e.g. with s3fs or gcsfuse, "
                              "and give its path)", "a path or file:///PATH")
        if scheme == "file" and urlsplit(self.out).netloc not in ("", "localhost"):
            raise ConfigError("out", "is a file:// URL of another host", "file:///PATH")
        if self.engine == "ray" and not ray_installed():
            raise ConfigError("engine", RAY_MISSING, "local, or install the ray extra")
        if self.ray_address and self.engine != "ray":
            raise ConfigError("ray_address", "is for --engine ray", "unset, or engine ray")

    @property
    def worker_count(self) -> int:
        return self.workers or os.cpu_count() or 1

    @property
    def out_folder(self) -> Path:
        """The output folder: ``out`` as a path, or the path of a ``file://`` URL (its
        percent-escapes decoded). Other schemes are refused by :meth:`check`."""
        if self.out.startswith("file://"):
            url = urlsplit(self.out)
            return Path(unquote(url.path))
        return Path(self.out)


__all__ = ["RenderConfig", "VarietyConfig", "SourceConfig", "GenerationConfig", "ENGINES",
           "parse_page_size", "normalize_split", "PAGE_SIZES", "EVAL_SPLITS"]
