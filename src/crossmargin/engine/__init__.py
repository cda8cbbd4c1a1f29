"""Orchestration: load -> revalue -> margin -> report. Calls the core; the CLI calls this."""
