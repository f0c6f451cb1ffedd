"""Segments: typed filters on a model's events, never SQL text.

A :class:`Segment` is an immutable condition (a small syntax tree) built from
a mapping, from an expression, or from another segment. Each storage backend
compiles it to its own query language with bound parameters (the DuckDB
compiler is :func:`vigil.store.duckdb.segments.compile_segment`), and
:meth:`Segment.mask` evaluates it on an in-memory frame.

>>> s = Segment.parse("age < 25 AND sex = 'Female'")
>>> s.canonical
"age < 25 and sex == 'Female'"
>>> s == Segment.from_dict({"sex": "Female", "age": {"lt": 25}})
True
>>> sorted(s.columns)
['age', 'sex']

Numbers are normalised: a float with an integral value is the integer
(``25.0`` is ``25``), so ``age < 25.0`` and ``age < 25`` are one segment.
"""

from __future__ import annotations

import datetime as dt
import difflib
import math
import operator
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from vigil.errors import InvalidParameterError, InvalidSegmentError

__all__ = [
    "KINDS", "OPERATORS", "AllEvents", "And", "Between", "Comparison", "InList", "IsNull", "Literal", "Node", "Not",
    "Or", "Segment",
]

#: A literal value: a number, a string, a boolean or a timestamp (naive, UTC).
Literal = bool | int | float | str | dt.datetime

#: Comparison operators, in their canonical spelling.
OPERATORS = ("==", "!=", "<", "<=", ">", ">=")

#: Column kinds :meth:`Segment.check` knows.
KINDS = ("number", "string", "boolean", "timestamp")

#: Longest expression accepted, in characters, and deepest nesting of parentheses and ``not``.
MAX_LENGTH = 100_000
MAX_DEPTH = 64

_SNIPPET = 16  # at most this many characters of the input are shown in an error message
_EXACT_FLOAT = 2**53
_INT64 = 2**63


# --- the syntax tree --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AllEvents:
    """The segment of all events (canonical text ``""``)."""


@dataclass(frozen=True, slots=True)
class Comparison:
    """``column op value`` with ``op`` one of :data:`OPERATORS`."""

    column: str
    op: str
    value: Literal


@dataclass(frozen=True, slots=True)
class InList:
    """``column in (values...)``, or ``not in`` when ``negated``."""

    column: str
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Between:
    """``column between low and high``, both ends included."""

    column: str
    low: Literal
    high: Literal


@dataclass(frozen=True, slots=True)
class IsNull:
    """``column is null``, or ``is not null`` when ``negated``."""

    column: str
    negated: bool = False


@dataclass(frozen=True, slots=True)
class Not:
    """``not operand``."""

    operand: Node


@dataclass(frozen=True, slots=True)
class And:
    """All operands hold."""

    operands: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    """At least one operand holds."""

    operands: tuple[Node, ...]


Node = AllEvents | Comparison | InList | Between | IsNull | Not | And | Or

_INVERSE = {"==": "!=", "!=": "==", "<": ">=", ">=": "<", ">": "<=", "<=": ">"}


# --- the segment ------------------------------------------------------------------------------------------------


