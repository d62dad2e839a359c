"""Billing fixtures: Stripe settings, a local fake of the Stripe API and signed webhook events.
The receiver as its own process, and a Postgres proxy to cut, are in :mod:`.processes`.

Nothing here talks to Stripe. Webhooks are signed locally exactly as Stripe signs them:
``Stripe-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import itertools
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest

from config import Settings, get_settings
from workers.billing import handle_event

WEBHOOK_SECRET = "whsec_test_litink"
# Stripe's own object shapes: a trimmed copy of stripe/openapi's fixtures3.json (see its _source).
STRIPE_FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "stripe_fixtures3.json").read_text())
PRICES = {
    "basic": "price_basic_test",
    "premium": "price_premium_test",
    "professional": "price_professional_test",
}
# What each test price costs a month, in cents: a plan change charges the difference.
AMOUNTS = {"price_basic_test": 900, "price_premium_test": 2900, "price_professional_test": 9900}
# Events are dated from here; tests pass `now` explicitly where time matters.
T0 = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)


# A fake of the Stripe endpoints we call.


def _subscription_object(
    sub_id: str, *, price: str, customer: str, metadata: dict[str, str], created: int, status: str = "active"
) -> dict[str, Any]:
    start = created
    return {
        "id": sub_id,
        "object": "subscription",
        "status": status,
        "customer": customer,
        "created": created,
        "metadata": dict(metadata),
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{sub_id}",
                    "object": "subscription_item",
                    "price": {"id": price, "object": "price"},
                    "quantity": 1,
                    "current_period_start": start,
                    "current_period_end": start + 30 * 86400,
                }
            ],
        },
    }


@dataclass
class FakeStripe:
    """Serves the Stripe endpoints we call, like Stripe: form-encoded params in, JSON out, and
    the same answer again for a repeated Idempotency-Key.

    - ``POST /v1/checkout/sessions``: a session; :meth:`complete` plays the customer paying it,
      which creates the subscription.
    - ``GET|POST|DELETE /v1/subscriptions/<id>``: read, change (items, proration, metadata) and
      cancel a subscription. Subscriptions are only ever created by :meth:`complete` or
      :meth:`put_subscription` (a dashboard), never by a plan change.

    A price change with ``proration_behavior=always_invoice`` that costs more charges the
    difference at once, on an invoice (``invoices``). A customer in ``declining`` cannot pay it;
    then, as Stripe does, ``payment_behavior`` decides: ``pending_if_incomplete`` keeps the old
    price and puts the change in ``pending_update``; ``error_if_incomplete`` answers 402;
    ``allow_incomplete`` (the default) applies the new price and makes the subscription
    ``past_due``. :meth:`pay` plays the customer paying the open invoice.
    """

    url: str = ""
    requests: list[dict[str, Any]] = field(default_factory=list)
    failures: list[int] = field(default_factory=list)  # statuses to answer next, in order
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    invoices: dict[str, dict[str, Any]] = field(default_factory=dict)
    schedules: dict[str, dict[str, Any]] = field(default_factory=dict)
    declining: set[str] = field(default_factory=set)  # customers whose payments fail
    _pending_metadata: dict[str, dict[str, str]] = field(default_factory=dict)
    _sessions: dict[str, dict[str, Any]] = field(default_factory=dict)
    _answers: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    _ids: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.failures.clear()
            self.subscriptions.clear()
            self.invoices.clear()
            self.schedules.clear()
            self.declining.clear()
            self._pending_metadata.clear()
            self._sessions.clear()
            self._answers.clear()

    @property
    def sessions_created(self) -> int:
        return len(self._sessions)

    def put_subscription(
        self,
        sub_id: str,
        *,
        tier: str | None = None,
        price: str | None = None,
        customer: str = "cus_1",
        user_id: str | None = "user-1",
        created: datetime = T0,
        status: str = "active",
    ) -> dict[str, Any]:
        """A subscription as Stripe holds it (made in the dashboard, or by a paid checkout)."""
        metadata = {"user_id": user_id} if user_id else {}
        if tier:
            metadata["tier"] = tier
        sub = _subscription_object(
            sub_id,
            price=price or PRICES[tier or "premium"],
            customer=customer,
            metadata=metadata,
            created=unix(created),
            status=status,
        )
        with self._lock:
            self.subscriptions[sub_id] = sub
        return json.loads(json.dumps(sub))

    def complete(self, session_id: str, *, created: datetime | None = None) -> dict[str, Any]:
        """The customer pays the session: Stripe creates its subscription."""
        with self._lock:
            session = next(s for s in self._sessions.values() if s["id"] == session_id)
            params = session["_params"]
            sub_id = f"sub_test_{next(self._ids):04d}"
            metadata = {
                k[len("subscription_data[metadata][") : -1]: v
                for k, v in params.items()
                if k.startswith("subscription_data[metadata][")
            }
            sub = _subscription_object(
                sub_id,
                price=params["line_items[0][price]"],
                customer=params.get("customer") or f"cus_for_{session_id}",
                metadata=metadata,
                created=unix(created or datetime.now(UTC)),
            )
            self.subscriptions[sub_id] = sub
            session.update(status="complete", payment_status="paid", subscription=sub_id, customer=sub["customer"])
            return json.loads(json.dumps(sub))

    def live_subscriptions(self, customer: str | None = None) -> list[dict[str, Any]]:
        return [
            s
            for s in self.subscriptions.values()
            if s["status"] == "active" and (customer is None or s["customer"] == customer)
        ]

    def answer(self, method: str, path: str, headers: dict[str, str], body: str) -> tuple[int, dict[str, Any]]:
        params = dict(parse_qsl(body, keep_blank_values=True))
        key = headers.get("idempotency-key")
        with self._lock:
            self.requests.append(
                {
                    "method": method,
                    "path": path,
                    "params": params,
                    "idempotency_key": key,
                    "authorization": headers.get("authorization"),
                }
            )
            if self.failures:
                status = self.failures.pop(0)
                kind = "api_error" if status >= 500 else "invalid_request_error"
                return status, {"error": {"type": kind, "message": f"fake failure {status}"}}
            if key and method != "GET" and key in self._answers:
                return self._answers[key]
            answer = self._route(method, path, params)
            if key and method != "GET" and answer[0] < 500:
                self._answers[key] = answer
            return answer

    def _route(self, method: str, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if method == "POST" and path == "/v1/checkout/sessions":
            return 200, self._create_session(params)
        if method == "GET" and path.startswith("/v1/checkout/sessions/"):
            session_id = path.rsplit("/", 1)[1]
            if session_id not in self._sessions:
                return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}}
            return 200, self.session(session_id)
        if path.startswith("/v1/subscription_schedules"):
            return self._schedules(method, path, params)
        if path.startswith("/v1/subscriptions/"):
            sub = self.subscriptions.get(path.rsplit("/", 1)[1])
            if sub is None:
                return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}}
            if method == "POST":
                return self._update_subscription(sub, params)
            if method == "DELETE":
                if sub["status"] == "canceled":
                    return 400, {"error": {"type": "invalid_request_error", "message": "already canceled"}}
                sub["status"] = "canceled"
            return 200, json.loads(json.dumps(sub))
        return 404, {"error": {"type": "invalid_request_error", "message": f"no route {method} {path}"}}

    def _create_session(self, params: dict[str, str]) -> dict[str, Any]:
        """A session in the shape of Stripe's published fixture, with what the request asked for."""
        session_id = f"cs_test_{next(self._ids):04d}"
        now = int(time.time())
        session = copy.deepcopy(STRIPE_FIXTURES["checkout.session"])
        session.update(
            id=session_id,
            created=now,
            expires_at=now + 86400,
            mode=params.get("mode"),
            url=f"https://checkout.stripe.test/c/pay/{session_id}",
            success_url=params.get("success_url"),
            cancel_url=params.get("cancel_url"),
            client_reference_id=params.get("client_reference_id"),
            customer=params.get("customer"),
            metadata={"user_id": params.get("metadata[user_id]"), "tier": params.get("metadata[tier]")},
            status="open",
            payment_status="unpaid",
            payment_intent=None,
            subscription=None,
        )
        self._sessions[session_id] = {**session, "_params": params}
        return session

    def session(self, session_id: str) -> dict[str, Any]:
        """The session as Stripe holds it now (what its webhooks carry)."""
        with self._lock:
            return json.loads(json.dumps({k: v for k, v in self._sessions[session_id].items() if k != "_params"}))

    def _update_subscription(self, sub: dict[str, Any], params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if sub["status"] == "canceled":
            return 400, {"error": {"type": "invalid_request_error", "message": "subscription is canceled"}}
        item = sub["items"]["data"][0]
        if params.get("items[0][id]") not in (None, item["id"]):
            return 400, {"error": {"type": "invalid_request_error", "message": "no such item"}}
        metadata = {
            name[len("metadata[") : -1]: value for name, value in params.items() if name.startswith("metadata[")
        }
        sub["proration_behavior"] = params.get("proration_behavior")
        old, new = item["price"]["id"], params.get("items[0][price]")
        due = AMOUNTS.get(new or "", 0) - AMOUNTS.get(old, 0)
        if new and params.get("proration_behavior") == "always_invoice" and due > 0:
            paid = sub["customer"] not in self.declining
            invoice = self._plan_change_invoice(sub, old, new, due, paid=paid)
            sub["latest_invoice"] = invoice["id"]
            if not paid:
                behavior = params.get("payment_behavior", "allow_incomplete")
                if behavior == "error_if_incomplete":
                    return 402, {"error": {"type": "card_error", "code": "card_declined"}}
                if behavior == "pending_if_incomplete":
                    sub["pending_update"] = {
                        "subscription_items": [
                            {"id": item["id"], "price": {"id": new, "object": "price"}, "quantity": 1}
                        ],
                        "expires_at": int(time.time()) + 23 * 3600,
                        "billing_cycle_anchor": None,
                        "trial_end": None,
                        "trial_from_plan": None,
                    }
                    self._pending_metadata[sub["id"]] = metadata
                    return 200, json.loads(json.dumps(sub))
                sub["status"] = "past_due"
        if new:
            item["price"] = {"id": new, "object": "price"}
        sub["metadata"].update(metadata)
        return 200, json.loads(json.dumps(sub))

    def _plan_change_invoice(self, sub: dict[str, Any], old: str, new: str, due: int, *, paid: bool) -> dict[str, Any]:
        """The invoice ``always_invoice`` makes at once: the unused old price credited, the new
        one charged, up to the end of the current period (API 2025-03-31 shapes)."""
        invoice_id = f"in_test_{next(self._ids):04d}"
        now, end = int(time.time()), sub["items"]["data"][0]["current_period_end"]

        def line(price: str, amount: int) -> dict[str, Any]:
            return {
                "id": f"il_{invoice_id}_{price}",
                "object": "line_item",
                "amount": amount,
                "period": {"start": now, "end": end},
                "pricing": {"type": "price_details", "price_details": {"price": price}},
            }

        invoice = {
            "id": invoice_id,
            "object": "invoice",
            "customer": sub["customer"],
            "billing_reason": "subscription_update",
            "status": "paid" if paid else "open",
            "amount_due": due,
            "amount_paid": due if paid else 0,
            "parent": {
                "type": "subscription_details",
                "subscription_details": {"subscription": sub["id"], "metadata": dict(sub["metadata"])},
            },
            "lines": {"object": "list", "data": [line(old, -AMOUNTS.get(old, 0)), line(new, AMOUNTS.get(new, 0))]},
        }
        self.invoices[invoice_id] = invoice
        return invoice

    def _schedules(self, method: str, path: str, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        """``POST /v1/subscription_schedules`` (``from_subscription``), ``GET|POST .../<id>`` and
        ``POST .../<id>/release``: enough of Stripe's schedules to change a price at period end."""
        parts = path.strip("/").split("/")  # v1, subscription_schedules[, id[, release]]
        if method == "POST" and len(parts) == 2:
            sub = self.subscriptions.get(params.get("from_subscription", ""))
            if sub is None:
                return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}}
            if sub.get("schedule"):
                return 400, {"error": {"type": "invalid_request_error", "message": "already attached to a schedule"}}
            item = sub["items"]["data"][0]
            schedule = {
                "id": f"sub_sched_test_{next(self._ids):04d}",
                "object": "subscription_schedule",
                "subscription": sub["id"],
                "status": "active",
                "end_behavior": "release",
                "phases": [
                    {
                        "start_date": item["current_period_start"],
                        "end_date": item["current_period_end"],
                        "items": [{"price": item["price"]["id"], "quantity": 1}],
                        "metadata": {},
                    }
                ],
            }
            self.schedules[schedule["id"]] = schedule
            sub["schedule"] = schedule["id"]
            return 200, json.loads(json.dumps(schedule))
        schedule = self.schedules.get(parts[2]) if len(parts) > 2 else None
        if schedule is None:
            return 404, {"error": {"type": "invalid_request_error", "code": "resource_missing"}}
        if method == "POST" and parts[3:] == ["release"]:
            schedule["status"] = "released"
            self.subscriptions[schedule["subscription"]]["schedule"] = None
        elif method == "POST":
            if schedule["status"] != "active":
                return 400, {"error": {"type": "invalid_request_error", "message": "schedule is not active"}}
            phases: dict[int, dict[str, Any]] = {}
            for name, value in params.items():
                if not name.startswith("phases["):
                    continue
                keys = [k.rstrip("]") for k in name[len("phases[") :].split("[")]
                phase = phases.setdefault(int(keys[0]), {"items": [{"quantity": 1}], "metadata": {}})
                if keys[1] == "items":
                    phase["items"][0][keys[3]] = int(value) if keys[3] == "quantity" else value
                elif keys[1] == "metadata":
                    phase["metadata"][keys[2]] = value
                elif keys[1] in ("start_date", "end_date"):
                    phase[keys[1]] = int(value)
                else:
                    phase[keys[1]] = value
            schedule["phases"] = [phases[i] for i in sorted(phases)]
            schedule["end_behavior"] = params.get("end_behavior", schedule["end_behavior"])
        return 200, json.loads(json.dumps(schedule))

    def end_period(self, sub_id: str) -> dict[str, Any]:
        """The subscription's current period ends: a schedule's next phase starts (its price and
        metadata apply; the schedule, at its last phase, releases the subscription) and the next
        period is the same length. Returns the subscription as Stripe then holds it."""
        with self._lock:
            sub = self.subscriptions[sub_id]
            item = sub["items"]["data"][0]
            start, end = item["current_period_start"], item["current_period_end"]
            schedule = self.schedules.get(sub.get("schedule") or "")
            if schedule is not None:
                following = [
                    p for p in schedule["phases"] if p.get("start_date", end) >= end and p is not schedule["phases"][0]
                ]
                if following:
                    item["price"] = {"id": following[0]["items"][0]["price"], "object": "price"}
                    sub["metadata"].update(following[0]["metadata"])
                schedule["status"] = "released"
                sub["schedule"] = None
            item.update(current_period_start=end, current_period_end=end + (end - start))
            return json.loads(json.dumps(sub))

    def pay(self, sub_id: str) -> dict[str, Any]:
        """The customer pays the subscription's open invoice (a new card): a pending update is
        applied, a past-due subscription is active again. Returns the invoice, paid."""
        with self._lock:
            sub = self.subscriptions[sub_id]
            invoice = self.invoices[sub["latest_invoice"]]
            self.declining.discard(sub["customer"])
            invoice.update(status="paid", amount_paid=invoice["amount_due"])
            pending = sub.pop("pending_update", None)
            if pending:
                sub["items"]["data"][0]["price"] = pending["subscription_items"][0]["price"]
                sub["metadata"].update(self._pending_metadata.pop(sub_id, {}))
            sub["status"] = "active"
            return json.loads(json.dumps(invoice))


