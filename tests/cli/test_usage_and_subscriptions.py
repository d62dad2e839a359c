"""`litink usage`, `subscriptions set` and `jobs show`, as an operator runs them."""


def test_usage_of_a_new_user_is_the_free_tier_with_its_full_allowance(litink):
    report = litink("usage", "newcomer", "--json")
    assert report["tier"] == "free" and report["status"] == "none"
    assert report["used"] == 0 and report["remaining"] == 2 and report["can_generate"] is True
    assert report["limits"]["videos_per_month"] == 2 and report["limits"]["requests_per_minute"] == 10
    assert report["period"]["start"].endswith("-01")


def test_subscriptions_set_moves_a_user_and_usage_shows_it(litink):
    assert "free -> premium" in litink("subscriptions", "set", "mover", "premium")
    report = litink("usage", "mover", "--json")
    assert report["tier"] == "premium" and report["limits"]["videos_per_month"] == 100
    assert report["limits"]["custom_voices"] == 5


def test_an_unknown_tier_is_refused_with_the_known_ones(litink):
    out = litink("subscriptions", "set", "mover", "platinum", expect=2)
    assert out == ""


def test_usage_shows_two_used_after_a_free_user_ran_two_scripts(worker, client, faults, litink):
    for i in range(2):
        assert client.result(client.submit_script("counted", f"Part {i}."), timeout=30)["status"] == "succeeded"
    report = litink("usage", "counted", "--json")
    assert report["used"] == 2 and report["remaining"] == 0 and report["can_generate"] is False
    assert "2 used of 2" in litink("usage", "counted")


def test_jobs_show_prints_the_stored_job_result(worker, client, faults, litink):
    result = client.result(client.submit_analysis("shown", "A map of the stars.", analysis_type="genre"), timeout=30)
    assert litink("jobs", "show", result["job_id"], "--json") == result
    assert litink("jobs", "show", "no-such-job", expect=1) == ""
