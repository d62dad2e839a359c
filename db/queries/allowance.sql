-- Monthly allowances and spend (workers/quotas/allowance.py). Units are taken at admission
-- (admission.sql) and given back at settlement (jobs.sql).

-- name: quota_usage_of_period
-- A user's units used, settled spend and reserved maximum cost in one quota period.
SELECT scripts_used, analyses_used, spend_usd, reserved_usd
FROM quota_usage
WHERE user_id = :user_id AND period_start = :period_start;