class Segment:
    """An immutable, hashable filter on a model's events.

    Build one with :meth:`parse`, :meth:`from_dict` or :meth:`of` (or from a
    syntax tree node). Two segments are equal when their canonical texts are.
    ``segment.node`` is the normalised tree a backend compiles.

    >>> Segment.of({"sex": "Female"}) == Segment.of("sex = 'Female'")
    True
    >>> Segment.of(None).is_all, str(Segment.of(None))
    (True, '')
    """

    __slots__ = ("_canonical", "_node")

    def __init__(self, node: Node) -> None:
        """A segment from a syntax tree node, normalised (nested and/or flattened, operands sorted).

        >>> Segment(Comparison("age", ">=", 18.0)).canonical
        'age >= 18'
        """
        norm = _normalize(node, 0)
        object.__setattr__(self, "_node", norm)
        object.__setattr__(self, "_canonical", _render(norm))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a Segment is immutable")

    def __reduce__(self) -> tuple[Any, ...]:
        return (Segment.parse, (self._canonical,))

    # constructors

    @classmethod
    def all(cls) -> Segment:
        """The segment of all events.

        >>> Segment.all().canonical
        ''
        """
        return cls(AllEvents())

    @classmethod
    def parse(cls, text: str) -> Segment:
        """A segment from an expression (see ``docs/segments.md`` for the grammar); blank text is all events.

        >>> print(Segment.parse('"hours-per-week" BETWEEN 20 AND 40 or NOT sex IN (\\'b\\', \\'a\\')'))
        "hours-per-week" between 20 and 40 or sex not in ('a', 'b')
        >>> Segment.parse("age < (SELECT 1)")
        Traceback (most recent call last):
        ...
        vigil.errors.InvalidSegmentError: segment: found '(' at position 6; expected a literal (a number, \
a 'quoted string', true, false or timestamp '...'): subqueries and expressions are not allowed
        """
        if not isinstance(text, str):
            raise InvalidSegmentError(f"a segment expression is text, got {type(text).__name__}")
        if len(text) > MAX_LENGTH:
            raise InvalidSegmentError(f"segment: the expression has {len(text)} characters, more than the "
                                      f"{MAX_LENGTH} allowed", position=MAX_LENGTH)
        tokens = _tokenize(text)
        if tokens[0].kind == "eof":
            return cls(AllEvents())
        return cls(_Parser(tokens).parse())

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> Segment:
        """A segment from a mapping ``{column: condition}``; several columns must all hold.

        A condition is a value (equality), a list/tuple/set (``in``), ``None``
        (``is null``) or a mapping of operators ``eq ne lt le gt ge in not_in
        between is_null``. An empty mapping is all events.

        >>> Segment.from_dict({"sex": "Female", "age": {"ge": 18, "lt": 25}, "region": None}).canonical
        "age < 25 and age >= 18 and region is null and sex == 'Female'"
        >>> Segment.from_dict({"age": {"below": 3}})
        Traceback (most recent call last):
        ...
        vigil.errors.InvalidSegmentError: segment column 'age': unknown operator 'below'; operators: eq, ne, \
lt, le, gt, ge, in, not_in, between, is_null
        """
        if not isinstance(mapping, Mapping):
            raise InvalidSegmentError(f"a segment mapping is a dict, got {type(mapping).__name__}")
        parts: list[Node] = []
        for column, condition in mapping.items():
            if not isinstance(column, str) or not column:
                raise InvalidSegmentError(f"a segment mapping's keys are column names, got {_brief(column)}",
                                          field=str(column)[:_SNIPPET])
            _check_column_name(column, None)
            parts.extend(_dict_condition(column, condition))
        return cls(And(tuple(parts)))

    @classmethod
    def of(cls, value: Any) -> Segment:
        """A segment from None or ``""`` (all events), a Segment, a mapping, or an expression.

        >>> Segment.of("x>=1") == Segment.of({"x": {"ge": 1}}) == Segment.of(Segment.parse("x >= 1.0"))
        True
        >>> Segment.of(3)
        Traceback (most recent call last):
        ...
        vigil.errors.InvalidSegmentError: a segment is None, a Segment, a {column: condition} mapping or an \
expression, got int
        """
        if value is None:
            return cls(AllEvents())
        if isinstance(value, Segment):
            return value
        if isinstance(value, Mapping):
            return cls.from_dict(value)
        if isinstance(value, str):
            return cls.parse(value)
        raise InvalidSegmentError("a segment is None, a Segment, a {column: condition} mapping or an expression, "
                                  f"got {type(value).__name__}")

    # properties

    @property
    def node(self) -> Node:
        """The normalised syntax tree.

        >>> Segment.parse("not x = 1").node
        Comparison(column='x', op='!=', value=1)
        """
        return self._node

    @property
    def canonical(self) -> str:
        """Deterministic canonical text: ``Segment.parse(s.canonical) == s``; ``""`` for all events.

        >>> Segment.parse("b=2 AND (a<>'x' and b = 2.0)").canonical
        "a != 'x' and b == 2"
        """
        return self._canonical

    @property
    def columns(self) -> frozenset[str]:
        """The columns the segment names.

        >>> sorted(Segment.parse("a is null or b in (1, 2)").columns)
        ['a', 'b']
        """
        return frozenset(_columns(self._node))

    @property
    def is_all(self) -> bool:
        """True for the segment of all events.

        >>> Segment.of("").is_all, Segment.of("a = 1").is_all
        (True, False)
        """
        return isinstance(self._node, AllEvents)

    # checks and evaluation

    def check(self, columns: Mapping[str, str]) -> Segment:
        """The segment checked against the columns it may name, each with its kind (see :data:`KINDS`).

        ``columns`` are the schema's features, metadata, prediction, score and
        target columns. A string compared with a timestamp column must be an
        ISO-8601 time; the segment returned holds it as a timestamp (so its
        canonical text may differ from this one's, and is the one to key on).

        >>> Segment.parse("ts >= '2024-01-01'").check({"ts": "timestamp"}).canonical
        "ts >= timestamp '2024-01-01 00:00:00'"
        >>> Segment.parse("agee < 25").check({"age": "number", "sex": "string"})
        Traceback (most recent call last):
        ...
        vigil.errors.InvalidSegmentError: segment names unknown column 'agee'; did you mean 'age'? A segment may \
name the features, metadata, prediction, score and target columns: age, sex
        >>> Segment.parse("age < '25'").check({"age": "number"})
        Traceback (most recent call last):
        ...
        vigil.errors.InvalidSegmentError: segment compares number column 'age' with a string; use a number
        """
        if not isinstance(columns, Mapping):
            raise InvalidParameterError(f"columns is a mapping {{column: kind}}, got {type(columns).__name__}",
                                        field="columns")
        for name, kind in columns.items():
            if kind not in KINDS:
                raise InvalidParameterError(f"column {name!r} has kind {kind!r}; kinds: {', '.join(KINDS)}",
                                            field="columns")
        return self._checked(columns, "the features, metadata, prediction, score and target columns")

    def mask(self, frame: Any) -> np.ndarray:
        """Which rows of a pandas DataFrame or pyarrow Table the segment selects, as a numpy bool array.

        SQL's three-valued logic: a null (or NaN) never satisfies a comparison,
        ``in`` or ``between``, and ``not`` of unknown stays unknown, so such
        rows are not selected.

        >>> import pandas as pd
        >>> frame = pd.DataFrame({"age": [17, None, 30], "sex": ["F", "M", None]})
        >>> Segment.parse("age >= 18 or sex = 'F'").mask(frame)
        array([ True, False,  True])
        >>> Segment.parse("not age < 18").mask(frame)
        array([False, False,  True])
        """
        names, series = _frame_columns(frame, self.columns)
        n = _frame_length(frame)
        kinds: dict[str, str | None] = dict.fromkeys(names)
        kinds.update({name: _series_kind(s) for name, s in series.items()})
        checked = self._checked(kinds, "the frame's columns")
        try:
            truth, _unknown = _evaluate(checked._node, series, n)
        except TypeError as err:  # a column of mixed values that do not compare with the literal
            raise InvalidSegmentError(f"segment: cannot evaluate on this frame: {err}") from err
        return truth

    def _checked(self, kinds: Mapping[str, str | None], allowed: str) -> Segment:
        node = _check_node(self._node, kinds, allowed)
        return self if node is self._node else Segment(node)

    # value semantics

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Segment) and other._canonical == self._canonical

    def __hash__(self) -> int:
        return hash(("Segment", self._canonical))

    def __str__(self) -> str:
        return self._canonical

    def __repr__(self) -> str:
        return f"Segment({self._canonical!r})"


