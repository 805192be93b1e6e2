"""Replay (`manage.py replay`, POST /api/v1/replays, the admin's replay runs): plan.py decides
(pure), sources.py reads Kafka, services.py creates, runs and reports."""
