"""Bearer-key checking: the emulator accepts any non-empty key, like a dev sandbox.

Real OpenRouter rejects calls without a key; clients must be seen to send one, so the
check is kept even though every key is "valid". A key that starts with
``MANAGEMENT_KEY_PREFIX`` plays a management key: the only kind ``/credits`` accepts.
"""

from __future__ import annotations

from aiohttp import web

from .errors import error_response

__all__ = ["MANAGEMENT_KEY_PREFIX", "bearer_token", "is_management_key", "key_label", "require_key"]

MANAGEMENT_KEY_PREFIX = "sk-or-mgmt-"


def bearer_token(request: web.Request) -> str | None:
    """The key from ``Authorization: Bearer <key>``, or None when absent or empty."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token


def require_key(request: web.Request) -> web.Response | None:
    """None when the request carries a key, else the 401 answer to send."""
    if bearer_token(request) is None:
        return error_response(401, "Missing or malformed Authorization header; expected 'Bearer <key>'")
    return None


def is_management_key(token: str) -> bool:
    return token.startswith(MANAGEMENT_KEY_PREFIX)


def key_label(token: str) -> str:
    """A masked label for a key, the way key listings show them."""
    if len(token) <= 12:
        return token[:3] + "..."
    return f"{token[:10]}...{token[-3:]}"
