"""Typed segments: the expression parser, the mapping form, canonical text, checks, the in-memory oracle and the
DuckDB compiler (checked against the oracle on random segments and frames)."""

from __future__ import annotations

import datetime as dt
import pickle
import re
from difflib import SequenceMatcher

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from segment_injections import HARMLESS_AS_DATA, INJECTIONS, SECRET_MARKERS
from vigil.core.segments import And, Between, Comparison, InList, IsNull, Not, Or, Segment
from vigil.errors import InvalidParameterError, InvalidSegmentError
from vigil.store.duckdb.segments import compile_segment, quote_identifier

BOUNDED = settings(max_examples=200, deadline=None)


def parse_error(text: str) -> InvalidSegmentError:
    with pytest.raises(InvalidSegmentError) as info:
        Segment.parse(text)
    return info.value


# --- parser -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "canonical"), [
    ("age == 25", "age == 25"),
    ("age = 25", "age == 25"),
    ("age != 25", "age != 25"),
    ("age <> 25", "age != 25"),
    ("age < 25", "age < 25"),
    ("age <= 25", "age <= 25"),
    ("age > 25", "age > 25"),
    ("age >= 25", "age >= 25"),
    ("age>=25", "age >= 25"),
    ("age < 25.0", "age < 25"),
    ("age < -2.5", "age < -2.5"),
    ("age < 1e3", "age < 1000"),
    ("age < 2.5E-3", "age < 0.0025"),
    ("age < .5", "age < 0.5"),
    ("age < 100000000000000000000", "age < 1e+20"),
    ("sex = 'Female'", "sex == 'Female'"),
    ("sex = 'it''s'", "sex == 'it''s'"),
    ("sex = ''", "sex == ''"),
    ("sex = 'caf\u00e9 \u2018quoted\u2019'", "sex == 'caf\u00e9 \u2018quoted\u2019'"),
    ("flag = TRUE", "flag == true"),
    ("flag = false", "flag == false"),
    ("x in (3, 1, 2, 1)", "x in (1, 2, 3)"),
    ("x IN ('b', 'a')", "x in ('a', 'b')"),
    ("x in (1)", "x == 1"),
    ("x not in (1, 2)", "x not in (1, 2)"),
    ("x NOT IN ('a')", "x != 'a'"),
    ("x between 1 and 5", "x between 1 and 5"),
    ("x BETWEEN -1.5 AND 2", "x between -1.5 and 2"),
    ("x not between 1 and 5", "x not between 1 and 5"),
    ("x is null", "x is null"),
    ("x IS NOT NULL", "x is not null"),
    ("not x = 1", "x != 1"),
    ("not x < 1", "x >= 1"),
    ("not not x = 1", "x == 1"),
    ("not x in (1, 2)", "x not in (1, 2)"),
    ("not x is null", "x is not null"),
    ("not (x = 1 or y = 2)", "not (x == 1 or y == 2)"),
    ('"hours-per-week" > 40', '"hours-per-week" > 40'),
    ('"a""b" = 1', '"a""b" == 1'),
    ('"plain" = 1', "plain == 1"),
    ('"and" = 1', '"and" == 1'),
    ('"Null" is null', '"Null" is null'),
    ("timestamp >= timestamp '2024-01-31T12:00:00+01:00'", "timestamp >= timestamp '2024-01-31 11:00:00'"),
    ("_x1 = 1", "_x1 == 1"),
    ("", ""),
    ("  \n\t ", ""),
])
def test_parse_accepts_every_construct_and_gives_canonical_text(text, canonical):
    segment = Segment.parse(text)
    assert segment.canonical == canonical
    assert Segment.parse(canonical) == segment


def test_keywords_are_case_insensitive_but_column_names_are_not():
    assert Segment.parse("X Is Not Null AnD y NoT BeTwEeN 1 aNd 2 Or z iN (1, 2)") == Segment.parse(
        "X is not null and y not between 1 and 2 or z in (1, 2)")
    assert Segment.parse("X = 1") != Segment.parse("x = 1")


