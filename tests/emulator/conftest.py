"""Fixtures for the emulator's own tests: one real emulator over HTTP, reset per test."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from emulator.testing import running_emulator


@pytest.fixture(scope="session")
def emulator_server():
    """A real emulator on a free port, shared by the emulator tests."""
    with running_emulator() as running:
        yield running


@pytest.fixture
def emu(emulator_server):
    """The shared emulator, back to a fresh state (no faults, no latency, empty log)."""
    emulator_server.control.reset()
    yield emulator_server
    emulator_server.control.reset()


@pytest.fixture
def client(emu) -> openai.OpenAI:
    """The real openai SDK pointed at the emulator, with its own retries off."""
    return openai.OpenAI(base_url=emu.base_url, api_key="test", max_retries=0, timeout=10)


@dataclass
class RawResponse:
    """An HTTP answer as it came off the wire."""

    status: int
    headers: dict[str, str]
    text: str

    def json(self, **kwargs: Any) -> Any:
        return json.loads(self.text, **kwargs)


class RawHttp:
    """Plain urllib calls that return error answers instead of raising."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def request(
        self, method: str, path: str, body: Any = None, key: str | None = "test", headers: dict[str, str] | None = None
    ) -> RawResponse:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base_url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if key is not None:
            request.add_header("Authorization", f"Bearer {key}")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return RawResponse(response.status, dict(response.headers), response.read().decode())
        except urllib.error.HTTPError as exc:
            return RawResponse(exc.code, dict(exc.headers), exc.read().decode())

    def chat(
        self, model: str = "openai/gpt-4o-mini", content: str = "Tell the story of a red kite", **extra: Any
    ) -> RawResponse:
        key = extra.pop("key", "test")
        headers = extra.pop("headers", None)
        body = {"model": model, "messages": [{"role": "user", "content": content}], **extra}
        return self.request("POST", "/chat/completions", body, key=key, headers=headers)

    def get(self, path: str, key: str | None = "test") -> RawResponse:
        return self.request("GET", path, key=key)


@pytest.fixture
def raw(emu) -> RawHttp:
    """Raw HTTP against the emulator's /api/v1, for status codes, headers and exact bodies."""
    return RawHttp(emu.base_url)
