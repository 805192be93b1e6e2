"""The consumers app is Kafka transport only: it owns no tables."""