def test_not_binds_tighter_than_and_which_binds_tighter_than_or():
    segment = Segment.parse("a = 1 or b = 2 and not c between 0 and 1")
    assert segment.node == Or((Comparison("a", "==", 1),
                               And((Comparison("b", "==", 2), Not(Between("c", 0, 1))))))
    assert Segment.parse("not (a = 1 or b = 2) and c = 3").node == And(
        (Comparison("c", "==", 3), Not(Or((Comparison("a", "==", 1), Comparison("b", "==", 2))))))
    assert Segment.parse("(a = 1 or b = 2) and c = 3") != Segment.parse("a = 1 or b = 2 and c = 3")


def test_quoted_names_and_strings_unescape_doubled_quotes():
    segment = Segment.parse('"say ""hi""" = \'it\'\'s\'')
    assert segment.node == Comparison('say "hi"', "==", "it's")
    assert segment.columns == frozenset({'say "hi"'})


def test_a_boolean_literal_is_not_the_number_one():
    assert Segment.parse("x = true") != Segment.parse("x = 1")
    assert len({Segment.parse("x = true"), Segment.parse("x = 1"), Segment.parse("x = 1.0")}) == 2


@pytest.mark.parametrize(("text", "position", "found"), [
    ("age <", 5, "end of input"),
    ("age < 25 and", 12, "end of input"),
    ("age 25", 4, "number 25"),
    ("(age < 25", 9, "expected ')'"),
    ("age < 25)", 8, "unbalanced parentheses"),
    ("age < (25)", 6, "subqueries"),
    ("lower(sex) = 'f'", 5, "function calls"),
    ("sex = 'F", 6, "unterminated string"),
    ('"sex = 1', 0, "unterminated quoted column name"),
    ("age < 25 -- comment", 9, "comments are not allowed"),
    ("age < 25 /* c */", 9, "comments are not allowed"),
    ("age < 25; DROP TABLE t", 8, "single condition"),
    ("age \u2264 25", 4, "U+2264"),
    ("sex = \u2018F\u2019", 6, "U+2018"),
    ("age < 25 age", 9, "expected 'and', 'or' or end of input"),
    ("age = null", 6, "use 'is null'"),
    ("age is 3", 7, "'null' after 'is'"),
    ("age is not 3", 11, "'null' after 'is not'"),
    ("age between 1 or 3", 14, "'and'"),
    ("age in 1, 2", 7, "'(' opening the list"),
    ("age in (1 2)", 10, "',' or ')'"),
    ("age in ()", 8, "expected a literal"),
    ("age in (1, 'a')", 11, "expected a number like the first value"),
    ("age = 1.2.3", 6, "malformed number"),
    ("age = 12abc", 6, "malformed number"),
    ("age = 1e999", 6, "finite"),
    ("age = nan", 6, "name 'nan'"),
    ("age = other_column", 6, "not with another column"),
    ("age not like 3", 8, "'in' or 'between' after 'not'"),
    ('"" = 1', 0, "empty quoted name"),
    ("ts = timestamp 'next tuesday'", 15, "ISO-8601"),
    ("and = 1", 0, "keyword 'and'"),
    ("x = 1 ! 2", 6, "character '!'"),
    ("(" * 80 + "x = 1" + ")" * 80, 64, "nested more than"),
])
def test_malformed_expressions_are_refused_at_their_position(text, position, found):
    error = parse_error(text)
    assert error.code == "invalid_segment"
    assert error.position == position, str(error)
    assert found in str(error)
    assert f"position {position}" in str(error) or "opened at position" in str(error)
    assert error.to_dict()["position"] == position


def test_error_messages_say_what_is_allowed_where_it_failed():
    assert "expected an operator (==, !=, <, <=, >, >=, in, not in, between, is null" in str(parse_error("age"))
    assert "expected a column name, 'not' or '('" in str(parse_error("= 3"))
    assert "expected a literal (a number, a 'quoted string', true, false" in str(parse_error("age <"))


def test_refused_text_of_wrong_type_names_the_type():
    with pytest.raises(InvalidSegmentError, match="got bytes"):
        Segment.parse(b"age < 3")
    for value, name in [(3, "int"), (b"x", "bytes"), (["a = 1"], "list"), (3.5, "float")]:
        with pytest.raises(InvalidSegmentError, match=f"got {name}$"):
            Segment.of(value)


