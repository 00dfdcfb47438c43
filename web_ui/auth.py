"""Authentication when a token is configured.

API clients send ``Authorization: Bearer TOKEN``. A browser trades the token once, at
``POST /api/login``, for an HttpOnly, SameSite=Strict session cookie named after the
service's port (:func:`cookie_name`: two services on one host keep separate sessions)
that expires after ``SESSION_SECONDS`` (``POST /api/logout`` ends it sooner); requests
that change state with that cookie must also carry the ``X-DeepSynth-CSRF`` header, which a
cross-site form cannot send. Wrong tokens are limited per client address
(``LOGIN_ATTEMPTS`` a minute: a 429 with ``Retry-After``). ``GET /api/health`` stays open
(liveness, role, version only). Pages redirect to the login page until the browser has a
session.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time

from flask import Flask, jsonify, redirect, request

from web_ui.requests_json import declares

# Logout ends only the session its own cookie names, so it needs no token.
OPEN_PATHS = ("/api/health", "/api/login", "/api/logout", "/login")
COOKIE_PREFIX = "deepsynth_session_"
CSRF_HEADER = "X-DeepSynth-CSRF"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
SESSION_SECONDS = 12 * 3600
LOGIN_ATTEMPTS = 10
LOGIN_WINDOW_SECONDS = 60.0
LOGIN_BODY = {"type": "object", "required": ["token"], "properties": {
    "token": {"type": "string", "description": "the API token"}}}


class Sessions:
    """Browser sessions in memory (a restart logs browsers out), each with an expiry, and
    the recent failed logins of each client address."""

    def __init__(self):
        self._expires: dict[str, float] = {}
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def start(self) -> str:
        session = secrets.token_urlsafe(32)
        with self._lock:
            now = time.time()
            self._expires = {s: t for s, t in self._expires.items() if t > now}
            self._expires[session] = now + SESSION_SECONDS
        return session

    def valid(self, session: str | None) -> bool:
        if not session:
            return False
        with self._lock:
            found = [s for s in self._expires if hmac.compare_digest(session, s)]
            return bool(found) and self._expires[found[0]] > time.time()

    def end(self, session: str | None) -> None:
        with self._lock:
            self._expires.pop(session or "", None)

    def wait_before_login(self, client: str) -> float:
        """Seconds this client must wait before its next attempt (0: it may try now)."""
        with self._lock:
            now = time.monotonic()
            recent = [t for t in self._failures.get(client, []) if now - t < LOGIN_WINDOW_SECONDS]
            self._failures[client] = recent
            if len(recent) < LOGIN_ATTEMPTS:
                return 0.0
            return LOGIN_WINDOW_SECONDS - (now - recent[0])

    def failed(self, client: str) -> None:
        with self._lock:
            self._failures.setdefault(client, []).append(time.monotonic())


def cookie_name(port: int | str) -> str:
    """The session cookie of the service listening on ``port``. Browsers keep cookies per
    host, not per port, so the cpu and gpu services on one host need different names: under
    one name, logging into one service replaced (logged out) the other's session."""
    return f"{COOKIE_PREFIX}{port}"


def _cookie() -> str:
    # The port the server listens on (waitress sets it), not the Host header a client sends.
    return cookie_name(request.environ.get("SERVER_PORT", "0"))


def register(app: Flask, token: str | None) -> None:
    if not token:
        return
    expected = f"Bearer {token}".encode()
    sessions = Sessions()

    @app.post("/api/login")
    @declares(body=lambda: LOGIN_BODY, errors=(429,), refusal=401)
    def login():
        """Trade the API token for a browser session cookie."""
        client = request.remote_addr or "-"
        wait = sessions.wait_before_login(client)
        if wait:
            response = jsonify(error=f"too many wrong tokens; try again in {wait:.0f} s",
                               field="token", allowed=None)
            response.headers["Retry-After"] = str(max(1, round(wait)))
            return response, 429
        data = request.get_json(silent=True) if request.content_length and \
            request.content_length < 4096 else None
        given = data.get("token", "") if isinstance(data, dict) else ""
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(errors="replace"),
                                                                 token.encode()):
            sessions.failed(client)
            return jsonify(error="wrong token", field="token", allowed=None), 401
        response = jsonify(logged_in=True, expires_in_s=SESSION_SECONDS)
        response.set_cookie(_cookie(), sessions.start(), httponly=True, samesite="Strict",
                            secure=request.is_secure, max_age=SESSION_SECONDS)
        return response

    @app.post("/api/logout")
    @declares()
    def logout():
        """End this browser's session."""
        sessions.end(request.cookies.get(_cookie()))
        response = jsonify(logged_in=False)
        response.delete_cookie(_cookie(), httponly=True, samesite="Strict")
        return response

    app.before_request(lambda: _gate(sessions, expected))


def _gate(sessions: Sessions, expected: bytes):
    """Let the request through (None), or answer it: a page without a session goes to the
    login page; an API request needs the token, or a session (with the CSRF header when it
    changes state)."""
    if request.path in OPEN_PATHS or request.path.startswith("/static/"):
        return None
    session_ok = sessions.valid(request.cookies.get(_cookie()))
    if not request.path.startswith("/api/"):
        return None if session_ok else redirect("/login?next=" + request.full_path.rstrip("?"))
    if hmac.compare_digest(request.headers.get("Authorization", "").encode(errors="replace"),
                           expected):
        return None
    if session_ok:
        if request.method in SAFE_METHODS or request.headers.get(CSRF_HEADER):
            return None
        return jsonify(error=f"requests that change state need the {CSRF_HEADER} header"), 403
    return jsonify(error="missing or wrong API token (Authorization: Bearer ...)"), 401
