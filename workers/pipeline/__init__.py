"""Admission, validation, the jobs table and the running of one job."""
