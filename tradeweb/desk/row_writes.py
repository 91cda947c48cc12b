"""Rows written in one round trip to the database: a switch's updates and inserts, sent together.

A switch's writes need nothing back from the database (the rows are locked, no id is read), so on PostgreSQL they go
as one pipeline (psycopg sends them all, then reads every answer), and the statements are written out: Django built
each in more time than PostgreSQL took to run it. Values go through each field's own preparation (auto_now times,
JSON), as `save` and `bulk_create` would prepare them. Elsewhere they run one by one, with the same effect."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator, Sequence

from django.db import connection
from django.db.models import AutoField, Model


@contextmanager
def one_round_trip() -> Iterator[None]:
    """Statements run inside go to PostgreSQL together, their answers read at the end: an error raises there, as
    Django's own (IntegrityError and the like), as it would from the statement."""
    if connection.vendor != "postgresql":
        yield
        return
    connection.ensure_connection()
    with connection.wrap_database_errors, connection.connection.pipeline():
        yield


def update_rows(rows: Iterable[tuple[Model, Sequence[str]]]) -> None:
    """Write the named fields of each saved row, by primary key (as `save(update_fields=...)`, without its signals)."""
    statements: dict[tuple, list[list]] = {}
    for row, names in rows:
        meta = row._meta
        fields = tuple(meta.get_field(name) for name in names)
        values = [field.get_db_prep_save(field.pre_save(row, False), connection) for field in fields]
        statements.setdefault((meta.db_table, meta.pk.column, fields), []).append([*values, row.pk])
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for (table, key, fields), parameters in statements.items():
            assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
            cursor.executemany(f"UPDATE {quote(table)} SET {assignments} WHERE {quote(key)} = %s", parameters)


def insert_rows(rows: Sequence[Model]) -> None:
    """Insert new rows of one model (as `bulk_create`, without reading their ids back)."""
    if not rows:
        return
    meta = rows[0]._meta
    fields = [field for field in meta.local_concrete_fields if not isinstance(field, AutoField)]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in fields)
    values = ", ".join(["%s"] * len(fields))  # one parameter mark per column
    parameters = [[field.get_db_prep_save(field.pre_save(row, True), connection) for field in fields] for row in rows]
    with connection.cursor() as cursor:
        cursor.executemany(f"INSERT INTO {quote(meta.db_table)} ({columns}) VALUES ({values})", parameters)
