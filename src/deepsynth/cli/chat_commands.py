"""``deepsynth validate-chat``, ``deepsynth chat-preview`` and ``deepsynth convert-chat``:
check a chat JSONL file, show which tokens of a conversation are trained, and convert
ShareGPT, Alpaca and JSON arrays into chat JSONL."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from deepsynth.chat.validate import Problem
from deepsynth.cli import exit_codes


def register(commands: argparse._SubParsersAction) -> None:
    validate = commands.add_parser("validate-chat", help="check a chat JSONL file: every "
                                   "problem with its line, field path and rule")
    validate.add_argument("file", type=Path)
    _tokenizer_options(validate)
    validate.add_argument("--json", action="store_true", help="the full report as JSON")
    validate.set_defaults(handler=run_validate)

    convert = commands.add_parser("convert-chat", help="write a ShareGPT, Alpaca or OpenAI "
                                  "chat file (JSON Lines or a JSON array) as chat JSONL")
    convert.add_argument("source", type=Path)
    convert.add_argument("out", type=Path, help="the chat JSONL to write (.jsonl or .jsonl.gz)")
    convert.add_argument("--skip-invalid", action="store_true", help="write the records "
                         "that convert and leave out the refused ones (else nothing is "
                         "written when a record is refused)")
    convert.add_argument("--json", action="store_true", help="the report as JSON")
    convert.set_defaults(handler=run_convert)

    preview = commands.add_parser("chat-preview", help="a conversation as the model is "
                                  "trained on it, trained tokens between ⟦ and ⟧")
    preview.add_argument("file", type=Path)
    preview.add_argument("--line", type=int, default=1, help="line number (1-based)")
    _tokenizer_options(preview)
    preview.add_argument("--chat-template", choices=("auto", "model", "builtin"),
                         default="auto")
    preview.add_argument("--chat-reasoning", choices=("render", "drop"), default="render")
    preview.add_argument("--chat-train-on", choices=("all_assistant", "last_assistant"),
                         default="all_assistant")
    preview.add_argument("--json", action="store_true", help="segments as JSON")
    preview.set_defaults(handler=run_preview)


def _tokenizer_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="tiny-chat-lm", help="whose tokenizer and chat "
                        "template to use (a preset, a folder or ORG/NAME)")
    parser.add_argument("--max-length", type=int, default=2048,
                        help="warn about conversations longer than this many tokens")


def run_validate(args: argparse.Namespace) -> int:
    from deepsynth.chat.inspect import chat_encoder, validate_file

    encoder = chat_encoder(args.model, max_length=args.max_length)
    report = validate_file(args.file, encoder, str(args.file))
    if args.json:
        print(json.dumps(report, indent=2, ensure_ascii=False))
    elif report["conversion"] is not None:  # another format: one line, naming the command
        print(f"error: {Problem(**report['errors'][0])}")
    else:
        for problem in report["errors"]:
            print(f"error: {Problem(**problem)}")
        for problem in report["warnings"]:
            print(f"warning: {Problem(**problem)}")
        print(json.dumps(report["summary"], ensure_ascii=False))
        print(f"{report['error_count']} errors on {len(report['invalid_lines'])} lines, "
              f"{report['warning_count']} warnings", file=sys.stderr)
    return exit_codes.OK if report["ok"] else exit_codes.USER_ERROR


def run_convert(args: argparse.Namespace) -> int:
    from deepsynth.chat.convert import convert_file

    report = convert_file(args.source, args.out, args.skip_invalid)
    written = not report.error_count or args.skip_invalid
    conversion = report.counts()
    if args.json:
        print(json.dumps({"format": report.format_dict(), **conversion,
                          "written": str(args.out) if written else None,
                          "problems": [p.__dict__ for p in report.errors]},
                         indent=2, ensure_ascii=False))
    else:
        for problem in report.errors:
            print(f"refused: {problem}")
        reasons = "".join(f", {r} {n}" for r, n in conversion["refused_by_reason"].items())
        print(f"{args.source}: {report.format_label()}; {conversion['records']} records "
              f"read, {conversion['converted']} converted, {conversion['refused']} refused"
              f"{reasons}", file=sys.stderr)
        print(f"wrote {args.out}" if written else f"nothing written ({conversion['refused']} "
              "refused): fix them, or pass --skip-invalid to write the others",
              file=sys.stderr)
    return exit_codes.OK if written and report.valid_rows else exit_codes.USER_ERROR


def run_preview(args: argparse.Namespace) -> int:
    from deepsynth.chat.inspect import chat_encoder, preview_line
    from deepsynth.chat.template import marked_text

    encoder = chat_encoder(args.model, template=args.chat_template,
                           reasoning=args.chat_reasoning, train_on=args.chat_train_on,
                           max_length=args.max_length)
    preview = preview_line(args.file, args.line, encoder)
    if args.json or not preview["ok"]:
        print(json.dumps(preview, indent=2, ensure_ascii=False))
        return exit_codes.OK if preview["ok"] else exit_codes.USER_ERROR
    print(marked_text(preview))
    print(f"{preview['trained_tokens']} of {preview['tokens']} tokens trained "
          f"({preview['template']} template)", file=sys.stderr)
    return exit_codes.OK
