-- Recovery (workers/pipeline/recovery.py): re-publishing from Postgres what the broker lost.

-- name: try_recovery_lock
-- Take the transaction-level advisory lock that lets one recovery run at a time; false when another run holds it.
SELECT pg_try_advisory_xact_lock(:lock_key) AS locked;

-- name: requeue_expired_jobs
-- Put running jobs whose lease ran out back to queued, their pending attempts made unknown at their estimate.
-- After a Postgres restart (pg_postmaster_start_time) every holder first gets one full lease to
-- renew, so a worker that was only cut off is not taken for dead.
WITH expired AS (
    UPDATE jobs
    SET status = 'queued', lease_until = NULL, published_at = :published_at
    WHERE status = 'running' AND lease_until < now()
      AND pg_postmaster_start_time() < now() - make_interval(secs => :lease_seconds)
    RETURNING id, tier
),
lost AS (
    UPDATE llm_calls
    SET status = 'unknown', cost_usd = estimate_usd, cost_source = 'estimate', completed_at = now()
    WHERE status = 'pending' AND job_id IN (SELECT id FROM expired)
    RETURNING id
)
SELECT id, tier, (SELECT count(*) FROM lost) AS lost
FROM expired;

-- name: republish_unfinished_jobs
-- Every queued or running job, to publish again after Redis lost its data; a queued one is stamped published now.
UPDATE jobs
SET published_at = CASE WHEN status = 'queued' THEN :published_at ELSE published_at END
WHERE status IN ('queued', 'running')
RETURNING id, tier;

-- name: queued_jobs_published_before
-- Queued jobs last published before a time, oldest first: candidates for a message the broker lost.
SELECT id, tier, published_at
FROM jobs
WHERE status = 'queued' AND published_at < :published_before
ORDER BY published_at;

-- name: mark_jobs_republished
-- Stamp the queued jobs whose message was just published again.
UPDATE jobs
SET published_at = :published_at
WHERE id = ANY(CAST(:job_ids AS text[])) AND status = 'queued';

-- name: jobs_finished_since
-- Finished jobs (the columns of JobRow) since a time, to store their result again where the backend lost it.
SELECT id, user_id, kind, type, tier, status, reason, detail, retry_after, result_content, model_used,
       used_fallback, prompt_tokens, completion_tokens, cost_usd, quota_period, notify, created_at,
       request_sha256, cache_hit
FROM jobs
WHERE status IN ('succeeded', 'failed', 'rejected') AND finished_at >= :finished_since;
