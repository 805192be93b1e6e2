"""Bulk SQL on the request's/transaction's own connection with server-side parameter binding.

Django's psycopg connection binds parameters client-side (it renders array literals in Python,
slowly); the batch writes of the rated ledger send whole columns as arrays, which psycopg's
server-side binding transmits as they are. Same connection, so Django's transaction applies.
Server-side binding also lets psycopg prepare a statement the connection runs over and over
(after its fifth run, psycopg's prepare_threshold), so a query repeated per subscription — the
settlement run's inputs and ledger reads — is planned once per connection, not on every run."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import psycopg
from django.db import DEFAULT_DB_ALIAS, connection, connections
from django.db.models import Field, Model


def bulk_cursor() -> psycopg.Cursor:
    connection.ensure_connection()
    return psycopg.Cursor(connection.connection)


@lru_cache(maxsize=64)
def _insert_shape(model: type[Model], skip: frozenset[str]) -> tuple[tuple[Field, ...], str, str]:
    """The fields, column list and unnest expression of `model`'s insert (computed once: they
    depend on the model alone)."""
    fields = tuple(f for f in model._meta.concrete_fields if not f.primary_key and f.attname not in skip)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    unnest = "unnest(" + ", ".join(f"%s::{f.db_type(connection)}[]" for f in fields) + ")"
    return fields, columns, unnest


def unnest_rows(model: type[Model], instances: Sequence[Model], *, skip: Iterable[str] = ()) -> tuple[str, str, list]:
    """What `INSERT INTO table (<columns>) SELECT <...> FROM unnest(<arrays>)` needs to insert
    `instances` (unsaved) of `model` in one statement: every concrete column but the primary key
    and `skip` (attnames: columns the statement fills itself), the unnest expression, and its
    parameters — one array per column, each value prepared exactly as Django's own insert would
    (field.get_db_prep_save), so a field added to the model is inserted without touching SQL."""
    fields, columns, unnest = _insert_shape(model, frozenset(skip))
    db = connections[DEFAULT_DB_ALIAS]  # the connection itself, not the per-call proxy
    params = [[f.get_db_prep_save(f.pre_save(obj, True), db) for obj in instances] for f in fields]
    return columns, unnest, params
