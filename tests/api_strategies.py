"""Hypothesis strategies for the public API property test (``test_api_property.py``).

Every argument any ``Store`` method takes, drawn from a mix of values the
store holds (so calls reach deep into the code), values close to them, and
junk: blank, unicode, very long and NUL-holding names, non-strings, absurd
times, hostile segments, negative pages, option dicts with unknown keys.

The fixture store these strategies aim at (built by the test module) holds a
binary model ``credit`` (versions "1" and "2", features income, age, channel,
metadata sex, target default; events ``e0``... for version 1 and ``f0``... for
version 2) and a regression model ``price`` without an artifact (feature
size, city; target price; events ``p0``...).

Files and output paths are drawn as :class:`FileInput` / :class:`OutputPath`
tokens; :func:`materialize` turns them into real paths in a folder of the
test's own, so strategies stay pure data.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from hypothesis import strategies as st

from segment_injections import HARMLESS_AS_DATA, INJECTIONS
from vigil.core.metrics.performance import CustomMetric

MODELS = ("credit", "price")
CREDIT_EVENTS = tuple(f"e{i}" for i in range(150))
CREDIT2_EVENTS = tuple(f"f{i}" for i in range(30))
PRICE_EVENTS = tuple(f"p{i}" for i in range(20))
CHANNELS = ("web", "app", "branch")
SEXES = ("F", "M")
#: Where the fixture's events lie (five days from this one).
FIRST_DAY = pd.Timestamp("2026-03-01", tz="UTC")

SCHEMA_COLUMNS = ("event_id", "timestamp", "income", "age", "channel", "sex", "prediction", "score", "default",
                  "label_time", "size", "city", "price")
JUNK_COLUMNS = ("", " ", "nope", "Income", "income ", "\x00", "年齢", "a" * 300, "model_version", "batch_id",
                "row_number", "__index_level_0__", "score_1", "prediction\x00")


# -- scalars ---------------------------------------------------------------------------------------

NON_STRINGS = st.sampled_from([None, 0, 1, -1, 1.5, math.nan, math.inf, True, False, b"credit", ["credit"],
                               ("credit",), {"credit": 1}, {"credit"}, Decimal("1"), 10**30,
                               np.int64(1), np.float64("nan"), dt.date(2026, 3, 1)])
ODD_STRINGS = st.sampled_from(["", " ", "\t\n", "\x00", "credit\x00", "a" * 5000, "模型🙂", "..", "../credit",
                               "credit ", "CREDIT", "credit; drop table models", "'credit'", '"credit"', "nan",
                               "None", "null", "\u202ecredit", "\ud800".encode("utf-8", "surrogatepass").decode(
                                   "utf-8", "replace"), "%s", "{0}", "*", "credit/1"])


def names(*valid: str) -> st.SearchStrategy[Any]:
    """A name: usually one of ``valid``, else a junk string, a non-string or random text."""
    valid_names = st.sampled_from(valid) if valid else st.nothing()
    return st.one_of(valid_names, valid_names, valid_names, ODD_STRINGS, NON_STRINGS, st.text(max_size=12))


MODEL_NAMES = names(*MODELS, "credit")
VERSIONS = st.one_of(st.sampled_from(["1", "2", "1", None, 1, 2]), st.sampled_from(
    ["", "0", "-1", "1.0", "01", "latest", "3", "\x00", "9" * 60, 1.5, math.nan, True, ["1"], b"1", 10**30,
     np.int64(1), "1 "]))
WINDOWS = st.sampled_from(["1d", "1d", "1w", "7d", "1h", "30d", "2h", "0d", "-1d", "abc", "", " ", "1x", "d", "1.5d",
                           "999999999999d", "9" * 40 + "d", "1 d", "1D", "1W", "1y", "1m", "1s", "1d\x00", "１d", 3,
                           0, None, 1.5, ["1d"], b"1d", math.nan])
EPOCH = 1772409600  # 2026-03-02 00:00 UTC, in seconds
TIMESTAMPS = st.one_of(
    st.none(),
    st.sampled_from(["2026-03-02", "2026-03-02T12:00:00Z", "2026-03-02 12:00", "2026-03-02T12:00:00+05:00",
                     "2026-03-04", "2020-01-01", "garbage", "", " ", "now", "today", "yesterday", "2026-13-45",
                     "2026-02-30", "0000-01-01", "0001-01-01", "9999-12-31", "10000-01-01", "-0001-01-01",
                     "1677-09-21", "2262-04-12", "2026-03-02T25:00", "NaT", "nan", "\x00", "1e400", "2026",
                     "03/02/2026", "2026-03-02T12:00:00.123456789Z", "2026-W10", "1772409600"]),
    st.sampled_from([EPOCH, EPOCH * 1000, EPOCH * 10**6, EPOCH * 10**9, 0, -1, 2**63 - 1, 2**63, -(2**63), 10**30,
                     float(EPOCH), math.nan, math.inf, -math.inf, 1e300, True]),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31),
                 timezones=st.sampled_from([None, dt.UTC, dt.timezone(dt.timedelta(hours=-12))])),
    st.sampled_from([pd.Timestamp("2026-03-02", tz="UTC"), pd.Timestamp("2026-03-03"), pd.NaT,
                     np.datetime64("2026-03-02"), np.datetime64("NaT"), dt.date(2026, 3, 2), dt.date(1, 1, 1),
                     dt.time(12), pd.Timestamp.max, pd.Timestamp.min, dt.timedelta(days=1), [1], {"a": 1},
                     b"2026-03-02", Decimal("1e400")]),
)

# -- cells and frames ------------------------------------------------------------------------------

ODD_CELLS = st.sampled_from([
    10**30, -(10**30), 2**63, 2**64, -(2**63) - 1, 1e308, -1e308, 5e-324, math.inf, -math.inf, math.nan, pd.NaT, np.nan,
    None, {"a": 1}, b"\xff\xfe", dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59), dt.date(1500, 1, 1),
    pd.Timestamp("2262-04-11"), dt.timedelta(days=1), Decimal("1.5"), Decimal("NaN"), complex(1, 2), (1, 2), [1, 2],
    [], {"x"}, "", "\x00", "🙂" * 50, "web", "F", "1", "0", "0.5", "nan", "inf", "true", np.int64(7), np.float32(0.5),
    np.bool_(True), np.datetime64("NaT"), object,
])
CELLS = st.one_of(
    ODD_CELLS,
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.booleans(),
    st.lists(st.integers(0, 3), max_size=3),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31),
                 timezones=st.sampled_from([None, dt.UTC])),
)


def column_values(n: int) -> st.SearchStrategy[list[Any]]:
    """A column of ``n`` values: of one type (so pandas gives it a dtype) or of mixed objects."""
    return st.one_of(
        st.lists(st.integers(-(2**66), 2**66), min_size=n, max_size=n),
        st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=n, max_size=n),
        st.lists(st.text(max_size=5), min_size=n, max_size=n),
        st.lists(st.booleans(), min_size=n, max_size=n),
        st.lists(st.none(), min_size=n, max_size=n),
        st.lists(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31),
                              timezones=st.sampled_from([None, dt.UTC])), min_size=n, max_size=n),
        st.lists(CELLS, min_size=n, max_size=n),
    )


COLUMN_NAMES = st.one_of(st.sampled_from(SCHEMA_COLUMNS), st.sampled_from(JUNK_COLUMNS), st.text(max_size=6))
ODD_COLUMN_NAMES = st.sampled_from([0, 1.5, None, ("income", "x"), True, b"income", math.nan])


@st.composite
def valid_event_rows(draw: Any, n: int, *, model: str = "credit") -> dict[str, list[Any]]:
    """``n`` events the model's schema accepts: ids from the stored ones or new ones, times around the data."""
    new_ids = [f"n{i}" for i in range(8)]
    stored = CREDIT_EVENTS[:5] + CREDIT2_EVENTS[:3] if model == "credit" else PRICE_EVENTS[:5]
    ids = draw(st.lists(st.sampled_from(list(stored) + new_ids), min_size=n, max_size=n, unique=True))
    hours = draw(st.lists(st.integers(0, 24 * 6), min_size=n, max_size=n))
    rows: dict[str, list[Any]] = {"event_id": ids, "timestamp": [FIRST_DAY + pd.Timedelta(hours=h) for h in hours]}
    if model == "credit":
        rows["income"] = draw(st.lists(st.floats(14, 80), min_size=n, max_size=n))
        rows["age"] = draw(st.lists(st.integers(18, 79), min_size=n, max_size=n))
        rows["channel"] = draw(st.lists(st.sampled_from(CHANNELS), min_size=n, max_size=n))
        rows["sex"] = draw(st.lists(st.sampled_from(SEXES), min_size=n, max_size=n))
        rows["score"] = draw(st.lists(st.floats(0, 1), min_size=n, max_size=n))
        rows["prediction"] = [int(s > 0.5) for s in rows["score"]]
    else:
        rows["size"] = draw(st.lists(st.floats(20, 200), min_size=n, max_size=n))
        rows["city"] = draw(st.lists(st.sampled_from(["paris", "lyon"]), min_size=n, max_size=n))
        rows["prediction"] = draw(st.lists(st.floats(50, 500), min_size=n, max_size=n))
    return rows


