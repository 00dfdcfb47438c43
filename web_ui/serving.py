"""The app's waitress server, made here for ``deepsynth serve`` and for the tests alike.

Waitress refuses a body larger than ``max_request_body_size`` as soon as it has read the
headers: a Content-Length over the cap is answered 413 and the connection closed, so the
body is never read, let alone buffered (a chunked body is stopped once the cap is passed).
The cap is the app's own limit (``max_upload_mb``, a JSON 413 from Flask) plus 1 MiB for a
multipart upload's framing. Waitress writes its refusals (413, and 400, 431, 501 for
requests it cannot parse) as plain text; its error task is replaced, through the channel
class of each listening socket, by one that writes the project's JSON error (``error``,
``field``, ``allowed``), the same body a 413 from the app has.
"""

from __future__ import annotations

import json

from waitress import create_server
from waitress.channel import HTTPChannel
from waitress.server import BaseWSGIServer
from waitress.task import ErrorTask
from waitress.utilities import RequestEntityTooLarge

from deepsynth.config.server import ServerConfig
from web_ui.errors import too_large


def body_limit(config: ServerConfig) -> int:
    """The largest body waitress reads: the app's limit and room for multipart framing."""
    return (config.max_upload_mb + 1) * 2**20


class JsonErrorTask(ErrorTask):
    """Waitress' answer to a request it refuses itself, as the project's JSON error; a 413
    says what the app accepts (``allowed_bytes``), as the app's own 413 does."""

    allowed_bytes = 0

    def execute(self):
        error = self.request.error
        if isinstance(error, RequestEntityTooLarge):
            answer = too_large(self.allowed_bytes)
        else:
            answer = {"error": f"{error.reason}: {error.body}", "field": None,
                      "allowed": None}
        body = json.dumps(answer).encode()
        self.status = f"{error.code} {error.reason}"
        self.response_headers.append(("Content-Type", "application/json"))
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


def _channel(config: ServerConfig) -> type[HTTPChannel]:
    task = type("JsonErrorTask", (JsonErrorTask,),
                {"allowed_bytes": config.max_upload_mb * 2**20})
    return type("JsonErrorChannel", (HTTPChannel,), {"error_task_class": task})


def make_server(app, config: ServerConfig, host: str, port: int):
    """A waitress server for ``app`` on ``host:port`` (0: a free port), not yet running."""
    sockets: dict = {}
    server = create_server(app, map=sockets, host=host, port=port, threads=config.threads,
                           max_request_body_size=body_limit(config))
    channel = _channel(config)
    for dispatcher in sockets.values():  # one per address listened on
        if isinstance(dispatcher, BaseWSGIServer):
            dispatcher.channel_class = channel
    return server
