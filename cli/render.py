"""How `litink` writes: JSON for machines, Rich tables and progress for people.

JSON and plain lines go through ``click.echo`` (exactly what --json promised, nothing added);
tables and progress bars through Rich. Piped output has no colour and a wide fixed width, so
rows are not wrapped for ``grep``; progress bars draw only on a terminal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from decimal import Decimal
from functools import cache
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

PIPED_WIDTH = 200  # columns when stdout is not a terminal


def to_json(value: Any) -> str:
    return json.dumps(value, indent=2, default=lambda v: format(v, "f") if isinstance(v, Decimal) else str(v))


@cache
def console() -> Console:
    """Standard output, for tables."""
    probe = Console()
    return Console(width=None if probe.is_terminal else PIPED_WIDTH, highlight=False)


@cache
def err_console() -> Console:
    """Standard error, for progress and notes that must not mix into --json output."""
    return Console(stderr=True, highlight=False)


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str], title: str | None = None) -> Table:
    """A table of ``rows`` (dicts) showing ``columns``; None shows as an empty cell."""
    out = Table(title=title, title_justify="left", title_style="bold", header_style="bold")
    for column in columns:
        out.add_column(column)
    for row in rows:
        out.add_row(*("" if row.get(c) is None else str(row.get(c)) for c in columns))
    return out


def progress(description: str = "jobs", *, on: Console | None = None) -> Progress:
    """A progress bar ``description  ━━━━━━  7/13  0:00:04  <status>`` (the task's ``status`` field)."""
    target = on or err_console()
    return Progress(
        TextColumn("  {task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[status]}"),
        console=target,
        disable=not target.is_terminal,
    )
