"""Postgres: the models, sessions and migrations."""
