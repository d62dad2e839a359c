-- The llm_calls row of one attempt (workers/llm/costs.py): written pending before the request
-- leaves, completed when the answer arrives, or made unknown at its estimate.

-- name: model_prices
-- Every model's per-token prompt and completion price, as synced from the provider's catalog.
SELECT model, prompt_price, completion_price
FROM model_prices;

-- name: open_attempt
-- Write the pending row of a job's next attempt, committed before its request leaves; nothing when the delivery lost its claim.
-- The attempt number is taken under the job's row lock (FOR UPDATE), and only by the delivery
-- that holds the claim, so two deliveries never share one; a conflict on (job_id, attempt) is
-- a bug and raises.
INSERT INTO llm_calls (job_id, attempt, tier, model, status, cost_source, estimate_usd)
SELECT j.id, (SELECT coalesce(max(attempt), 0) + 1 FROM llm_calls WHERE job_id = j.id), j.tier, :model,
       'pending', 'none', :estimate_usd
FROM (SELECT id, tier FROM jobs WHERE id = :job_id AND deliveries = :delivery AND status = 'running' FOR UPDATE) AS j
RETURNING id, attempt;

-- name: complete_attempt
-- Complete an attempt's row with what the provider answered, an unknown one too.
-- An unknown row belonged to a delivery that outlived its lease and got its answer after all:
-- the real cost replaces the estimate. jobs.sql's settle_job_with_answer holds this statement
-- verbatim (binds prefixed a_), so keep the two alike.
UPDATE llm_calls
SET status = :call_status, model_served = :model_served, prompt_tokens = :prompt_tokens,
    completion_tokens = :completion_tokens, cost_usd = :cost, cost_source = :cost_source,
    error_class = :error_class, http_status = :http_status, latency_ms = :latency_ms,
    generation_id = :generation_id, response_content = :response_content, completed_at = now()
WHERE id = :call_id AND status IN ('pending', 'unknown')
RETURNING id, prompt_tokens, completion_tokens, cost_usd, cost_source;

-- name: mark_attempt_unknown
-- An attempt whose outcome nobody knows: it costs the estimate written when it was opened.
UPDATE llm_calls
SET status = 'unknown', cost_usd = estimate_usd, cost_source = 'estimate', completed_at = now(),
    error_class = :error_class
WHERE id = :call_id AND status = 'pending';
