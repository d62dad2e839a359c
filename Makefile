# Shorthands for dev.py, which needs nothing but Python 3.11 (see README.md).
PYTHON ?= python3
VENV_BIN := .venv/bin

.PHONY: demo test unit check bench clean

demo:
	$(PYTHON) dev.py demo

test:
	$(PYTHON) dev.py test

# The fast lane: no Postgres, no Redis, seconds.
unit:
	$(PYTHON) dev.py test -m unit

# The gates CI runs before the tests: format, lint, types, models against migrations.
check:
	$(PYTHON) dev.py check

bench:
	$(PYTHON) dev.py bench

clean:
	rm -rf .venv .data *.egg-info
