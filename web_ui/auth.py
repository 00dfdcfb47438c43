"""Authentication when a token is configured.

API clients send ``Authorization: Bearer TOKEN``. A browser trades the token once, at
``POST /api/login``, for an HttpOnly, SameSite=Strict session cookie; requests that change
state with that cookie must also carry the ``X-DeepSynth-CSRF`` header, which a cross-site
form cannot send. ``GET /api/health`` stays open (liveness, role, version only). Pages
redirect to the login page until the browser has a session.
"""

from __future__ import annotations

import hmac
import secrets

from flask import Flask, jsonify, redirect, request

OPEN_PATHS = ("/api/health", "/api/login", "/login")
COOKIE = "deepsynth_session"
CSRF_HEADER = "X-DeepSynth-CSRF"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def register(app: Flask, token: str | None) -> None:
    if not token:
        return
    expected = f"Bearer {token}".encode()
    sessions: set[str] = set()  # in memory: a restart logs browsers out

    @app.post("/api/login")
    def login():
        """Trade the API token for a browser session cookie."""
        data = request.get_json(silent=True)
        given = str(data.get("token", "") if isinstance(data, dict) else "").encode()
        if not hmac.compare_digest(given, token.encode()):
            return jsonify(error="wrong token", field="token", allowed=None), 401
        session = secrets.token_urlsafe(32)
        sessions.add(session)
        response = jsonify(logged_in=True)
        response.set_cookie(COOKIE, session, httponly=True, samesite="Strict",
                            secure=request.is_secure)
        return response

    @app.before_request
    def require_token():
        if request.path in OPEN_PATHS or request.path.startswith("/static/"):
            return None
        if not request.path.startswith("/api/"):  # a page: the browser logs in first
            session = request.cookies.get(COOKIE, "")
            if any(hmac.compare_digest(session, s) for s in sessions):
                return None
            return redirect("/login?next=" + request.full_path.rstrip("?"))
        given = request.headers.get("Authorization", "").encode()
        if hmac.compare_digest(given, expected):
            return None
        session = request.cookies.get(COOKIE)
        if session and any(hmac.compare_digest(session, s) for s in sessions):
            if request.method in SAFE_METHODS or request.headers.get(CSRF_HEADER):
                return None
            return jsonify(error=f"requests that change state need the {CSRF_HEADER} "
                                 f"header"), 403
        return jsonify(error="missing or wrong API token (Authorization: Bearer ...)"), 401
