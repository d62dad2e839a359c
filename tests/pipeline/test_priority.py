"""On one busy worker slot, a professional job overtakes a backlog of free jobs."""

from sqlalchemy import text

from tests.waiting import wait_until

WORKER_CONCURRENCY = 1  # one slot consuming every queue


def test_a_professional_job_queued_after_a_free_backlog_starts_before_the_backlog_drains(
    worker, client, faults, db, subscribe
):
    # Given a single worker slot busy with a backlog of 20 free jobs of 100 ms each
    faults.set_latency(100)
    subscribe("pro-user", "professional")
    free_ids = [client.submit_script(f"free-{i}", "Backlog item.") for i in range(20)]
    started = text("SELECT count(*) FROM jobs WHERE tier = 'free' AND started_at IS NOT NULL")
    wait_until(lambda: db.execute(started).scalar(), timeout=30, interval=0.02, what="a free job to start")
    # When a professional job is submitted last
    pro_id = client.submit_script("pro-user", "Urgent.")
    assert client.result(pro_id, timeout=60)["status"] == "succeeded"
    for job_id in free_ids:
        assert client.result(job_id, timeout=60)["status"] == "succeeded"
    # Then it started while most of the free backlog was still waiting
    overtaken = db.execute(
        text("SELECT count(*) FROM jobs f, jobs p WHERE f.tier = 'free' AND p.id = :p AND f.started_at > p.started_at"),
        {"p": pro_id},
    ).scalar()
    assert overtaken >= 15, f"only {overtaken} free jobs started after the professional one"