# --- normalisation ----------------------------------------------------------------------------------------------


def _normalize(node: Any, depth: int) -> Node:
    if depth > MAX_DEPTH * 4:
        raise InvalidSegmentError(f"segment is nested more than {MAX_DEPTH * 4} levels deep")
    if isinstance(node, AllEvents):
        return node
    if isinstance(node, Comparison):
        _check_column_name(node.column, None)
        if node.op not in OPERATORS:
            raise InvalidSegmentError(f"segment column {_quote_name(node.column)}: unknown operator "
                                      f"{_brief(node.op)}; operators: {', '.join(OPERATORS)}", field=node.column)
        return Comparison(node.column, node.op, _literal(node.value, node.column))
    if isinstance(node, InList):
        _check_column_name(node.column, None)
        values = _literal_list(node.values, node.column)
        if len(values) == 1:
            return Comparison(node.column, "!=" if node.negated else "==", values[0])
        return InList(node.column, values, bool(node.negated))
    if isinstance(node, Between):
        _check_column_name(node.column, None)
        low, high = _literal(node.low, node.column), _literal(node.high, node.column)
        if _category(low) != _category(high):
            raise InvalidSegmentError(f"segment column {_quote_name(node.column)}: between a {_category(low)} and "
                                      f"a {_category(high)}", field=node.column)
        return Between(node.column, low, high)
    if isinstance(node, IsNull):
        _check_column_name(node.column, None)
        return IsNull(node.column, bool(node.negated))
    if isinstance(node, Not):
        inner = _normalize(node.operand, depth + 1)
        if isinstance(inner, Not):
            return inner.operand
        if isinstance(inner, Comparison):
            return Comparison(inner.column, _INVERSE[inner.op], inner.value)
        if isinstance(inner, InList):
            return InList(inner.column, inner.values, not inner.negated)
        if isinstance(inner, IsNull):
            return IsNull(inner.column, not inner.negated)
        if isinstance(inner, AllEvents):
            raise InvalidSegmentError("segment: 'not' of all events selects nothing; it is not a segment")
        return Not(inner)
    if isinstance(node, And | Or):
        kind = type(node)
        if not isinstance(node.operands, tuple | list):
            raise InvalidSegmentError(f"segment: {kind.__name__} holds a tuple of nodes")
        flat: dict[str, Node] = {}
        for operand in node.operands:
            inner = _normalize(operand, depth + 1)
            if isinstance(inner, AllEvents):
                if kind is Or:
                    return inner
                continue
            for part in inner.operands if isinstance(inner, kind) else (inner,):
                flat.setdefault(_render(part), part)
        if not flat:
            if kind is Or:
                raise InvalidSegmentError("segment: an 'or' of nothing selects nothing; it is not a segment")
            return AllEvents()
        if len(flat) == 1:
            return next(iter(flat.values()))
        return kind(tuple(flat[key] for key in sorted(flat)))
    raise InvalidSegmentError(f"segment: {type(node).__name__} is not a segment node")


