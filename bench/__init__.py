"""Benchmarks: throughput against a bare Celery + openai SDK baseline, and tier priority.

Run from the repository root: ``python -m bench.throughput`` and ``python -m bench.priority``.
See docs/benchmarks.md.
"""
