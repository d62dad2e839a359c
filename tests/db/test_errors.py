"""Database errors in the project's terms, and the retries through an outage, with the waits
recorded instead of slept."""

from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import DataError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from db.errors import UNAVAILABLE, durably, translate
from workers.errors import DataRefused, SystemFault

pytestmark = pytest.mark.unit  # no Postgres, no Redis


def dropped() -> OperationalError:
    return OperationalError("UPDATE jobs", {}, Exception("server closed the connection unexpectedly"))


def failing(times: int, error: Exception):
    calls = []

    def write() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "written"

    return write, calls


@pytest.mark.parametrize(
    "error",
    [
        dropped(),
        InterfaceError("SELECT 1", {}, Exception("connection already closed")),
        PoolTimeout("QueuePool limit of size 5 overflow 0 reached"),
    ],
)
def test_every_kind_of_outage_becomes_a_system_fault(error):
    assert isinstance(error, UNAVAILABLE)
    fault = translate(error, task_id="job-1", retries=3)
    assert isinstance(fault, SystemFault)
    assert "Postgres unreachable" in str(fault) and "after 3 retries" in str(fault) and "job-1" in str(fault)


def test_refused_data_names_the_job_and_never_the_data():
    error = DataError("INSERT INTO jobs", {"content": "secret words"}, Exception('invalid input: "secret words"'))
    refused = translate(error, task_id="job-2", retries=0)
    assert isinstance(refused, DataRefused)
    assert "job-2" in str(refused) and "secret" not in str(refused)


def test_anything_else_is_left_as_it_is():
    assert translate(ValueError("not a database error"), task_id="job-3", retries=0) is None


def test_a_write_is_retried_through_an_outage_with_doubling_waits():
    write, calls = failing(3, dropped())
    slept: list[float] = []
    assert durably(write, what="a settlement", job_id="j", sleep=slept.append, budget_seconds=30) == "written"
    assert slept == [0.25, 0.5, 1.0] and len(calls) == 4


def test_the_waits_stop_growing_at_five_seconds():
    write, _ = failing(7, dropped())
    slept: list[float] = []
    durably(write, what="a settlement", job_id="j", sleep=slept.append, budget_seconds=600)
    assert slept == [0.25, 0.5, 1.0, 2.0, 4.0, 5.0, 5.0]


def test_an_outage_longer_than_the_budget_propagates():
    write, calls = failing(100, dropped())
    slept: list[float] = []
    with pytest.raises(OperationalError):
        # No wait starts that would end past the budget: 0.25 and 0.5 fit in 0.9, 1.0 does not.
        durably(write, what="a settlement", job_id="j", sleep=slept.append, budget_seconds=0.9)
    assert slept == [0.25, 0.5] and len(calls) == 3


def test_an_error_that_is_not_an_outage_is_never_retried():
    write, calls = failing(1, DataError("UPDATE", {}, Exception("bad")))
    slept: list[float] = []
    with pytest.raises(DataError):
        durably(write, what="a settlement", job_id="j", sleep=slept.append, budget_seconds=30)
    assert slept == [] and len(calls) == 1


class Handover:
    """A signature whose publish fails ``failures`` times, as during a broker failover."""

    def __init__(self, failures: int):
        self.failures, self.published = failures, 0

    def delay(self) -> None:
        if self.failures:
            self.failures -= 1
            raise BrokerError("Connection refused")
        self.published += 1


def test_a_hand_over_is_published_once_the_broker_is_back():
    from tasks.intake import HANDOVER_PAUSE_S, hand_over

    sig, slept = Handover(failures=3), []
    hand_over(sig, sleep=slept.append)
    assert sig.published == 1 and slept == [HANDOVER_PAUSE_S] * 3


def test_a_hand_over_gives_up_after_its_attempts():
    from tasks.intake import HANDOVER_ATTEMPTS, hand_over

    sig, slept = Handover(failures=HANDOVER_ATTEMPTS), []
    with pytest.raises(BrokerError):
        hand_over(sig, sleep=slept.append)
    assert sig.published == 0 and len(slept) == HANDOVER_ATTEMPTS - 1