def _literal(value: Any, column: str) -> Literal:
    """A literal in normal form (integral floats as ints, times as naive UTC datetimes)."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer):
        value = int(value)
        return value if -_INT64 <= value < _INT64 else _finite(float(value), column)
    if isinstance(value, float | np.floating):
        value = _finite(float(value), column)
        return int(value) if value.is_integer() and abs(value) <= _EXACT_FLOAT else value
    if isinstance(value, str):
        return value
    if isinstance(value, dt.datetime):
        if value != value:  # pandas' NaT
            raise InvalidSegmentError(f"segment column {_quote_name(column)}: NaT is not a value; use is_null",
                                      field=column)
        return _naive_utc(value)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day)
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            raise InvalidSegmentError(f"segment column {_quote_name(column)}: NaT is not a value; use is_null",
                                      field=column)
        item = value.astype("datetime64[us]").item()
        if isinstance(item, dt.datetime):
            return item
    if value is None:
        raise InvalidSegmentError(f"segment column {_quote_name(column)}: null is not a value to compare with; "
                                  "use 'is null' / 'is not null'", field=column)
    raise InvalidSegmentError(f"segment column {_quote_name(column)}: a value is a number, a string, a boolean or "
                              f"a timestamp, got {type(value).__name__}", field=column)


def _finite(value: float, column: str) -> float:
    if not math.isfinite(value):
        raise InvalidSegmentError(f"segment column {_quote_name(column)}: numbers must be finite, got {value}",
                                  field=column)
    return value


def _naive_utc(value: dt.datetime) -> dt.datetime:
    plain = dt.datetime(value.year, value.month, value.day, value.hour, value.minute, value.second,
                        value.microsecond, tzinfo=value.tzinfo)
    if plain.tzinfo is not None and plain.utcoffset() is not None:
        plain = plain.astimezone(dt.UTC)
    return plain.replace(tzinfo=None)


def _literal_list(values: Any, column: str) -> tuple[Literal, ...]:
    if isinstance(values, str | bytes | Mapping) or not isinstance(values, Iterable):
        raise InvalidSegmentError(f"segment column {_quote_name(column)}: 'in' takes a list of values, got "
                                  f"{type(values).__name__}", field=column)
    items: dict[str, Literal] = {}
    for raw in values:
        if raw is None:
            raise InvalidSegmentError(f"segment column {_quote_name(column)}: null in an 'in' list never matches; "
                                      "use \"... or column is null\"", field=column)
        value = _literal(raw, column)
        items.setdefault(_render_literal(value), value)
    if not items:
        raise InvalidSegmentError(f"segment column {_quote_name(column)}: an empty 'in' list", field=column)
    categories = {_category(v) for v in items.values()}
    if len(categories) > 1:
        raise InvalidSegmentError(f"segment column {_quote_name(column)}: an 'in' list mixes "
                                  f"{' and '.join(sorted(categories))} values", field=column)
    return tuple(sorted(items.values()))  # type: ignore[type-var]  # one category: mutually comparable


def _category(value: Literal) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "timestamp"


def _check_column_name(column: Any, position: int | None) -> None:
    if not isinstance(column, str) or not column:
        raise InvalidSegmentError(f"segment: a column name is non-empty text, got {_brief(column)}",
                                  position=position)
    for ch in column:
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise InvalidSegmentError(f"segment: column name {_quote_name(column)} holds the control character "
                                      f"U+{ord(ch):04X}", position=position, field=column[:_SNIPPET])


def _dict_condition(column: str, condition: Any) -> list[Node]:
    if condition is None:
        return [IsNull(column)]
    if isinstance(condition, Mapping):
        if not condition:
            raise InvalidSegmentError(f"segment column {_quote_name(column)}: an empty operator mapping; operators: "
                                      f"{', '.join(_DICT_OPERATORS)}", field=column)
        out: list[Node] = []
        for key, arg in condition.items():
            if key not in _DICT_OPERATORS:
                raise InvalidSegmentError(f"segment column {_quote_name(column)}: unknown operator {_brief(key)}; "
                                          f"operators: {', '.join(_DICT_OPERATORS)}", field=column)
            out.append(_dict_operator(column, key, arg))
        return out
    if isinstance(condition, list | tuple | set | frozenset | np.ndarray):
        return [InList(column, tuple(condition))]
    return [Comparison(column, "==", condition)]


_DICT_OPERATORS = {"eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=", "in": None, "not_in": None,
                   "between": None, "is_null": None}


def _dict_operator(column: str, key: str, arg: Any) -> Node:
    if key == "is_null":
        if not isinstance(arg, bool | np.bool_):
            raise InvalidSegmentError(f"segment column {_quote_name(column)}: is_null takes true or false, got "
                                      f"{type(arg).__name__}", field=column)
        return IsNull(column, negated=not arg)
    if key in ("in", "not_in"):
        if not isinstance(arg, list | tuple | set | frozenset):
            raise InvalidSegmentError(f"segment column {_quote_name(column)}: {key} takes a list of values, got "
                                      f"{type(arg).__name__}", field=column)
        return InList(column, tuple(arg), negated=key == "not_in")
    if key == "between":
        if not isinstance(arg, list | tuple) or len(arg) != 2:
            raise InvalidSegmentError(f"segment column {_quote_name(column)}: between takes [low, high]",
                                      field=column)
        return Between(column, arg[0], arg[1])
    if isinstance(arg, list | tuple | set | frozenset | Mapping):
        raise InvalidSegmentError(f"segment column {_quote_name(column)}: {key} takes one value, got "
                                  f"{type(arg).__name__}", field=column)
    return Comparison(column, _DICT_OPERATORS[key], arg)


def _columns(node: Node) -> Iterable[str]:
    if isinstance(node, And | Or):
        for operand in node.operands:
            yield from _columns(operand)
    elif isinstance(node, Not):
        yield from _columns(node.operand)
    elif not isinstance(node, AllEvents):
        yield node.column


# --- canonical text ---------------------------------------------------------------------------------------------

_KEYWORDS = frozenset({"and", "or", "not", "in", "between", "is", "null", "true", "false"})
_BARE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def _render_name(column: str) -> str:
    if _BARE.match(column) and column.lower() not in _KEYWORDS:
        return column
    return '"' + column.replace('"', '""') + '"'


def _render_literal(value: Literal) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return "timestamp '" + value.isoformat(sep=" ") + "'"


def _render(node: Node) -> str:
    if isinstance(node, AllEvents):
        return ""
    if isinstance(node, Comparison):
        return f"{_render_name(node.column)} {node.op} {_render_literal(node.value)}"
    if isinstance(node, InList):
        values = ", ".join(_render_literal(v) for v in node.values)
        return f"{_render_name(node.column)} {'not in' if node.negated else 'in'} ({values})"
    if isinstance(node, Between):
        return f"{_render_name(node.column)} between {_render_literal(node.low)} and {_render_literal(node.high)}"
    if isinstance(node, IsNull):
        return f"{_render_name(node.column)} is {'not null' if node.negated else 'null'}"
    if isinstance(node, Not):
        inner = node.operand
        if isinstance(inner, Between):
            return (f"{_render_name(inner.column)} not between {_render_literal(inner.low)} and "
                    f"{_render_literal(inner.high)}")
        return f"not ({_render(inner)})"
    joiner = " and " if isinstance(node, And) else " or "
    return joiner.join(f"({_render(op)})" if isinstance(op, And | Or) else _render(op) for op in node.operands)


# --- tokenizer and parser ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # name, qname, string, number, op, lparen, rparen, comma, eof
    value: Any
    pos: int
    text: str

    def keyword(self, *words: str) -> bool:
        return self.kind == "name" and self.value.lower() in words


def _snippet(text: str) -> str:
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "..."


def _brief(value: Any) -> str:
    if isinstance(value, str):
        return repr(_snippet(value))
    return type(value).__name__


def _quote_name(column: str) -> str:
    return repr(_snippet(column))


def _describe(token: _Token) -> str:
    if token.kind == "eof":
        return "end of input"
    if token.kind == "string":
        return "a string literal"
    if token.kind == "number":
        return f"number {_snippet(token.text)}"
    if token.kind == "name":
        word = token.value.lower()
        return f"keyword '{word}'" if word in _KEYWORDS else f"name {_brief(token.value)}"
    if token.kind == "qname":
        return f"column name {_brief(token.value)}"
    return f"'{token.text}'"


def _char_error(ch: str, pos: int, hint: str = "") -> InvalidSegmentError:
    if ch.isascii() and ch.isprintable():
        label = repr(ch)
    else:
        name = unicodedata.name(ch, "control character" if unicodedata.category(ch) == "Cc" else "unnamed")
        label = f"{repr(ch) + ' ' if ch.isprintable() else ''}(U+{ord(ch):04X} {name})"
    hint = hint or ("the segment language uses ASCII operators, quotes and parentheses"
                    if not ch.isascii() else "allowed: names, 'strings', numbers, ( ) , and == != < <= > >= = <>")
    return InvalidSegmentError(f"segment: found character {label} at position {pos}; {hint}", position=pos)


_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_OPS = ("==", "!=", "<>", "<=", ">=", "=", "<", ">")
_WHITESPACE = " \t\r\n"


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch in _WHITESPACE:
            i += 1
            continue
        start = i
        if text.startswith("--", i) or text.startswith("/*", i):
            raise InvalidSegmentError(f"segment: found a comment ('{text[i:i + 2]}') at position {i}; comments are "
                                      "not allowed", position=i)
        if ch == "'":
            value, i = _quoted(text, i, "'", "string literal")
            tokens.append(_Token("string", value, start, text[start:i]))
        elif ch == '"':
            value, i = _quoted(text, i, '"', "quoted column name")
            if not value:
                raise InvalidSegmentError(f"segment: found an empty quoted name at position {start}; a column "
                                          "name is not empty", position=start)
            _check_column_name(value, start)
            tokens.append(_Token("qname", value, start, text[start:i]))
        elif ch.isascii() and (ch.isdigit() or (ch in "-." and _NUMBER.match(text, i))):
            match = _NUMBER.match(text, i)
            if match is None:
                raise _char_error(ch, i)
            i = match.end()
            if i < n and (text[i].isalnum() or text[i] in "_.\"'"):
                raise InvalidSegmentError(f"segment: found a malformed number {_snippet(text[start:i + 1])!r} at "
                                          f"position {start}; a number is like 25, -1.5 or 2e-3", position=start)
            tokens.append(_Token("number", _number(match.group(), start), start, match.group()))
        elif ch.isascii() and (ch.isalpha() or ch == "_"):
            match = _NAME.match(text, i)
            i = match.end()
            tokens.append(_Token("name", match.group(), start, match.group()))
        elif ch == "(":
            tokens.append(_Token("lparen", "(", i, "("))
            i += 1
        elif ch == ")":
            tokens.append(_Token("rparen", ")", i, ")"))
            i += 1
        elif ch == ",":
            tokens.append(_Token("comma", ",", i, ","))
            i += 1
        elif ch == ";":
            raise _char_error(ch, i, "a segment is a single condition: ';' is not allowed")
        else:
            op = next((o for o in _OPS if text.startswith(o, i)), None)
            if op is None:
                raise _char_error(ch, i)
            i += len(op)
            tokens.append(_Token("op", {"=": "==", "<>": "!="}.get(op, op), start, op))
    tokens.append(_Token("eof", None, n, ""))
    return tokens


def _quoted(text: str, start: int, quote: str, what: str) -> tuple[str, int]:
    parts, i = [], start + 1
    while True:
        end = text.find(quote, i)
        if end < 0:
            raise InvalidSegmentError(f"segment: unterminated {what}: the {quote} opened at position {start} is "
                                      f"never closed", position=start)
        parts.append(text[i:end])
        if text.startswith(quote * 2, end):
            parts.append(quote)
            i = end + 2
            continue
        return "".join(parts), end + 1


def _number(text: str, pos: int) -> int | float:
    if re.fullmatch(r"-?\d+", text):
        return int(text)
    value = float(text)
    if not math.isfinite(value):
        raise InvalidSegmentError(f"segment: number {_snippet(text)} at position {pos} is out of range; numbers "
                                  "must be finite", position=pos)
    return value


_EXPECT_CONDITION = "a column name, 'not' or '('"
_EXPECT_OPERATOR = "an operator (==, !=, <, <=, >, >=, in, not in, between, is null, is not null)"
_EXPECT_LITERAL = "a literal (a number, a 'quoted string', true, false or timestamp '...')"


class _Parser:
    """Recursive descent: or_expr := and_expr ('or' and_expr)*; and_expr := not_expr ('and' not_expr)*;
    not_expr := 'not' not_expr | '(' or_expr ')' | predicate."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    @property
    def token(self) -> _Token:
        return self.tokens[self.i]

    def advance(self) -> _Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def fail(self, token: _Token, expected: str, hint: str = "") -> InvalidSegmentError:
        return InvalidSegmentError(f"segment: found {_describe(token)} at position {token.pos}; expected "
                                   f"{expected}{': ' + hint if hint else ''}", position=token.pos)

    def parse(self) -> Node:
        node = self.or_expr()
        if self.token.kind != "eof":
            expected = "'and', 'or' or end of input"
            hint = "unbalanced parentheses" if self.token.kind == "rparen" else ""
            raise self.fail(self.token, expected, hint)
        return node

    def enter(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise InvalidSegmentError(f"segment: nested more than {MAX_DEPTH} levels deep at position {token.pos}",
                                      position=token.pos)

    def or_expr(self) -> Node:
        operands = [self.and_expr()]
        while self.token.keyword("or"):
            self.advance()
            operands.append(self.and_expr())
        return operands[0] if len(operands) == 1 else Or(tuple(operands))

    def and_expr(self) -> Node:
        operands = [self.not_expr()]
        while self.token.keyword("and"):
            self.advance()
            operands.append(self.not_expr())
        return operands[0] if len(operands) == 1 else And(tuple(operands))

    def not_expr(self) -> Node:
        token = self.token
        if token.keyword("not"):
            self.advance()
            self.enter(token)
            node = Not(self.not_expr())
            self.depth -= 1
            return node
        if token.kind == "lparen":
            self.advance()
            self.enter(token)
            node = self.or_expr()
            if self.token.kind != "rparen":
                raise self.fail(self.token, "')'", f"the '(' at position {token.pos} is not closed"
                                if self.token.kind == "eof" else "")
            self.advance()
            self.depth -= 1
            return node
        return self.predicate()

    def column(self) -> tuple[str, int]:
        token = self.token
        if token.kind == "qname" or (token.kind == "name" and token.value.lower() not in _KEYWORDS):
            self.advance()
            return token.value, token.pos
        hint = ""
        if token.kind in ("string", "number") or token.keyword("true", "false", "null"):
            hint = "a condition starts with a column (write column == value)"
        elif token.kind == "rparen":
            hint = "unbalanced parentheses"
        elif token.kind == "eof":
            hint = "the condition is incomplete"
        raise self.fail(token, _EXPECT_CONDITION, hint)

    def predicate(self) -> Node:
        column, _pos = self.column()
        token = self.token
        if token.kind == "op":
            self.advance()
            return Comparison(column, token.value, self.literal())
        if token.keyword("in"):
            self.advance()
            return InList(column, self.literal_list())
        if token.keyword("between"):
            self.advance()
            return self.between(column)
        if token.keyword("not"):
            self.advance()
            after = self.token
            if after.keyword("in"):
                self.advance()
                return InList(column, self.literal_list(), negated=True)
            if after.keyword("between"):
                self.advance()
                return Not(self.between(column))
            raise self.fail(after, "'in' or 'between' after 'not'")
        if token.keyword("is"):
            self.advance()
            negated = False
            if self.token.keyword("not"):
                self.advance()
                negated = True
            if not self.token.keyword("null"):
                raise self.fail(self.token, "'null' after 'is'" if not negated else "'null' after 'is not'")
            self.advance()
            return IsNull(column, negated)
        hint = "function calls are not allowed" if token.kind == "lparen" else ""
        raise self.fail(token, _EXPECT_OPERATOR, hint)

    def between(self, column: str) -> Node:
        low = self.literal()
        if not self.token.keyword("and"):
            raise self.fail(self.token, "'and' (column between low and high)")
        self.advance()
        token = self.token
        high = self.literal()
        self.same_category(low, high, token, "between")
        return Between(column, low, high)

    def same_category(self, first: Literal, value: Literal, token: _Token, where: str) -> None:
        if _category(first) != _category(value):
            raise InvalidSegmentError(f"segment: found {_describe(token)} at position {token.pos}; expected a "
                                      f"{_category(first)} like the first value of this {where}", position=token.pos)

    def literal(self) -> Literal:
        token = self.token
        if token.kind in ("string", "number"):
            self.advance()
            return token.value
        if token.keyword("true", "false"):
            self.advance()
            return token.value.lower() == "true"
        if token.keyword("timestamp") and self.tokens[self.i + 1].kind == "string":
            self.advance()
            string = self.advance()
            value = _parse_time(string.value)
            if value is None:
                raise InvalidSegmentError(f"segment: the timestamp at position {string.pos} is not an ISO-8601 time "
                                          "like '2024-01-31' or '2024-01-31T12:00:00Z'", position=string.pos)
            return value
        hint = ""
        if token.kind == "lparen":
            hint = "subqueries and expressions are not allowed"
        elif token.keyword("null"):
            hint = "a comparison with null is never true: use 'is null' or 'is not null'"
        elif token.kind in ("name", "qname"):
            hint = "a condition compares a column with a value, not with another column or a function"
        raise self.fail(token, _EXPECT_LITERAL, hint)

    def literal_list(self) -> tuple[Literal, ...]:
        if self.token.kind != "lparen":
            raise self.fail(self.token, "'(' opening the list of values after 'in'")
        self.advance()
        values = [self.literal()]
        while self.token.kind == "comma":
            self.advance()
            token = self.token
            values.append(self.literal())
            self.same_category(values[0], values[-1], token, "list")
        if self.token.kind != "rparen":
            raise self.fail(self.token, "',' or ')' in the list of values")
        self.advance()
        return tuple(values)


def _parse_time(text: str) -> dt.datetime | None:
    """An ISO-8601 time as a naive UTC datetime, or None."""
    stripped = text.strip()
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}([T ][0-9:.,]+)?(Z|[+-]\d{2}(:?\d{2})?)?", stripped):
        return None
    try:
        return _naive_utc(dt.datetime.fromisoformat(stripped))
    except ValueError:
        return None


