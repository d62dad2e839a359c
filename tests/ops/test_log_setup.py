"""Logs are JSON with the job context, and never show a secret."""

import json
import logging

import pytest

from workers.ops.log_setup import JsonFormatter, mask

pytestmark = pytest.mark.unit  # no Postgres, no Redis


def test_secrets_shaped_like_keys_are_masked():
    line = mask("key sk-or-v1-abcdef0123456789 and sk_live_abcdef123 and whsec_abcdef123")
    assert "abcdef0123456789" not in line and "sk_live_abcdef123" not in line and "whsec_abcdef123" not in line
    assert "sk-or-v1-a****" in line


def test_a_log_line_is_json_with_job_tier_and_model():
    record = logging.LogRecord(
        "workers.pipeline.runner", logging.WARNING, __file__, 1, "provider call failed", None, None
    )
    record.job_id, record.tier, record.model = "j-1", "free", "m"
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "provider call failed"
    assert (entry["job_id"], entry["tier"], entry["model"], entry["level"]) == ("j-1", "free", "m", "warning")


def test_settings_never_show_secrets_in_repr():
    from config.settings import Settings

    shown = repr(Settings(openrouter_api_key="sk-or-v1-secret", stripe_secret_key="sk_test_x", flower_basic_auth="a:b"))
    assert "sk-or-v1-secret" not in shown and "sk_test_x" not in shown and "a:b" not in shown
