"""Compile a :class:`~vigil.core.segments.Segment` to a DuckDB condition with bound parameters.

No text of a segment ever reaches SQL: column names come only out of
``column_sql`` (a quoted identifier by default) and every literal is a
``?`` parameter.

>>> import duckdb
>>> from vigil.core.segments import Segment
>>> sql, params = compile_segment(Segment.parse("age >= 18 and sex in ('F', 'X')"))
>>> sql, params
('("age" >= ? AND "sex" IN (?, ?))', [18, 'F', 'X'])
>>> con = duckdb.connect()
>>> con.execute("SELECT count(*) FROM (VALUES (30.5, 'F'), (12.0, 'F'), (40.0, 'M')) t(age, sex) WHERE " + sql,
...             params).fetchone()
(1,)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vigil.core.segments import AllEvents, And, Between, Comparison, InList, IsNull, Node, Not, Or, Segment

__all__ = ["compile_segment", "quote_identifier"]

_SQL_OPERATORS = {"==": "=", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}


def quote_identifier(name: str) -> str:
    """A column name as a double-quoted DuckDB identifier (``"`` doubled).

    >>> quote_identifier('hours-per-week'), quote_identifier('a"b')
    ('"hours-per-week"', '"a""b"')
    """
    return '"' + name.replace('"', '""') + '"'


def compile_segment(segment: Any, column_sql: Callable[[str], str] = quote_identifier) -> tuple[str, list[Any]]:
    """A DuckDB condition for a segment: SQL text with ``?`` placeholders, and the parameters to bind.

    ``segment`` is anything :meth:`Segment.of` takes. ``column_sql`` turns a
    column name into SQL (e.g. ``lambda n: "e." + quote_identifier(n)``).
    All events compile to ``("TRUE", [])``; any other condition comes back in
    parentheses, so it can be joined with ``AND``. Timestamps bind as naive
    UTC datetimes: run :meth:`Segment.check` first so strings compared with a
    timestamp column become timestamps.

    >>> compile_segment(None)
    ('TRUE', [])
    >>> compile_segment({"x": None, "y": {"between": [1, 2.5]}}, lambda n: "e." + quote_identifier(n))
    ('(e."x" IS NULL AND e."y" BETWEEN ? AND ?)', [1, 2.5])
    """
    node = Segment.of(segment).node
    if isinstance(node, AllEvents):
        return "TRUE", []
    params: list[Any] = []
    sql = _compile(node, column_sql, params)
    return (sql if isinstance(node, And | Or | Not) else f"({sql})"), params


def _compile(node: Node, column_sql: Callable[[str], str], params: list[Any]) -> str:
    if isinstance(node, And | Or):
        joiner = " AND " if isinstance(node, And) else " OR "
        return "(" + joiner.join(_compile(op, column_sql, params) for op in node.operands) + ")"
    if isinstance(node, Not):
        return f"(NOT {_compile(node.operand, column_sql, params)})"
    column = column_sql(node.column)
    if isinstance(node, Comparison):
        params.append(node.value)
        return f"{column} {_SQL_OPERATORS[node.op]} ?"
    if isinstance(node, InList):
        params.extend(node.values)
        return f"{column} {'NOT IN' if node.negated else 'IN'} ({', '.join(['?'] * len(node.values))})"
    if isinstance(node, Between):
        params.extend([node.low, node.high])
        return f"{column} BETWEEN ? AND ?"
    assert isinstance(node, IsNull)  # AllEvents only ever stands alone, handled above
    return f"{column} IS {'NOT NULL' if node.negated else 'NULL'}"
