"""The one place where `litink` turns an exception into the line an operator reads.

Each message says what failed, with which setting (URLs with their password masked) and what
to do. ``litink --debug`` (or LITINK_DEBUG=1) prints the traceback as well. An exception
nothing here recognises still gets one line, naming its type.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from config.settings import SettingError, masked_url

DEBUG_HINT = "run with --debug for the traceback"


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and the exceptions it was raised from, outermost first."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _setting(name: str) -> str:
    """The masked value of a URL setting, without failing when the settings themselves do not load."""
    try:
        from config import get_settings

        value = getattr(get_settings(), name.lower())
    except Exception:
        return name
    return f"{masked_url(value)} ({name})" if value else name


def _first_line(text: Any) -> str:
    lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
    return re.sub(r"\s+", " ", lines[0]).rstrip(".") if lines else ""


def _postgres(exc: BaseException) -> str:
    where = _setting("DATABASE_URL")
    reason = _first_line(exc)
    lowered = reason.lower()
    missing = re.search(r'database "([^"]+)" does not exist', reason)
    if missing:
        return (
            f"Postgres at {where}: database {missing.group(1)!r} does not exist;"
            f" create it (createdb {missing.group(1)}) or fix DATABASE_URL"
        )
    if "password authentication failed" in lowered or "authentication" in lowered:
        return f"Postgres at {where} refused the credentials: {reason}; fix the user or password in DATABASE_URL"
    if "connection refused" in lowered or "timeout" in lowered or "could not translate host" in lowered:
        return f"cannot connect to Postgres at {where}: {reason}; is Postgres running there?"
    return f"Postgres at {where}: {reason}"


def _redis(exc: BaseException) -> str:
    return f"cannot connect to Redis at {_setting('REDIS_URL')}: {_first_line(exc)}; is Redis running there?"


def _settings_invalid(exc: Any) -> str:
    problems = []
    for error in exc.errors():
        name = "/".join(str(part) for part in error.get("loc", ())).upper() or "settings"
        problems.append(f"{name} {error['msg'].removeprefix('Value error, ')}")
    return "invalid configuration: " + "; ".join(problems)


def explain(exc: BaseException) -> str:
    """One line for ``exc``."""
    import openai
    import psycopg
    import pydantic
    import redis.exceptions
    from kombu.exceptions import OperationalError as BrokerError

    from workers.errors import LitinkError

    for cause in _chain(exc):
        if isinstance(cause, SettingError):
            return str(cause)
        if isinstance(cause, pydantic.ValidationError):
            return _settings_invalid(cause)
        if isinstance(cause, psycopg.OperationalError):
            return _postgres(cause)
        if isinstance(cause, redis.exceptions.ConnectionError | redis.exceptions.TimeoutError | BrokerError):
            return _redis(cause)
        if isinstance(cause, openai.APIConnectionError):
            where = _setting("OPENROUTER_BASE_URL")
            reason = _first_line(cause.__cause__ or cause)
            return f"cannot reach OpenRouter at {where}: {reason}; check the network or OPENROUTER_BASE_URL"
        if isinstance(cause, openai.AuthenticationError):
            return "OpenRouter refused the API key (OPENROUTER_API_KEY); set a valid key"
        if isinstance(cause, openai.APIStatusError):
            return f"OpenRouter answered {cause.status_code}: {_first_line(cause.message)}"
        if isinstance(cause, LitinkError):
            return f"OpenRouter: {_first_line(cause)}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"unexpected error: {type(exc).__name__}: {_first_line(exc)} ({DEBUG_HINT})"
