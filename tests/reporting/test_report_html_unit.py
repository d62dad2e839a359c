"""The HTML page of a report, parsed with the standard library: every figure it shows is the
report's own value at the path it names, escaped, with its sign and its missing values marked.
(test_report_html.py loads a real report's page in Chromium.)"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from html.parser import HTMLParser

import pytest

from tests.reporting.sample_report import sample_report
from workers.money import display_usd
from workers.reporting.html import cost_by_day_chart, margin_chart, render_html

pytestmark = pytest.mark.unit


class Page(HTMLParser):
    """Every element with data-path (tag, attributes, visible text), and every tag seen."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.figures: list[dict] = []
        self.tags: list[str] = []
        self._open: list[dict | None] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        attrs = dict(attrs)
        entry = None
        if "data-path" in attrs:
            entry = {"tag": tag, "attrs": attrs, "path": json.loads(attrs["data-path"]), "text": ""}
            self.figures.append(entry)
        if tag not in ("meta", "br"):  # void elements without a closing tag
            self._open.append(entry)

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for entry in self._open:
            if entry is not None:
                entry["text"] += data

    def at(self, *path) -> list[dict]:
        return [f for f in self.figures if f["path"] == list(path)]


def lookup(report: dict, path: list):
    node = report
    for key in path:
        node = node[key]
    return node


def test_every_figure_on_the_page_is_the_report_value_at_its_path():
    report = sample_report()
    page = Page(render_html(report))
    assert len(page.figures) > 100
    for figure in page.figures:
        expected = lookup(report, figure["path"])
        assert figure["attrs"]["data-value"] == ("null" if expected is None else str(expected)), figure
        assert figure["attrs"]["data-metric"] == str(figure["path"][0])


def test_every_tier_and_model_has_its_row():
    report = sample_report()
    page = Page(render_html(report))
    for tier in report["cost_by_tier"]:
        for path in (("cost_by_tier", tier), ("margin_by_tier", tier), ("revenue_by_tier", tier, "revenue")):
            assert [f["tag"] for f in page.at(*path)].count("td") == 1, path
    for model in report["models"]:
        assert page.at("models", model, "failure_rate")[0]["tag"] == "td"
        assert page.at("cost_by_model", model)[0]["text"] == display_usd(report["cost_by_model"][model], "cost")


def test_money_reads_with_its_contexts_decimals_and_ratios_as_percentages():
    report = sample_report()
    page = Page(render_html(report))
    [total_cost] = page.at("total_cost")
    assert total_cost["text"] == display_usd(report["total_cost"], "cost") == "$15.25332000"
    [revenue] = page.at("total_revenue")
    assert revenue["text"] == display_usd(report["total_revenue"], "revenue") == "$42.20"
    [margin] = page.at("profit_margin")
    assert margin["text"] == f"{Decimal(report['profit_margin']).scaleb(2)}%" == "63.85%"
    assert page.at("revenue_by_tier", "basic", "price_monthly")[0]["text"] == "$19.00"
    assert page.at("models", "openai/gpt-4o-mini", "p95_latency_ms")[0]["text"] == "900 ms"


def test_a_loss_is_marked_negative_and_a_missing_figure_reads_n_a():
    report = sample_report()
    page = Page(render_html(report))
    [premium] = [f for f in page.at("margin_by_tier", "premium") if f["tag"] == "td"]
    assert report["margin_by_tier"]["premium"] == "-0.5136"
    assert premium["text"] == "-51.36%" and "neg" in premium["attrs"]["class"].split()
    [basic] = [f for f in page.at("margin_by_tier", "basic") if f["tag"] == "td"]
    assert "neg" not in basic["attrs"]["class"].split()
    # enterprise is custom-priced: no margin; shown as n/a, muted, its value null
    [enterprise] = [f for f in page.at("margin_by_tier", "enterprise") if f["tag"] == "td"]
    assert enterprise["text"] == "n/a" and "muted" in enterprise["attrs"]["class"].split()
    assert enterprise["attrs"]["data-value"] == "null"


def test_names_from_the_data_are_escaped():
    hostile = '<script>alert("x")</script>'
    report = sample_report()
    report["cost_by_model"] = {hostile: "1"}
    report["models"] = {hostile: {**next(iter(report["models"].values()))}}
    report["subscription_changes"]["paths"][0]["from"] = hostile
    report["recommendations"] = [{"kind": "model_failure_rate", "subject": hostile, "message": hostile, "figure": "1"}]
    html = render_html(report)
    assert "<script" not in html
    assert "&lt;script&gt;" in html
    # and the escaped name still round-trips through data-path
    assert Page(html).at("models", hostile, "calls")


