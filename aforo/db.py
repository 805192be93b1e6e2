"""Bulk SQL on the request's/transaction's own connection with server-side parameter binding.

Django's psycopg connection binds parameters client-side (it renders array literals in Python,
slowly); the batch writes of the rated ledger send whole columns as arrays, which psycopg's
server-side binding transmits as they are. Same connection, so Django's transaction applies."""

from __future__ import annotations

import psycopg
from django.db import connection


def bulk_cursor() -> psycopg.Cursor:
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)
