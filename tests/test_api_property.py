"""Property test over the public API: every ``Store`` call returns, or raises a coded ``VigilError``.

Random frames, names, windows, segments, timestamps and options (``api_strategies.py``) go through every
public ``Store`` method. Each call must either return or raise a :class:`~vigil.errors.VigilError` whose
``code`` is one of the documented codes (``docs/errors.md``), never another exception; and a call that
fails must leave everything already stored as it was: the registry, the datasets, the audit log, every
version's events and labels, the quarantine, the batch records and the monitoring reads.

One home is built once per module (a binary model ``credit`` in two versions, a regression model
``price``, events over five days, labels, one quarantined row). Methods that only read share one store
opened on a copy of it; a method that may write gets a fresh copy of the home for every example, so what
one example wrote never changes what the next one sees.

The regression tests at the end pin the bugs this property found, one behaviour each.
"""

from __future__ import annotations

import inspect
import json
import re
import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from sklearn.compose import make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

import vigil
from api_strategies import ARGUMENTS, CHANNELS, FIRST_DAY, SEXES, materialize
from vigil.errors import EXIT_CODES, VigilError
from vigil.interfaces.api import Store

DOCS = Path(__file__).resolve().parents[1] / "docs" / "errors.md"
DOCUMENTED_CODES = set(re.findall(r"^\| `(\w+)` \| `\w+` \|", DOCS.read_text(), flags=re.MULTILINE))

#: Public methods the property does not draw, and why.
NOT_DRAWN = {
    "close": "ends the store: every other call needs it open (closing twice is covered by the store's own tests)",
}

#: Methods that may write when they succeed: each example gets a fresh copy of the home.
MAY_WRITE = {"register_dataset", "register_model", "set_status", "use", "log_predictions", "log_labels",
             "retry_labels", "delete_events", "refresh_profiles", "explain", "explain_sample", "explain_online",
             "report"}

#: Examples per method: the model-loading calls (explanations, counterfactuals, the report) are slower.
EXAMPLES = {"explain": 6, "explain_sample": 3, "explain_online": 2, "what_if": 4, "counterfactuals": 3,
            "report": 2, "fairness": 7, "multivariate_drift": 6, "outliers": 5, "register_model": 15,
            "log_predictions": 20, "log_labels": 15, "register_dataset": 12, "drift": 15, "performance": 15,
            "events": 15, "datasets": 1, "models": 1, "audit_log": 1, "projects": 1}
DEFAULT_EXAMPLES = 10

FEATURES = ["income", "age", "channel"]


def _training_frame(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"income": rng.normal(50, 15, n).round(2), "age": rng.integers(18, 80, n),
                          "channel": rng.choice(CHANNELS, n), "sex": rng.choice(SEXES, n)})
    frame["default"] = (frame["income"] + rng.normal(0, 10, n) < 45).astype(int)
    return frame


def _fitted(train: pd.DataFrame) -> Any:
    pipe = make_pipeline(make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ["channel"]),
                                                 remainder="passthrough"), LogisticRegression(max_iter=500))
    return pipe.fit(train[FEATURES], train["default"])


