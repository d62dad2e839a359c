"""Shared model health: a model that keeps failing is skipped by every worker for a while.

One Redis hash per model, moved by one Lua script on Redis's own clock, so concurrent workers
agree and only one of them probes a model after its cool-down. Only retryable failures count
against a model; health never fails a job (Redis unreachable means healthy, and the chain's
last model is always tried). The states, the probe and the per-process view:
docs/cost-optimisations.md, "Shared model health".
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import redis

from config import get_settings
from workers.errors import ProviderError, RetryableError
from workers.ops import metrics
from workers.redis_connection import redis_client

log = logging.getLogger(__name__)

KEY_PREFIX = "litink:health:"
KEY_TTL_SECONDS = 7 * 24 * 3600  # forget models nobody has called for a week
PROBE_GRACE_SECONDS = 5.0  # a probe's lease: one HTTP call's timeouts plus this
NOT_THE_MODELS_FAULT = frozenset({401, 402})

# KEYS[1] the model's hash. ARGV: successes (n >= 1) or 0 for one failure, consecutive limit,
# error rate, window seconds, minimum calls in the window, cool-down seconds, key ttl, and 1
# when the successes are a late batch (they only count: they may predate the current mark).
# Returns the new state when it changed ("healthy" or "unhealthy"), "" otherwise.
_RECORD = """
local key = KEYS[1]
local ok, limit, rate, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local min_calls, cooldown, ttl, late = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8] == '1'
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local h = redis.call('HGETALL', key)
local s = {}
for i = 1, #h, 2 do s[h[i]] = h[i + 1] end
local state = s.state or 'healthy'
local changed = ''
redis.call('EXPIRE', key, ttl)
if ok >= 1 and late and state == 'unhealthy' then
  redis.call('HINCRBY', key, 'win_calls', ok)
  return ''
end
if ok >= 1 then
  if state == 'unhealthy' then
    redis.call('DEL', key)
    redis.call('HSET', key, 'state', 'healthy', 'changed_at', now, 'reason', 'a call succeeded',
               'consecutive', 0, 'win_start', now, 'win_calls', ok, 'win_fail', 0)
    redis.call('EXPIRE', key, ttl)
    return 'healthy'
  end
  local win_start = tonumber(s.win_start or now)
  if now - win_start > window then
    redis.call('HSET', key, 'win_start', now, 'win_calls', 0, 'win_fail', 0)
  end
  redis.call('HSET', key, 'consecutive', 0)
  redis.call('HINCRBY', key, 'win_calls', ok)
  return ''
end
if state == 'unhealthy' then
  -- a failure after the cool-down is the probe's verdict: another cool-down
  if now >= tonumber(s['until'] or 0) then
    redis.call('HSET', key, 'until', now + cooldown, 'reason', 'the probe call failed')
    redis.call('HDEL', key, 'probe', 'probe_until')
    redis.call('HINCRBY', key, 'probes_failed', 1)
  end
  return ''
end
local win_start = tonumber(s.win_start or now)
if now - win_start > window then
  redis.call('HSET', key, 'win_start', now, 'win_calls', 0, 'win_fail', 0)
end
local consecutive = redis.call('HINCRBY', key, 'consecutive', 1)
local calls = redis.call('HINCRBY', key, 'win_calls', 1)
local failed = redis.call('HINCRBY', key, 'win_fail', 1)
local reason = nil
if consecutive >= limit then
  reason = consecutive .. ' consecutive failures'
elseif calls >= min_calls and failed / calls >= rate then
  reason = failed .. ' of ' .. calls .. ' calls failed'
end
if reason then
  redis.call('HSET', key, 'state', 'unhealthy', 'until', now + cooldown, 'changed_at', now, 'reason', reason)
  redis.call('HDEL', key, 'probe', 'probe_until')
  return 'unhealthy'