# --- checks against kinds ---------------------------------------------------------------------------------------


def _check_node(node: Node, kinds: Mapping[str, str | None], allowed: str) -> Node:
    if isinstance(node, AllEvents):
        return node
    if isinstance(node, And | Or):
        operands = tuple(_check_node(op, kinds, allowed) for op in node.operands)
        same = all(a is b for a, b in zip(operands, node.operands, strict=True))
        return node if same else type(node)(operands)
    if isinstance(node, Not):
        inner = _check_node(node.operand, kinds, allowed)
        return node if inner is node.operand else Not(inner)
    column = node.column
    if column not in kinds:
        raise InvalidSegmentError(_unknown_column(column, list(kinds), allowed), field=column)
    kind = kinds[column]
    if isinstance(node, IsNull) or kind is None:
        return node
    if isinstance(node, Comparison):
        value = _typed(node.value, kind, column)
        return node if value is node.value else Comparison(column, node.op, value)
    if isinstance(node, InList):
        values = tuple(_typed(v, kind, column) for v in node.values)
        same = all(a is b for a, b in zip(values, node.values, strict=True))
        return node if same else InList(column, values, node.negated)
    low, high = _typed(node.low, kind, column), _typed(node.high, kind, column)
    return node if low is node.low and high is node.high else Between(column, low, high)


