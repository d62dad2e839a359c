-- The life of a jobs row (workers/pipeline/jobs.py). Every transition is guarded in its WHERE
-- clause, so a redelivered task never moves a job twice and only the delivery that holds the
-- claim (jobs.deliveries = :delivery) may move a running job on.
--
-- A statement that returns a job returns the columns of JobRow, in its order (job_result.py
-- builds the JobResult from them).

-- name: find_job
-- A job's row, by id.
SELECT id, user_id, kind, type, tier, status, reason, detail, retry_after, result_content, model_used,
       used_fallback, prompt_tokens, completion_tokens, cost_usd, quota_period, notify, created_at,
       request_sha256, cache_hit
FROM jobs
WHERE id = :job_id;

-- name: find_job_by_idempotency_key
-- The job a user created with an idempotency key.
SELECT id, user_id, kind, type, tier, status, reason, detail, retry_after, result_content, model_used,
       used_fallback, prompt_tokens, completion_tokens, cost_usd, quota_period, notify, created_at,
       request_sha256, cache_hit
FROM jobs
WHERE user_id = :user_id AND idempotency_key = :idempotency_key;

-- name: find_jobs_by_id_prefix
-- At most two jobs whose id starts with a prefix (its LIKE wildcards escaped by the caller).
SELECT id, user_id, kind, type, tier, status, reason, detail, retry_after, result_content, model_used,
       used_fallback, prompt_tokens, completion_tokens, cost_usd, quota_period, notify, created_at,
       request_sha256, cache_hit
FROM jobs
WHERE id LIKE :id_prefix || '%'
ORDER BY id
LIMIT 2;

-- name: insert_job
-- Write a job's row unless its id or its user's idempotency key is taken; returns its id when written.
-- admission.sql's admit_*_job statements hold this statement verbatim, with the quota unit.
INSERT INTO jobs (id, user_id, kind, type, tier, status, reason, detail, retry_after, idempotency_key, notify,
                  content_chars, content, quota_period, reserved_usd, published_at, finished_at, request_sha256)
VALUES (:job_id, :user_id, :kind, :type, :tier, :status, :reason, CAST(:detail AS jsonb), :retry_after,
        :idempotency_key, :notify, :content_chars, :content, :quota_period, :reserved_usd, :published_at,
        :finished_at, :request_sha256)
ON CONFLICT DO NOTHING
RETURNING id;

-- name: reject_queued_job
-- Turn a just-written queued job into a rejection, releasing its idempotency key and its reservation.
UPDATE jobs
SET status = 'rejected', reason = :reason, detail = CAST(:detail AS jsonb), quota_period = NULL,
    idempotency_key = NULL, reserved_usd = 0, content = NULL, finished_at = now()
WHERE id = :job_id AND status = 'queued';

-- name: claim_job
-- Claim a job for one delivery and write its first attempt's pending llm_calls row, in one round trip.
-- Claimable: queued, running with its lease run out, or running under :own_delivery (a delivery
-- retried after a database error takes its own claim back without counting a new delivery, so
-- it never waits on its own lease). A dead delivery's pending rows become unknown at their
-- estimate. An ok answer a dead delivery already paid for is returned instead of a new attempt,
-- and so is nothing once the job was claimed more than :max_deliveries times.
WITH claimed AS (
    UPDATE jobs
    SET status = 'running',
        lease_until = now() + make_interval(secs => :lease_seconds),
        deliveries = CASE WHEN status = 'running' AND deliveries = :own_delivery THEN deliveries
                          ELSE deliveries + 1 END,
        started_at = coalesce(started_at, now())
    WHERE id = :job_id
      AND (status = 'queued' OR (status = 'running' AND (lease_until < now() OR deliveries = :own_delivery)))
    RETURNING id, user_id, kind, type, tier, content, notify, deliveries, reserved_usd, detail
),
lost AS (
    UPDATE llm_calls
    SET status = 'unknown', cost_usd = estimate_usd, cost_source = 'estimate', completed_at = now()
    WHERE status = 'pending' AND job_id IN (SELECT id FROM claimed)
    RETURNING id
),
answered AS (
    -- only the job's own answer: not a chunk of long content, nor one part of a batch
    SELECT id, attempt, model, model_served
    FROM llm_calls
    WHERE job_id = :job_id AND status = 'ok' AND purpose = 'answer'
    ORDER BY attempt DESC
    LIMIT 1
),
opened AS (
    INSERT INTO llm_calls (job_id, attempt, tier, model, status, cost_source, estimate_usd)
    SELECT c.id, (SELECT coalesce(max(attempt), 0) + 1 FROM llm_calls WHERE job_id = :job_id), c.tier,
           CAST(:first_models AS jsonb) ->> c.tier, 'pending', 'none', c.reserved_usd
    FROM claimed c
    WHERE c.deliveries <= :max_deliveries AND NOT EXISTS (SELECT 1 FROM answered)
    RETURNING id, attempt
)
SELECT c.id, c.user_id, c.kind, c.type, c.tier, c.content, c.notify, c.deliveries, c.reserved_usd, c.detail,
       (SELECT count(*) FROM lost) AS lost, a.id AS answered_id, a.model AS answered_model,
       o.id AS call_id, o.attempt AS call_attempt
