"""Model instances from hand-written SELECTs, for the few queries on the labelling hot path (authentication, the
project, the assignment, the pair): building those queries with the ORM cost more CPU than running them
(docs/PERFORMANCE.md, issue 20). Rows go through the converters the ORM itself applies (UUIDs and booleans on
SQLite, JSON everywhere), so the instances are the ones the ORM would have built."""

from __future__ import annotations

from functools import lru_cache

from django.db import connection


@lru_cache(maxsize=64)
def _shape(model, ops) -> tuple[list[str], dict[str, str], list]:
    """(attribute names, column SQL per table alias, converters) of a model's concrete fields. Keyed by the
    connection's operations object: its converters are bound to it (one per thread's connection)."""
    fields = model._meta.concrete_fields
    table = model._meta.db_table
    converters = []
    for i, field in enumerate(fields):
        col = field.get_col(table)
        found = ops.get_db_converters(col) + col.get_db_converters(ops.connection)
        if found:
            converters.append((i, found, col))
    return [f.attname for f in fields], {}, converters


def columns(model, alias: str) -> str:
    """``alias.col1, alias.col2, …`` for every concrete field, in the order ``instance`` expects."""
    names, cache, _ = _shape(model, connection.ops)
    if alias not in cache:
        quote = connection.ops.quote_name
        cache[alias] = ", ".join(f"{alias}.{quote(f.column)}" for f in model._meta.concrete_fields)
    return cache[alias]


def instance(model, row):
    """A model instance from the first len(fields) values of ``row`` (a SELECT of ``columns(model, …)``)."""
    names, _, converters = _shape(model, connection.ops)
    values = list(row[: len(names)])
    for i, found, col in converters:
        value = values[i]
        for convert in found:
            value = convert(value, col, connection)
        values[i] = value
    return model.from_db(connection.alias, names, values)


def fetch_one(sql: str, params) -> tuple | None:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def db_value(model, field: str, value):
    """A Python value as the database takes it for ``model.field`` (a UUID is text on SQLite, native on PostgreSQL)."""
    return model._meta.get_field(field).get_db_prep_value(value, connection)
