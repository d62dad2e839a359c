-- Admission at intake (workers/pipeline/admission.py): the jobs row and its quota unit in one
-- statement. The unit is taken only when the row is new, so a redelivered message, or a twin
-- that lost the race, never takes a second one.
--
-- The unit is taken by a conditional upsert on the user's quota_usage row for the period: the
-- row lock ON CONFLICT DO UPDATE takes serialises concurrent submits, and its WHERE clause
-- refuses the unit once the allowance (:unit_limit) or the spend cap (:spend_cap_usd) is
-- reached, so 100 concurrent submits with 10 units left take exactly 10. The spend cap counts
-- settled spend plus the maximum cost of every admitted, unsettled job (reserved_usd), so a
-- burst overruns it by at most one job's maximum. A batched analysis takes one unit per type
-- (:units), all or none. A fresh period's row is inserted without the limit check: admission
-- first asks whether one request can ever fit the allowance (allowance.can_ever_fit). The
-- job's :reserved_usd is what the quota row reserves, from the same bind: settlement releases
-- the one by the other.
--
-- There is one statement per kind, as the unit's column differs; they are otherwise the same,
-- and each holds jobs.sql's insert_job verbatim.

-- name: admit_script_job
-- Write a script job's row and, only when the row is new, take its units and reserve its maximum cost.
WITH job AS (
    INSERT INTO jobs (id, user_id, kind, type, tier, status, reason, detail, retry_after, idempotency_key, notify,
                      content_chars, content, quota_period, reserved_usd, published_at, finished_at, request_sha256)
    VALUES (:job_id, :user_id, :kind, :type, :tier, :status, :reason, CAST(:detail AS jsonb), :retry_after,
            :idempotency_key, :notify, :content_chars, :content, :quota_period, :reserved_usd, :published_at,
            :finished_at, :request_sha256)
    ON CONFLICT DO NOTHING
    RETURNING id
),
unit AS (
    INSERT INTO quota_usage (user_id, period_start, period_end, scripts_used, reserved_usd)
    SELECT CAST(:user_id AS text), CAST(:quota_period AS date), CAST(:period_end AS date), CAST(:units AS integer),
           CAST(:reserved_usd AS numeric)
    FROM job
    ON CONFLICT (user_id, period_start) DO UPDATE
    SET scripts_used = quota_usage.scripts_used + :units,
        reserved_usd = quota_usage.reserved_usd + :reserved_usd,
        updated_at = now()
    WHERE (CAST(:unit_limit AS integer) IS NULL OR quota_usage.scripts_used + :units <= CAST(:unit_limit AS integer))
      AND (CAST(:spend_cap_usd AS numeric) IS NULL
           OR quota_usage.spend_usd + quota_usage.reserved_usd < CAST(:spend_cap_usd AS numeric))
    RETURNING scripts_used
)
SELECT (SELECT count(*) FROM job) AS inserted, (SELECT count(*) FROM unit) AS reserved;

-- name: admit_analysis_job
-- Write an analysis job's row and, only when the row is new, take its units and reserve its maximum cost.
WITH job AS (
    INSERT INTO jobs (id, user_id, kind, type, tier, status, reason, detail, retry_after, idempotency_key, notify,
                      content_chars, content, quota_period, reserved_usd, published_at, finished_at, request_sha256)
    VALUES (:job_id, :user_id, :kind, :type, :tier, :status, :reason, CAST(:detail AS jsonb), :retry_after,
            :idempotency_key, :notify, :content_chars, :content, :quota_period, :reserved_usd, :published_at,
            :finished_at, :request_sha256)
    ON CONFLICT DO NOTHING
    RETURNING id
),
unit AS (
    INSERT INTO quota_usage (user_id, period_start, period_end, analyses_used, reserved_usd)
    SELECT CAST(:user_id AS text), CAST(:quota_period AS date), CAST(:period_end AS date), CAST(:units AS integer),
           CAST(:reserved_usd AS numeric)
    FROM job
    ON CONFLICT (user_id, period_start) DO UPDATE
    SET analyses_used = quota_usage.analyses_used + :units,
        reserved_usd = quota_usage.reserved_usd + :reserved_usd,
        updated_at = now()
    WHERE (CAST(:unit_limit AS integer) IS NULL OR quota_usage.analyses_used + :units <= CAST(:unit_limit AS integer))
      AND (CAST(:spend_cap_usd AS numeric) IS NULL
           OR quota_usage.spend_usd + quota_usage.reserved_usd < CAST(:spend_cap_usd AS numeric))
    RETURNING analyses_used
)
SELECT (SELECT count(*) FROM job) AS inserted, (SELECT count(*) FROM unit) AS reserved;
