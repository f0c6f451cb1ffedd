"""Every result frame has the columns, order and dtypes docs/frames.md documents, with rows and without.

The tables of ``docs/frames.md`` are the oracle: each documented read is called on a small real store
(scikit-learn models, events, labels, refused rows, stored explanations) once with rows and once for an empty
result (a time range without events, a segment that matches nothing, a model without events), and its
``(column, dtype)`` pairs must equal the table's. A DataFrame read of ``vigil.Store`` (or frame of
``StoreFairness``) missing from the page fails the completeness test.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression

import vigil
from vigil.core.metrics.performance import CustomMetric
from vigil.core.schema import Role
from vigil.interfaces.api import Store
from vigil.services.fairness import StoreFairness
from vigil.services.registry import TEXT

DOC = Path(__file__).resolve().parents[1] / "docs" / "frames.md"
DAY0 = pd.Timestamp("2026-01-05", tz="UTC")  # a Monday
LATER = {"start": "2030-01-01", "end": "2030-02-01"}  # no event falls here
FAIRNESS_PARTS = ("by_group", "disparities", "summary", "representation", "proxies", "attributions")

# -- the page ---------------------------------------------------------------------------------------------------

HEADING = re.compile(r"^#{2,4} `(?P<name>[\w.]+)`(?: \((?P<variant>\w+)\))?\s*$")


def _cells(line: str) -> list[str]:
    return [cell.strip().strip("`") for cell in line.strip().strip("|").split("|")]


def parse_doc(text: str) -> dict[str, list[list[list[str]]]]:
    """Section key (``performance``, ``fairness.by_group (binary)``) -> its tables, each a list of rows of
    cells (backticks stripped), header first, the ``| --- |`` line left out."""
    sections: dict[str, list[list[list[str]]]] = {"": []}
    key, table = "", None
    for line in text.splitlines():
        match = HEADING.match(line)
        if match:
            key = match["name"] + (f" ({match['variant']})" if match["variant"] else "")
            assert key not in sections, f"docs/frames.md has two sections {key!r}"
            sections[key], table = [], None
        elif line.startswith("|"):
            if table is None:
                table = []
                sections[key].append(table)
            if not set(line) <= set("|- "):
                table.append(_cells(line))
        else:
            table = None
    return sections


SECTIONS = parse_doc(DOC.read_text(encoding="utf-8"))


def documented(key: str) -> list[tuple[str, str]]:
    """The ``(column, dtype)`` pairs of a section's column table, in order."""
    tables = [t for t in SECTIONS[key] if t[0] == ["column", "dtype", "meaning"]]
    assert len(tables) == 1, f"section {key!r} of docs/frames.md needs one | column | dtype | meaning | table"
    assert all(len(row) == 3 for row in tables[0]), f"section {key!r}: a row without three cells"
    return [(row[0], row[1]) for row in tables[0][1:]]


def frame_keys() -> set[str]:
    """Every documented frame, fairness variants folded into their part (``fairness.by_group``)."""
    return {key.split(" (")[0] for key, tables in SECTIONS.items()
            if key and any(t[0] == ["column", "dtype", "meaning"] for t in tables)}


def pandas_dtype(doc_dtype: str) -> str:
    """What pandas calls a documented dtype here (``str`` is ``object`` before pandas 3)."""
    return TEXT if doc_dtype == "str" else doc_dtype


def event_dtypes() -> list[tuple[str, list[str], str]]:
    """``(stored type, roles or ["any"], dtype)`` rows of the events section's stored-type table."""
    (table,) = [t for t in SECTIONS["events"] if t[0] == ["stored type", "role", "dtype"]]
    return [(row[0], [r.strip() for r in row[1].split(",")], row[2]) for row in table[1:]]


