"""The browser UI: server-rendered pages whose scripts call only this service's REST API.

Each page belongs to the service that does its work (generation pages to ``cpu``, training
and models to ``gpu``; the monitor to both). On the other service a page says where its work
is done and links there, without making cross-origin requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from flask import Blueprint, abort, current_app, render_template, request

blueprint = Blueprint("pages", __name__, template_folder="templates", static_folder="static",
                      static_url_path="/static")


@dataclass(frozen=True)
class Page:
    name: str
    path: str
    title: str
    role: str | None  # the role that does the page's work; None: every service


PAGES = (Page("benchmark", "/", "Benchmark Datasets", "cpu"),
         Page("custom", "/custom", "Custom Dataset", "cpu"),
         Page("train", "/train", "Train Model", "gpu"),
         Page("monitor", "/monitor", "Monitor Jobs", None),
         Page("models", "/models", "Models", "gpu"),
         Page("playground", "/playground", "Playground", "gpu"),
         Page("compare", "/compare", "Compare Runs", "gpu"))


def _service_url(role: str) -> str:
    config = current_app.config["DEEPSYNTH"]
    return config.cpu_service_url if role == "cpu" else config.gpu_service_url


def _served(page: Page, role: str) -> bool:
    return page.role is None or role in ("all", page.role)


def _links(role: str) -> dict[str, str]:
    """Where the header's links go: a page of the other service straight there (its URL is
    known), not to this service's "open it there" page."""
    return {p.name: p.path if _served(p, role) else _service_url(p.role) + p.path
            for p in PAGES}


def _render(page: Page):
    role = current_app.config["JOBS"].role
    served = _served(page, role)
    elsewhere = None if served else _service_url(page.role) + page.path
    return render_template(f"{page.name}.html", page=page, pages=PAGES, role=role,
                           links=_links(role), served=served, elsewhere=elsewhere,
                           other_service=None if role == "all" else
                           {"role": "gpu" if role == "cpu" else "cpu",
                            "url": _service_url("gpu" if role == "cpu" else "cpu")})


def _view(page: Page):
    def view():
        return _render(page)
    view.__name__ = page.name
    view.__doc__ = f"The {page.title} page."
    return view


for _page in PAGES:
    blueprint.add_url_rule(_page.path, _page.name, _view(_page))


def safe_next(value: str | None) -> str:
    """Where to go after logging in: a path on this site, else "/". Browsers read "/\\host"
    and "/<tab>/host" as "//host" (another site), so backslashes, whitespace and control
    characters are refused along with "//"."""
    for form in (value or "", unquote(value or "")):  # as given, and decoded once more
        if not form.startswith("/") or form[1:2] in ("/", "\\") or any(
                c == "\\" or c.isspace() or ord(c) < 32 or ord(c) == 127 for c in form):
            return "/"
    return value


@blueprint.get("/login")
def login():
    """The login page (only when the server requires a token)."""
    if not current_app.config["DEEPSYNTH"].api_token:
        abort(404)
    role = current_app.config["JOBS"].role
    return render_template("login.html", next=safe_next(request.args.get("next")),
                           page=None, pages=PAGES, links=_links(role),
                           role=role, served=True, elsewhere=None,
                           other_service=None)