def _typed(value: Literal, kind: str, column: str) -> Literal:
    category = _category(value)
    if category == kind:
        return value
    if kind == "timestamp" and category == "string":
        time = _parse_time(value)
        if time is not None:
            return time
        raise InvalidSegmentError(f"segment compares timestamp column {_quote_name(column)} with a string that is "
                                  "not an ISO-8601 time like '2024-01-31' or '2024-01-31T12:00:00Z'", field=column)
    article = "an" if category[0] in "aeiou" else "a"
    raise InvalidSegmentError(f"segment compares {kind} column {_quote_name(column)} with {article} {category}; "
                              f"use {_EXAMPLES[kind]}", field=column)


_EXAMPLES = {"number": "a number", "string": "a 'quoted string'", "boolean": "true or false",
             "timestamp": "an ISO-8601 time like '2024-01-31'"}


def _unknown_column(column: str, names: list[str], allowed: str) -> str:
    by_lower = {n.lower(): n for n in names}
    close = difflib.get_close_matches(column.lower(), list(by_lower), n=3, cutoff=0.6)
    suggestion = f"; did you mean {' or '.join(repr(by_lower[c]) for c in close)}?" if close else "."
    listed = sorted(names)
    shown = ", ".join(listed[:40]) + (f" and {len(listed) - 40} more" if len(listed) > 40 else "")
    return (f"segment names unknown column {_quote_name(column)}{suggestion} A segment may name {allowed}: "
            f"{shown or '(none)'}")