@BOUNDED
@given(st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(list("'\"()=<>!;-,. andornotisnull0123")),
               max_size=60))
def test_any_text_either_parses_or_is_refused_without_echoing_more_than_a_snippet(text):
    try:
        segment = Segment.parse(text)
    except InvalidSegmentError as error:
        assert error.code == "invalid_segment"
        assert error.position is not None and 0 <= error.position <= len(text)
        message = str(error)
        match = SequenceMatcher(None, text, message, autojunk=False).find_longest_match(0, len(text), 0, len(message))
        assert match.size <= 20 or text[match.a:match.a + match.size] in _MESSAGE_WORDS, message
    else:
        assert Segment.parse(segment.canonical) == segment


#: Fixed message text a random input may happen to share (never input echoed back).
_MESSAGE_WORDS = "segment: found end of input at position ; expected a column name, 'not' or '('"


# --- injections -------------------------------------------------------------------------------------------------


def test_the_injection_corpus_is_large():
    assert len(INJECTIONS) >= 30
    assert len(set(INJECTIONS)) == len(INJECTIONS)


@pytest.mark.parametrize("text", INJECTIONS)
def test_hostile_expressions_are_refused(text):
    error = parse_error(text)
    assert error.code == "invalid_segment"
    assert 0 <= error.position <= len(text)
    with pytest.raises(InvalidSegmentError):
        Segment.of(text)


@pytest.mark.parametrize("text", [t for t in INJECTIONS if any(m.lower() in t.lower() for m in SECRET_MARKERS)])
def test_refusals_never_repeat_a_secret_from_the_input(text):
    message = str(parse_error(text)).lower()
    for marker in SECRET_MARKERS:
        if marker.lower() in text.lower():
            assert marker.lower() not in message, message
    assert text.lower() not in message


def test_long_names_are_cut_in_error_messages():
    secret = "AKIAIOSFODNN7EXAMPLEwJalrXUtnFEMI"
    message = str(parse_error(f"x = 1 {secret}"))
    assert secret[:16] in message and secret[:17] not in message


_SQL_TOKENS = re.compile(r"\s*(\(|\)|\?|,|AND|OR|NOT|IN|BETWEEN|IS|NULL|TRUE|=|<>|<=|>=|<|>|Q)")


def assert_only_sql_structure(sql: str, segment: Segment) -> None:
    """The SQL holds quoted identifiers, placeholders and keywords: nothing else."""
    rest = re.sub(r'"(?:[^"]|"")*"', "Q", sql)
    pos = 0
    while pos < len(rest):
        match = _SQL_TOKENS.match(rest, pos)
        assert match, f"unexpected SQL at {rest[pos:pos + 20]!r} in {sql!r}"
        pos = match.end()
    assert set(re.findall(r'"((?:[^"]|"")*)"', sql)) == {c.replace('"', '""') for c in segment.columns}


@pytest.mark.parametrize("text", HARMLESS_AS_DATA)
def test_hostile_looking_data_compiles_to_parameters_only(text):
    segment = Segment.parse(text)
    sql, params = compile_segment(segment)
    assert_only_sql_structure(sql, segment)
    assert sql.count("?") == len(params)
    (column,) = segment.columns
    numeric = isinstance(params[0], int)
    con = duckdb.connect()
    con.execute(f"CREATE TABLE events (rid INTEGER, {quote_identifier(column)} {'BIGINT' if numeric else 'VARCHAR'})")
    con.executemany("INSERT INTO events VALUES (?, ?)", list(enumerate([*params, 999 if numeric else "other"])))
    con.execute("CREATE TABLE projects (id INTEGER)")
    selected = [r[0] for r in con.execute(f"SELECT rid FROM events WHERE {sql} ORDER BY rid", params).fetchall()]
    assert selected == list(range(len(params)))  # the rows holding exactly those values, not the extra one
    assert con.execute("SELECT count(*) FROM projects").fetchone() == (0,)


