"""Monitors: alerting rules as code, their evaluation and alert lifecycle."""