# --- evaluation on frames ---------------------------------------------------------------------------------------


def _frame_columns(frame: Any, names: Iterable[str]) -> tuple[list[str], dict[str, Any]]:
    """All column names of a frame, and the named ones as pandas Series."""
    import pandas as pd

    if isinstance(frame, pd.DataFrame):
        present = [c for c in frame.columns if isinstance(c, str)]
        return present, {n: frame[n].reset_index(drop=True) for n in names if n in frame.columns}
    if hasattr(frame, "column_names") and hasattr(frame, "column"):  # a pyarrow Table or RecordBatch
        present = list(frame.column_names)
        return present, {n: frame.column(n).to_pandas().reset_index(drop=True) for n in names if n in present}
    raise InvalidParameterError(f"a segment masks a pandas DataFrame or a pyarrow Table, got {type(frame).__name__}",
                                field="frame")


def _frame_length(frame: Any) -> int:
    return len(frame) if not hasattr(frame, "num_rows") else frame.num_rows


def _series_kind(series: Any) -> str | None:
    import pandas as pd
    from pandas.api import types

    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return _series_kind(pd.Series(dtype.categories))
    if types.is_bool_dtype(dtype):
        return "boolean"
    if types.is_numeric_dtype(dtype):
        return "number"
    if types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    inferred = types.infer_dtype(series, skipna=True)
    return {"string": "string", "boolean": "boolean", "integer": "number", "floating": "number",
            "mixed-integer-float": "number", "decimal": "number", "datetime": "timestamp",
            "datetime64": "timestamp", "date": "timestamp"}.get(inferred)