@st.composite
def mutated(draw: Any, columns: dict[str, list[Any]], n: int) -> pd.DataFrame:
    """A frame from ``columns`` with a few mutations: dropped, added, retyped, renamed or duplicated columns,
    junk cells, odd column names, an odd index."""
    columns = dict(columns)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.sampled_from(["drop", "add", "retype", "cell", "rename"]))
        if op == "drop" and columns:
            columns.pop(draw(st.sampled_from(sorted(columns))))
        elif op == "add":
            columns[draw(COLUMN_NAMES)] = draw(column_values(n))
        elif op == "retype" and columns:
            columns[draw(st.sampled_from(sorted(columns)))] = draw(column_values(n))
        elif op == "cell" and columns and n:
            name = draw(st.sampled_from(sorted(columns)))
            values = list(columns[name])
            values[draw(st.integers(0, n - 1))] = draw(CELLS)
            columns[name] = values
        elif op == "rename" and columns:
            name = draw(st.sampled_from(sorted(columns)))
            columns[draw(COLUMN_NAMES)] = columns.pop(name)
    frame = pd.DataFrame({k: pd.Series(v, dtype=object if _mixed(v) else None) for k, v in columns.items()}) \
        if columns else pd.DataFrame(index=range(n))
    extra = draw(st.sampled_from(["none", "none", "none", "duplicate", "odd_name", "odd_index"]))
    if extra == "duplicate" and len(frame.columns):
        frame = pd.concat([frame, frame[[frame.columns[0]]]], axis=1)
    elif extra == "odd_name" and n:
        frame[draw(ODD_COLUMN_NAMES)] = draw(column_values(n))
    elif extra == "odd_index" and n:
        frame.index = [7] * n
    return frame


