"""``deepsynth generate``, ``push``, ``datasets list|show`` and ``presets``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from deepsynth.cli import exit_codes
from deepsynth.cli.signals import StopOnSignal
from deepsynth.config import (
    GenerationConfig, RenderConfig, SourceConfig, add_arguments, from_namespace,
)
from deepsynth.config.requests import QA_SAMPLE
from deepsynth.data.catalog import describe_dataset, list_datasets
from deepsynth.data.card import qa_table
from deepsynth.data.generate import generate_dataset
from deepsynth.data.qa import run_qa
from deepsynth.data.presets import PRESETS
from deepsynth.hub.publish import push_dataset
from deepsynth.hub.upload import HfHubClient
from deepsynth.progress import Progress
from deepsynth.render.legibility import dataset_warnings
from deepsynth.workspace import Workspace


def register(commands: argparse._SubParsersAction) -> None:
    generate = commands.add_parser(
        "generate", help="render a corpus into a dataset folder (resumable)",
        description="Render a corpus into Parquet shards of page images. Re-running the same "
        "command resumes after the last finished shard.")
    add_arguments(generate, SourceConfig)
    add_arguments(generate, GenerationConfig)
    add_arguments(generate.add_argument_group("render options"), RenderConfig)
    generate.set_defaults(handler=run_generate)

    push = commands.add_parser("push", help="upload a generated dataset to the Hub "
                               "(only what the repository is missing)")
    push.add_argument("folder", help="a folder written by deepsynth generate")
    push.add_argument("--to", required=True, metavar="ORG/NAME", help="Hub dataset repository")
    push.add_argument("--public", action="store_true", help="create the repository public")
    push.set_defaults(handler=run_push)

    datasets = commands.add_parser("datasets", help="list or show generated datasets")
    actions = datasets.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="datasets under ROOT")
    listing.add_argument("root", nargs="?", help="default: $DEEPSYNTH_DATA_ROOT/datasets "
                         "or ./data/datasets")
    listing.set_defaults(handler=run_list)
    show = actions.add_parser("show", help="one dataset: counts, shards, configuration")
    show.add_argument("folder")
    show.set_defaults(handler=run_show)

    qa = commands.add_parser(
        "qa", help="read a sample of a dataset's pages back with Tesseract (CER per script)",
        description="OCR a seeded sample of pages with Tesseract and print the character "
        "error rate per script; the report is stored in the manifest and the card.")
    qa.add_argument("folder", help="a folder written by deepsynth generate")
    qa.add_argument("--sample", type=int, default=QA_SAMPLE,
                    help=f"pages to read (default {QA_SAMPLE})")
    qa.add_argument("--seed", type=int, default=0, help="which pages (default 0)")
    qa.add_argument("--workers", type=int, default=None,
                    help="Tesseract processes at once (default: the CPU count)")
    qa.set_defaults(handler=run_qa_command)

    presets = commands.add_parser("presets", help="the benchmark corpus presets")
    presets.set_defaults(handler=run_presets)


def run_generate(args: argparse.Namespace) -> int:
    source = from_namespace(SourceConfig, args)
    render = from_namespace(RenderConfig, args)
    config = from_namespace(GenerationConfig, args, source=source, render=render)
    bar = tqdm(unit="row", dynamic_ncols=True, file=sys.stderr, disable=None)

    def show(progress: Progress) -> None:
        bar.total = progress.total
        bar.set_description(progress.stage, refresh=False)
        bar.update(progress.done - bar.n)

    with StopOnSignal() as stop:
        try:
            result = generate_dataset(config, progress=show, should_stop=stop.event.is_set)
        finally:
            bar.close()
    summary = {"folder": str(result.folder), "status": result.status, "rows": result.rows,
               "counts": result.totals, "warnings": dataset_warnings(result.totals)}
    if result.qa is not None:
        summary["qa"] = result.qa
    print(json.dumps(summary, indent=2))
    for warning in summary["warnings"]:
        print(f"warning: {warning['message']}", file=sys.stderr)
    if result.qa is not None:
        print(f"render QA: {result.qa['sample']} of {result.qa['of_pages']} pages read back "
              f"(seed {result.qa['seed']})\n{qa_table(result.qa)}", file=sys.stderr)
    if result.status == "stopped":
        print("stopped: finished rows are kept; re-run the same command to resume",
              file=sys.stderr)
        return exit_codes.STOPPED
    if result.hub_error:
        print(f"error: Hub upload failed ({result.hub_error}); local data is kept; run "
              f"'deepsynth push {result.folder} --to {config.push_to_hub}'", file=sys.stderr)
        return exit_codes.UPLOAD_FAILED
    return 0


def run_push(args: argparse.Namespace) -> int:
    report = push_dataset(Path(args.folder), args.to, HfHubClient(), private=not args.public)
    print(json.dumps(report, indent=2))
    return 0


def run_list(args: argparse.Namespace) -> int:
    root = Path(args.root) if args.root else Workspace().datasets
    found = list_datasets(root)
    if not found:
        print(f"no datasets under {root}")
        return 0
    print(f"{'name':<28} {'status':<11} {'rows':>8} {'pages':>8} {'MiB':>8}  source")
    for item in found:
        rows = sum(item["rows"].values())
        print(f"{item['name']:<28} {item['status']:<11} {rows:>8} {item['pages']:>8} "
              f"{item['bytes'] / 2**20:>8.1f}  {item['source']}")
    return 0


def run_show(args: argparse.Namespace) -> int:
    print(json.dumps(describe_dataset(Path(args.folder)), indent=2, ensure_ascii=False))
    return 0


def run_qa_command(args: argparse.Namespace) -> int:
    report = run_qa(Path(args.folder), args.sample, args.seed, args.workers)
    print(f"{report['sample']} of {report['of_pages']} pages read back (seed {report['seed']})")
    print(qa_table(report))
    return 0


def run_presets(args: argparse.Namespace) -> int:
    for preset in PRESETS.values():
        sizes = ", ".join(f"{k} {v:,}" for k, v in preset.sizes.items())
        print(f"{preset.name:<14} {preset.title:<20} {preset.source:<30} "
              f"{preset.text_field}/{preset.summary_field}  [{sizes}]  {preset.license}")
    return 0