end
return ''
"""

# KEYS[1] the model's hash. ARGV: token, probe lease seconds. Returns 1 (use it), 0 (skip it)
# or 2 (use it: this caller holds the probe lease).
_AVAILABLE = """
local key = KEYS[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1e6
local state, until_, probe_until = unpack(redis.call('HMGET', key, 'state', 'until', 'probe_until'))
if state ~= 'unhealthy' then return 1 end
if now < tonumber(until_ or 0) then return 0 end
if probe_until and now < tonumber(probe_until) then return 0 end
redis.call('HSET', key, 'probe', ARGV[1], 'probe_until', now + tonumber(ARGV[2]))
return 2
"""


@dataclass(frozen=True)
class HealthPolicy:
    """When a model is marked unhealthy, and for how long (settings MODEL_HEALTH_*)."""

    consecutive_failures: int
    error_rate: float
    window_seconds: int
    min_calls: int
    cooldown_seconds: float
    probe_lease_seconds: float
    view_seconds: float = 0.0  # how long a process trusts a healthy look (0: always ask)


def counts_against_model(error: ProviderError) -> bool:
    """True for a failure that says something about the model, not the account or request."""
    return isinstance(error, RetryableError) and error.status not in NOT_THE_MODELS_FAULT


class ModelHealth:
    """The shared health board. Thread-safe; one per process (see :func:`get_health`)."""

    def __init__(self, redis_url: str, policy: HealthPolicy, sentinel_master: str | None = None):
        self._redis = redis_client(redis_url, sentinel_master, socket_timeout=2, socket_connect_timeout=2)
        self._record = self._redis.register_script(_RECORD)
        self._available = self._redis.register_script(_AVAILABLE)
        self.policy = policy
        self._lock = threading.Lock()
        self._seen_healthy: dict[str, float] = {}  # model -> monotonic time of the last healthy look
        self._unreported: dict[str, int] = {}  # model -> successes not yet counted in Redis

    def _trusted(self, model: str) -> bool:
        """Whether this process's last look at ``model`` found it healthy recently enough."""
        seen = self._seen_healthy.get(model)
        return seen is not None and time.monotonic() - seen < self.policy.view_seconds

    def _take_unreported(self, model: str) -> int:
        with self._lock:
            return self._unreported.pop(model, 0)

    def available(self, model: str) -> bool:
        """Whether a job may call ``model`` now. Past the cool-down exactly one caller is let
        through (the probe); the others keep skipping until it reports."""
        if self._trusted(model):
            return True
        self._report_successes(model)
        try:
            verdict = int(self._available(keys=[KEY_PREFIX + model], args=[uuid.uuid4().hex, self._probe_lease()]))
        except redis.RedisError:
            log.warning("model health unavailable; treating the model as healthy", extra={"model": model})
            return True
        metrics.model_healthy.labels(model=model).set(1 if verdict == 1 else 0)
        if verdict == 1 and self.policy.view_seconds > 0:
            self._seen_healthy[model] = time.monotonic()
        else:
            self._seen_healthy.pop(model, None)
        if verdict == 2:
            log.info("probing an unhealthy model after its cool-down", extra={"model": model})
        return verdict != 0

    def healthy(self, model: str) -> bool:
        """Whether the model is currently marked healthy (no probe lease is taken)."""
        if self._trusted(model):
            return True
        try:
            return self._redis.hget(KEY_PREFIX + model, "state") != b"unhealthy"
        except redis.RedisError:
            return True

    def record(self, model: str, error: ProviderError | None) -> None:
        """Report one call's outcome. Errors that are not the model's fault are ignored."""
        if error is not None and not counts_against_model(error):
            return
        if error is None and self._trusted(model):
            with self._lock:  # counted with the next look (a probe's success is never batched)
                self._unreported[model] = self._unreported.get(model, 0) + 1
            return
        if error is not None:
            self._seen_healthy.pop(model, None)  # look again before trusting it
            self._report_successes(model)  # the successes came first: they reset the streak
        self._send(model, 1 if error is None else 0)

    def _report_successes(self, model: str) -> None:
        successes = self._take_unreported(model)
        if successes:
            self._send(model, successes, late=True)

    def _send(self, model: str, successes: int, *, late: bool = False) -> None:
        """Run the record script: ``successes`` >= 1 successes, or 0 for one failure."""
        p = self.policy
        try:
            changed = self._record(
                keys=[KEY_PREFIX + model],
                args=[
                    successes,
                    p.consecutive_failures,
                    p.error_rate,
                    p.window_seconds,
                    p.min_calls,
                    p.cooldown_seconds,
                    KEY_TTL_SECONDS,
                    1 if late else 0,
                ],
            )
        except redis.RedisError:
            log.warning("model health not recorded: Redis unavailable", extra={"model": model})
            return
        state = changed.decode() if isinstance(changed, bytes) else changed
        if state:
            self._changed(model, state)

    def _changed(self, model: str, state: str) -> None:
        metrics.model_healthy.labels(model=model).set(1 if state == "healthy" else 0)
        metrics.model_health_changes.labels(model=model, state=state).inc()
        reason = self._redis.hget(KEY_PREFIX + model, "reason")
        log.warning(
            "model marked %s",
            state,
            extra={"model": model, "state": state, "reason": _text(reason) if reason else None},
        )

    def _probe_lease(self) -> float:
        s = get_settings()
        return self.policy.probe_lease_seconds or (
            s.openrouter_connect_timeout + s.openrouter_read_timeout + PROBE_GRACE_SECONDS
        )

    def snapshot(self, models: list[str]) -> list[dict[str, Any]]:
        """Every listed model's state, for ``litink models health`` (plain data)."""
        now_s, now_us = self._redis.time()
        now = now_s + now_us / 1e6
        rows = []
        for model in models:
            raw = {_text(k): _text(v) for k, v in self._redis.hgetall(KEY_PREFIX + model).items()}
            state = raw.get("state", "healthy")
            until = float(raw.get("until", 0))
            if state == "unhealthy" and now >= until:
                state = "probing" if float(raw.get("probe_until", 0)) > now else "cooled_down"
            calls, failed = int(raw.get("win_calls", 0)), int(raw.get("win_fail", 0))
            rows.append(
                {
                    "model": model,
                    "state": state,
                    "healthy": state == "healthy",
                    "reason": raw.get("reason"),
                    "consecutive_failures": int(raw.get("consecutive", 0)),
                    "window_calls": calls,
                    "window_failures": failed,
                    "cooldown_left_seconds": round(max(0.0, until - now), 1) if state == "unhealthy" else 0.0,
                    "changed_at": float(raw["changed_at"]) if "changed_at" in raw else None,
                }
            )
        return rows

    def reset(self, model: str) -> None:
        """Forget a model's history (an operator's override, and tests)."""
        self._redis.delete(KEY_PREFIX + model)


def health_report() -> dict[str, Any]:
    """``litink models health``: every catalog model's shared state and the tiers using it."""
    from config import get_catalog

    catalog = get_catalog()
    tiers_of: dict[str, list[str]] = {}
    for tier in sorted(catalog.tiers.values(), key=lambda t: t.rank):
        for model in tier.models:
            tiers_of.setdefault(model, []).append(tier.name)
    tiers_of.setdefault(catalog.analysis.preprocess_model, []).append("preprocessing")
    s = get_settings()
    board = ModelHealth(s.require_redis_url(), policy_from_settings(), s.redis_sentinel_master)
    rows = [row | {"used_by": tiers_of[row["model"]]} for row in board.snapshot(list(tiers_of))]
    return {"enabled": s.model_health_enabled, "policy": policy_from_settings().__dict__, "models": rows}


def policy_from_settings() -> HealthPolicy:
    s = get_settings()
    return HealthPolicy(
        consecutive_failures=s.model_health_consecutive_failures,
        error_rate=s.model_health_error_rate,
        window_seconds=s.model_health_window_seconds,
        min_calls=s.model_health_min_calls,
        cooldown_seconds=s.model_health_cooldown_seconds,
        probe_lease_seconds=0.0,  # derived from the HTTP timeouts
        view_seconds=s.model_health_view_seconds,
    )


@lru_cache(maxsize=1)
def get_health() -> ModelHealth | None:
    """The process's health board, or None when MODEL_HEALTH_ENABLED is false."""
    s = get_settings()
    if not s.model_health_enabled:
        return None
    return ModelHealth(s.require_redis_url(), policy_from_settings(), s.redis_sentinel_master)


def _text(value: bytes | str) -> str:
    """A Redis reply as text: this client answers bytes, but redis-py types allow either."""
    return value.decode() if isinstance(value, bytes) else value
