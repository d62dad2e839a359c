"""The named queries of db/queries: each loads, says what it is for, takes descriptive binds
and is used; statements written out twice on purpose stay alike; row types are checked."""

import importlib
import re
from typing import NamedTuple

import pytest
from sqlalchemy import create_engine

from db import named_sql

pytestmark = pytest.mark.unit  # no Postgres, no Redis

# The modules whose statements live in db/queries.
MODULES = (
    "workers.pipeline.jobs",
    "workers.pipeline.admission",
    "workers.pipeline.recovery",
    "workers.llm.costs",
    "workers.quotas.allowance",
)
QUERY_FILES = sorted(path.stem for path in named_sql.QUERIES.glob("*.sql"))
# settle_job_with_answer's binds for the answer call's row: costs.completion_params(prefix="a_")
ANSWER_PREFIX = "a_"
DESCRIPTIVE = re.compile(r"[a-z][a-z0-9]+(_[a-z0-9]{2,})*")
UNKNOWN_AT_ESTIMATE = "status = 'unknown', cost_usd = estimate_usd, cost_source = 'estimate', completed_at = now()"


def query(domain: str, name: str) -> named_sql.Query:
    return named_sql.load(domain).queries[name]


def flat(sql: str) -> str:
    """A statement with its layout ignored."""
    return " ".join(sql.replace("(", " ( ").replace(")", " ) ").split())


def test_there_are_query_files():
    assert QUERY_FILES == ["admission", "allowance", "costs", "jobs", "recovery"]


@pytest.mark.parametrize("domain", QUERY_FILES)
def test_every_query_has_a_purpose_and_descriptive_binds(domain):
    queries = named_sql.load(domain).queries
    assert queries, f"{domain}.sql has no named query"
    for name, named in queries.items():
        assert named.purpose.endswith("."), f"{domain}.{name}: the purpose line is a sentence"
        assert "--" not in named.sql, f"{domain}.{name}: a comment would be sent to the server"
        for bind in named.binds:
            plain = bind.removeprefix(ANSWER_PREFIX)
            assert DESCRIPTIVE.fullmatch(plain), f"{domain}.{name}: the bind :{bind} does not say what it holds"


def test_every_query_file_is_loaded_and_every_query_in_it_used():
    for module in MODULES:
        importlib.import_module(module)
    loaded = named_sql.loaded()
    assert sorted(loaded) == QUERY_FILES, "a query file no module loads"
    unused = {f"{domain}.{name}" for domain, file in loaded.items() for name in file.unused()}
    assert unused == set()


def test_settlement_with_the_answer_is_settlement_after_completing_its_row():
    settle, with_answer = flat(query("jobs", "settle_job").sql), flat(query("jobs", "settle_job_with_answer").sql)
    assert settle[settle.index("totals AS") :] == with_answer[with_answer.index("totals AS") :]
    completion = re.sub(r":(\w+)", rf":{ANSWER_PREFIX}\1", flat(query("costs", "complete_attempt").sql))
    assert flat(f"WITH answer AS ({completion}),") in with_answer


def test_admission_writes_the_job_as_insert_job_does_and_differs_by_kind_only_in_the_unit_column():
    script, analysis = (
        flat(query("admission", "admit_script_job").sql),
        flat(query("admission", "admit_analysis_job").sql),
    )
    insert = flat(query("jobs", "insert_job").sql)
    assert flat(f"WITH job AS ({insert}),") in script
    assert script.replace("scripts_used", "analyses_used") == analysis


@pytest.mark.parametrize(
    ("domain", "name"),
    [("jobs", "claim_job"), ("recovery", "requeue_expired_jobs"), ("costs", "mark_attempt_unknown")],
)
def test_a_lost_attempt_costs_its_estimate_wherever_it_is_found(domain, name):
    assert flat(UNKNOWN_AT_ESTIMATE) in flat(query(domain, name).sql)


def test_a_job_row_has_the_columns_the_job_result_is_built_from():
    from workers.pipeline.job_result import JOB_COLUMNS
    from workers.pipeline.jobs import JobRow, SettledJob

    columns = tuple(column.strip() for column in JOB_COLUMNS.split(","))
    assert JobRow._fields == columns
    assert SettledJob._fields == (*columns, "spend")


@pytest.mark.parametrize(
    ("source", "complaint"),
    [
        ("-- name: a_query\nSELECT 1;", "no purpose"),
        ("-- name: a_query\n-- Says what.\n", "no statement"),
        ("-- name: a_query\n-- Says what.\nSELECT 1;\n-- name: a_query\n-- Again.\nSELECT 2;", "named twice"),
        ("SELECT 1;\n-- name: a_query\n-- Says what.\nSELECT 2;", "before the first"),
        ("-- name: a_query\n-- Says what.\nSELECT 1; SELECT 2;", "more than one statement"),
        ("-- name: AQuery\n-- Says what.\nSELECT 1;", "lower-case identifier"),
    ],
)
def test_a_malformed_query_file_is_refused_at_load(source, complaint):
    with pytest.raises(named_sql.QueryFileError, match=complaint):
        named_sql.parse("sample", source)


def test_a_query_file_parses_into_named_statements_without_their_comments():
    source = (
        "-- A file about numbers.\n\n"
        "-- name: pick_number\n-- One number.\n-- Why it is picked.\n"
        "SELECT :wanted AS number\n    -- a note for readers\n    WHERE :wanted > 0;\n\n"
        "-- name: no_number\n-- Nothing.\nSELECT 1 AS number WHERE false;\n"
    )
    queries = named_sql.parse("sample", source)
    assert list(queries) == ["pick_number", "no_number"]
    assert queries["pick_number"].purpose == "One number."
    assert queries["pick_number"].sql == "SELECT :wanted AS number\nWHERE :wanted > 0"
    assert queries["pick_number"].binds == {"wanted"}


class Number(NamedTuple):
    number: int


class Misnamed(NamedTuple):
    value: int


@pytest.fixture
def sqlite():
    # An in-memory database stands in for a server: what is checked here is the loader's own.
    with create_engine("sqlite://").connect() as conn:
        yield conn


def sample_file() -> named_sql.QueryFile:
    source = "-- name: pick_number\n-- One number.\nSELECT :wanted AS number WHERE :wanted > 0;\n"
    return named_sql.QueryFile("sample", named_sql.parse("sample", source))


def test_rows_come_back_as_their_row_type(sqlite):
    picked = sample_file().rows("pick_number", Number)
    assert picked.first(sqlite, {"wanted": 7}) == Number(7)
    assert picked.one(sqlite, {"wanted": 8}).number == 8
    assert picked.all(sqlite, {"wanted": 9}) == [Number(9)]
    assert picked.first(sqlite, {"wanted": 0}) is None


def test_a_row_type_that_does_not_match_the_columns_fails_at_first_use(sqlite):
    picked = sample_file().rows("pick_number", Misnamed)
    with pytest.raises(TypeError, match="not the fields of Misnamed"):
        picked.first(sqlite, {"wanted": 7})


def test_binds_that_do_not_match_the_statement_fail_at_first_use(sqlite):
    picked = sample_file().rows("pick_number", Number)
    with pytest.raises(TypeError, match=r"takes \['wanted'\], given \['wanted', 'wnated'\]"):
        picked.first(sqlite, {"wanted": 7, "wnated": 7})


def test_asking_for_a_query_a_file_lacks_names_both():
    with pytest.raises(KeyError, match=r"no query 'pick_numbre' in sample\.sql"):
        sample_file().rows("pick_numbre", Number)