def test_the_page_loads_nothing_and_runs_nothing():
    html = render_html(sample_report())
    tags = set(Page(html).tags)
    assert not tags & {"script", "link", "img", "iframe", "object", "embed"}
    assert not re.search(r"\b(src|href)=", html) and "@import" not in html and "url(" not in html
    assert html.count("<svg") == 2


def test_the_cost_chart_has_one_bar_per_non_zero_day_and_tier_and_its_peak_is_labeled():
    report = sample_report()
    page = Page(cost_by_day_chart(report))
    bars = [f for f in page.figures if f["tag"] == "rect"]
    cells = [(i, t) for i, d in enumerate(report["cost_by_day"]) for t, c in d["by_tier"].items() if Decimal(c) > 0]
    assert [(f["path"][1], f["path"][3]) for f in bars] == cells
    # the axis label is the largest day's total: the 2nd of March
    [peak] = [f for f in page.figures if f["tag"] == "text"]
    assert peak["path"] == ["cost_by_day", 1, "total"] and peak["text"] == display_usd("12.00222")


def test_the_cost_chart_stacks_each_days_bars_to_the_days_share_of_the_peak():
    report = sample_report()
    page = Page(cost_by_day_chart(report, height=280))
    plot_h = 280 - 14 - 34
    heights: dict[int, float] = {}
    for bar in (f for f in page.figures if f["tag"] == "rect"):
        heights[bar["path"][1]] = heights.get(bar["path"][1], 0) + float(bar["attrs"]["height"])
    peak = max(Decimal(d["total"]) for d in report["cost_by_day"])
    for i, day in enumerate(report["cost_by_day"]):
        assert heights[i] == pytest.approx(float(Decimal(day["total"]) / peak) * plot_h, abs=0.05)


def test_without_any_cost_the_chart_says_so_and_draws_no_bar():
    report = sample_report()
    for day in report["cost_by_day"]:
        day["total"] = "0"
        day["by_tier"] = dict.fromkeys(day["by_tier"], "0")
    chart = cost_by_day_chart(report)
    assert "No LLM cost in this period." in chart and "<rect" not in chart


def test_the_margin_chart_draws_a_bar_per_margin_red_for_a_loss_and_says_n_a_otherwise():
    report = sample_report()
    page = Page(margin_chart(report))
    bars = {f["path"][1]: f for f in page.figures if f["tag"] == "rect"}
    with_margin = {t for t, m in report["margin_by_tier"].items() if m is not None}
    assert set(bars) == with_margin == {"basic", "premium", "professional"}
    assert bars["premium"]["attrs"]["fill"] == "#e15759" and bars["basic"]["attrs"]["fill"] == "#59a14f"
    # the loss lies left of the zero line, the gains right of it
    zero = float(re.search(r'<line x1="([\d.]+)"', margin_chart(report)).group(1))
    assert float(bars["premium"]["attrs"]["x"]) < zero
    assert float(bars["basic"]["attrs"]["x"]) == pytest.approx(zero)
    missing = [f for f in page.figures if f["tag"] == "text"]
    assert {f["path"][1] for f in missing} == {"free", "standard", "enterprise"}
    assert all(f["text"] == "n/a (no list revenue)" for f in missing)


def test_recommendations_are_listed_one_item_each_or_the_page_says_there_are_none():
    report = sample_report()
    assert "No recommendation: every rule is within its threshold." in render_html(report)
    report["recommendations"] = [
        {"kind": "negative_margin", "subject": "premium", "message": "Tier premium loses.", "figure": "-0.5136"},
        {"kind": "fallback_rate", "subject": "basic", "message": "Basic falls back.", "figure": "0.2500"},
    ]
    page = Page(render_html(report))
    items = [f for f in page.figures if f["path"][0] == "recommendations"]
    assert [(f["tag"], f["attrs"]["data-kind"], f["attrs"]["data-value"]) for f in items] == [
        ("li", "negative_margin", "-0.5136"),
        ("li", "fallback_rate", "0.2500"),
    ]
    assert "Tier premium loses." in items[0]["text"]


def test_an_empty_table_says_so():
    report = sample_report()
    report["subscription_changes"] = {"upgrades": 0, "downgrades": 0, "lateral": 0, "paths": []}
    report["models"], report["cost_by_model"] = {}, {}
    assert render_html(report).count("None in this period.") == 2
