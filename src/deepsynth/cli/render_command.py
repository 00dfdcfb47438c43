"""``deepsynth render``: the quick preview. Text in, page PNGs out, statistics as JSON."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deepsynth.config import RenderConfig, add_arguments, from_namespace
from deepsynth.errors import DeepSynthError
from deepsynth.render.renderer import build_renderer
from deepsynth.render.tokens import vision_token_table
from deepsynth.render.variety import refuse_variety


def register(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("render", help="render text to page images and print stats",
                                 description="Render text to page PNGs; print the stats as JSON.")
    text = parser.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="the text to render")
    text.add_argument("--text-file", help="a UTF-8 file holding the text")
    parser.add_argument("--out", required=True, help="page.png; further pages are written "
                        "as page-2.png, page-3.png, ...")
    add_arguments(parser, RenderConfig)
    parser.set_defaults(handler=run)


def page_paths(out: Path, count: int) -> list[Path]:
    if not out.suffix:
        out = out.with_suffix(".png")
    return [out if i == 0 else out.with_name(f"{out.stem}-{i + 1}{out.suffix}")
            for i in range(count)]


def run(args: argparse.Namespace) -> int:
    refuse_variety(vars(args), "deepsynth render")
    config = from_namespace(RenderConfig, args)
    if args.text_file:
        try:
            text = Path(args.text_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DeepSynthError(f"cannot read --text-file {args.text_file}: {exc}") from None
    else:
        text = args.text
    rendered = build_renderer(config).render(text)
    out = Path(args.out)
    paths = page_paths(out, len(rendered.pages))
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        for path, page in zip(paths, rendered.pages, strict=True):
            path.write_bytes(page)
    except OSError as exc:
        raise DeepSynthError(f"cannot write --out {out}: {exc.strerror or exc}") from None
    report = {"pages": [str(p) for p in paths], **rendered.stats.to_dict(),
              "page_size": list(config.size),
              "vision_tokens_per_page": vision_token_table(*config.size),
              "page_compression": rendered.page_compression, "warnings": rendered.warnings()}
    print(json.dumps(report, indent=2, ensure_ascii=False))
    for warning in report["warnings"]:
        print(f"warning: {warning['message']}", file=sys.stderr)
    return 0