@pytest.fixture(scope="session")
def _fake_stripe_server() -> Iterator[FakeStripe]:
    fake = FakeStripe()

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
            path, _, query = self.path.partition("?")
            status, answer = fake.answer(
                self.command, path, {k.lower(): v for k, v in self.headers.items()}, body or query
            )
            data = json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, name="fake-stripe", daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture
def fake_stripe(_fake_stripe_server: FakeStripe) -> FakeStripe:
    _fake_stripe_server.reset()
    return _fake_stripe_server


@pytest.fixture(autouse=True)
def stripe_settings(monkeypatch: pytest.MonkeyPatch, _fake_stripe_server: FakeStripe) -> Iterator[Settings]:
    """Stripe configured for every billing test: keys, three priced tiers, the fake API.
    Settings are read once per process, so the cache is cleared on the way in and out."""
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_litink")
    monkeypatch.setenv("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET)
    monkeypatch.setenv("STRIPE_WEBHOOK_TOLERANCE", "300")
    monkeypatch.setenv("STRIPE_API_BASE", _fake_stripe_server.url)
    for tier in ("basic", "standard", "premium", "professional", "enterprise"):
        if tier in PRICES:
            monkeypatch.setenv(f"STRIPE_PRICE_{tier.upper()}", PRICES[tier])
        else:
            monkeypatch.delenv(f"STRIPE_PRICE_{tier.upper()}", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    get_settings.cache_clear()


# Signed webhook events.


def sign(body: str, *, secret: str = WEBHOOK_SECRET, at: int | None = None) -> str:
    """A Stripe-Signature header for ``body``, as Stripe computes it."""
    at = int(time.time()) if at is None else at
    digest = hmac.new(secret.encode(), f"{at}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={at},v1={digest}"


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


class Events:
    """Builds Stripe event bodies (API 2025-03-31 shapes unless asked otherwise) and delivers
    them, signed, to the event handler."""

    def __init__(self, fake: FakeStripe) -> None:
        self._ids = itertools.count(1)
        self.fake = fake

    def _known_to_stripe(
        self,
        sub_id: str,
        *,
        price: str,
        customer: str,
        user_id: str | None,
        tier: str | None,
        created: datetime,
        status: str,
    ) -> None:
        """Stripe holds every subscription an event speaks of: created by the first event that
        names it, kept in step with later ones."""
        held = self.fake.subscriptions.get(sub_id)
        if held is None:
            self.fake.put_subscription(
                sub_id, price=price, customer=customer, user_id=user_id, tier=tier, created=created, status=status
            )
        else:
            held["items"]["data"][0]["price"] = {"id": price, "object": "price"}
            held["status"] = status

    def event(self, type_: str, obj: dict[str, Any], *, created: datetime = T0, id_: str | None = None) -> str:
        return json.dumps(
            {
                "id": id_ or f"evt_test_{next(self._ids):05d}",
                "object": "event",
                "type": type_,
                "created": unix(created),
                "api_version": "2025-03-31.basil",
                "livemode": False,
                "data": {"object": obj},
            }
        )

    def checkout_completed(
        self,
        user_id: str,
        tier: str,
        *,
        subscription: str = "sub_1",
        customer: str = "cus_1",
        created: datetime = T0,
        price: str | None = None,
        **extra: Any,
    ) -> str:
        """A checkout.session.completed; Stripe holds its subscription, priced ``price`` (by
        default the tier's price)."""
        self._known_to_stripe(
            subscription,
            price=price or PRICES.get(tier, f"price_{tier}_unsold"),
            customer=customer,
            user_id=user_id,
            tier=tier,
            created=created,
            status="active",
        )
        session = {
            "id": "cs_test_done",
            "object": "checkout.session",
            "mode": "subscription",
            "status": "complete",
            "payment_status": "paid",
            "client_reference_id": user_id,
            "customer": customer,
            "subscription": subscription,
            "metadata": {"user_id": user_id, "tier": tier},
            **extra,
        }
        return self.event("checkout.session.completed", session, created=created)

    def subscription(
        self,
        type_: str,
        *,
        tier: str | None = "premium",
        price: str | None = None,
        status: str = "active",
        user_id: str | None = "user-1",
        subscription: str = "sub_1",
        customer: str = "cus_1",
        created: datetime = T0,
        period_start: datetime = T0,
        period_end: datetime | None = None,
        legacy: bool = False,
    ) -> str:
        """A customer.subscription.* event. ``legacy`` puts the period on the subscription
        itself, as API versions before 2025-03-31 did."""
        period_end = period_end or period_start + timedelta(days=30)
        price_id = price or PRICES[tier or ""]
        self._known_to_stripe(
            subscription, price=price_id, customer=customer, user_id=user_id, tier=None, created=created, status=status
        )
        item: dict[str, Any] = {
            "id": "si_1",
            "object": "subscription_item",
            "price": {"id": price_id, "object": "price"},
            "quantity": 1,
        }
        sub: dict[str, Any] = {
            "id": subscription,
            "object": "subscription",
            "status": status,
            "customer": customer,
            "created": self.fake.subscriptions[subscription]["created"],
            "metadata": {"user_id": user_id} if user_id else {},
            "items": {"object": "list", "data": [item]},
        }
        period = {"current_period_start": unix(period_start), "current_period_end": unix(period_end)}
        (sub if legacy else item).update(period)
        return self.event(type_, sub, created=created)

    def invoice(
        self,
        type_: str,
        *,
        subscription: str | None = "sub_1",
        customer: str = "cus_1",
        user_id: str | None = "user-1",
        tier: str = "premium",
        created: datetime = T0,
        period_start: datetime = T0,
        period_end: datetime | None = None,
        legacy: bool = False,
    ) -> str:
        """An invoice.* event. ``legacy`` uses the pre-2025-03-31 fields (top-level
        ``subscription``, line ``price``)."""
        period_end = period_end or period_start + timedelta(days=30)
        line: dict[str, Any] = {
            "id": "il_1",
            "object": "line_item",
            "amount": 2900,
            "period": {"start": unix(period_start), "end": unix(period_end)},
        }
        invoice: dict[str, Any] = {
            "id": "in_1",
            "object": "invoice",
            "customer": customer,
            "billing_reason": "subscription_cycle",
            "lines": {"object": "list", "data": [line]},
        }
        meta = {"user_id": user_id} if user_id else {}
        if legacy:
            invoice["subscription"] = subscription
            invoice["subscription_details"] = {"metadata": meta}
            line["price"] = {"id": PRICES[tier], "object": "price"}
        else:
            invoice["parent"] = (
                {
                    "type": "subscription_details",
                    "subscription_details": {"subscription": subscription, "metadata": meta},
                }
                if subscription
                else None
            )
            line["pricing"] = {"type": "price_details", "price_details": {"price": PRICES[tier]}}
        return self.event(type_, invoice, created=created)

    def deliver(
        self, body: str, *, now: datetime | None = None, at: int | None = None, secret: str = WEBHOOK_SECRET
    ) -> dict[str, Any]:
        """Sign ``body`` and hand it to the event handler, as the task would."""
        return handle_event(body, sign(body, secret=secret, at=at), now=now or T0).as_dict()


@pytest.fixture
def events(fake_stripe: FakeStripe) -> Events:
    return Events(fake_stripe)
