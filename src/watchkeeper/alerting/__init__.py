"""Alerting: the engine that evaluates monitors on closed windows and records alerts."""
