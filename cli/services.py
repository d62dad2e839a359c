"""Which Postgres and Redis a `litink` command talks to."""

from __future__ import annotations

import os

from devtools.embedded import Services


def use_services() -> Services:
    """Point this process (and its children) at the configured or embedded servers."""
    from config import get_catalog, get_settings
    from devtools.embedded import ensure_services

    services = ensure_services()
    os.environ.update(services.env())
    get_settings.cache_clear()
    get_catalog.cache_clear()
    return services
