"""Bearer-token authentication for the API when a token is configured.

``GET /api/health`` stays open (liveness, role, version only). The browser login that trades
the token for a session cookie comes with the web UI.
"""

from __future__ import annotations

import hmac

from flask import Flask, jsonify, request

OPEN_PATHS = ("/api/health",)


def register(app: Flask, token: str | None) -> None:
    if not token:
        return
    expected = f"Bearer {token}".encode()

    @app.before_request
    def require_token():
        if request.path in OPEN_PATHS:
            return None
        given = request.headers.get("Authorization", "").encode()
        if not hmac.compare_digest(given, expected):
            return jsonify(error="missing or wrong API token (Authorization: Bearer ...)"), 401
        return None
