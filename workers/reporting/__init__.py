"""The cost and margin report (data, HTML and text) and cost alerts."""