# --- mapping form -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("mapping", "text"), [
    ({"sex": "Female"}, "sex = 'Female'"),
    ({"x": [1, 2]}, "x in (1, 2)"),
    ({"x": (2, 1)}, "x in (1, 2)"),
    ({"x": {"b", "a"}}, "x in ('a', 'b')"),
    ({"x": np.array([1.0, 2.5])}, "x in (1, 2.5)"),
    ({"x": None}, "x is null"),
    ({"age": {"lt": 25, "ge": 18}}, "age >= 18 and age < 25"),
    ({"age": {"eq": 3, "ne": 4, "le": 5, "gt": 1}}, "age = 3 and age <> 4 and age <= 5 and age > 1"),
    ({"age": {"in": [1, 2], "not_in": [3, 4]}}, "age in (1, 2) and age not in (3, 4)"),
    ({"age": {"between": (18, 25)}}, "age between 18 and 25"),
    ({"age": {"is_null": True}}, "age is null"),
    ({"age": {"is_null": False}}, "age is not null"),
    ({"flag": True, "n": np.int64(3), "f": np.float32(0.5)}, "flag = true and n = 3 and f = 0.5"),
    ({"ts": dt.datetime(2024, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))},
     "ts = timestamp '2024-01-01'"),
    ({"ts": dt.date(2024, 1, 1)}, "ts = timestamp '2024-01-01 00:00:00'"),
    ({"ts": np.datetime64("2024-01-01T00:00")}, "ts = timestamp '2024-01-01'"),
    ({"ts": pd.Timestamp("2024-01-01", tz="UTC")}, "ts = timestamp '2024-01-01'"),
    ({"hours-per-week": 40, "a": 1}, '"hours-per-week" = 40 and a = 1'),
    ({}, ""),
])
def test_the_mapping_form_equals_the_expression(mapping, text):
    assert Segment.from_dict(mapping) == Segment.parse(text)
    assert Segment.of(mapping).canonical == Segment.parse(text).canonical


@pytest.mark.parametrize(("mapping", "field", "message"), [
    ({"age": {"below": 3}}, "age", "unknown operator 'below'"),
    ({"age": {}}, "age", "empty operator mapping"),
    ({"age": float("nan")}, "age", "finite"),
    ({"age": {"lt": float("inf")}}, "age", "finite"),
    ({"age": []}, "age", "empty 'in' list"),
    ({"age": [1, None]}, "age", "null in an 'in' list"),
    ({"age": [1, "a"]}, "age", "mixes number and string"),
    ({"age": {"lt": None}}, "age", "use 'is null'"),
    ({"age": {"lt": [1, 2]}}, "age", "lt takes one value"),
    ({"age": {"in": 3}}, "age", "in takes a list"),
    ({"age": {"between": [1]}}, "age", "between takes [low, high]"),
    ({"age": {"between": [1, "z"]}}, "age", "between a number and a string"),
    ({"age": {"is_null": "yes"}}, "age", "is_null takes true or false"),
    ({"age": object()}, "age", "got object"),
    ({"age": pd.NaT}, "age", "NaT"),
    ({"age": b"x"}, "age", "got bytes"),
    ({3: 1}, "3", "keys are column names"),
    ({"": 1}, "", "keys are column names"),
    ({"a\x00b": 1}, "a\x00b", "control character"),
])
def test_bad_mappings_are_refused_naming_the_column(mapping, field, message):
    with pytest.raises(InvalidSegmentError, match=re.escape(message)) as info:
        Segment.from_dict(mapping)
    assert info.value.field == field
    assert info.value.code == "invalid_segment"


# --- canonical text and value semantics -------------------------------------------------------------------------


def test_canonical_text_flattens_sorts_and_deduplicates():
    a = Segment.parse("(b = 2 and (a = 1 and c = 3)) and a = 1")
    b = Segment.parse("c = 3 and b = 2.0 and a = 1")
    assert a == b and a.canonical == "a == 1 and b == 2 and c == 3"
    assert Segment.parse("a = 1 or (b = 2 or a = 1)").canonical == "a == 1 or b == 2"
    assert Segment.parse("y = 2 and z = 3 or x = 1").canonical == "x == 1 or (y == 2 and z == 3)"