FROM claimed c
LEFT JOIN answered a ON true
LEFT JOIN opened o ON true;

-- name: answer_of_call
-- The stored answer of an ok attempt: its content, the model that served it and the model asked for.
SELECT response_content, model_served, model
FROM llm_calls
WHERE id = :call_id;

-- name: withdraw_unsent_call
-- Delete a claim's first attempt row whose request never left: still pending, or made unknown meanwhile.
-- A later claim or recovery may have made it unknown (neither could know the call was never
-- made); a completed row is never touched.
DELETE FROM llm_calls
WHERE id = :call_id AND job_id = :job_id AND status IN ('pending', 'unknown');

-- name: requeue_job
-- Give a claimed job back to the queue, its lease released, when this delivery still holds it.
UPDATE jobs
SET status = 'queued', lease_until = NULL, published_at = :published_at
WHERE id = :job_id AND deliveries = :delivery AND status = 'running';

-- name: renew_leases
-- Renew the lease of every job a process holds (job id and delivery, pairwise), in one UPDATE.
UPDATE jobs
SET lease_until = now() + make_interval(secs => :lease_seconds)
FROM unnest(CAST(:job_ids AS text[]), CAST(:deliveries AS integer[])) AS held(id, delivery)
WHERE jobs.id = held.id AND jobs.deliveries = held.delivery AND jobs.status = 'running';

-- name: settle_job
-- Finish a claimed job: its final state and totals, the spend, the reservation released and, if asked, its unit back.
-- Estimates are excluded from the cost: they are exposure, not cost. Only the delivery holding
-- the claim settles; the quota row is touched only when the job row was. From "totals" on,
-- this is settle_job_with_answer verbatim.
WITH calls AS (
    SELECT prompt_tokens, completion_tokens, cost_usd, cost_source FROM llm_calls WHERE job_id = :job_id
),
totals AS (
    SELECT coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
           coalesce(sum(completion_tokens), 0) AS completion_tokens,
           coalesce(sum(cost_usd) FILTER (WHERE cost_source <> 'estimate'), 0) AS cost_usd
    FROM calls
),
before AS (
    SELECT id, reserved_usd, quota_refunded FROM jobs WHERE id = :job_id
),
settled AS (
    UPDATE jobs
    SET status = :job_status, reason = :reason, detail = CAST(:detail AS jsonb), result_content = :result_content,
        model_used = :model_used, used_fallback = :used_fallback, lease_until = NULL, finished_at = now(),
        prompt_tokens = totals.prompt_tokens, completion_tokens = totals.completion_tokens,
        cost_usd = totals.cost_usd, reserved_usd = 0,
        quota_refunded = jobs.quota_refunded OR (:refund_unit AND jobs.quota_period IS NOT NULL)
    FROM totals
    WHERE jobs.id = :job_id AND jobs.deliveries = :delivery AND jobs.status = 'running'
    RETURNING jobs.id, jobs.user_id, jobs.kind, jobs.type, jobs.tier, jobs.status, jobs.reason, jobs.detail,
              jobs.retry_after, jobs.result_content, jobs.model_used, jobs.used_fallback, jobs.prompt_tokens,
              jobs.completion_tokens, jobs.cost_usd, jobs.quota_period, jobs.notify, jobs.created_at,
              jobs.request_sha256, jobs.cache_hit
),
usage AS (
    UPDATE quota_usage q
    SET spend_usd = q.spend_usd + s.cost_usd,
        reserved_usd = greatest(q.reserved_usd - b.reserved_usd, 0),
        scripts_used = greatest(q.scripts_used - CASE WHEN :refund_unit AND NOT b.quota_refunded
                                                           AND s.kind = 'script' THEN 1 ELSE 0 END, 0),
        -- a batched analysis (type "summary+keywords") took one unit per type
        analyses_used = greatest(q.analyses_used - CASE WHEN :refund_unit AND NOT b.quota_refunded
                                                             AND s.kind = 'analysis'
                                                        THEN cardinality(string_to_array(s.type, '+'))
                                                        ELSE 0 END, 0),
        updated_at = now()
    FROM settled s, before b
    WHERE q.user_id = s.user_id AND q.period_start = s.quota_period
    RETURNING q.spend_usd
)
SELECT settled.*, (SELECT spend_usd FROM usage) AS spend
FROM settled;