_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}


def _evaluate(node: Node, series: Mapping[str, Any], n: int) -> tuple[np.ndarray, np.ndarray]:
    """(true, unknown) arrays of a node on the frame's columns."""
    if isinstance(node, AllEvents):
        return np.ones(n, bool), np.zeros(n, bool)
    if isinstance(node, Not):
        truth, unknown = _evaluate(node.operand, series, n)
        return ~truth & ~unknown, unknown
    if isinstance(node, And | Or):
        results = [_evaluate(op, series, n) for op in node.operands]
        truths = np.array([t for t, _ in results])
        falses = np.array([~t & ~u for t, u in results])
        if isinstance(node, And):
            truth, false = truths.all(axis=0), falses.any(axis=0)
        else:
            truth, false = truths.any(axis=0), falses.all(axis=0)
        return truth, ~truth & ~false
    column = series[node.column]
    null = column.isna().to_numpy(dtype=bool)
    if isinstance(node, IsNull):
        return (~null if node.negated else null), np.zeros(n, bool)
    values = _comparable(column[~null])
    truth = np.zeros(n, bool)
    if isinstance(node, Comparison):
        truth[~null] = np.asarray(_COMPARE[node.op](values, _value(node.value)), dtype=bool)
    elif isinstance(node, InList):
        hit = np.asarray(values.isin([_value(v) for v in node.values]), dtype=bool)
        truth[~null] = ~hit if node.negated else hit
    else:
        low, high = _value(node.low), _value(node.high)
        truth[~null] = np.asarray((values >= low) & (values <= high), dtype=bool)
    return truth, null.copy()


def _comparable(values: Any) -> Any:
    """Non-null values of a column as a pandas Series that compares with Python literals."""
    import pandas as pd
    from pandas.api import types

    if isinstance(values.dtype, pd.CategoricalDtype):
        values = values.astype(values.dtype.categories.dtype)
    if types.is_datetime64_any_dtype(values.dtype) or types.infer_dtype(values, skipna=True) in ("datetime", "date"):
        values = pd.to_datetime(values, utc=True).dt.tz_localize(None)
    elif types.is_extension_array_dtype(values.dtype):
        values = pd.Series(values.to_numpy(dtype=object), dtype=object)
    return values.reset_index(drop=True)


def _value(literal: Literal) -> Any:
    if isinstance(literal, dt.datetime):
        import pandas as pd

        return pd.Timestamp(literal)
    return literal
