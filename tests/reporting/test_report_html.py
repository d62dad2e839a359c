"""The HTML report, loaded in a real headless Chromium and matched against the JSON report."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, date, datetime
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from sqlalchemy import text

from workers.money import display_usd
from workers.reporting.html import render_html
from workers.reporting.report import build_report

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")

TIER_MODELS = {
    "free": "meta-llama/llama-3.2-3b-instruct",
    "basic": "deepseek/deepseek-chat",
    "premium": "openai/gpt-4o-mini",
    "professional": "openai/gpt-4o",
}


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'chromium-profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


class Figures(HTMLParser):
    """Every element carrying data-path, with its value and its visible text."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[dict] = []
        self._open: list[dict | None] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        attrs = dict(attrs)
        entry = None
        if "data-path" in attrs:
            entry = {
                "tag": tag,
                "path": json.loads(attrs["data-path"]),
                "metric": attrs["data-metric"],
                "value": attrs["data-value"],
                "text": "",
            }
            self.found.append(entry)
        self._open.append(entry)

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for entry in self._open:
            if entry is not None:
                entry["text"] += data


def lookup(report: dict, path: list):
    node = report
    for key in path:
        node = node[key]
    return node


@pytest.fixture
def busy_month(db):
    """Four tiers over a week, a premium tier losing money, a few tier moves."""
    n = 0
    for day in range(3, 10):
        for tier, model in TIER_MODELS.items():
            n += 1
            when = datetime(2025, 3, day, 9, tzinfo=UTC)
            status = "failed" if n % 7 == 0 else "succeeded"
            db.execute(
                text(
                    "INSERT INTO jobs (id, user_id, kind, type, tier, status, content_chars, used_fallback, created_at)"
                    " VALUES (:id, 'u', 'analysis', 'summary', :tier, :status, 500, :fb, :at)"
                ),
                {"id": f"job-{n}", "tier": tier, "status": status, "fb": n % 5 == 0, "at": when},
            )
            cost = {"free": "0.00002", "basic": "0.0011", "premium": "2.5", "professional": "0.75"}[tier]
            db.execute(
                text(
                    "INSERT INTO llm_calls (job_id, attempt, tier, model, cost_usd, cost_source, status, latency_ms,"
                    " created_at) VALUES (:j, 1, :tier, :model, :cost, 'provider', :status, :lat, :at)"
                ),
                {
                    "j": f"job-{n}",
                    "tier": tier,
                    "model": model,
                    "cost": Decimal(cost) * day,
                    "status": "fatal" if status == "failed" else "ok",
                    "lat": 200 + 37 * n,
                    "at": when,
                },
            )
    for user, tier in [("a", "basic"), ("b", "basic"), ("c", "premium"), ("d", "professional"), ("e", "enterprise")]:
        db.execute(
            text("INSERT INTO subscriptions (user_id, tier, status) VALUES (:u, :t, 'active')"), {"u": user, "t": tier}
        )
    for f, t, d in [("free", "basic", "upgrade"), ("basic", "premium", "upgrade"), ("premium", "basic", "downgrade")]:
        db.execute(
            text(
                "INSERT INTO subscription_changes (user_id, from_tier, to_tier, direction, source, changed_at)"
                " VALUES ('u', :f, :t, :d, 'stripe', '2025-03-05T10:00:00Z')"
            ),
            {"f": f, "t": t, "d": d},
        )
    return build_report(db, date(2025, 3, 1), date(2025, 3, 14))


def test_the_page_is_self_contained(busy_month):
    # When the report is rendered
    page = render_html(busy_month)
    # Then it loads nothing from anywhere and runs no script
    assert "<script" not in page
    assert "src=" not in page and "<link" not in page and "@import" not in page
    assert page.count("<svg") == 2


@needs_chromium
def test_every_figure_chromium_shows_matches_the_json_report(busy_month, tmp_path):
    # Given the report as JSON (what `litink costs --json` prints) and as an HTML file
    report = json.loads(json.dumps(busy_month))
    page = tmp_path / "costs.html"
    page.write_text(render_html(busy_month))
    # When Chromium loads the page and dumps its DOM
    result = chromium(tmp_path, "--dump-dom", page.as_uri())
    assert result.returncode == 0, result.stderr[-2000:]
    parser = Figures()
    parser.feed(result.stdout)
    # Then every figure's data-value is the JSON value at its data-path
    assert len(parser.found) > 100
    for figure in parser.found:
        expected = lookup(report, figure["path"])
        assert figure["value"] == ("null" if expected is None else str(expected)), figure
        assert figure["metric"] == figure["path"][0]
    by_metric = {f["metric"]: f for f in parser.found if len(f["path"]) == 1}
    # And the key figures read as the report has them
    assert by_metric["total_cost"]["text"] == display_usd(report["total_cost"], "cost")
    assert by_metric["total_revenue"]["text"] == display_usd(report["total_revenue"], "revenue")
    margin = Decimal(report["profit_margin"]).scaleb(2)
    assert by_metric["profit_margin"]["text"] == f"{margin}%"
    # And each tier's cost is in the tiers table, each model's failure rate in the models table
    shown = {(tuple(f["path"]), f["tag"]) for f in parser.found}
    for tier in report["cost_by_tier"]:
        assert (("cost_by_tier", tier), "td") in shown
        assert (("margin_by_tier", tier), "td") in shown
    for model in report["models"]:
        assert (("models", model, "failure_rate"), "td") in shown
    # And the stacked bars are exactly the non-zero (day, tier) cells
    bars = [f for f in parser.found if f["tag"] == "rect" and f["metric"] == "cost_by_day"]
    cells = [(d["day"], t) for d in report["cost_by_day"] for t, c in d["by_tier"].items() if Decimal(c) > 0]
    assert len(bars) == len(cells) == 28
    # And the margin chart has a bar for each tier with a margin
    margin_bars = [f for f in parser.found if f["tag"] == "rect" and f["metric"] == "margin_by_tier"]
    assert len(margin_bars) == sum(1 for m in report["margin_by_tier"].values() if m is not None) == 3
    # And the recommendations are there (premium loses money)
    kinds = {r["kind"] for r in report["recommendations"]}
    assert "negative_margin" in kinds
    recs = [f for f in parser.found if f["metric"] == "recommendations"]
    assert len(recs) == len(report["recommendations"])


@needs_chromium
def test_chromium_can_screenshot_the_page(busy_month, tmp_path):
    # Given the page on disk
    page = tmp_path / "costs.html"
    page.write_text(render_html(busy_month))
    shot = tmp_path / "costs.png"
    # When Chromium takes a screenshot
    result = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1100,1600", page.as_uri())
    # Then it is a real PNG
    assert result.returncode == 0, result.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000
