"""The `litink` command line."""