def test_segments_are_immutable_hashable_values():
    segment = Segment.parse("sex = 'F\nx' and age < 25")
    assert repr(segment) == "Segment(\"age < 25 and sex == 'F\\nx'\")" and "\n" not in repr(segment)
    assert str(segment) == segment.canonical
    assert {segment: 1}[Segment.parse(segment.canonical)] == 1
    assert pickle.loads(pickle.dumps(segment)) == segment
    with pytest.raises(AttributeError):
        segment._node = None
    assert segment.columns == frozenset({"sex", "age"}) and not segment.is_all
    assert Segment.all() == Segment.of(None) == Segment.of("") == Segment.of({}) and Segment.all().is_all
    assert Segment.of(segment) is segment


# Hypothesis: random trees over a fixed set of typed columns, rendered as messy text by this test's own printer.

NUMBERS = st.sampled_from([-2, -1, 0, 1, 2, 3, -1.5, 0.5, 2.5])
STRINGS = st.sampled_from(["", "a", "b", "B", "ab", "o'k", "\u00e9", "x y"])
LITERALS = {"n": NUMBERS, "i": NUMBERS, "hours-per-week": NUMBERS, "s": STRINGS, "b": st.booleans()}
KINDS = {"n": "number", "i": "number", "hours-per-week": "number", "s": "string", "b": "boolean"}


@st.composite
def atoms(draw):
    column = draw(st.sampled_from(sorted(LITERALS)))
    literal = LITERALS[column]
    shape = draw(st.sampled_from(["cmp", "in", "between", "null"]))
    if shape == "cmp":
        return Comparison(column, draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">="])), draw(literal))
    if shape == "in":
        return InList(column, tuple(draw(st.lists(literal, min_size=1, max_size=4))), draw(st.booleans()))
    if shape == "between":
        return Between(column, draw(literal), draw(literal))
    return IsNull(column, draw(st.booleans()))


NODES = st.recursive(atoms(), lambda children: st.one_of(
    st.builds(Not, children),
    st.lists(children, min_size=2, max_size=3).map(lambda ops: And(tuple(ops))),
    st.lists(children, min_size=2, max_size=3).map(lambda ops: Or(tuple(ops)))), max_leaves=8)


def messy(node, draw) -> str:
    """Expression text for a node with random spelling: keyword case, operator synonyms, spacing, parentheses."""
    def kw(word):
        return draw(st.sampled_from([word, word.upper(), word.capitalize()]))

    def sp():
        return draw(st.sampled_from([" ", "  ", "\n", "\t "]))

    def name(column):
        bare = re.fullmatch(r"[A-Za-z_]\w*", column) is not None
        return column if bare and draw(st.booleans()) else '"' + column.replace('"', '""') + '"'

    def lit(value):
        if isinstance(value, bool):
            return kw(str(value).lower())
        if isinstance(value, str):
            return "'" + value.replace("'", "''") + "'"
        if isinstance(value, int) and draw(st.booleans()):
            return f"{value}.0"
        return repr(value)

    if isinstance(node, Comparison):
        op = draw(st.sampled_from({"==": ["==", "="], "!=": ["!=", "<>"]}.get(node.op, [node.op])))
        text = f"{name(node.column)}{sp()}{op}{sp()}{lit(node.value)}"
    elif isinstance(node, InList):
        values = f",{sp()}".join(lit(v) for v in node.values)
        neg = f"{kw('not')} " if node.negated else ""
        text = f"{name(node.column)} {neg}{kw('in')}{sp()}({values})"
        if node.negated and draw(st.booleans()):
            text = f"{kw('not')} ({name(node.column)} {kw('in')} ({values}))"
    elif isinstance(node, Between):
        text = f"{name(node.column)} {kw('between')} {lit(node.low)} {kw('and')} {lit(node.high)}"
    elif isinstance(node, IsNull):
        text = f"{name(node.column)} {kw('is')} {kw('not') + ' ' if node.negated else ''}{kw('null')}"
    elif isinstance(node, Not):
        return f"{kw('not')}{sp()}({messy(node.operand, draw)})"
    else:
        word = "and" if isinstance(node, And) else "or"
        return f"{sp()}{kw(word)}{sp()}".join(f"({messy(op, draw)})" for op in node.operands)
    return f"({text})" if draw(st.booleans()) else text


@BOUNDED
@given(NODES, st.data())
def test_canonical_text_round_trips_and_any_spelling_parses_to_the_same_segment(node, data):
    segment = Segment(node)
    again = Segment.parse(segment.canonical)
    assert again == segment and again.canonical == segment.canonical and hash(again) == hash(segment)
    assert Segment.parse(messy(node, data.draw)) == segment