def _mixed(values: list[Any]) -> bool:
    """Whether pandas would choke inferring a dtype (mixed or unhashable objects): then keep them as objects."""
    return len({type(v) for v in values}) > 1 or any(isinstance(v, list | dict | set | tuple) for v in values)


@st.composite
def prediction_frames(draw: Any) -> pd.DataFrame:
    """An events frame for ``credit`` or ``price``: valid, or valid with mutations."""
    n = draw(st.integers(0, 5))
    model = draw(st.sampled_from(["credit", "credit", "price"]))
    return draw(mutated(draw(valid_event_rows(n, model=model)), n))


@st.composite
def label_frames(draw: Any) -> pd.DataFrame:
    """A labels frame: event ids (stored, new or junk), the target, sometimes a label time; then mutations."""
    n = draw(st.integers(0, 5))
    ids = draw(st.lists(st.sampled_from(CREDIT_EVENTS[95:110] + CREDIT2_EVENTS[:3] + PRICE_EVENTS[:3]
                                        + ("n1", "zz", "")), min_size=n, max_size=n))
    columns: dict[str, list[Any]] = {"event_id": ids,
                                     "default": draw(st.lists(st.sampled_from([0, 1]), min_size=n, max_size=n))}
    if draw(st.booleans()):
        columns["label_time"] = [FIRST_DAY + pd.Timedelta(days=10)] * n
    if draw(st.booleans()):
        columns["price"] = draw(st.lists(st.floats(50, 500), min_size=n, max_size=n))
    return draw(mutated(columns, n))


@st.composite
def training_frames(draw: Any) -> pd.DataFrame:
    """A training table: a few columns of the schema's names or junk, with values of any type."""
    n = draw(st.integers(0, 6))
    names_ = draw(st.lists(st.one_of(st.sampled_from(["income", "age", "channel", "sex", "default", "price"]),
                                     COLUMN_NAMES), max_size=4, unique=True))
    return draw(mutated({name: draw(column_values(n)) for name in names_}, n))


@dataclass(frozen=True)
class FileInput:
    """A file to hand the store: ``kind`` says what :func:`materialize` writes (or leaves missing)."""

    kind: str
    as_path: bool = True


@dataclass(frozen=True)
class Ref:
    """An object of the test's own (a fitted model, a registered dataset, a schema): ``materialize`` hands it in."""

    name: str


