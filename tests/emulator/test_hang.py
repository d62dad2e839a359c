"""A hang delays the answer long enough to trip a client's read timeout."""

from __future__ import annotations

import time

import openai
import pytest

from tests.waiting import wait_until

pytestmark = pytest.mark.unit  # no Postgres, no Redis

MESSAGES = [{"role": "user", "content": "Describe the harbour at night"}]


def test_a_hang_exceeds_a_short_client_timeout(emu):
    # Given a hang of 1.5 seconds
    emu.control.inject("openai/gpt-4o-mini", "hang", delay_s=1.5)
    client = openai.OpenAI(base_url=emu.base_url, api_key="test", max_retries=0, timeout=0.3)
    # When a client with a 0.3 s timeout calls
    started = time.monotonic()
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    # Then it gives up at its own timeout, well before the hang ends
    assert time.monotonic() - started < 1.2
    # And the emulator still finishes the call and logs it as a hang
    assert _wait_for_logged_call(emu)["fault"] == "hang"


def test_a_hang_then_answers_normally_to_a_patient_client(emu, client):
    # Given a short hang
    emu.control.inject("openai/gpt-4o-mini", "hang", delay_s=0.3)
    # When a patient client calls
    started = time.monotonic()
    response = client.chat.completions.create(model="openai/gpt-4o-mini", messages=MESSAGES)
    # Then the ordinary answer arrives after the delay
    assert time.monotonic() - started >= 0.3
    assert response.choices[0].finish_reason == "stop"
    assert emu.control.calls()[-1]["fault"] == "hang"


def _wait_for_logged_call(emu, within_s: float = 6.0) -> dict:
    """The hung call is logged once its delay ends; wait so it cannot leak into later tests."""
    return wait_until(emu.control.calls, timeout=within_s, interval=0.1, what="the hung call to be logged")[-1]