@st.composite
def conditions(draw):
    """(mapping, expression) pairs for the same condition."""
    mapping, parts = {}, []
    for column in draw(st.lists(st.sampled_from(sorted(LITERALS)), min_size=1, max_size=3, unique=True)):
        literal, quoted = LITERALS[column], quote_identifier(column)

        def lit(v):
            return str(v).lower() if isinstance(v, bool) else "'" + v.replace("'", "''") + "'" \
                if isinstance(v, str) else repr(v)

        shape = draw(st.sampled_from(["eq", "list", "none", "ops"]))
        if shape == "eq":
            value = draw(literal)
            mapping[column], text = value, [f"{quoted} = {lit(value)}"]
        elif shape == "list":
            values = draw(st.lists(literal, min_size=1, max_size=3))
            mapping[column], text = values, [f"{quoted} in ({', '.join(map(lit, values))})"]
        elif shape == "none":
            mapping[column], text = None, [f"{quoted} is null"]
        else:
            ops = {}
            text = []
            for key in draw(st.lists(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "between",
                                                      "is_null"]), min_size=1, max_size=3, unique=True)):
                if key in ("in", "not_in"):
                    ops[key] = draw(st.lists(literal, min_size=1, max_size=3))
                    word = "in" if key == "in" else "not in"
                    text.append(f"{quoted} {word} ({', '.join(map(lit, ops[key]))})")
                elif key == "between":
                    ops[key] = [draw(literal), draw(literal)]
                    text.append(f"{quoted} between {lit(ops[key][0])} and {lit(ops[key][1])}")
                elif key == "is_null":
                    ops[key] = draw(st.booleans())
                    text.append(f"{quoted} is {'' if ops[key] else 'not '}null")
                else:
                    ops[key] = draw(literal)
                    op = {"eq": "=", "ne": "<>", "lt": "<", "le": "<=", "gt": ">", "ge": ">="}[key]
                    text.append(f"{quoted} {op} {lit(ops[key])}")
            mapping[column] = ops
        parts.extend(text)
    order = draw(st.permutations(parts))
    return mapping, " AND ".join(order)


@BOUNDED
@given(conditions())
def test_mapping_and_expression_forms_of_a_condition_are_one_segment(pair):
    mapping, text = pair
    from_dict, parsed = Segment.from_dict(mapping), Segment.parse(text)
    assert from_dict == parsed and from_dict.canonical == parsed.canonical


# --- check ------------------------------------------------------------------------------------------------------

SCHEMA = {"age": "number", "sex": "string", "approved": "boolean", "event_time": "timestamp",
          "hours-per-week": "number"}


def test_check_suggests_close_matches_for_an_unknown_column_and_lists_the_allowed_ones():
    with pytest.raises(InvalidSegmentError) as info:
        Segment.parse("agee < 25").check(SCHEMA)
    message = str(info.value)
    assert info.value.field == "agee"
    assert "did you mean 'age'?" in message
    assert "features, metadata, prediction, score and target columns: age, approved, event_time" in message
    with pytest.raises(InvalidSegmentError, match="did you mean 'hours-per-week'"):
        Segment.parse('"hours_per_week" > 3').check(SCHEMA)
    with pytest.raises(InvalidSegmentError, match="did you mean 'sex'"):
        Segment.parse("Sex = 'F'").check(SCHEMA)
    with pytest.raises(InvalidSegmentError, match=r"unknown column 'zzz'\. A segment may name"):
        Segment.parse("zzz is null").check(SCHEMA)


@pytest.mark.parametrize(("text", "message"), [
    ("age = '25'", "compares number column 'age' with a string; use a number"),
    ("age in (true, false)", "compares number column 'age' with a boolean"),
    ("age between 'a' and 'b'", "with a string"),
    ("sex = 1", "compares string column 'sex' with a number; use a 'quoted string'"),
    ("sex in (1, 2)", "with a number"),
    ("approved = 1", "compares boolean column 'approved' with a number; use true or false"),
    ("approved = 'yes'", "with a string"),
    ("event_time > 3", "compares timestamp column 'event_time' with a number"),
    ("event_time > 'last week'", "not an ISO-8601 time"),
    ("age > timestamp '2024-01-01'", "compares number column 'age' with a timestamp"),
])
def test_check_refuses_literals_of_the_wrong_type_for_the_column(text, message):
    with pytest.raises(InvalidSegmentError, match=re.escape(message)) as info:
        Segment.parse(text).check(SCHEMA)
    assert info.value.field == Segment.parse(text).node.column


