"""A queryset's columns as numpy arrays, without a Python object per row.

On PostgreSQL the queryset's SQL is wrapped in one statement that aggregates every column into a single array in
binary format (``array_send(array_agg(...))``), read with ``np.frombuffer`` (annotation/quality/loading.py explains
why this beats COPY and row fetches here). All the aggregates run over the same scan of the same subquery, so the
arrays stay aligned row by row; they are not sorted, callers sort them. Elsewhere (SQLite in development) a plain
fetch.
"""

from __future__ import annotations

import numpy as np
from django.db import connection
from django.db.models import QuerySet

from annotation.quality.loading import _pg_array

_PG_TYPES = {"i8": "int8", "f8": "float8"}


def query_columns(queryset: QuerySet, columns: dict[str, str]) -> dict[str, np.ndarray]:
    """``queryset`` is a ``values_list`` of ``len(columns)`` numeric expressions without NULLs; ``columns`` names
    them, in order, with their numpy dtype (``i8`` or ``f8``)."""
    sql, params = queryset.query.sql_with_params()
    names, dtypes = list(columns), list(columns.values())
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            from psycopg import ClientCursor, pq

            if not isinstance(cursor.cursor, ClientCursor):  # client-side binding cannot return binary results
                cursor.cursor.format = pq.Format.BINARY
            aliases = ", ".join(f"c{i}" for i in range(len(names)))
            arrays = ", ".join(f"array_send(array_agg(c{i}::{_PG_TYPES[d]}))" for i, d in enumerate(dtypes))
            cursor.execute(f"SELECT {arrays} FROM ({sql}) AS t({aliases})", params)
            row = cursor.fetchone()
            return {name: _pg_array(data, dtype) for name, dtype, data in zip(names, dtypes, row, strict=True)}
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return {
        name: np.fromiter((r[i] for r in rows), dtype=dtype, count=len(rows))
        for i, (name, dtype) in enumerate(zip(names, dtypes, strict=True))
    }