def expected_columns(store: Store, key: str, model: str | None) -> list[tuple[str, str]]:
    """The documented ``(column, pandas dtype)`` pairs of a read; for ``events``, the placeholder rows
    (*stored columns*, *target*) expanded from the model's schema with the stored-type table."""
    rows = documented(key)
    if key != "events":
        return [(c, pandas_dtype(t)) for c, t in rows]
    schema = store.schema(model)

    def dtype_of(col: Any) -> str:
        for stored, roles, dtype in event_dtypes():
            if stored == col.storage_type and (roles == ["any"] or col.role.value in roles):
                return pandas_dtype(dtype)
        raise AssertionError(f"docs/frames.md gives no dtype for a {col.storage_type} {col.role.value} column")

    out = []
    for name, dtype in rows:
        if name == "*stored columns*":
            out += [(c.name, dtype_of(c)) for c in schema.columns
                    if c.role not in (Role.EVENT_ID, Role.TIMESTAMP, Role.TARGET) and c.pii != "drop"]
        elif name == "*target*":
            if schema.target is not None:
                out.append((schema.target.name, dtype_of(schema.target)))
        elif name != "label_time" or schema.target is not None:
            out.append((name, pandas_dtype(dtype)))
    return out


# -- a small real store -----------------------------------------------------------------------------------------


def _stamps(rng: np.random.Generator, n: int, days: int) -> pd.Series:
    return DAY0 + pd.to_timedelta(np.sort(rng.uniform(0, days * 86_400, n)), unit="s")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    rng = np.random.default_rng(7)
    store = vigil.open(tmp_path_factory.mktemp("frame-schemas"))

    # credit: a binary classifier with a protected 0/1 input, a categorical metadata column, labels for most
    # events, refused rows and stored explanations
    n_train, n = 400, 300
    train = pd.DataFrame({"income": rng.normal(50, 15, n_train), "age": rng.uniform(18, 80, n_train),
                          "female": rng.integers(0, 2, n_train), "region": rng.choice(["north", "south"], n_train)})
    train["default"] = (train["income"] + 5 * train["female"] + rng.normal(0, 10, n_train) < 52).astype(int)
    inputs = ["income", "age", "female"]
    clf = LogisticRegression(max_iter=1_000).fit(train[inputs], train["default"])
    store.register_dataset("credit-train", train)
    store.register_model("credit", version="1", task="binary", model=clf, training_data="credit-train",
                         target="default", features=inputs, metadata=["region"], protected=["female"])
    events = pd.DataFrame({"event_id": [f"c{i}" for i in range(n)], "timestamp": _stamps(rng, n, 3),
                           "income": rng.normal(50, 15, n), "age": rng.uniform(18, 80, n),
                           "female": rng.integers(0, 2, n), "region": rng.choice(["north", "south"], n)})
    events["score"] = clf.predict_proba(events[inputs])[:, 1]
    events["prediction"] = (events["score"] >= 0.5).astype(int)
    assert store.log_predictions("credit", "1", events).accepted == n
    bad = events.iloc[:3].assign(event_id=["bad0", "bad1", "bad2"], income=["x", "y", "z"])
    assert store.log_predictions("credit", "1", bad).quarantined == 3
    labels = events[["event_id"]].iloc[:250].assign(default=(events["income"].iloc[:250] < 50).astype(int))
    assert store.log_labels("credit", labels).accepted == 250
    assert store.log_labels("credit", pd.DataFrame({"event_id": ["nobody"], "default": [1]})).quarantined == 1
    assert store.explain_sample("credit", rate=0.3) > 0

    # house: a regressor with a protected metadata column
    houses = pd.DataFrame({"rooms": rng.uniform(1, 6, 200), "area": rng.choice(["city", "village"], 200)})
    houses["price"] = 50 * houses["rooms"] + rng.normal(0, 10, 200)
    reg = LinearRegression().fit(houses[["rooms"]], houses["price"])
    store.register_model("house", version="1", task="regression", model=reg, training_data=houses,
                         target="price", features=["rooms"], metadata=["area"], protected=["area"])
    sold = pd.DataFrame({"event_id": [f"h{i}" for i in range(120)], "timestamp": _stamps(rng, 120, 2),
                         "rooms": rng.uniform(1, 6, 120), "area": rng.choice(["city", "village"], 120)})
    sold["prediction"] = reg.predict(sold[["rooms"]])
    store.log_predictions("house", "1", sold)
    store.log_labels("house", sold[["event_id"]].iloc[:100].assign(price=50 * sold["rooms"].iloc[:100]))

    # emb: embedding vectors; rec: a ranking model with labels
    vectors = pd.DataFrame({"vec": [list(v) for v in rng.normal(size=(100, 4))], "y": rng.integers(0, 2, 100)})
    store.register_model("emb", version="1", task="binary", training_data=vectors, target="y")
    store.log_predictions("emb", "1", pd.DataFrame({
        "event_id": [f"v{i}" for i in range(60)], "timestamp": _stamps(rng, 60, 2),
        "vec": [list(v) for v in rng.normal(size=(60, 4))], "prediction": rng.integers(0, 2, 60)}))
    items = [f"i{j}" for j in range(10)]
    picks = pd.DataFrame({"u": rng.uniform(size=50), "clicked": [list(rng.choice(items, 2, replace=False))
                                                                 for _ in range(50)]})
    store.register_model("rec", version="1", task="ranking", training_data=picks, target="clicked")
    shown = pd.DataFrame({"event_id": [f"k{i}" for i in range(40)], "timestamp": _stamps(rng, 40, 2),
                          "u": rng.uniform(size=40),
                          "prediction": [list(rng.choice(items, 3, replace=False)) for _ in range(40)]})
    store.log_predictions("rec", "1", shown)
    store.log_labels("rec", pd.DataFrame({"event_id": shown["event_id"][:30],
                                          "clicked": [list(rng.choice(items, 2, replace=False)) for _ in range(30)]}))

    # idle: no event at all, and a protected attribute the training data does not hold
    store.register_model("idle", version="1", task="binary", target="y",
                         training_data=pd.DataFrame({"x": [1.0, 2.0, 3.0], "y": [0, 1, 1]}),
                         metadata={"grp": "categorical"}, protected=["grp"])
    yield store
    store.close()


