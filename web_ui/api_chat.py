"""Chat, ``/api/chat/*``: for the generic trainer, validate a chat file (with its detected
format and, for ShareGPT, Alpaca or a JSON array, the conversion report) and preview a
record's labels; for the playground, a trained chat model's reply to a conversation."""

from __future__ import annotations

from flask import Blueprint, jsonify

import dataclasses

from deepsynth.config import from_dict
from deepsynth.config.chat import ChatInspectConfig
from deepsynth.config.requests import ChatGenerateRequest
from deepsynth.errors import ConfigRefused
from web_ui import schemas
from web_ui.app_context import workspace
from web_ui.model_calls import TookTooLong, bounded, too_slow
from web_ui.requests_json import body, declares, parsed_body

blueprint = Blueprint("chat", __name__)


def _inspect_request():
    from deepsynth.chat.inspect import chat_encoder

    request = from_dict(ChatInspectConfig, body(), strict=True)
    path = workspace().existing_file(request.source, "source")
    encoder = chat_encoder(workspace().model_spec(request.model, chat=True), workspace().root,
                           request.chat_template, request.chat_reasoning,
                           request.chat_train_on, request.max_length)
    return request, path, encoder


@blueprint.post("/api/chat/validate")
@declares(body=schemas.chat_inspect_body, errors=(404, 422))
def validate():
    """Every problem of a chat JSONL file (line, field path, rule), warnings and a summary;
    the detected format, and the conversion report when the file is in another format."""
    from deepsynth.chat.inspect import validate_file

    request, path, encoder = _inspect_request()
    return jsonify(validate_file(path, encoder, request.source))


@blueprint.post("/api/chat/preview")
@declares(body=schemas.chat_inspect_body, errors=(404, 422))
def preview():
    """One line as the model is trained on it: segments marked trained or not."""
    from deepsynth.chat.inspect import preview_line

    request, path, encoder = _inspect_request()
    return jsonify(preview_line(path, request.line, encoder))


@blueprint.post("/api/chat/generate")
@declares(body=ChatGenerateRequest, errors=(404, 422, 504))
def generate():
    """A chat run's reply to the conversation so far, rendered with its chat template."""
    from deepsynth.chat.reply import chat_reply, check_conversation

    request = parsed_body(ChatGenerateRequest)
    run = workspace().existing_run(request.model)
    if run.task() != "chat":
        raise ConfigRefused("model", f"{request.model!r} is an OCR model: it reads pages, not "
                            "conversations (summarize with it on the Models page)",
                            "a model trained with trainer_type generic")
    final = workspace().trained_model(request.model)
    messages = [dataclasses.asdict(message) for message in request.messages]
    check_conversation(messages)
    try:
        reply = bounded(chat_reply, str(final), messages, request.max_new_tokens,
                        workspace().root)
    except TookTooLong:
        return too_slow("the reply")
    return jsonify({"model": request.model, **reply})
