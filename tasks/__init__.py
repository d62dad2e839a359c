"""Thin Celery tasks, plus the producer client (tasks.client imports nothing but celery)."""
