"""The ``deepsynth`` command: one sub-command per task, user errors as one clear line."""

from __future__ import annotations

import argparse
import logging
import os
import sys

from deepsynth import __version__
from deepsynth.cli import (
    chat_commands, dataset_commands, estimate_command, exit_codes, model_commands, render_command,
    serve_command,
)
from deepsynth.errors import DeepSynthError
from deepsynth.hub.upload import HubUploadError

# Libraries that log every network retry; their final error reaches the user through ours.
_CHATTY_LIBRARIES = ("huggingface_hub", "datasets", "fsspec", "httpx", "urllib3", "filelock")


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one ``error:`` line, like every other user error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(exit_codes.USER_ERROR, f"error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="deepsynth", description="Render summarization corpora to page images and "
        "fine-tune DeepSeek-OCR to summarize them.")
    parser.add_argument("--version", action="version", version=f"deepsynth {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    render_command.register(commands)
    dataset_commands.register(commands)
    model_commands.register(commands)
    estimate_command.register(commands)
    chat_commands.register(commands)
    serve_command.register(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not args.verbose:
        # These libraries set their own levels when imported; their variables win over that.
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")
        os.environ.setdefault("DATASETS_VERBOSITY", "error")
        for name in _CHATTY_LIBRARIES:
            logging.getLogger(name).setLevel(logging.ERROR)
    try:
        return args.handler(args) or 0
    except HubUploadError as exc:  # local data is fine; only the upload needs a retry
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.UPLOAD_FAILED
    except DeepSynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exit_codes.USER_ERROR
    except KeyboardInterrupt:
        print("interrupted; finished shards are kept, re-run the same command to resume",
              file=sys.stderr)
        return exit_codes.STOPPED


if __name__ == "__main__":
    sys.exit(main())