def _events(train: pd.DataFrame, model: Any, ids: list[str], seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = train.sample(len(ids), random_state=seed, replace=True).reset_index(drop=True)
    frame["event_id"] = ids
    frame["timestamp"] = [FIRST_DAY + pd.Timedelta(hours=int(h)) for h in rng.integers(0, 24 * 5, len(ids))]
    frame["score"] = model.predict_proba(frame[FEATURES])[:, 1]
    frame["prediction"] = (frame["score"] > 0.5).astype(int)
    return frame


class World:
    """The module's home (built once), the objects the strategies refer to, and the stored state's fingerprint."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home = root / "base"
        self.train = _training_frame()
        self.model = _fitted(self.train)
        with vigil.open(self.home) as store:
            ds = store.register_dataset("credit-train", self.train)
            options = {"task": "binary", "model": self.model, "training_data": ds, "target": "default",
                       "features": FEATURES, "metadata": ["sex"], "protected": ["sex"]}
            store.register_model("credit", version="1", **options)
            store.register_model("credit", version="2", **options)
            v1 = _events(self.train, self.model, [f"e{i}" for i in range(150)], seed=1)
            v2 = _events(self.train, self.model, [f"f{i}" for i in range(30)], seed=2)
            store.log_predictions("credit", "1", v1.drop(columns="default"))
            store.log_predictions("credit", "2", v2.drop(columns="default"))
            store.log_labels("credit", pd.concat([v1.iloc[:100], v2.iloc[:15]])[["event_id", "default"]])
            store.log_predictions("credit", "1", v1.iloc[:1].assign(event_id="bad", income="not a number")
                                  .drop(columns="default"))
            price_train = pd.DataFrame({"size": np.linspace(20, 200, 40), "city": ["paris", "lyon"] * 20})
            price_train["price"] = price_train["size"] * 2.5
            store.register_model("price", version="1", task="regression", training_data=price_train,
                                 target="price")
            price = price_train.iloc[:20].assign(event_id=[f"p{i}" for i in range(20)],
                                                 timestamp=[FIRST_DAY + pd.Timedelta(hours=5 * i) for i in range(20)],
                                                 prediction=price_train["price"].iloc[:20] + 3.0)
            store.log_predictions("price", "1", price.drop(columns="price"))
            store.log_labels("price", price[["event_id", "price"]].iloc[:12])
            self.valid_events = v1.drop(columns="default").iloc[:4].assign(event_id=[f"file{i}" for i in range(4)])
            self.refs = {"fitted": self.model, "callable": lambda frame: np.zeros(len(frame)),
                         "unpicklable": _Unpicklable(), "dataset": ds, "schema": store.schema("credit", "1")}
            self.fingerprint = fingerprint(store)
        self.copies = 0

    def fresh_home(self) -> Path:
        """A copy of the home (closed, so copying the directory is a faithful copy)."""
        self.copies += 1
        target = self.root / f"copy-{self.copies}"
        shutil.copytree(self.home, target)
        return target

    def scratch(self) -> Path:
        """A folder for one example's files."""
        folder = self.root / f"files-{self.copies}-{threading.get_ident()}"
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir()
        return folder


class _Unpicklable:
    """A callable model no pickle can store (it holds a lock)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def __call__(self, frame: Any) -> Any:
        return np.zeros(len(frame))


def _read(call: Any) -> str:
    """A read's result as text, or the code of the error it raised (a read that fails is part of the state)."""
    try:
        result = call()
    except VigilError as err:
        return f"error {err.code}"
    if isinstance(result, pd.DataFrame):
        return result.to_csv(index=False)
    return repr(result)


def fingerprint(store: Store) -> dict[str, str]:
    """Everything a caller can see stored, through public reads only."""
    state = {"projects": _read(store.projects), "models": _read(store.models), "datasets": _read(store.datasets),
             "audit_log": _read(store.audit_log)}
    models = store.models()
    for name in sorted(set(models["model"])):
        state[f"{name}/quarantine"] = _read(lambda n=name: store.quarantine(n, include_resolved=True))
        state[f"{name}/batches"] = _read(lambda n=name: store.batches(n))
        for version in sorted(models.loc[models["model"] == name, "version"]):
            for read in ("events", "performance", "traffic"):
                state[f"{name}/{version}/{read}"] = _read(
                    lambda r=read, n=name, v=version: getattr(store, r)(n, version=v))
            state[f"{name}/{version}/status"] = _read(lambda n=name, v=version: store.model(n, v).status)
    state["credit/1/explanations"] = _read(lambda: store.feature_importance("credit", version="1", training=False))
    return state


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> World:
    return World(tmp_path_factory.mktemp("api-property"))


@pytest.fixture(scope="module")
def read_store(world):
    with vigil.open(world.fresh_home()) as store:
        assert fingerprint(store) == world.fingerprint
        yield store


def _public_methods() -> set[str]:
    return {name for name, member in inspect.getmembers(Store, inspect.isfunction) if not name.startswith("_")}


def test_every_public_store_method_is_drawn():
    assert _public_methods() - set(NOT_DRAWN) == set(ARGUMENTS)
    assert set(NOT_DRAWN) <= _public_methods()
    assert set(ARGUMENTS) >= MAY_WRITE and set(EXAMPLES) <= set(ARGUMENTS)


def test_documented_codes_are_the_codes_of_the_error_table():
    assert set(EXIT_CODES) == DOCUMENTED_CODES


def _check_error(err: VigilError) -> None:
    assert isinstance(err.code, str) and err.code in DOCUMENTED_CODES, f"undocumented code {err.code!r}: {err!r}"
    assert err.field is None or isinstance(err.field, str), f"field {err.field!r} is not a name: {err!r}"
    assert str(err), f"an error without a message: {err!r}"
    json.dumps(err.to_dict())


def _call_and_check(store: Store, method: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                    before: dict[str, str]) -> None:
    try:
        result = getattr(store, method)(*args, **kwargs)
    except VigilError as err:
        _check_error(err)
        after = fingerprint(store)
        changed = sorted(key for key in before if before[key] != after.get(key))
        assert not changed, f"{method} failed ({err.code}: {err}) yet changed {changed}"
    else:
        if method == "explain_online":
            result.stop()


@pytest.mark.parametrize("method", sorted(ARGUMENTS))
def test_call_returns_or_raises_a_coded_error_and_a_failure_changes_nothing(method, world, read_store):
    @settings(max_examples=EXAMPLES.get(method, DEFAULT_EXAMPLES), deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much])
    @given(arguments=ARGUMENTS[method])
    def check(arguments: tuple[tuple[Any, ...], dict[str, Any]]) -> None:
        folder = world.scratch()
        args, kwargs = materialize(arguments, folder, world.valid_events, world.refs)
        if method not in MAY_WRITE:
            _call_and_check(read_store, method, args, kwargs, world.fingerprint)
            return
        home = world.fresh_home()
        try:
            with vigil.open(home) as store:
                _call_and_check(store, method, args, kwargs, world.fingerprint)
        finally:
            shutil.rmtree(home, ignore_errors=True)

    check()


