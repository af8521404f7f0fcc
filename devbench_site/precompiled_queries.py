"""Reads whose SQL the ORM compiles once per process.

A page that runs the same read on every view pays the ORM to build and compile its queryset each
time, though only the parameters change: for the dashboard's card values that is ~0.6 ms of CPU
against ~0.15 ms to run the query (docs/PERFORMANCE.md, benchmark 4). ``PrecompiledValuesQuery``
builds the queryset once with placeholder arguments, keeps the SQL the ORM compiled for it, and
runs that SQL with the real arguments through Django's cursor (so query logging, counting and
error wrapping are unchanged), converting the rows as ``values_list()`` or ``values()`` would.
``PrecompiledPages`` reads such a list a page at a time, with the list's total in the same query,
for ``devbench_site.api.pagination.SinglePassPaginator``. ``PrecompiledValuesQuery.fingerprint``
tells whether a read's rows changed without reading them; ``rows_and_fingerprint`` reads both.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.models import Count, QuerySet, Window
from django.db.models.query import ValuesIterable, ValuesListIterable

PAGE_TOTAL = "_page_total"  # the list's total, read with each page (COUNT(*) OVER ())
_EMPTY_FINGERPRINT = hashlib.sha256(b"").hexdigest()  # PostgreSQL's fingerprint of no rows

# Integers no real argument takes: each marks where one argument lands among the SQL's parameters
# (as the integer, or as its text where the ORM prepared it for a text column).
_PLACEHOLDER_BASE = -(2**62)


@dataclass(frozen=True)
class _Argument:
    index: int


@dataclass(frozen=True)
class _Compiled:
    sql: str
    params: tuple  # an _Argument where a call's argument goes, else the constant the ORM compiled
    converters: tuple  # (column, (converter, ...), expression): what values_list() would apply
    names: tuple | None  # values(): each row's keys; values_list(): None (tuples)
    sliced: bool


def _digest_of(rows: list) -> str:
    """The fingerprint of rows read here (databases that cannot take one themselves)."""
    return hashlib.sha256(repr(rows).encode()).hexdigest()


class PrecompiledValuesQuery:
    """A ``values()`` or ``values_list()`` read compiled once per database, run with new arguments.

    ``build`` takes its arguments (ids, or text compared as it is) and returns the queryset; every
    argument must reach the SQL as a parameter of its own, unchanged, and nothing else may vary
    between calls. ``rows(*args)`` returns what ``list(build(*args))`` would; ``limit`` and
    ``offset`` read a part of it (``LIMIT``/``OFFSET`` as parameters; not for a sliced queryset).
    """

    def __init__(self, build: Callable[..., QuerySet], arity: int):
        self._build = build
        self._arity = arity
        self._compiled: dict[str, _Compiled] = {}
        self._lock = threading.Lock()

    def rows(self, *args: int | str, using: str = DEFAULT_DB_ALIAS, limit: int | None = None,
             offset: int = 0) -> list[tuple] | list[dict]:
        if len(args) != self._arity:
            raise TypeError(f"expected {self._arity} arguments, got {len(args)}")
        compiled = self._compiled.get(using) or self._compile(using)
        sql = compiled.sql
        params = self._params(compiled, args)
        connection = connections[using]
        if limit is not None or offset:
            if compiled.sliced:
                raise TypeError("the queryset is sliced already")
            sql += " LIMIT %s OFFSET %s"
            params += [connection.ops.no_limit_value() if limit is None else int(limit), int(offset)]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        return self._rows_from(rows, compiled, connection)

    def _rows_from(self, rows: list, compiled: _Compiled, connection) -> list[tuple] | list[dict]:
        """The database's rows as ``values_list()`` (tuples) or ``values()`` (dicts) returns them."""
        if compiled.converters:
            rows = [self._converted(row, compiled.converters, connection) for row in rows]
        if compiled.names is not None:
            return [dict(zip(compiled.names, row, strict=True)) for row in rows]
        return [tuple(row) for row in rows]

    def fingerprint(self, *args: int | str, using: str = DEFAULT_DB_ALIAS) -> str:
        """A digest of the rows ``rows(*args)`` returns, as a set: equal fingerprints, the same rows.

        On PostgreSQL the server takes it (SHA-256 of the rows' text, sorted) and one short value
        crosses the wire: no row is sent or converted, ~0.25 against ~0.6 ms of CPU for the
        dashboard's 100 cards read and digested here. Elsewhere the rows are read and digested
        here. Order is left out: where it matters, the caller's rows must determine their order.
        """
        connection = connections[using]
        if connection.vendor != "postgresql":
            return _digest_of(self.rows(*args, using=using))
        compiled = self._compiled.get(using) or self._compile(using)
        with connection.cursor() as cursor:
            cursor.execute(self._fingerprint_sql(compiled), self._params(compiled, args))
            return cursor.fetchone()[0]

    def rows_and_fingerprint(self, *args: int | str, using: str = DEFAULT_DB_ALIAS) -> tuple[list, str]:
        """``rows(*args)`` and their ``fingerprint``, read by one statement: the fingerprint is
        of exactly these rows, whatever commits meanwhile (one statement, one snapshot)."""
        connection = connections[using]
        if connection.vendor != "postgresql":
            rows = self.rows(*args, using=using)
            return rows, _digest_of(rows)
        compiled = self._compiled.get(using) or self._compile(using)
        # The rows in the order the compiled SQL gives them, each with the fingerprint as a last
        # column (an uncorrelated subquery: computed once).
        sql = f"SELECT shown.*, ({self._fingerprint_sql(compiled)}) FROM ({compiled.sql}) shown"  # noqa: S608
        params = self._params(compiled, args) * 2  # the subquery's, then the rows'
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        if not rows:
            return [], _EMPTY_FINGERPRINT
        fingerprint = rows[0][-1]
        return self._rows_from([row[:-1] for row in rows], compiled, connection), fingerprint

    @staticmethod
    def _fingerprint_sql(compiled: _Compiled) -> str:
        """The ORM's compiled SQL wrapped in its fingerprint; it takes the same parameters."""
        return (
            "SELECT encode(sha256(convert_to(coalesce(string_agg(listed::text, E'\\n' ORDER BY listed::text), ''), "  # noqa: S608
            f"'UTF8')), 'hex') FROM ({compiled.sql}) listed"
        )

    @staticmethod
    def _params(compiled: _Compiled, args: tuple) -> list:
        return [args[param.index] if isinstance(param, _Argument) else param for param in compiled.params]


    @staticmethod
    def _converted(row, converters: tuple, connection) -> tuple:
        values = list(row)
        for column, functions, expression in converters:
            value = values[column]
            for function in functions:
                value = function(value, expression, connection)
            values[column] = value
        return tuple(values)

    def _compile(self, using: str) -> _Compiled:
        with self._lock:
            if using in self._compiled:
                return self._compiled[using]
            placeholders = [_PLACEHOLDER_BASE - index for index in range(self._arity)]
            queryset = self._build(*placeholders)
            if queryset._iterable_class not in (ValuesListIterable, ValuesIterable):
                raise TypeError("PrecompiledValuesQuery needs a values() or values_list() queryset (not flat, "
                                "not named)")
            query = queryset.query
            names = None
            if queryset._iterable_class is ValuesIterable:
                names = (*query.extra_select, *query.values_select, *query.annotation_select)
            compiler = queryset.query.get_compiler(using)
            sql, compiled_params = compiler.as_sql()
            marks = {**{str(mark): index for index, mark in enumerate(placeholders)},
                     **{mark: index for index, mark in enumerate(placeholders)}}
            params = tuple(
                _Argument(marks[param]) if isinstance(param, int | str) and param in marks else param
                for param in compiled_params
            )
            used = sorted(param.index for param in params if isinstance(param, _Argument))
            if used != list(range(self._arity)):
                raise ValueError("each argument must reach the SQL exactly once, as a parameter")
            fields = [column[0] for column in compiler.select[: compiler.col_count]]
            if compiler.has_composite_fields(fields):
                raise TypeError("PrecompiledValuesQuery does not read composite fields")
            converters = tuple(
                (column, tuple(functions), expression)
                for column, (functions, expression) in compiler.get_converters(fields).items()
            )
            self._compiled[using] = _Compiled(sql, params, converters, names, query.is_sliced)
            return self._compiled[using]


