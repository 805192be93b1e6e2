"""What the benchmarks share: their own PostgreSQL database, recreated, and Django set up on it."""

from __future__ import annotations

import os


def recreate_database(name: str) -> None:
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.execute(f"CREATE DATABASE {name}")


def django_configure(database: str, *, redis_db: int = 9) -> None:
    """Dev settings on the benchmark's database (DEBUG off, quiet logs); safe to call again."""
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "aforo.settings.dev",
            "DEBUG": "0",
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{database}",
            "REDIS_URL": f"redis://127.0.0.1:6379/{redis_db}",
            "LOG_LEVEL": "WARNING",
        }
    )
    import django

    django.setup()
