"""Trials ending at a date or when usage reaches a threshold (issue 15): plan.py decides, pure,
which events are free and when a trial converts; services.py locks, writes and converts."""
