"""`python -m db.drift`: fail when the models and the migrations disagree (a `make check` gate).

Uses DATABASE_URL; without it, a scratch embedded Postgres (the dev extra) under .data/drift.
"""

from __future__ import annotations

import sys

from config import get_settings
from db.migrate import schema_drift


def main() -> int:
    url = get_settings().database_url
    if not url:
        from config.settings import DATA_DIR
        from devtools.embedded import ensure_services

        url = ensure_services(DATA_DIR / "drift").database_url
    drift = schema_drift(url)
    for difference in drift:
        print(f"schema drift: {difference}", file=sys.stderr)
    if drift:
        print("The models and the migrations disagree: write a migration (db/migrations/versions).", file=sys.stderr)
        return 1
    print("schema: models and migrations agree")
    return 0


if __name__ == "__main__":
    sys.exit(main())
