"""OpenRouter's error shape: ``{"error": {"code", "message", "metadata"}}``.

Every error the emulator answers, injected or not, goes through here so clients see
one consistent body whose ``code`` equals the HTTP status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from .exactjson import dumps

__all__ = ["error_body", "error_response", "json_response"]


def error_body(status: int, message: str, metadata: Mapping[str, Any] | None = None) -> dict:
    """The JSON body of an error answer."""
    error: dict[str, Any] = {"code": status, "message": message}
    if metadata is not None:
        error["metadata"] = dict(metadata)
    return {"error": error}


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """A JSON answer written with exact Decimals."""
    return web.Response(text=dumps(body), status=status, content_type="application/json", headers=headers)


def error_response(
    status: int,
    message: str,
    metadata: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An error answer in OpenRouter's shape."""
    return json_response(error_body(status, message, metadata), status=status, headers=headers)