@dataclass(frozen=True)
class OutputPath:
    """A path the store writes to (a report): ``kind`` is "file", "directory" or "missing_folder"."""

    kind: str


FILE_KINDS = ("missing", "directory", "empty.csv", "header.csv", "events.csv", "events.parquet", "events.jsonl",
              "labels.csv", "duplicate_columns.csv", "garbage.csv", "garbage.parquet", "garbage.jsonl",
              "unknown.xyz", "latin1.csv", "ragged.csv")

OTHER_DATA = st.sampled_from([None, {}, {"event_id": ["x"]}, [{"event_id": "x"}], [], 3, "", b"event_id\nx",
                              np.zeros((2, 2)), pa.table({"event_id": ["x"], "income": [1.0]}),
                              pd.Series([1, 2]), pd.DataFrame()])


def data_inputs(frames: st.SearchStrategy[pd.DataFrame]) -> st.SearchStrategy[Any]:
    """What a log or register call may be given as data: frames (mostly), files, Arrow, junk."""
    files = st.builds(FileInput, st.sampled_from(FILE_KINDS), st.booleans())
    arrow = frames.map(_to_arrow_or_frame)
    return st.one_of(frames, frames, frames, files, arrow, OTHER_DATA)


def _to_arrow_or_frame(frame: pd.DataFrame) -> Any:
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except Exception:  # a frame Arrow cannot hold is still a fine frame to send
        return frame


def materialize(value: Any, folder: Path, events: pd.DataFrame, refs: dict[str, Any]) -> Any:
    """Turn :class:`FileInput` and :class:`OutputPath` tokens (at any depth of lists, tuples and dicts) into
    paths under ``folder``, and :class:`Ref` tokens into ``refs[name]``; ``events`` is a valid events frame the
    event files are made of."""
    if isinstance(value, Ref):
        return refs[value.name]
    if isinstance(value, FileInput):
        path = _write_file(value.kind, folder, events)
        return path if value.as_path else str(path)
    if isinstance(value, OutputPath):
        return {"file": folder / "report.html", "directory": folder,
                "missing_folder": folder / "no" / "such" / "folder" / "report.html"}[value.kind]
    if isinstance(value, list | tuple):
        return type(value)(materialize(v, folder, events, refs) for v in value)
    if isinstance(value, dict):
        return {k: materialize(v, folder, events, refs) for k, v in value.items()}
    return value


def _write_file(kind: str, folder: Path, events: pd.DataFrame) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / ("input-" + (kind if "." in kind else kind + ".csv"))
    if kind == "missing":
        return folder / "no-such-file.csv"
    if kind == "directory":
        path = folder / "a-directory.csv"
        path.mkdir(exist_ok=True)
        return path
    writers = {
        "empty.csv": lambda: path.write_bytes(b""),
        "header.csv": lambda: path.write_text(",".join(events.columns) + "\n"),
        "events.csv": lambda: events.to_csv(path, index=False),
        "events.parquet": lambda: events.to_parquet(path, index=False),
        "events.jsonl": lambda: events.to_json(path, orient="records", lines=True, date_format="iso"),
        "labels.csv": lambda: pd.DataFrame({"event_id": ["e100", "e101", "nope"], "default": [1, 0, 1]}).to_csv(
            path, index=False),
        "duplicate_columns.csv": lambda: path.write_text("event_id,income,income\ne1,1,2\n"),
        "garbage.csv": lambda: path.write_bytes(b"\x00\xff\xfe\x01" * 50),
        "garbage.parquet": lambda: path.write_bytes(b"PAR1\x00\x01garbage"),
        "garbage.jsonl": lambda: path.write_text('{"event_id": "x", \n[1, 2]\n'),
        "unknown.xyz": lambda: path.write_text("event_id\nx\n"),
        "latin1.csv": lambda: path.write_bytes("event_id,channel\ne1,caf\xe9\n".encode("latin-1")),
        "ragged.csv": lambda: path.write_text("event_id,income\ne1,1,2,3\ne2\n"),
    }
    writers[kind]()
    return path


# -- segments --------------------------------------------------------------------------------------

SEGMENT_COLUMNS = st.one_of(st.sampled_from(["income", "age", "channel", "sex", "prediction", "score", "default",
                                             "size", "city", "price", "timestamp", "event_id", "label_time"]),
                            st.sampled_from(JUNK_COLUMNS), st.sampled_from([3, None, ("age",), b"age"]))