# -- the reads --------------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Case:
    key: str  # the section of docs/frames.md
    label: str
    call: Callable[[Store], pd.DataFrame]
    empty: bool | None  # whether the frame must be empty (None: either)
    model: str | None = None  # for events: the model whose schema expands the placeholders

    @property
    def id(self) -> str:
        return f"{self.key}-{self.label}"


NOWHERE = {"segment": {"region": "nowhere"}}
CUSTOM = CustomMetric("mean_income", "income")


def _windowed(key: str, read: Callable[..., pd.DataFrame], segment: bool = True) -> list[Case]:
    cases = [Case(key, "rows", lambda s: read(s), False), Case(key, "range", lambda s: read(s, **LATER), True)]
    if segment:
        cases.append(Case(key, "segment", lambda s: read(s, **NOWHERE), True))
    return cases


def _fairness(part: str, model: str, variant: str | None = None) -> list[Case]:
    """A fairness frame with rows, for a time range without events, and for a model without events."""
    key = f"fairness.{part}" + (f" ({variant})" if variant else "")

    def read(s: Store, **more: Any) -> pd.DataFrame:
        return getattr(s.fairness(model, min_group_size=1, **more), part)

    # proxies come from the training data, whatever the range; attributions need a protected model input
    # (credit's ``female``; house's ``area`` is metadata) and hold the training rows whatever the range
    from_training = part in ("proxies", "attributions")
    cases = [Case(key, f"{model}-rows", read, None if part == "attributions" and model != "credit" else False),
             Case(key, f"{model}-range", lambda s: read(s, **LATER), None if from_training else True)]
    if variant != "regression":  # idle is a classifier
        cases.append(Case(key, "idle", lambda s: getattr(s.fairness("idle"), part), True))
    return cases