# -- the bugs this property found, one behaviour each ---------------------------------------------------------
@pytest.mark.parametrize(("method", "args", "kwargs", "field"), [
    ("dataset", ("credit-train", np.int64(0)), {}, "version"),
    ("dataset", ("credit-train", "1"), {}, "version"),
    ("events", (["credit"],), {"version": "1"}, "model"),
    ("worst_segments", ("credit",), {"version": 1.5}, "version"),
    ("performance", ("credit",), {"version": ["1"]}, "version"),
    ("explain", ("credit", {"e": 1}), {}, "event_id"),
    ("what_if", ("credit", 1.5, {}), {}, "event_id"),
    ("fairness", ("credit",), {"version": "1", "bogus_option": 1}, "bogus_option"),
    ("fairness", ("credit",), {"protected": 3}, "protected"),
    ("multivariate_drift", ("credit",), {"sample": 1.5}, "sample"),
    ("multivariate_drift", ("credit",), {"sample": -1}, "sample"),
    ("multivariate_drift", ("credit",), {"sample": None}, "sample"),
    ("quarantine", ("credit",), {"reason": 0}, "reason"),
    ("quarantine", ("credit",), {"kind": "prediction"}, "kind"),
])
def test_a_mistyped_argument_is_an_invalid_parameter_naming_it(read_store, world, method, args, kwargs, field):
    with pytest.raises(VigilError) as err:
        getattr(read_store, method)(*args, **kwargs)
    assert (err.value.code, err.value.field) == ("invalid_parameter", field), repr(err.value)
    assert fingerprint(read_store) == world.fingerprint


@pytest.mark.parametrize(("kwargs", "field"), [({"event_ids": {"e1": 1}}, "event_ids"),
                                               ({"event_ids": [1.5]}, "event_ids")])
def test_delete_events_refuses_ids_that_are_not_ids(world, kwargs, field):
    with vigil.open(world.fresh_home()) as store:
        with pytest.raises(VigilError) as err:
            store.delete_events("credit", **kwargs)
        assert (err.value.code, err.value.field) == ("invalid_parameter", field)
        assert fingerprint(store) == world.fingerprint


def test_register_dataset_refuses_a_pii_spec_that_is_not_one(world):
    with vigil.open(world.fresh_home()) as store:
        with pytest.raises(VigilError) as err:
            store.register_dataset("other", pd.DataFrame({"a": [1]}), pii=3)
        assert (err.value.code, err.value.field) == ("invalid_parameter", "pii")
        assert fingerprint(store) == world.fingerprint
