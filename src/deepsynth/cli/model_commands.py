"""``deepsynth train``, ``evaluate``, ``summarize``, ``export`` and ``models``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from deepsynth.cli import exit_codes
from deepsynth.cli.signals import StopOnSignal
from deepsynth.config import add_arguments
from deepsynth.config.spec import flat_fields, hub_dataset_id, replace
from deepsynth.config.training import TrainingConfig
from deepsynth.errors import DeepSynthError
from deepsynth.models.registry import MODEL_PRESETS, preset_of
from deepsynth.progress import Progress


def register(commands: argparse._SubParsersAction) -> None:
    train = commands.add_parser("train", help="fine-tune a model on a generated dataset",
                                description="Fine-tune DeepSeek-OCR's decoder (vision frozen) "
                                "to summarize documents from their page images.")
    add_arguments(train, TrainingConfig)
    train.set_defaults(handler=run_train)

    evaluate = commands.add_parser("evaluate", help="ROUGE, loss and samples on a split")
    evaluate.add_argument("--model", required=True, help="a trained model folder or preset")
    evaluate.add_argument("--dataset", required=True, help="a dataset folder")
    evaluate.add_argument("--split", help="default: validation, else test")
    evaluate.add_argument("--max-samples", type=_positive, help="evaluate the first N rows")
    evaluate.add_argument("--batch-size", type=_positive, default=8)
    evaluate.add_argument("--num-beams", type=_positive, default=1, help="1: greedy")
    evaluate.add_argument("--max-new-tokens", type=_positive,
                          help="default: the limit the model was trained with, else 64")
    evaluate.add_argument("--out", help="results folder (default: MODEL/evaluation)")
    evaluate.set_defaults(handler=run_evaluate)

    summarize = commands.add_parser("summarize", help="summarize a text or page images")
    summarize.add_argument("--model", required=True)
    source = summarize.add_mutually_exclusive_group(required=True)
    source.add_argument("--text-file", help="rendered with the training dataset's settings")
    source.add_argument("--image", nargs="+", help="page images, in order")
    summarize.add_argument("--num-beams", type=_positive, default=1)
    summarize.add_argument("--max-new-tokens", type=_positive,
                           help="default: the limit the model was trained with, else 64")
    summarize.set_defaults(handler=run_summarize)

    export = commands.add_parser("export", help="a standalone model folder (merge adapters)")
    export.add_argument("--model", required=True, help="a trained model folder")
    export.add_argument("--out", required=True)
    export.add_argument("--merge", action="store_true", help="merge adapters into the weights")
    export.add_argument("--push-to-hub", metavar="ORG/NAME", help="upload the exported folder")
    export.add_argument("--public", action="store_true", help="create the repository public")
    export.set_defaults(handler=run_export)

    models = commands.add_parser("models", help="the model presets")
    models.set_defaults(handler=run_models)

    recommend = commands.add_parser("recommend", help="a LoRA preset and training options "
                                    "for a dataset size")
    size = recommend.add_mutually_exclusive_group(required=True)
    size.add_argument("--samples", type=_positive, help="training rows")
    size.add_argument("--dataset", help="a dataset folder (its train split is counted)")
    recommend.set_defaults(handler=run_recommend)


def _positive(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer; got {value!r}")
    return number


def run_train(args: argparse.Namespace) -> int:
    from deepsynth.training.loop import train
    from deepsynth.training.request import resolve_training

    names = flat_fields(TrainingConfig)
    config = resolve_training({k: v for k, v in vars(args).items()
                               if k in names and v is not None})  # parsed once, here
    run_config = _with_hub_data(config)
    for warning in _memory_warnings(config):
        print(f"warning: {warning}", file=sys.stderr)
    preset = preset_of(config.task.model)
    if preset and preset.randomly_initialized:
        print(f"note: {config.task.model} is a randomly initialized demo model, not a "
              f"pretrained one", file=sys.stderr)
    bar = tqdm(unit="step", dynamic_ncols=True, file=sys.stderr, disable=None)

    def show(progress: Progress) -> None:
        bar.total = progress.total
        bar.update(progress.done - bar.n)

    with StopOnSignal(what="the current optimizer step") as stop:
        try:
            result = train(run_config, progress=show, should_stop=stop.event.is_set,
                           echo=lambda text: print(text, file=sys.stderr))
        finally:
            bar.close()
    report = {"run_dir": str(result.run_dir), "status": result.status, "step": result.step,
              "final_model": str(result.final_model or ""), "metrics": result.metrics}
    if result.final_model and config.hub.push_to_hub:
        from deepsynth.models.export import push_trained_model

        report["hub"] = push_trained_model(result.final_model, config.hub.hub_model_id,
                                           config.hub.public, result.run_dir / "export")
    print(json.dumps(report, indent=2))
    if report.get("hub", {}).get("hub_error"):
        print(f"the model is saved but the Hub push failed: {report['hub']['hub_error']}; "
              f"retry with deepsynth export --push-to-hub", file=sys.stderr)
        return exit_codes.UPLOAD_FAILED
    if result.status == "stopped":
        print("stopped: a checkpoint was saved; resume with --resume-from-checkpoint latest",
              file=sys.stderr)
        return exit_codes.STOPPED
    return exit_codes.OK


def _memory_warnings(config: TrainingConfig) -> list[str]:
    """Whether the estimate says the run will not fit the detected GPU (none without one)."""
    from deepsynth.training.estimate import detected_accelerator, fit_warnings

    return fit_warnings(config, detected_accelerator())


def _with_hub_data(config: TrainingConfig) -> TrainingConfig:
    """The config this process trains with: Hub datasets (``hf:ORG/NAME``) downloaded and
    replaced by their local path, for this run only (the resolved config keeps the Hub id)."""
    from deepsynth.jobs.kinds import real_hub
    from deepsynth.workspace import Workspace

    chat = config.task.kind == "chat"
    local = {}
    for name, value in (("dataset", config.task.dataset),
                        ("eval_dataset", config.evaluation.eval_dataset)):
        if hub_dataset_id(value):
            local[name] = str(Workspace().download_training_data(
                value, chat, real_hub(None, "dataset"),
                lambda text: print(text, file=sys.stderr)))
    return replace(config, **local)


def run_evaluate(args: argparse.Namespace) -> int:
    from deepsynth.evaluation.evaluate import evaluate_model

    results = evaluate_model(args.model, args.dataset, args.split, args.max_samples,
                             args.batch_size, args.num_beams, args.max_new_tokens, out=args.out)
    print(json.dumps(results, indent=2, ensure_ascii=False))
    return exit_codes.OK


def run_summarize(args: argparse.Namespace) -> int:
    from deepsynth.evaluation.summarize import summarize

    text = None
    if args.text_file:
        try:
            text = Path(args.text_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise DeepSynthError(f"cannot read --text-file {args.text_file}: {exc}") from None
    result = summarize(args.model, text=text, images=args.image,
                       max_new_tokens=args.max_new_tokens, num_beams=args.num_beams)
    result.pop("page_pngs")  # the pages are the input files, or rendered from the text
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return exit_codes.OK


def run_export(args: argparse.Namespace) -> int:
    from deepsynth.models.export import export_model

    report = export_model(args.model, args.out, merge=args.merge,
                          push_to_hub=args.push_to_hub, public=args.public)
    print(json.dumps(report, indent=2))
    return exit_codes.OK


def run_models(args: argparse.Namespace) -> int:
    for preset in MODEL_PRESETS.values():
        flag = "  [random weights: demo only]" if preset.randomly_initialized else ""
        print(f"{preset.name:<22} {preset.source:<36} {preset.description}{flag}")
    return exit_codes.OK


def run_recommend(args: argparse.Namespace) -> int:
    from deepsynth.data.catalog import summarize as summarize_dataset
    from deepsynth.training.recommend import recommend_lora

    samples = args.samples or summarize_dataset(Path(args.dataset))["rows"].get("train", 0)
    if not samples:
        raise DeepSynthError(f"{args.dataset} has no train rows")
    print(json.dumps(recommend_lora(samples), indent=2))
    return exit_codes.OK
