"""A small synchronous client for the emulator's /_emulator control API.

Tests and the demo run in plain threads, not in an event loop, so this uses blocking
``urllib.request`` and needs nothing outside the standard library.
"""

from __future__ import annotations

import contextlib
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

__all__ = ["EmulatorControl", "EmulatorControlError"]


class EmulatorControlError(RuntimeError):
    """The control API refused a request (or could not be reached)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class EmulatorControl:
    """Steer a running emulator. ``base_url`` may be its root or its ``/api/v1`` URL."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        root = base_url.rstrip("/")
        if root.endswith("/api/v1"):
            root = root[: -len("/api/v1")]
        self.root_url = root
        self.timeout = timeout

    def inject(self, model: str, fault: str, times: int = 1, **options: Any) -> dict[str, Any]:
        """Queue ``fault`` for ``model`` ("*" = any model) for the next ``times`` calls (-1 = forever).

        Options: ``retry_after`` (seconds, for the Retry-After header), ``delay_s`` (for hang).
        """
        body = {"model": model, "fault": fault, "times": times, **options}
        return self._call("POST", "/_emulator/faults", body)

    def clear(self) -> int:
        """Drop every queued fault; returns how many were dropped."""
        return self._call("DELETE", "/_emulator/faults")["cleared"]

    def pending_faults(self) -> list[dict[str, Any]]:
        return self._call("GET", "/_emulator/faults")["pending"]

    def set_latency(self, ms: float, jitter_ms: float = 0) -> dict[str, Any]:
        return self._call("POST", "/_emulator/latency", {"latency_ms": ms, "jitter_ms": jitter_ms})

    def serve_as(self, model: str, served_as: str | None) -> dict[str, Any]:
        """Make calls for ``model`` report ``served_as`` as the serving model (None clears)."""
        return self._call("POST", "/_emulator/served_as", {"model": model, "served_as": served_as})

    def calls(self, model: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Logged calls, oldest first."""
        query = {key: value for key, value in (("model", model), ("limit", limit)) if value is not None}
        suffix = f"?{urllib.parse.urlencode(query)}" if query else ""
        return self._call("GET", f"/_emulator/calls{suffix}")

    def reset_calls(self) -> None:
        """Empty the call log and zero the running totals."""
        self._call("DELETE", "/_emulator/calls")

    def stats(self) -> dict[str, Any]:
        """Running totals: ``calls``, ``cost_total`` (a decimal string), tokens, counts by status,
        and ``in_flight``: completions being answered right now."""
        return self._call("GET", "/_emulator/stats")

    def reset(self) -> None:
        """Faults, latency, served_as and the call log back to a fresh start."""
        self._call("POST", "/_emulator/reset")

    def health(self) -> bool:
        try:
            return self._call("GET", "/_emulator/health").get("status") == "ok"
        except (EmulatorControlError, OSError):
            return False

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.root_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            with contextlib.suppress(ValueError, KeyError, TypeError):
                detail = json.loads(detail)["error"]["message"]
            raise EmulatorControlError(f"{method} {path} -> {exc.code}: {detail}", status=exc.code) from None
        except urllib.error.URLError as exc:
            raise EmulatorControlError(f"{method} {path}: emulator unreachable ({exc.reason})") from None
