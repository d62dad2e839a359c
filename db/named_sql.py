"""Named SQL: the statements of a domain live in ``db/queries/<domain>.sql``, each under a
``-- name:`` line and a one-line purpose, and are parsed once, at import, into SQLAlchemy
``text()`` clauses. A statement that returns rows is bound to a NamedTuple row type, so callers
get typed rows. See docs/architecture.md, "Where the SQL lives".

The format of a query file::

    -- Anything before the first name is the file's own description.

    -- name: find_job
    -- A job's row, by id.                     <- the purpose: required, one line
    -- Any further comment lines say why.
    SELECT ... FROM jobs WHERE id = :job_id;

Comment lines inside a statement are for its readers and are not sent to the server, nor is
the indentation of its lines (so a string literal must not span lines).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from itertools import takewhile
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar, cast

from sqlalchemy import Connection, CursorResult, TextClause, text

QUERIES = Path(__file__).with_name("queries")
NAME = re.compile(r"^[ \t]*--[ \t]*name:[ \t]*(\S+)[ \t]*$", re.MULTILINE)
IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")


class Row(Protocol):
    """A row type: a NamedTuple, built from a result row's values in its fields' order."""

    def __init__(self, *values: Any) -> None: ...

    @property
    def _fields(self) -> tuple[str, ...]: ...


R = TypeVar("R", bound=Row)


class QueryFileError(ValueError):
    """A query file that cannot be read as named queries."""


@dataclass(frozen=True)
class Query:
    """One named statement of a query file."""

    domain: str
    name: str
    purpose: str
    sql: str  # as sent: the statement without its comment lines
    statement: TextClause = field(repr=False, compare=False)

    @cached_property
    def binds(self) -> frozenset[str]:
        """The bind parameters the statement takes, by name."""
        return frozenset(self.statement.compile().params)

    def __str__(self) -> str:
        return f"{self.domain}.{self.name}"


class _Named:
    """A query as code runs it. Its first execution in a process checks the parameters given
    against the statement's binds (SQLAlchemy would ignore a misspelt optional one); later
    executions go straight to the driver."""

    def __init__(self, query: Query) -> None:
        self.query = query
        self._checked = False

    def _execute(self, conn: Connection, params: dict[str, Any] | None) -> CursorResult[Any]:
        params = params or {}
        if not self._checked and set(params) != self.query.binds:
            raise TypeError(f"query {self.query} takes {sorted(self.query.binds)}, given {sorted(params)}")
        return conn.execute(self.query.statement, params)


class Statement(_Named):
    """A named query run for its effect."""

    def __repr__(self) -> str:
        return f"Statement({self.query})"

    def execute(self, conn: Connection, params: dict[str, Any] | None = None) -> int:
        """Run it; returns the number of rows it touched."""
        result = self._execute(conn, params)
        self._checked = True
        return result.rowcount


class Rows(_Named, Generic[R]):
    """A named query whose rows come back as ``row_type``. Its first execution also checks the
    columns returned against the row type's fields, so a renamed column fails loudly at once."""

    def __init__(self, query: Query, row_type: type[R]) -> None:
        super().__init__(query)
        self.row_type = row_type
        # mypy knows a NamedTuple's _fields on its instances only
        self.fields = cast(tuple[str, ...], row_type._fields)

    def __repr__(self) -> str:
        return f"Rows({self.query} -> {self.row_type.__name__})"

    def first(self, conn: Connection, params: dict[str, Any] | None = None) -> R | None:
        row = self._rows(conn, params).first()
        return None if row is None else self.row_type(*row)

    def one(self, conn: Connection, params: dict[str, Any] | None = None) -> R:
        return self.row_type(*self._rows(conn, params).one())

    def all(self, conn: Connection, params: dict[str, Any] | None = None) -> list[R]:
        row_type = self.row_type
        return [row_type(*row) for row in self._rows(conn, params)]

    def _rows(self, conn: Connection, params: dict[str, Any] | None) -> CursorResult[Any]:
        result = self._execute(conn, params)
        if not self._checked:
            columns = tuple(result.keys())
            if columns != self.fields:
                raise TypeError(
                    f"query {self.query} returns {columns}, not the fields of {self.row_type.__name__} {self.fields}"
                )
            self._checked = True
        return result


class QueryFile:
    """The named queries of one ``db/queries/<domain>.sql``. Remembers which were taken, so a
    test can find a query no code uses."""

    def __init__(self, domain: str, queries: dict[str, Query]) -> None:
        self.domain = domain
        self.queries = queries
        self.taken: set[str] = set()

    def __getitem__(self, name: str) -> Query:
        try:
            query = self.queries[name]
        except KeyError:
            raise KeyError(f"no query {name!r} in {self.domain}.sql") from None
        self.taken.add(name)
        return query

    def statement(self, name: str) -> Statement:
        """A query run for its effect."""
        return Statement(self[name])

    def rows(self, name: str, row_type: type[R]) -> Rows[R]:
        """A query whose rows are ``row_type``."""
        return Rows(self[name], row_type)

    def unused(self) -> set[str]:
        return set(self.queries) - self.taken


_files: dict[str, QueryFile] = {}


def load(domain: str) -> QueryFile:
    """The queries of ``db/queries/<domain>.sql``, parsed once per process."""
    file = _files.get(domain)
    if file is None:
        source = (QUERIES / f"{domain}.sql").read_text(encoding="utf-8")
        file = _files.setdefault(domain, QueryFile(domain, parse(domain, source)))
    return file


def loaded() -> dict[str, QueryFile]:
    """Every query file loaded so far in this process, by domain."""
    return dict(_files)


def parse(domain: str, source: str) -> dict[str, Query]:
    """The named queries of a query file's text."""
    preamble, *named = NAME.split(source)
    if any(line.strip() and not _comment(line) for line in preamble.splitlines()):
        raise QueryFileError(f"{domain}.sql: a statement before the first '-- name:' line")
    queries: dict[str, Query] = {}
    for name, block in zip(named[::2], named[1::2], strict=True):
        if not IDENTIFIER.fullmatch(name):
            raise QueryFileError(f"{domain}.sql: {name!r} is not a lower-case identifier")
        if name in queries:
            raise QueryFileError(f"{domain}.sql: query {name} is named twice")
        lines = block.strip("\n").splitlines()
        header = list(takewhile(_comment, lines))
        if not header or not _uncomment(header[0]):
            raise QueryFileError(f"{domain}.sql: query {name} has no purpose line under its name")
        # Comment lines inside the statement are for readers of the file, and indentation for
        # their eyes: neither is sent to the server.
        sql = "\n".join(line.strip() for line in lines[len(header) :] if not _comment(line))
        sql = sql.strip().removesuffix(";").rstrip()
        if not sql:
            raise QueryFileError(f"{domain}.sql: query {name} has no statement")
        if ";" in sql:
            raise QueryFileError(f"{domain}.sql: query {name} holds more than one statement")
        queries[name] = Query(domain, name, _uncomment(header[0]), sql, text(sql))
    return queries


def _comment(line: str) -> bool:
    return line.lstrip().startswith("--")


def _uncomment(line: str) -> str:
    return line.strip().removeprefix("--").strip()