CASES: list[Case] = [
    Case("datasets", "rows", lambda s: s.datasets(), False),
    Case("datasets", "new-project", lambda s: s.use("nothing-here").datasets(), True),
    Case("models", "rows", lambda s: s.models(), False),
    Case("models", "new-project", lambda s: s.use("nothing-here").models(), True),
    Case("audit_log", "rows", lambda s: s.audit_log(), False),
    Case("audit_log", "new-project", lambda s: s.use("nothing-here").audit_log(), None),
    *[Case("events", label, call, empty, model) for label, call, empty, model in (
        ("rows", lambda s: s.events("credit"), False, "credit"),
        ("labelled", lambda s: s.events("credit", labelled=True), False, "credit"),
        ("unlabelled", lambda s: s.events("credit", labelled=False), False, "credit"),
        ("range", lambda s: s.events("credit", **LATER), True, "credit"),
        ("segment", lambda s: s.events("credit", **NOWHERE), True, "credit"),
        ("regression", lambda s: s.events("house"), False, "house"),
        ("embedding", lambda s: s.events("emb"), False, "emb"),
        ("ranking", lambda s: s.events("rec"), False, "rec"),
        ("idle", lambda s: s.events("idle"), True, "idle"))],
    Case("quarantine", "rows", lambda s: s.quarantine("credit", include_resolved=True), False),
    Case("quarantine", "no-such-reason", lambda s: s.quarantine("credit", reason="missing_value"), True),
    Case("quarantine", "idle", lambda s: s.quarantine("idle"), True),
    Case("batches", "rows", lambda s: s.batches("credit"), False),
    Case("batches", "idle", lambda s: s.batches("idle"), True),
    *_windowed("performance", lambda s, **k: s.performance("credit", **k)),
    *_windowed("drift", lambda s, **k: s.drift("credit", **k)),
    Case("drift", "undecided", lambda s: s.drift("credit", window="1h"), False),  # windows too small to decide
    Case("integrity", "rows", lambda s: s.integrity("credit"), False),
    Case("integrity", "range", lambda s: s.integrity("credit", **LATER), True),
    Case("integrity", "segment", lambda s: s.integrity("credit", **NOWHERE), None),  # refused rows show anyway
    *_windowed("traffic", lambda s, **k: s.traffic("credit", **k)),
    Case("worst_segments", "rows", lambda s: s.worst_segments("credit", min_count=5), False),
    Case("worst_segments", "range", lambda s: s.worst_segments("credit", min_count=5, **LATER), True),
    *_windowed("multivariate_drift", lambda s, **k: s.multivariate_drift("credit", **k)),
    Case("multivariate_drift", "undecided", lambda s: s.multivariate_drift("credit", window="1h"), False),
    *_windowed("outliers", lambda s, **k: s.outliers("credit", **k)),
    *_windowed("custom_metric", lambda s, **k: s.custom_metric("credit", metric=CUSTOM, **k)),
    *_windowed("embedding_drift", lambda s, **k: s.embedding_drift("emb", permutations=20, **k), segment=False),
    *_windowed("ranking_performance", lambda s, **k: s.ranking_performance("rec", k=3, **k), segment=False),
    Case("feature_importance", "rows", lambda s: s.feature_importance("credit"), False),
    Case("feature_importance", "range", lambda s: s.feature_importance("credit", training=False, **LATER), True),
    Case("feature_importance", "training-only", lambda s: s.feature_importance("credit", **LATER), False),
    Case("feature_importance", "idle", lambda s: s.feature_importance("idle"), True),
    Case("explanation_drift", "rows", lambda s: s.explanation_drift("credit"), False),
    Case("explanation_drift", "range", lambda s: s.explanation_drift("credit", **LATER), True),
    *_fairness("by_group", "credit", "binary"),
    *_fairness("by_group", "house", "regression"),
    *_fairness("summary", "credit", "binary"),
    *_fairness("summary", "house", "regression"),
    *[case for part in ("disparities", "representation", "proxies", "attributions") for model in ("credit", "house")
      for case in _fairness(part, model)],
]
CASES = list({c.id: c for c in CASES}.values())  # the idle fairness cases once per section