-- name: settle_job_with_answer
-- Complete the successful call's row and settle the job with it, in one statement: one round trip after the answer.
-- The answer CTE is costs.sql's complete_attempt verbatim, its binds prefixed a_ (the answer
-- call's, as costs.completion_params(prefix="a_") gives them). The totals see the table as it
-- was before the statement, so they take the answer's row from that CTE instead (or as it was,
-- when it had been completed already). From "totals" on, this is settle_job verbatim.
WITH answer AS (
    UPDATE llm_calls
    SET status = :a_call_status, model_served = :a_model_served, prompt_tokens = :a_prompt_tokens,
        completion_tokens = :a_completion_tokens, cost_usd = :a_cost, cost_source = :a_cost_source,
        error_class = :a_error_class, http_status = :a_http_status, latency_ms = :a_latency_ms,
        generation_id = :a_generation_id, response_content = :a_response_content, completed_at = now()
    WHERE id = :a_call_id AND status IN ('pending', 'unknown')
    RETURNING id, prompt_tokens, completion_tokens, cost_usd, cost_source
),
calls AS (
    SELECT prompt_tokens, completion_tokens, cost_usd, cost_source FROM llm_calls
    WHERE job_id = :job_id AND (id <> :a_call_id OR NOT EXISTS (SELECT 1 FROM answer))
    UNION ALL
    SELECT prompt_tokens, completion_tokens, cost_usd, cost_source FROM answer
),
totals AS (
    SELECT coalesce(sum(prompt_tokens), 0) AS prompt_tokens,
           coalesce(sum(completion_tokens), 0) AS completion_tokens,
           coalesce(sum(cost_usd) FILTER (WHERE cost_source <> 'estimate'), 0) AS cost_usd
    FROM calls
),
before AS (
    SELECT id, reserved_usd, quota_refunded FROM jobs WHERE id = :job_id
),
settled AS (
    UPDATE jobs
    SET status = :job_status, reason = :reason, detail = CAST(:detail AS jsonb), result_content = :result_content,
        model_used = :model_used, used_fallback = :used_fallback, lease_until = NULL, finished_at = now(),
        prompt_tokens = totals.prompt_tokens, completion_tokens = totals.completion_tokens,
        cost_usd = totals.cost_usd, reserved_usd = 0,
        quota_refunded = jobs.quota_refunded OR (:refund_unit AND jobs.quota_period IS NOT NULL)
    FROM totals
    WHERE jobs.id = :job_id AND jobs.deliveries = :delivery AND jobs.status = 'running'
    RETURNING jobs.id, jobs.user_id, jobs.kind, jobs.type, jobs.tier, jobs.status, jobs.reason, jobs.detail,
              jobs.retry_after, jobs.result_content, jobs.model_used, jobs.used_fallback, jobs.prompt_tokens,
              jobs.completion_tokens, jobs.cost_usd, jobs.quota_period, jobs.notify, jobs.created_at,
              jobs.request_sha256, jobs.cache_hit
),
usage AS (
    UPDATE quota_usage q
    SET spend_usd = q.spend_usd + s.cost_usd,
        reserved_usd = greatest(q.reserved_usd - b.reserved_usd, 0),
        scripts_used = greatest(q.scripts_used - CASE WHEN :refund_unit AND NOT b.quota_refunded
                                                           AND s.kind = 'script' THEN 1 ELSE 0 END, 0),
        -- a batched analysis (type "summary+keywords") took one unit per type
        analyses_used = greatest(q.analyses_used - CASE WHEN :refund_unit AND NOT b.quota_refunded
                                                             AND s.kind = 'analysis'
                                                        THEN cardinality(string_to_array(s.type, '+'))
                                                        ELSE 0 END, 0),
        updated_at = now()
    FROM settled s, before b
    WHERE q.user_id = s.user_id AND q.period_start = s.quota_period
    RETURNING q.spend_usd
)
SELECT settled.*, (SELECT spend_usd FROM usage) AS spend
FROM settled;
