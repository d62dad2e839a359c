"""Checks a worker runs before it takes any job: a misconfigured worker should refuse to start
with one clear line, not fail every job later naming only the fallback model."""

from __future__ import annotations

import logging
import sys
from typing import Any
from urllib.parse import urlsplit

from config import Settings, get_settings

OPENROUTER_HOST = "openrouter.ai"

log = logging.getLogger(__name__)


def configuration_problem(settings: Settings) -> str | None:
    """Why a worker must not start with ``settings``, or None."""
    host = urlsplit(settings.openrouter_base_url).hostname or ""
    talks_to_openrouter = host == OPENROUTER_HOST or host.endswith("." + OPENROUTER_HOST)
    if talks_to_openrouter and not (settings.openrouter_api_key and settings.openrouter_api_key.get_secret_value()):
        return (
            f"refusing to start: OPENROUTER_BASE_URL is OpenRouter ({settings.openrouter_base_url}) but"
            " OPENROUTER_API_KEY is not set; set it, or point OPENROUTER_BASE_URL at the emulator (`litink emulator`)"
        )
    return None


def refuse_misconfigured_worker(**_: Any) -> None:
    """A ``worker_init`` receiver. SystemExit passes through Celery's signal dispatch (which
    logs and swallows ordinary exceptions), so the worker process exits with status 2."""
    problem = configuration_problem(get_settings())
    if problem:  # stderr, not the log: logging may not be set up yet, and one line is enough
        print(problem, file=sys.stderr, flush=True)
        raise SystemExit(2)


def warn_weakened_checks(**_: Any) -> None:
    """A ``worker_init`` receiver: each setting that switches a protection off, as a warning."""
    for warning in get_settings().weakened_checks():
        log.warning("weakened check: %s", warning)
