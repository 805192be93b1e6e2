"""Reachability of the services Aforo needs, reported as one line each: what was tried and how
to start it. Used by `manage.py check_services` (and so by the run and test commands) so
that a missing service never shows up as a traceback."""

from __future__ import annotations

import re
from dataclasses import dataclass

POSTGRES_START = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
REDIS_START = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no'


def redact(url: str) -> str:
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


@dataclass
class ServiceProblem(Exception):
    line: str


def postgres_check(*, url: str, missing_database: str = "fail") -> str | None:
    """Connect to the database. When only the database is missing: `create` it, `ignore` it
    (the test runner creates its own), or `fail`. Returns a note, or raises ServiceProblem."""
    import psycopg
    from psycopg import sql

    try:
        psycopg.connect(url, connect_timeout=3).close()
        return None
    except psycopg.OperationalError as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        if "does not exist" in message and missing_database == "ignore":
            return None
        if "does not exist" in message and missing_database == "fail":
            raise ServiceProblem(
                f"PostgreSQL at {redact(url)} answers, but {message.split('FATAL:')[-1].strip()}; "
                "create it (createdb), or run scripts/dev which creates it."
            ) from None
        if "does not exist" not in message:
            raise ServiceProblem(
                f"PostgreSQL is not reachable at {redact(url)} ({message}). Start it with: {POSTGRES_START}"
            ) from None
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = info.pop("dbname")
    try:
        with psycopg.connect(psycopg.conninfo.make_conninfo(**info, dbname="postgres"), autocommit=True, connect_timeout=3) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as error:
        raise ServiceProblem(f"PostgreSQL at {redact(url)}: database {name!r} is missing and could not be created: {error}") from None
    return f"created database {name}"


def redis_check(*, url: str) -> None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as error:
        raise ServiceProblem(f"Redis is not reachable at {redact(url)} ({error}). Start it with: {REDIS_START}") from None


def services_check(*, missing_database: str = "fail") -> str | None:
    """PostgreSQL (DATABASE_URL), Redis (the cache) and Celery's Redis broker, in that order.
    Returns a note of what was done, or raises ServiceProblem for the first one down."""
    from django.conf import settings

    note = postgres_check(url=settings.DATABASE_URL, missing_database=missing_database)
    redis_check(url=settings.CACHES["default"]["LOCATION"])
    if settings.CELERY_BROKER_URL.startswith("redis"):
        redis_check(url=settings.CELERY_BROKER_URL)
    return note


def kafka_answers(*, bootstrap: str, timeout_s: float = 2.0) -> bool:
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=timeout_s)
        return True
    except KafkaException:
        return False
