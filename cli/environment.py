"""What each `litink` command reads from the environment, for its --help.

The meanings are short forms of docs/configuration.md; the defaults come from the Settings
model itself, so --help cannot drift from what the code does.
"""

from __future__ import annotations

from pydantic import SecretStr

from config.settings import Settings

MEANINGS = {
    "DATABASE_URL": "Postgres, postgresql://user:password@host:5432/db",
    "REDIS_URL": "Redis: broker, results, rate limits, redis://host:6379/0",
    "REDIS_SENTINEL_MASTER": "with sentinel:// REDIS_URL, the Sentinel master name",
    "OPENROUTER_API_KEY": "OpenRouter API key (a secret)",
    "OPENROUTER_BASE_URL": "OpenRouter API root",
    "OPENROUTER_MANAGEMENT_KEY": "OpenRouter management key, for /credits only (a secret)",
    "FLOWER_BASIC_AUTH": "user:password[,user2:password2] (a secret)",
    "WEBHOOK_PORT": "port of the webhook receiver",
    "WEBHOOK_HOST": "address the webhook receiver listens on",
    "STRIPE_WEBHOOK_SECRET": "Stripe endpoint signing secret (a secret)",
    "STRIPE_WEBHOOK_TOLERANCE": "seconds a webhook signature may be old at the door",
    "STRIPE_SECRET_KEY": "Stripe API key (a secret)",
    "LITINK_DEBUG": "1: show the traceback of an error",
}
EXTRA_DEFAULTS = {"LITINK_DEBUG": "0"}  # read by the CLI itself, not a Settings field

SERVICES = ("DATABASE_URL", "REDIS_URL")
DATABASE = ("DATABASE_URL",)


def _default(name: str) -> str:
    if name in EXTRA_DEFAULTS:
        return EXTRA_DEFAULTS[name]
    field = Settings.model_fields.get(name.lower())
    value = None if field is None else field.default
    if value is None or isinstance(value, SecretStr):
        return "unset"
    return str(value)


def epilog(*names: str) -> str:
    """An ``Environment`` section for a command's --help (``\\b`` keeps Click from rewrapping)."""
    lines = ["\b", "Environment (or .env):"]
    lines += [f"  {n:<21} {MEANINGS[n]} [default: {_default(n)}]" for n in (*names, "LITINK_DEBUG")]
    return "\n".join(lines)