SEGMENT_VALUES = st.one_of(
    st.sampled_from(["web", "F", "M", "paris", 1, 0, 25, 25.5, True, None, "", "\x00", math.nan, math.inf, 10**30,
                     ["web", "app"], ("F",), {"web"}, [], ["web", 1], [None], [[1]], b"web", dt.date(2026, 3, 2),
                     pd.Timestamp("2026-03-02", tz="UTC"), dt.datetime(1, 1, 1), pd.NaT, object, Decimal("1")]),
    st.dictionaries(st.sampled_from(["eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "between", "is_null",
                                     "bogus", "", "LT", 3]),
                    st.one_of(CELLS, st.sampled_from([[18, 25], [25], [], [1, 2, 3], ["a", "b"], [None, 1]])),
                    max_size=3),
    CELLS,
)
VALID_EXPRESSIONS = (
    "age < 25", "channel == 'web' and income > 30", "sex in ('F', 'M')", "income between 20 and 40",
    "sex is null", "sex is not null", "not age < 25", "default == 1", "prediction = 1", "score >= 0.5",
    "timestamp > timestamp '2026-03-02'", "timestamp > '2026-03-02'", "channel not in ('web')",
    "age < 25 or channel = 'app'", "city == 'paris'", "size > 100", "price > 10", "age <> 30",
    "age not between 30 and 40", "(age < 25) and (not (sex = 'F'))",
)
ODD_EXPRESSIONS = (
    "", " ", "(", ")", "age <", "age < 25 and", "'", '"', "age < 1e308", "age < 1e309",
    "age < 99999999999999999999999999", "age < -0", "income < 'web'", "channel < 3", "sex = true",
    "timestamp > 'garbage'", "timestamp > timestamp '10000-01-01'", "timestamp > timestamp 'x'",
    "age < 25 " * 300, "(" * 500 + "age < 1" + ")" * 500, "not " * 3000 + "age < 1",
    " and ".join(f"age <> {i}" for i in range(2000)), "age in (" + ", ".join(map(str, range(5000))) + ")",
    "label_time is null", "event_id = 'e1'", "nope = 1", "\"\" = 1", "age = 25 AND", "AGE < 25", "age < 2_5",
    "age < 0x19", "age < .5", "age < 5.", "age < +5", "sex = 'F' and\x00 age < 3", "sex = '\x00'",
)
SEGMENTS = st.one_of(
    st.none(),
    st.sampled_from(VALID_EXPRESSIONS),
    st.sampled_from(VALID_EXPRESSIONS),
    st.sampled_from(ODD_EXPRESSIONS),
    st.sampled_from(INJECTIONS + HARMLESS_AS_DATA),
    st.dictionaries(SEGMENT_COLUMNS, SEGMENT_VALUES, max_size=3),
    st.text(max_size=16),
    st.sampled_from([3, b"age < 25", ["age < 25"], ("age", 25), math.nan, True, {"age", "sex"}, object]),
)

# -- options ---------------------------------------------------------------------------------------

COUNTS = st.sampled_from([None, 0, 1, 2, 5, 30, -1, 10**20, 1.5, "5", True, math.nan, np.int64(3), [1]])
FRACTIONS = st.sampled_from([0.1, 0.5, 1.0, 0.0, 1.5, -0.1, math.nan, math.inf, "0.1", None, True, 10**30, [0.1]])
THRESHOLDS = st.sampled_from([None, 0.5, 0.0, 1.0, 0.001, -1.0, 2.0, math.nan, math.inf, "0.5", True, [0.5], 10**30])
COLUMN_LISTS = st.one_of(st.none(), st.lists(st.one_of(st.sampled_from(SCHEMA_COLUMNS), COLUMN_NAMES), max_size=3),
                         st.sampled_from(["income", "", 3, ("age",), {"income"}, [3], [None], [["age"]]]))
