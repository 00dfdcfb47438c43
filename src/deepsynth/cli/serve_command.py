"""``deepsynth serve``: the web service in one threaded WSGI process (waitress)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from deepsynth.config import add_arguments, from_namespace
from deepsynth.config.server import ServerConfig
from deepsynth.errors import ConfigError
from deepsynth.workspace import Workspace

log = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")
MIN_TOKEN_CHARS = 16
SHUTDOWN_GRACE_SECONDS = 60.0


def register(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser("serve", help="run the web service (REST API)")
    add_arguments(serve, ServerConfig)
    serve.set_defaults(handler=run_serve)


def check_exposure(config: ServerConfig, environ: dict) -> None:
    """Off loopback the API needs a token (one that cannot be guessed), unless
    unauthenticated access is explicit."""
    if config.host in LOOPBACK:
        return
    if config.api_token:
        if len(config.api_token) < MIN_TOKEN_CHARS:
            raise ConfigError("DEEPSYNTH_API_TOKEN", f"is too short to guard {config.host} "
                              f"({len(config.api_token)} characters); make one with python3 "
                              "-c 'import secrets; print(secrets.token_urlsafe(32))'",
                              f"at least {MIN_TOKEN_CHARS} characters")
        return
    if environ.get("DEEPSYNTH_ALLOW_UNAUTHENTICATED") == "1":
        log.warning("serving on %s WITHOUT authentication (DEEPSYNTH_ALLOW_UNAUTHENTICATED=1)",
                    config.host)
        return
    raise ConfigError("host", f"{config.host} is reachable from other machines: set "
                      "DEEPSYNTH_API_TOKEN (or DEEPSYNTH_ALLOW_UNAUTHENTICATED=1 behind a "
                      "trusted proxy)", "127.0.0.1 without a token")


def run_serve(args: argparse.Namespace) -> int:
    import os

    from web_ui import create_app
    from web_ui.serving import make_server

    config = from_namespace(ServerConfig, args, api_token=ServerConfig.token_from_environment())
    check_exposure(config, dict(os.environ))
    Workspace(config.data_root).check_writable()  # one clear line, not a later traceback
    app = create_app(config)
    manager = app.config["JOBS"]
    interrupted = manager.recover(auto_resume=config.auto_resume)
    if interrupted:
        log.info("interrupted jobs found at start: %s", ", ".join(interrupted))
    # Bodies larger than the app accepts are refused (JSON 413) before waitress reads them.
    server = make_server(app, config, config.host, config.effective_port)

    def stop(signum, frame):
        log.info("stopping: pausing running jobs (up to %.0f s)", SHUTDOWN_GRACE_SECONDS)
        manager.shutdown(SHUTDOWN_GRACE_SECONDS)
        server.close()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    root = app.config["WORKSPACE"].root.resolve()
    print(f"deepsynth {config.role} service on http://{config.host}:{config.effective_port} "
          f"(data root {root})", file=sys.stderr, flush=True)
    server.run()
    return 0