@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_frame_has_the_documented_columns_and_dtypes(store, case):
    frame = case.call(store)
    assert isinstance(frame, pd.DataFrame)
    if case.empty is True:
        assert frame.empty, f"{case.id}: expected no rows, got {len(frame)}"
    elif case.empty is False:
        assert len(frame) > 0, f"{case.id}: expected rows, got none"
    got = [(str(c), str(t)) for c, t in frame.dtypes.items()]
    assert got == expected_columns(store, case.key, case.model)
    if case.label == "undecided":  # the no-decision value is there, and the dtype holds it
        assert frame["drifted"].isna().any() and (frame["status"] == "insufficient_data").any()


# -- the page against the code ----------------------------------------------------------------------------------


def _public_methods(cls: type) -> dict[str, dict[str, Any]]:
    return {name: typing.get_type_hints(fn) for name, fn in inspect.getmembers(cls, inspect.isfunction)
            if not name.startswith("_")}


def test_every_dataframe_read_is_documented():
    reads = {name for name, hints in _public_methods(Store).items() if hints.get("return") is pd.DataFrame}
    assert {"performance", "events", "quarantine", "models"} <= reads  # the introspection sees the reads
    assert _public_methods(Store)["fairness"]["return"] is StoreFairness
    parts = {f.name for f in dataclasses.fields(StoreFairness)
             if typing.get_type_hints(StoreFairness)[f.name] is pd.DataFrame}
    assert parts == set(FAIRNESS_PARTS)
    assert frame_keys() == reads | {f"fairness.{p}" for p in parts}


def test_every_documented_frame_is_checked():
    checked = {case.key.split(" (")[0] for case in CASES}
    assert checked == frame_keys()
    for key in {case.key for case in CASES} - {"audit_log"}:  # a project's log starts with its creation
        labels = {c.label for c in CASES if c.key == key}
        assert any(c.empty is True for c in CASES if c.key == key), f"{key}: no empty case among {labels}"
        assert any(c.empty is False for c in CASES if c.key == key), f"{key}: no case with rows among {labels}"


def test_the_page_uses_only_the_dtypes_it_defines():
    (vocabulary,) = [t for t in SECTIONS[""] if t[0] == ["dtype", "holds"]]
    allowed = {d for row in vocabulary[1:] for d in row[0].split("`, `")}
    used = {dtype for key in SECTIONS if key for tables in [SECTIONS[key]] for t in tables
            if t[0] == ["column", "dtype", "meaning"] for _, dtype, *_ in t[1:] if not dtype.startswith("*")}
    used |= {dtype for _, _, dtype in event_dtypes()}
    assert used <= allowed, sorted(used - allowed)
    for key in SECTIONS:
        if key:
            names = [name for name, _ in documented(key)] if any(
                t[0] == ["column", "dtype", "meaning"] for t in SECTIONS[key]) else []
            assert len(names) == len(set(names)), f"{key}: a column listed twice"


def test_parse_doc_reads_sections_and_tables():
    text = ("# T\n\n| dtype | holds |\n| --- | --- |\n| `str` | text |\n\n### `a`\n\nrow\n\n"
            "| column | dtype | meaning |\n| --- | --- | --- |\n| `x` | `int64` | n |\n\n"
            "### `f.p` (binary)\n\n| column | dtype | meaning |\n| --- | --- | --- |\n| `y` | `str` | y |\n")
    got = parse_doc(text)
    assert list(got) == ["", "a", "f.p (binary)"]
    assert got[""] == [[["dtype", "holds"], ["str", "text"]]]
    assert got["a"] == [[["column", "dtype", "meaning"], ["x", "int64", "n"]]]
    assert got["f.p (binary)"] == [[["column", "dtype", "meaning"], ["y", "str", "y"]]]