class PrecompiledPages:
    """A list of ``values()`` rows read a page at a time, its SQL compiled once per process; each
    page carries the list's total under ``PAGE_TOTAL`` (one query per page). ``bind(*args)``
    gives the list for one set of arguments, which ``SinglePassPaginator`` pages."""

    def __init__(self, build: Callable[..., QuerySet], arity: int):
        self._query = PrecompiledValuesQuery(
            lambda *args: build(*args).annotate(**{PAGE_TOTAL: Window(Count("pk"))}), arity,
        )

    def bind(self, *args: int | str) -> BoundPages:
        return BoundPages(self._query, args)


@dataclass(frozen=True)
class BoundPages:
    """One list of rows: ``page(offset, limit)`` reads a page and the total; iterating, slicing
    and ``count()`` behave as on the queryset (for Django's paginator where it checks)."""

    query: PrecompiledValuesQuery
    args: tuple
    ordered = True  # built from an ordered queryset (Django's paginator asks)

    def page(self, offset: int, limit: int) -> tuple[list[dict], int]:
        rows = self.query.rows(*self.args, limit=limit, offset=offset)
        return rows, (rows[0][PAGE_TOTAL] if rows else 0)

    def count(self) -> int:
        return self.page(0, 1)[1]

    def __getitem__(self, part: slice) -> list[dict]:
        if not isinstance(part, slice) or part.step is not None:
            raise TypeError("only slices without a step")
        start, stop = part.start or 0, part.stop
        return self.query.rows(*self.args, limit=None if stop is None else max(stop - start, 0), offset=start)

    def __iter__(self):
        return iter(self.query.rows(*self.args))