def test_check_accepts_matching_types_and_turns_iso_strings_into_timestamps():
    segment = Segment.parse("age >= 18 and age < 25.5 and sex in ('F', 'X') and approved = true and "
                            "\"hours-per-week\" is not null and sex is null")
    assert segment.check(SCHEMA) is segment
    timed = Segment.parse("event_time between '2024-01-01' and '2024-01-31T12:30:00Z'").check(SCHEMA)
    assert timed.node == Between("event_time", dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 31, 12, 30))
    assert timed.canonical == ("event_time between timestamp '2024-01-01 00:00:00' and "
                               "timestamp '2024-01-31 12:30:00'")
    assert Segment.parse(timed.canonical) == timed and timed.check(SCHEMA) is timed


def test_check_refuses_an_unknown_kind():
    with pytest.raises(InvalidParameterError, match="kinds: number, string, boolean, timestamp") as info:
        Segment.parse("a = 1").check({"a": "numeric"})
    assert info.value.field == "columns"


# --- mask (the oracle) ------------------------------------------------------------------------------------------


@pytest.fixture
def people():
    return pd.DataFrame({
        "age": [17.0, None, 30.0, 45.0],
        "sex": ["F", "M", None, "F"],
        "approved": pd.array([True, None, False, True], dtype="boolean"),
        "event_time": pd.to_datetime(["2024-01-01", "2024-02-01", None, "2024-03-01"]),
    })


@pytest.mark.parametrize(("text", "rows"), [
    ("", [0, 1, 2, 3]),
    ("age < 18", [0]),
    ("not age < 18", [2, 3]),
    ("age is null", [1]),
    ("sex = 'F' or age > 40", [0, 3]),
    ("sex = 'F' and not age between 18 and 40", [0, 3]),
    ("not (sex = 'F' and age > 40)", [0, 1, 2]),  # row 2: unknown and false is false
    ("not (sex = 'M' or age > 20)", [0]),  # row 2: unknown or true is true; row 1: age unknown
    ("not (sex = 'F' and age > 10)", [1]),  # row 2: not (unknown and true) is unknown
    ("not (age between 18 and 40)", [0, 3]),
    ("sex not in ('M')", [0, 3]),
    ("sex in ('M', 'F') or sex is null", [0, 1, 2, 3]),
    ("approved = true", [0, 3]),
    ("approved != true", [2]),
    ("event_time >= '2024-02-01'", [1, 3]),
    ("event_time is null or age is null", [1, 2]),
])
def test_mask_follows_sql_three_valued_logic(people, text, rows):
    mask = Segment.parse(text).mask(people)
    assert mask.dtype == bool and list(np.flatnonzero(mask)) == rows
    assert list(np.flatnonzero(Segment.parse(text).mask(pa.Table.from_pandas(people)))) == rows


def test_mask_checks_the_frame_columns():
    frame = pd.DataFrame({"age": [1, 2]})
    with pytest.raises(InvalidSegmentError, match="did you mean 'age'"):
        Segment.parse("agg > 1").mask(frame)
    with pytest.raises(InvalidSegmentError, match="compares number column 'age' with a string"):
        Segment.parse("age > '1'").mask(frame)
    with pytest.raises(InvalidParameterError):
        Segment.parse("age > 1").mask([[1]])


def test_mask_of_a_categorical_and_a_timezone_aware_column():
    frame = pd.DataFrame({"c": pd.Categorical(["a", None, "b"]),
                          "t": pd.to_datetime(["2024-01-01T01:00+01:00", None, "2024-01-02T00:00Z"], utc=True)})
    assert list(Segment.parse("c in ('a', 'z') or t > '2024-01-01T12:00'").mask(frame)) == [True, False, True]
    assert list(Segment.parse("t = timestamp '2024-01-01'").mask(frame)) == [True, False, False]


