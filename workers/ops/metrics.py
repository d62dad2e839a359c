"""Prometheus metrics: calls, latency, queue waits, cost and cache figures. Postgres stays the
record of money; these counters are for dashboards and alerts (floats are fine here, never for
billing)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60)
WAIT_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600)

llm_calls = Counter("litink_llm_calls", "OpenRouter attempts by model and outcome", ["model", "outcome"])
llm_latency = Histogram("litink_llm_call_seconds", "OpenRouter call latency", ["model"], buckets=LATENCY_BUCKETS)
fallbacks = Counter("litink_fallbacks", "Jobs served by a fallback model", ["tier", "model"])
llm_cost = Counter("litink_llm_cost_usd", "LLM cost in USD", ["tier", "model"])
rejections = Counter("litink_rejections", "Jobs rejected at intake", ["tier", "reason"])
jobs = Counter("litink_jobs", "Jobs by tier, kind and final status", ["tier", "kind", "status"])
queue_wait = Histogram(
    "litink_queue_wait_seconds", "Time from intake to a tier task starting", ["tier"], buckets=WAIT_BUCKETS
)
model_healthy = Gauge(
    "litink_model_healthy", "1 while a model is healthy, 0 while marked unhealthy (shared model health)", ["model"]
)
model_health_changes = Counter(
    "litink_model_health_changes", "Model health state changes, by model and new state", ["model", "state"]
)
cache_lookups = Counter(
    "litink_response_cache_lookups",
    "Response cache lookups by tier, kind and outcome (hit, miss)",
    ["tier", "kind", "outcome"],
)
cache_saved = Counter("litink_response_cache_saved_usd", "What cache hits would have cost, in USD", ["tier", "kind"])
batched_analyses = Counter(
    "litink_batched_analyses", "Batched analysis jobs by how they were answered (batched, per_type)", ["tier", "mode"]
)
