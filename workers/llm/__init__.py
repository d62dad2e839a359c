"""OpenRouter: the client, the retry and fallback chain, provider budget, prices and costs."""
