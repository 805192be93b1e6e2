"""Bulk writes of the ledgers: binary COPY with ids taken from the table's sequence first.

An `INSERT … SELECT FROM unnest(arrays)` costs the consumer ~10 µs an event in psycopg's array
dumping alone; binary COPY sends the same rows with psycopg's C row encoder and spares the
server the arrays. COPY returns no ids, so the rows' ids are drawn from the table's own
sequence beforehand (one round trip for the whole batch) and written explicitly: the ids stay
what a plain INSERT would have given, in the order the rows were planned."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import orjson
import psycopg


_sequences: dict[tuple[str, str], str] = {}


def sequence_of(cursor: psycopg.Cursor, table: str, column: str = "id") -> str:
    """The name of the sequence behind `table.column` (looked up once per process: the schema
    names it, not the connection)."""
    key = (table, column)
    name = _sequences.get(key)
    if name is None:
        cursor.execute("SELECT pg_get_serial_sequence(%s, %s)", [table, column])
        name = _sequences[key] = cursor.fetchone()[0]
    return name


def ids_take(cursor: psycopg.Cursor, table: str, count: int) -> list[int]:
    """`count` fresh ids from `table`'s id sequence, ascending."""
    if count == 0:
        return []
    cursor.execute(  # one array, not `count` rows: psycopg's C array loader, one Python object
        "SELECT array_agg(nextval(%s::regclass)) FROM generate_series(1, %s)", [sequence_of(cursor, table), count], binary=True
    )
    return sorted(cursor.fetchone()[0])


_JSONB_VERSION = b"\x01"


def jsonb(value: Any) -> bytes:
    """A jsonb column's value for copy_rows: jsonb's binary format (version 1, then the JSON
    text), encoded by orjson (psycopg's own jsonb dumper goes through the slower json module)."""
    return _JSONB_VERSION + orjson.dumps(value)


EMPTY_JSONB = jsonb({})


def numeric(value: Decimal) -> Decimal | int:
    """A numeric column's value for copy_rows: an integral Decimal as an int. psycopg's binary
    numeric dumper takes a Decimal apart through `Decimal.as_tuple()` — a namedtuple built in
    Python, ~1.2 µs a value — and an int in C (~0.05 µs); the check costs ~0.2 µs. The column's
    declared scale makes both the same stored value ("3" and "3.000000000000" alike)."""
    return int(value) if value == value.to_integral_value() else value


def copy_rows(cursor: psycopg.Cursor, table: str, columns: Sequence[str], types: Sequence[str], rows: Iterable[Sequence]) -> None:
    """Binary COPY of `rows` (one value per column, in `columns` order, of the PostgreSQL
    `types`) into `table`. A "jsonb" column takes `jsonb(value)` (or None)."""
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["bytea" if t == "jsonb" else t for t in types])  # jsonb(): already in jsonb's binary form
        write = copy.write_row
        for row in rows:
            write(row)
