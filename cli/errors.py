"""The one place where `litink` turns an exception into the line an operator reads.

Each message says what failed, with which setting (URLs with their password masked) and what
to do. ``litink --debug`` (or LITINK_DEBUG=1) prints the traceback as well. An exception
nothing here recognises still gets one line, naming its type.
"""

from __future__ import annotations

import re
import sys
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


def _is(exc: BaseException, module: str, *names: str) -> bool:
    """``isinstance(exc, module.name)`` without importing ``module``: an exception of a library
    this process never imported cannot be one of its classes (and the import would cost ~1 s)."""
    loaded = sys.modules.get(module)
    classes = tuple(c for c in (getattr(loaded, n, None) for n in names) if isinstance(c, type))
    return bool(classes) and isinstance(exc, classes)


def explain(exc: BaseException) -> str:
    """One line for ``exc``."""
    for cause in _chain(exc):
        if isinstance(cause, SettingError):
            return str(cause)
        if _is(cause, "pydantic", "ValidationError"):
            return _settings_invalid(cause)
        if _is(cause, "psycopg", "OperationalError"):
            return _postgres(cause)
        if _is(cause, "psycopg.errors", "UndefinedTable", "UndefinedColumn"):
            return (
                f"Postgres at {_setting('DATABASE_URL')} is not at the newest schema ({_first_line(cause)});"
                " run `litink migrate`"
            )
        if _is(cause, "redis.exceptions", "ConnectionError", "TimeoutError") or _is(
            cause, "kombu.exceptions", "OperationalError"
        ):
            return _redis(cause)
        if _is(cause, "openai", "APIConnectionError"):
            where = _setting("OPENROUTER_BASE_URL")
            reason = _first_line(cause.__cause__ or cause)
            return f"cannot reach OpenRouter at {where}: {reason}; check the network or OPENROUTER_BASE_URL"
        if _is(cause, "openai", "AuthenticationError"):
            return "OpenRouter refused the API key (OPENROUTER_API_KEY); set a valid key"
        if _is(cause, "openai", "APIStatusError"):
            return f"OpenRouter answered {getattr(cause, 'status_code', '?')}: {_first_line(cause)}"
        if _is(cause, "workers.errors", "LitinkError"):
            return f"OpenRouter: {_first_line(cause)}"
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.filename}: {exc.strerror or exc}"
    return f"unexpected error: {type(exc).__name__}: {_first_line(exc)} ({DEBUG_HINT})"
