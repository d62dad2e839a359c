"""The tier catalog: the shipped tiers.toml read as the guide defines each tier, and the
catalog's rules (words for no limit and custom prices, queues, priorities, cache TTLs), and a
broken catalog refused at load with the field named."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from config.tiers import (
    BILLING_QUEUE,
    CATALOG_PATH,
    INTAKE_PRIORITY,
    INTAKE_QUEUE,
    load_catalog,
    remaining,
)

pytestmark = pytest.mark.unit

CATALOG = load_catalog()
NAMES = ("free", "basic", "standard", "premium", "professional", "enterprise")


def test_the_shipped_catalog_has_the_six_tiers_in_rank_order():
    assert tuple(sorted(CATALOG.tiers, key=lambda n: CATALOG.tiers[n].rank)) == NAMES
    assert [t.rank for t in CATALOG.tiers.values()] == sorted({t.rank for t in CATALOG.tiers.values()})
    assert CATALOG.default.name == "free"


@pytest.mark.parametrize(
    ("tier", "price", "videos", "analyses", "cap", "max_chars"),
    [
        ("free", Decimal(0), 2, 20, Decimal("0.50"), 20_000),
        ("basic", Decimal(19), 10, 100, Decimal("5.00"), 50_000),
        ("standard", Decimal(49), 30, 300, Decimal("15.00"), 100_000),
        ("premium", Decimal(99), 100, 1000, Decimal("30.00"), 200_000),
        ("professional", Decimal(299), 500, 5000, Decimal("150.00"), 400_000),
        ("enterprise", None, None, None, Decimal("2000.00"), 400_000),
    ],
)
def test_each_tier_buys_what_the_guide_says(tier, price, videos, analyses, cap, max_chars):
    t = CATALOG.tier(tier)
    assert t.limits.price_monthly == price
    assert (t.allowance("script"), t.allowance("analysis")) == (videos, analyses)
    assert t.spend_cap_usd == cap and isinstance(t.spend_cap_usd, Decimal)
    assert t.max_content_chars == max_chars


def test_unlimited_and_custom_are_none_and_every_price_is_an_exact_decimal():
    enterprise = CATALOG.tier("enterprise")
    assert enterprise.limits.videos_per_month is None and enterprise.limits.max_video_duration is None
    assert enterprise.limits.custom_voices is None and enterprise.limits.price_monthly is None
    for tier in CATALOG.tiers.values():
        assert isinstance(tier.price.prompt, Decimal) and isinstance(tier.price.completion, Decimal)
    assert CATALOG.tier("basic").price.prompt == Decimal("0.00000014")  # not 1.4e-07 as a float


def test_every_tier_has_a_chain_a_retry_policy_and_a_priority_below_intake():
    for tier in CATALOG.tiers.values():
        assert tier.models and tier.retry.attempts >= 1 and tier.retry.seconds > 0
        assert INTAKE_PRIORITY < tier.priority <= 9
        assert tier.queue == f"tier.{tier.name}"


def test_queues_are_intake_then_billing_then_tiers_from_the_highest_priority():
    assert CATALOG.queues() == [
        INTAKE_QUEUE,
        BILLING_QUEUE,
        "tier.enterprise",
        "tier.professional",
        "tier.premium",
        "tier.standard",
        "tier.basic",
        "tier.free",
    ]
    assert CATALOG.priority_steps() == [0, 1, 2, 3, 4, 5, 6]


def test_an_unknown_tier_is_named_with_the_known_ones():
    with pytest.raises(KeyError, match="unknown tier 'gold'; known: free, basic, standard, premium"):
        CATALOG.tier("gold")


def test_analyses_are_cached_for_every_tier_and_scripts_only_where_a_tier_opts_in():
    free = CATALOG.tier("free")
    assert CATALOG.cache_ttl("analysis", free) == 7 * 24 * 3600
    assert CATALOG.cache_ttl("script", free) == 0
    assert CATALOG.cache_ttl("script", free.model_copy(update={"cache_scripts": True})) == 24 * 3600


@pytest.mark.parametrize(("limit", "used", "left"), [(10, 3, 7), (10, 10, 0), (10, 12, 0), (None, 10**6, None)])
def test_remaining_units_never_go_below_zero_and_unlimited_stays_unlimited(limit, used, left):
    assert remaining(limit, used) == left


def test_the_catalog_is_immutable():
    with pytest.raises(ValidationError):
        CATALOG.tier("free").max_tokens = 1  # type: ignore[misc]


# -- a broken catalog is refused at load -----------------------------------------------------


def broken(tmp_path: Path, old: str, new: str) -> Path:
    text = CATALOG_PATH.read_text()
    assert old in text, old
    path = tmp_path / "tiers.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        ("priority = 6", "priority = 10", "priority"),
        ('models = ["meta-llama/llama-3.2-3b-instruct", "google/gemini-flash-1.5-8b"]', "models = []", "models"),
        ("requests_per_minute = 10", "requests_per_minute = 0", "requests_per_minute"),
        ("analyses_per_month = 20", 'analyses_per_month = "lots"', "analyses_per_month"),
        ("analyses_per_month = 20", "analyses_per_month = -1", "analyses_per_month"),
        ('long_content = "truncate"', 'long_content = "ignore"', "long_content"),
        ("retry = { attempts = 3, seconds = 30 }", "retry = { attempts = 0, seconds = 30 }", "attempts"),
        ("rank = 0", "rank = 0\nsurprise = true", "surprise"),
    ],
)
def test_a_catalog_with_a_bad_field_is_refused_naming_it(tmp_path, old, new, field):
    with pytest.raises(ValidationError, match=field):
        load_catalog(broken(tmp_path, old, new))


def test_a_catalog_without_a_cache_section_takes_the_defaults(tmp_path):
    text = CATALOG_PATH.read_text()
    start = text.index("[cache]")
    path = tmp_path / "tiers.toml"
    path.write_text(text[:start] + text[text.index("[tiers.free]") :])
    catalog = load_catalog(path)
    assert catalog.cache.analysis_ttl_seconds == 7 * 24 * 3600 and catalog.cache.shared_across_users is True
