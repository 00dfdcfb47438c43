"""``deepsynth estimate``: the peak accelerator memory and step time of a training config,
from the same options as ``deepsynth train`` (offline, in seconds, nothing loaded)."""

from __future__ import annotations

import argparse
import contextlib
import json

from deepsynth.cli import exit_codes
from deepsynth.config import add_arguments
from deepsynth.config.spec import flat_fields
from deepsynth.config.training import TrainingConfig

# What the estimate needs no value for: nothing is read from them.
_UNREAD = {"dataset": "-", "out": "-"}


def register(commands: argparse._SubParsersAction) -> None:
    estimate = commands.add_parser(
        "estimate", help="peak GPU memory and step time of a training config",
        description="Estimate the peak accelerator memory of `deepsynth train` with the same "
        "options (weights, gradients, AdamW state, activations, regularizer copies), "
        "whether it fits common GPUs, and the step time as an order of magnitude. Nothing "
        "is downloaded or loaded: the model is built on the meta device.")
    add_arguments(estimate, TrainingConfig)
    for action in estimate._actions:  # the data and the output folder are not read
        if action.dest in _UNREAD:
            action.required = False
    estimate.add_argument("--device", choices=("cuda", "cpu"), default="cuda",
                          help="where the step runs: cuda (GPU memory), or cpu (this "
                          "machine's RAM, whose dropout and attention keep more)")
    estimate.add_argument("--gpu", action="append", metavar="NAME",
                          help="step time on this GPU of the table (repeatable; default: all)")
    estimate.add_argument("--tflops", type=float, help="your GPU's peak bf16 TFLOP/s "
                          "(with --bandwidth): the step time on it")
    estimate.add_argument("--bandwidth", type=float, help="your GPU's memory bandwidth, GB/s")
    estimate.add_argument("--json", action="store_true", help="print the estimate as JSON")
    estimate.set_defaults(handler=run_estimate)


def run_estimate(args: argparse.Namespace) -> int:
    from deepsynth.config.training_checks import for_a_cuda_machine
    from deepsynth.training.estimate import estimate, gpus_for
    from deepsynth.training.estimate_report import format_estimate
    from deepsynth.training.request import resolve_training

    names = flat_fields(TrainingConfig)
    values = {k: v for k, v in vars(args).items() if k in names and v is not None}
    # Parsed as train parses it; for a GPU run as a CUDA machine checks it, since the
    # estimate is for the GPU one would rent (QLoRA is estimated on a machine without one).
    with for_a_cuda_machine() if args.device == "cuda" else contextlib.nullcontext():
        config = resolve_training({**_UNREAD, **values})
    result = estimate(config, args.device, gpus_for(args.gpu, args.tflops, args.bandwidth))
    print(json.dumps(result.to_dict(), indent=2) if args.json else format_estimate(result))
    return exit_codes.OK
