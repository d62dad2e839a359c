"""Tiers at run time: subscriptions, quota periods, allowances, spend caps and rate limits."""
