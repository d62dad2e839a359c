"""Development-only tooling: embedded Postgres and Redis for the demo and the tests."""