DRIFT_METHODS = st.one_of(
    st.none(),
    st.dictionaries(st.one_of(st.sampled_from(SCHEMA_COLUMNS), COLUMN_NAMES),
                    st.sampled_from(["ks", "psi", "chi2", "js", "wasserstein", "hellinger", "kl", "bogus", "", None,
                                     3, ["ks"]]), max_size=3),
    st.sampled_from(["ks", ["ks"], 3, {3: "ks"}]),
)
DRIFT_THRESHOLDS = st.one_of(
    st.none(),
    st.dictionaries(st.one_of(st.sampled_from(SCHEMA_COLUMNS), COLUMN_NAMES), THRESHOLDS, max_size=3),
    st.sampled_from([0.1, "0.1", [0.1], {3: 0.1}]),
)
BASELINES = st.one_of(
    st.sampled_from(["training", "training", "previous", "TRAINING", "", "bogus", None, 3, ("2026-03-01", "2026-03-03"),
                     ("2026-03-03", "2026-03-01"), ("garbage", "x"), ("2026-03-01",), ["2026-03-01", "2026-03-02"],
                     (None, None), ("1900-01-01", "1900-01-02"), {"start": "2026-03-01"}, ("2026-03-01", "2026-03-01"),
                     (0, 10**30)]),
    st.tuples(TIMESTAMPS, TIMESTAMPS),
)
METRIC_NAMES = st.sampled_from(["accuracy", "roc_auc", "auc", "f1", "precision", "recall", "log_loss", "mae", "rmse",
                                "r2", "bogus", "", None, 3, ["accuracy"], "ACCURACY"])
METRIC_LISTS = st.one_of(st.none(), st.lists(METRIC_NAMES, max_size=3),
                         st.sampled_from(["accuracy", [], ("accuracy",), {"accuracy"}]))
STATUSES = st.sampled_from(["draft", "validated", "production", "challenger", "shadow", "retired", "", "PRODUCTION",
                            "bogus", None, 3, ["production"], "production\x00"])
EXPLAIN_METHODS = st.sampled_from(["auto", "auto", "exact", "kernel", "permutation", "linear", "tree",
                                   "tree_interventional", "integrated_gradients", "bogus", "", None, 3, "AUTO"])
EVENT_IDS = st.one_of(st.sampled_from(["e0", "e1", "e120", "f1", "p1"]), names("e0", "e5", "f2"))
EVENT_ID_LISTS = st.one_of(
    st.none(), EVENT_IDS,
    st.lists(EVENT_IDS, max_size=3),
    st.sampled_from([[], [1, 2], [None], ["e1"] * 3, [["e1"]], {"e1"}, ("e1",), np.array(["e1"])]),
)
ACTORS = st.one_of(st.sampled_from([None, "alice"]), ODD_STRINGS, NON_STRINGS)
FREE_TEXT = st.one_of(st.sampled_from([None, "a note"]), ODD_STRINGS, NON_STRINGS)
PROGRESS = st.sampled_from([None, lambda done, total: None, "not callable", 3])
BATCH_ROWS = st.sampled_from([100_000, 2, 1, 0, -1, 1.5, "10", None, True, 10**30])
PROTECTED = st.one_of(st.none(), st.sampled_from(["sex", ["sex"], ["channel"], ["sex", "channel"], ["income"],
                                                  ["nope"], [], [3], [None], ["sex", "sex"], 3, "", ("sex",)]))
PII = st.sampled_from([None, ["sex"], {"sex": "hash"}, {"sex": "drop"}, {"sex": "bogus"}, ["nope"], "sex", 3, [],
                       {"nope": "hash"}, {3: "hash"}, [None]])
ROLE_LISTS = st.one_of(st.none(), st.lists(st.sampled_from(["income", "age", "channel", "sex", "default", "nope",
                                                            "", 3, None]), max_size=3),
                       st.sampled_from(["income", 3, {"income"}]))
TASKS = st.sampled_from(["binary", "multiclass", "regression", "ranking", None, "", "BINARY", "clustering", 3])
MODEL_OBJECTS = st.sampled_from([Ref("fitted"), Ref("fitted"), None, "not a model", 3, Ref("callable"),
                                 Ref("unpicklable")])
TRAINING_DATA = st.one_of(st.sampled_from(["credit-train", "no-such-dataset", None, "", 3, Ref("dataset")]),
                          training_frames())


def custom_metrics() -> st.SearchStrategy[Any]:
    """A :class:`CustomMetric` over the events' columns (some missing), or junk."""
    columns = st.sampled_from(["score", "prediction", "default", "income", "channel", "nope", "event_id"])
    metrics = st.builds(CustomMetric, st.sampled_from(["m", "ratio"]), columns,
                        st.one_of(st.none(), columns), zero_division=st.sampled_from([0.0, 1.0]))
    return st.one_of(metrics, st.sampled_from([None, "accuracy", 3, CustomMetric("ones", lambda f: [1] * len(f)),
                                               CustomMetric("bad", lambda f: [1]),
                                               CustomMetric("inf", lambda f: np.full(len(f), np.inf))]))