# --- DuckDB compiler --------------------------------------------------------------------------------------------


def test_all_events_compile_to_true():
    assert compile_segment(Segment.all()) == ("TRUE", [])
    assert compile_segment("") == ("TRUE", [])


def test_compiled_sql_names_columns_only_through_column_sql_and_binds_every_literal():
    segment = Segment.parse("""("a""b" = 'x'' OR 1=1' or n between -1 and 2.5) and not (s in ('p', 'q') and
                               t is null) and f = false""")
    sql, params = compile_segment(segment, lambda name: "e." + quote_identifier(name))
    assert sql == ('((e."a""b" = ? OR e."n" BETWEEN ? AND ?) AND e."f" = ? AND '
                   '(NOT (e."s" IN (?, ?) AND e."t" IS NULL)))')
    assert params == ["x' OR 1=1", -1, 2.5, False, "p", "q"]
    assert [type(p) for p in params] == [str, int, float, bool, str, str]
    assert_only_sql_structure(sql.replace("e.", ""), segment)


def test_parameters_bind_with_the_column_types_duckdb_holds():
    con = duckdb.connect()
    con.execute("CREATE TABLE t (d DOUBLE, i BIGINT, s VARCHAR, b BOOLEAN, ts TIMESTAMP, e ENUM('x', 'y'), "
                "sm SMALLINT, f FLOAT)")
    con.execute("INSERT INTO t VALUES (2.0, 2, 'x', true, TIMESTAMP '2024-01-02', 'x', 2, 2.5), "
                "(3.5, 3, 'y', false, TIMESTAMP '2024-01-03', 'y', 3, 3.0), (NULL, NULL, NULL, NULL, NULL, NULL, "
                "NULL, NULL)")
    cases = {
        "d = 2": 1, "d in (2, 3.5)": 2, "d between 1 and 3": 1, "d <> 2": 1,
        "i = 2.0": 1, "i < 2.5": 1, "i in (2, 3)": 2, "i not in (2, 2.5)": 1,
        "s = 'x'": 1, "s in ('x', 'y', 'z')": 2, "b = true": 1, "b != true": 1,
        "e = 'x'": 1, "e in ('x', 'z')": 1, "sm = 3": 1, "f = 2.5": 1, "f in (3, 2.5)": 2,
        "ts >= '2024-01-02T12:00'": 1, "ts between '2024-01-01' and '2024-01-03'": 2, "d is null": 1,
    }
    kinds = {"d": "number", "i": "number", "s": "string", "b": "boolean", "ts": "timestamp", "e": "string",
             "sm": "number", "f": "number"}
    for text, expected in cases.items():
        sql, params = compile_segment(Segment.parse(text).check(kinds))
        assert con.execute(f"SELECT count(*) FROM t WHERE {sql}", params).fetchone() == (expected,), text


ROW_VALUES = {"n": NUMBERS, "i": st.sampled_from([-2, -1, 0, 1, 2, 3]), "hours-per-week": NUMBERS, "s": STRINGS,
              "b": st.booleans()}
DTYPES = {"n": "Float64", "i": "Int64", "hours-per-week": "Float64", "s": "string", "b": "boolean"}


@st.composite
def frames(draw):
    n = draw(st.integers(0, 12))
    data = {col: pd.array([draw(st.none() | values) for _ in range(n)], dtype=DTYPES[col])
            for col, values in ROW_VALUES.items()}
    return pd.DataFrame({"rid": np.arange(n), **data})


@pytest.fixture(scope="module")
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


@BOUNDED
@given(NODES, frames())
def test_compiled_segments_select_the_rows_the_oracle_selects(con, node, frame):
    segment = Segment(node).check(KINDS)
    expected = list(np.flatnonzero(segment.mask(frame)))
    sql, params = compile_segment(segment)
    assert_only_sql_structure(sql, segment)
    con.register("events", frame)
    try:
        got = [r[0] for r in con.execute(f"SELECT rid FROM events WHERE {sql} ORDER BY rid", params).fetchall()]
    finally:
        con.unregister("events")
    assert got == expected, (segment.canonical, sql, params)
