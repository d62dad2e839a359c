"""The Celery app and the services its tasks use."""