def optional(**strategies: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Keyword arguments: any subset of ``strategies``' names, each value drawn from its strategy."""
    return st.fixed_dictionaries({}, optional=strategies)


def call(*positional: st.SearchStrategy[Any], required: dict[str, st.SearchStrategy[Any]] | None = None,
         **keywords: st.SearchStrategy[Any]) -> st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]:
    """The arguments of one call: positional ones, then ``required`` and some of the optional keywords."""
    kwargs = st.fixed_dictionaries(required or {}, optional=keywords)
    return st.tuples(st.tuples(*positional), kwargs)


READ_WINDOWED = {"version": VERSIONS, "window": WINDOWS, "segment": SEGMENTS, "start": TIMESTAMPS, "end": TIMESTAMPS}
TIME_RANGE = {"start": TIMESTAMPS, "end": TIMESTAMPS}

#: The arguments of every public ``Store`` method the property test draws.
ARGUMENTS: dict[str, st.SearchStrategy[tuple[tuple[Any, ...], dict[str, Any]]]] = {
    # registry
    "register_dataset": call(names("credit-train", "new-data"), data_inputs(training_frames()), description=FREE_TEXT,
                             created_by=FREE_TEXT, pii=PII),
    "dataset": call(names("credit-train"), st.one_of(COUNTS, VERSIONS)),
    "datasets": call(),
    "register_model": call(names("credit", "new-model"), required={"version": names("1", "7")}, task=TASKS,
                           model=MODEL_OBJECTS, training_data=TRAINING_DATA, target=names("default", "price"),
                           features=ROLE_LISTS, metadata=ROLE_LISTS, protected=PROTECTED, pii=PII,
                           scores=st.sampled_from([None, {"score": 1}, {"p0": 0, "p1": 1}, ["score"], 3]),
                           prediction=names("prediction"), status=STATUSES, owner=FREE_TEXT,
                           description=FREE_TEXT, schema=st.sampled_from([Ref("schema"), None, 3, {"columns": []}]),
                           event_id=names("event_id", "id"), timestamp=names("timestamp"),
                           overrides=st.sampled_from([None, {}, {"income": {"min": 0}}, {"nope": {}}, 3])),
    "model": call(MODEL_NAMES, VERSIONS),
    "models": call(),
    "schema": call(MODEL_NAMES, VERSIONS),
    "set_status": call(MODEL_NAMES, VERSIONS, STATUSES),
    "lineage": call(MODEL_NAMES, VERSIONS),
    "audit_log": call(),
    "projects": call(),
    "use": call(names("default", "other")),
    # ingestion
    "log_predictions": call(MODEL_NAMES, VERSIONS, data_inputs(prediction_frames()), batch_rows=BATCH_ROWS,
                            progress=PROGRESS),
    "log_labels": call(MODEL_NAMES, data_inputs(label_frames()), batch_rows=BATCH_ROWS, progress=PROGRESS),
    "retry_labels": call(MODEL_NAMES),
    "delete_events": call(MODEL_NAMES, event_ids=EVENT_ID_LISTS, version=VERSIONS, actor=ACTORS, **TIME_RANGE),
    # monitoring
    "performance": call(MODEL_NAMES, **READ_WINDOWED, threshold=THRESHOLDS,
                        average=st.sampled_from([None, "macro", "micro", "weighted", "binary", "bogus", 3]),
                        metrics=METRIC_LISTS),
    "drift": call(MODEL_NAMES, **READ_WINDOWED, baseline=BASELINES, methods=DRIFT_METHODS,
                  thresholds=DRIFT_THRESHOLDS, columns=COLUMN_LISTS),
    "integrity": call(MODEL_NAMES, **READ_WINDOWED),
    "traffic": call(MODEL_NAMES, **READ_WINDOWED),
    "worst_segments": call(MODEL_NAMES, version=VERSIONS, metric=METRIC_NAMES,
                           by=st.one_of(COLUMN_LISTS, st.just(["channel"])), min_count=COUNTS,
                           threshold=THRESHOLDS, **TIME_RANGE),
    "refresh_profiles": call(MODEL_NAMES, version=VERSIONS, window=WINDOWS, segment=SEGMENTS),
    # row-wise metrics
    "multivariate_drift": call(MODEL_NAMES, **READ_WINDOWED, sample=COUNTS,
                               method=st.sampled_from(["pca", "pca", "domain_classifier", "bogus", "", None, 3])),
    "outliers": call(MODEL_NAMES, **READ_WINDOWED),
    "embedding_drift": call(MODEL_NAMES, **READ_WINDOWED, column=names("income", "embedding"), baseline=BASELINES,
                            sample=COUNTS, permutations=st.sampled_from([100, 1, 0, -1, 1.5, None, "10", 10_000])),
    "custom_metric": call(MODEL_NAMES, **READ_WINDOWED, metric=custom_metrics()),
    "ranking_performance": call(MODEL_NAMES, **READ_WINDOWED, k=COUNTS),
    "report": call(MODEL_NAMES, version=VERSIONS, window=WINDOWS, baseline=BASELINES, segment=SEGMENTS,
                   fairness_window=WINDOWS,
                   path=st.one_of(st.builds(OutputPath, st.sampled_from(["file", "directory", "missing_folder"])),
                                  st.sampled_from([None, "", 3, "\x00"]))),
    # explanations
    "explain": st.one_of(
        call(MODEL_NAMES, st.one_of(EVENT_IDS, st.lists(EVENT_IDS, max_size=3), st.just([])), version=VERSIONS,
             method=EXPLAIN_METHODS, trust=st.booleans(),
             budget=st.sampled_from([64, 0, -1, 1.5, "x", None]), seed=st.sampled_from([0, -1, "x", None, 2**70]),
             bogus_option=st.just(1)),
        call(MODEL_NAMES, version=VERSIONS, method=EXPLAIN_METHODS,
             rows=st.one_of(training_frames(), prediction_frames(),
                            st.sampled_from([{"income": 30.0, "age": 40, "channel": "web"}, {}, [], 3, "x",
                                             [{"income": 1.0}], {"income": [1.0, 2.0], "age": [3, 4]}]))),
    ),
    "explain_sample": call(MODEL_NAMES, version=VERSIONS, rate=FRACTIONS, method=EXPLAIN_METHODS,
                           limit=st.sampled_from([1, 2, 0, -1, None, 1.5, "1"]), progress=PROGRESS,
                           trust=st.booleans(), **TIME_RANGE),
    "explain_online": call(MODEL_NAMES, version=VERSIONS, rate=FRACTIONS, method=EXPLAIN_METHODS,
                           interval=st.sampled_from([5.0, 0.05, 0, -1, math.nan, math.inf, "5", None, 10**30]),
                           trust=st.booleans()),
    "feature_importance": call(MODEL_NAMES, version=VERSIONS, window=WINDOWS, method=EXPLAIN_METHODS,
                               training=st.sampled_from([True, False, None, "yes", 0]), **TIME_RANGE),
    "explanation_drift": call(MODEL_NAMES, version=VERSIONS, window=WINDOWS, method=EXPLAIN_METHODS,
                              threshold=THRESHOLDS, **TIME_RANGE),
    "what_if": call(MODEL_NAMES, EVENT_IDS,
                    st.one_of(st.dictionaries(st.one_of(st.sampled_from(["income", "age", "channel"]), COLUMN_NAMES),
                                              CELLS, max_size=3),
                              st.sampled_from([{"income": 70.0}, {"channel": "app"}, None, [], 3, "income"])),
                    version=VERSIONS, explain=st.booleans(), trust=st.booleans()),
    "counterfactuals": call(MODEL_NAMES, EVENT_IDS, version=VERSIONS, trust=st.booleans(),
                            actionable=ROLE_LISTS, immutable=ROLE_LISTS,
                            ranges=st.sampled_from([None, {"income": (0, 100)}, {"income": (100, 0)}, {"nope": (0, 1)},
                                                    {"income": "x"}, 3, {"income": (math.nan, 1)}]),
                            n=st.sampled_from([1, 3, 0, -1, 1.5, None, "2"]), bogus_option=st.just(1)),
    # fairness
    "fairness": call(MODEL_NAMES, **READ_WINDOWED, protected=PROTECTED,
                     reference=st.sampled_from([None, "F", {"sex": "F"}, "nope", 3, {"nope": "x"}]),
                     min_group_size=COUNTS, confidence=FRACTIONS, bogus_option=st.just(1)),
    # reading
    "events": call(MODEL_NAMES, version=VERSIONS, segment=SEGMENTS, **TIME_RANGE,
                   labelled=st.sampled_from([None, True, False, "yes", 0, 1]),
                   limit=COUNTS, offset=COUNTS),
    "quarantine": call(MODEL_NAMES, reason=names("type_mismatch", "unknown_event"),
                       kind=names("prediction", "label", "predictions", "labels"),
                       include_resolved=st.sampled_from([False, True, None, "yes", 1])),
    "batches": call(MODEL_NAMES),
}
