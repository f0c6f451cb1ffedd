"""Local questions about one row: what if some inputs were different, and what is the smallest change that flips it.

- :func:`what_if`: the prediction (and, optionally, the attributions) before and after setting
  some inputs of a row to new values.
- :func:`counterfactuals`: for a binary classifier, a few small, sparse and different changes to
  the actionable inputs that move the row to the other decision, respecting immutable inputs and
  allowed ranges.

The distance of a change is ``sum(|new - old| / scale) over numeric features + 1 per changed
categorical + sparsity * changes``, where ``scale`` is the training data's median absolute deviation
(its standard deviation if that is 0). "Nearest" means the smallest such distance over the changes of
at most ``max_changes`` actionable features, each within its allowed range, that flip the decision.

Linear models (exact). For a binary scikit-learn linear classifier (``coef_``, ``decision_function``:
a logistic regression...), alone or after steps that are affine in the moving columns (scalers,
passthrough; in a column transformer any encoder of the columns that do not move), whose actionable
features are all numeric with an interval range, the decision is linear in the changes, and its
probability the logistic of it (both checked by probing the model; otherwise the search runs). The
nearest change is then computed exactly: on a feature set the weighted-L1 optimum under one linear
constraint fills the features in order of margin gained per unit of distance (``|coef| * scale``) up to
their ranges until the boundary; the optimum over the feature sets of at most ``max_changes`` (each
costing ``sparsity`` more) is found by enumerating them, or, with integer features or too many sets, by
one mixed-integer program (``scipy.optimize.milp``, integers kept whole). The change is placed
1e-9 in log-odds past the boundary so that it flips when re-predicted. The k-th result is
the nearest change whose feature set contains none of the earlier ones' (then, if fewer than ``n``
exist, the nearest with another set, every change at least a tolerance).

Other models (search: deterministic, batched, no guarantee of the optimum). Each actionable feature
gets candidate values: quantiles of the training data inside the allowed range plus the range's ends
(numeric), or the allowed/seen categories (categorical). A beam search evaluates every single-feature
move in one model call, then grows the most promising non-flipping moves to pairs and triples (one call
per level); sets that contain a flipping one are tried too, in a second pass with the budget left (a
flipping feature moved less plus another feature can be nearer). The cheapest flipping candidates (of
the first pass and of each set size) are then sparsified (a change that is not needed is undone) and
each numeric change is shrunk by bisection towards the original value to the smallest change that
still flips (to :data:`LINE_SEARCH_TOL` of the feature's scale; integer features to 1). The nearest
result is the nearest refined candidate: never farther than the nearest with fewer features allowed.
The result keeps the cheapest candidates whose feature sets differ (a set that contains an already
chosen one comes last).

>>> import numpy as np, pandas as pd
>>> from sklearn.linear_model import LogisticRegression
>>> rng = np.random.default_rng(0)
>>> X = pd.DataFrame({"income": rng.normal(50, 10, 500), "debt": rng.normal(20, 5, 500)})
>>> model = LogisticRegression().fit(X, (X["income"] - 2 * X["debt"] > 10).astype(int))
>>> found = counterfactuals(model, {"income": 45.0, "debt": 20.0}, data=X, n=2)
>>> found.probabilities[0] >= 0.5, sorted(found.changes[0])
(True, ['income'])
"""

from __future__ import annotations

import contextlib
import html
import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import special

from vigil.core.explain.adapters import ModelFunction, as_model_function
from vigil.core.explain.explanation import Explanation
from vigil.errors import ExplainError

__all__ = ["LINE_SEARCH_TOL", "Counterfactuals", "WhatIf", "counterfactuals", "what_if"]

#: Bisection stops when a numeric change is known to within this fraction of the feature's scale.
LINE_SEARCH_TOL = 1e-3
#: Candidate values per numeric feature (quantiles of the training data in range, plus the range ends).
_GRID_POINTS = 24
#: Training rows used at most to compute scales and quantiles.
_MAX_DATA_ROWS = 50_000


# -- rows ----------------------------------------------------------------------------------------------------


def _row_frame(row: Any, names: Sequence[str] | None) -> pd.DataFrame:
    if isinstance(row, pd.DataFrame):
        if len(row) != 1:
            raise ExplainError(f"row: expected one row, got a DataFrame of {len(row)} rows")
        return row.reset_index(drop=True)
    if isinstance(row, pd.Series):
        return row.to_frame().T.reset_index(drop=True).infer_objects()
    if isinstance(row, Mapping):
        return pd.DataFrame({str(k): [v] for k, v in row.items()})
    arr = np.asarray(row)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise ExplainError(f"row: expected a dict, a Series, a one-row DataFrame or a 1-D array; got shape {arr.shape}")
    if names is None or len(names) != len(arr):
        raise ExplainError(f"row is an array of {len(arr)} values: pass feature_names= with one name per value")
    return pd.DataFrame([list(arr)], columns=list(names)).infer_objects()


def _model_and_row(model: Any, row: Any, feature_names: Sequence[str] | None,
                   **kwargs: Any) -> tuple[ModelFunction, pd.DataFrame]:
    names = feature_names
    if names is None and isinstance(model, ModelFunction):
        names = model.feature_names
    frame = _row_frame(row, names)
    if names is None and getattr(model, "feature_names_in_", None) is None:
        names = [str(c) for c in frame.columns]
    f = as_model_function(model, names, **kwargs)
    missing = [c for c in f.feature_names if c not in frame.columns]
    if missing:
        raise ExplainError(f"row lacks the model's input column(s) {missing}")
    return f, frame[f.feature_names].copy()


def _is_categorical(dtype: Any) -> bool:
    return not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype)


def _column(values: Sequence[Any], template: pd.Series) -> Any:
    """``values`` as a column with ``template``'s dtype (numbers as float when they stop being whole)."""
    dtype = template.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        extra = [v for v in pd.unique(np.asarray(values, dtype=object)) if v not in set(dtype.categories)]
        return pd.Categorical(values, categories=list(dtype.categories) + extra)
    if _is_categorical(dtype):
        return pd.Series(list(values), dtype=object).astype(dtype).array
    numbers = np.asarray(values, dtype=float)
    if pd.api.types.is_integer_dtype(dtype) and np.all(np.isfinite(numbers)) and np.all(numbers == np.round(numbers)):
        return numbers.astype(dtype)
    return numbers


def _apply(base: pd.DataFrame, assignments: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """One copy of the one-row ``base`` per assignment, with the assigned values set."""
    rows = base.iloc[np.zeros(len(assignments), dtype=np.intp)].reset_index(drop=True)
    touched = {name for a in assignments for name in a}
    for name in base.columns:
        if name not in touched:
            continue
        original = base[name].iloc[0]
        rows[name] = _column([a.get(name, original) for a in assignments], base[name])
    return rows


# -- what-if -------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WhatIf:
    """A row before and after ``changes``: both predictions and, when asked for, both explanations."""

    original: pd.DataFrame
    changed: pd.DataFrame
    changes: dict[str, Any]
    original_prediction: float
    new_prediction: float
    output: str
    before: Explanation | None = None
    after: Explanation | None = None

    @property
    def delta(self) -> float:
        """New prediction minus original prediction."""
        return self.new_prediction - self.original_prediction

    def to_frame(self) -> pd.DataFrame:
        """One row per feature: original value, new value, changed, and attributions before/after when explained."""
        names = list(self.original.columns)
        frame = pd.DataFrame({
            "feature": names,
            "original_value": self.original.iloc[0].to_numpy(dtype=object),
            "new_value": self.changed.iloc[0].to_numpy(dtype=object),
            "changed": [n in self.changes for n in names],
        })
        if self.before is not None and self.after is not None:
            before = dict(zip(self.before.feature_names, self.before.values[0], strict=True))
            after = dict(zip(self.after.feature_names, self.after.values[0], strict=True))
            frame["attribution_before"] = [before.get(n, np.nan) for n in names]
            frame["attribution_after"] = [after.get(n, np.nan) for n in names]
            frame["attribution_change"] = frame["attribution_after"] - frame["attribution_before"]
        return frame

    def _repr_html_(self) -> str:
        head = (f"<p><b>What if</b> {html.escape(', '.join(f'{k} = {v!r}' for k, v in self.changes.items()))}: "
                f"{html.escape(self.output)} {self.original_prediction:.4g} &rarr; {self.new_prediction:.4g} "
                f"({self.delta:+.4g})</p>")
        return head + self.to_frame().to_html(index=False)


def what_if(
    model: Any,
    row: Any,
    changes: Mapping[str, Any],
    *,
    background: Any = None,
    explain: bool = True,
    feature_names: Sequence[str] | None = None,
    output: str = "auto",
    class_index: Any = None,
    method: str = "auto",
) -> WhatIf:
    """Predict ``row`` as it is and with ``changes`` applied ({feature: new value}).

    With ``explain=True`` both rows are explained in one call of
    :func:`vigil.core.explain.explain` (``background``, ``method``, ``output`` and ``class_index``
    are passed on), so ``to_frame()`` shows how each attribution moved.

    >>> import pandas as pd
    >>> from sklearn.linear_model import LinearRegression
    >>> X = pd.DataFrame({"rooms": [1.0, 2.0, 3.0, 4.0], "age": [10.0, 5.0, 20.0, 1.0]})
    >>> model = LinearRegression().fit(X, 100 * X["rooms"] - X["age"])
    >>> w = what_if(model, {"rooms": 2.0, "age": 5.0}, {"rooms": 3.0}, explain=False)
    >>> round(w.original_prediction, 6), round(w.new_prediction, 6), round(w.delta, 6)
    (195.0, 295.0, 100.0)
    """
    f, original = _model_and_row(model, row, feature_names, output=output, class_index=class_index)
    if not isinstance(changes, Mapping):
        raise ExplainError(f"changes: expected a mapping {{feature: new value}}, got {type(changes).__name__}")
    unknown = [k for k in changes if k not in f.feature_names]
    if unknown:
        raise ExplainError(f"changes name unknown feature(s) {unknown}; the model's inputs are {f.feature_names}")
    both = _apply(original, [{}, dict(changes)])
    changed = both.iloc[[1]].reset_index(drop=True)
    before = after = None
    if explain:
        from vigil.core.explain import explain as explain_rows

        explanation = explain_rows(model, both, background=background, method=method, feature_names=f.feature_names,
                                   output=output, class_index=class_index)
        before, after = explanation[0], explanation[1]
    # the predictions are the model's output as asked; an explainer may explain another scale (log-odds)
    predictions = f(both)
    return WhatIf(original=both.iloc[[0]].reset_index(drop=True), changed=changed, changes=dict(changes),
                  original_prediction=float(predictions[0]), new_prediction=float(predictions[1]),
                  output=f.output, before=before, after=after)


# -- counterfactuals -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counterfactuals:
    """Changes to one row that move a binary classifier's decision to ``target``.

    ``changes[i]`` is {feature: new value} of counterfactual i, ``rows`` the full changed rows,
    ``distances`` and ``probabilities`` (of the explained class) their cost and new score.
    An empty result carries the reason in ``message``.
    """

    original: pd.DataFrame
    original_probability: float
    target: Any
    threshold: float
    output: str
    changes: list[dict[str, Any]]
    rows: pd.DataFrame
    distances: list[float]
    probabilities: list[float]
    message: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.changes)

    _SUMMARY = ("counterfactual", "features_changed", "n_changes", "distance", "probability")

    def _value_columns(self) -> dict[str, str]:
        """Changed feature -> its column in :meth:`to_frame` (suffixed when it clashes with a summary column)."""
        changed = [name for name in self.original.columns if any(name in c for c in self.changes)]
        return {name: name if name not in self._SUMMARY else f"{name} (new)" for name in changed}

    def to_frame(self) -> pd.DataFrame:
        """One row per counterfactual: features changed, their count, distance, new probability, new values."""
        frame = pd.DataFrame({
            "counterfactual": np.arange(1, len(self) + 1),
            "features_changed": [", ".join(c) for c in self.changes],
            "n_changes": [len(c) for c in self.changes],
            "distance": np.asarray(self.distances, dtype=float),
            "probability": np.asarray(self.probabilities, dtype=float),
        })
        for name, column in self._value_columns().items():
            frame[column] = pd.Series([c.get(name, pd.NA) for c in self.changes], dtype=object)
        return frame

    def _repr_html_(self) -> str:
        head = (f"<p><b>Counterfactuals</b> towards {html.escape(repr(self.target))} "
                f"({html.escape(self.output)} {self.original_probability:.4g}, threshold {self.threshold:g})</p>")
        if not self.changes:
            return head + f"<p>{html.escape(self.message)}</p>"
        frame = self.to_frame()
        for name, column in self._value_columns().items():
            old = self.original[name].iloc[0]
            frame[column] = [f"{old} → {c[name]}" if name in c else "" for c in self.changes]
        note = f"<p>{html.escape(self.message)}</p>" if self.message else ""
        return head + frame.to_html(index=False) + note


@dataclass
class _Feature:
    name: str
    categorical: bool
    integer: bool
    scale: float
    candidates: list[Any]
    low: float | None = None  # a numeric feature's allowed interval (None for a list of allowed values)
    high: float | None = None


def _range_of(name: str, spec: Any, categorical: bool) -> tuple[tuple[float | None, float | None] | None, list | None]:
    """(interval, allowed values) from a ranges entry: a 2-tuple is an interval, any other collection a value set."""
    if spec is None:
        return None, None
    if isinstance(spec, tuple) and len(spec) == 2 and not categorical:
        low, high = spec
        if low is not None and high is not None and low > high:
            raise ExplainError(f"ranges[{name!r}] = {spec!r}: low is above high")
        return (low, high), None
    if isinstance(spec, str | bytes) or not isinstance(spec, Sequence | set | frozenset | np.ndarray):
        raise ExplainError(f"ranges[{name!r}] = {spec!r}: give (low, high) or a list of allowed values")
    values = list(spec)
    if not values:
        raise ExplainError(f"ranges[{name!r}] is empty: no allowed value")
    return None, values


def _features(f: ModelFunction, x0: pd.DataFrame, actionable: list[str], ranges: Mapping[str, Any],
              data: pd.DataFrame | None, seed: int) -> tuple[list[_Feature], list[str]]:
    if data is not None and len(data) > _MAX_DATA_ROWS:
        data = data.iloc[np.sort(np.random.default_rng(seed).choice(len(data), _MAX_DATA_ROWS, replace=False))]
    features, skipped = [], []
    for name in actionable:
        column = data[name] if data is not None and name in data.columns else None
        dtype = column.dtype if column is not None else x0[name].dtype
        categorical = _is_categorical(dtype)
        interval, allowed = _range_of(name, ranges.get(name), categorical)
        current = x0[name].iloc[0]
        if not categorical and pd.isna(current):
            skipped.append(name)  # no value to move from
            continue
        if categorical:
            options = allowed if allowed is not None else (
                sorted(pd.unique(column.dropna()), key=str) if column is not None else [])
            candidates = [v for v in options if v != current]
            scale, integer = 1.0, False
        else:
            integer = pd.api.types.is_integer_dtype(dtype)
            numbers = column.dropna().to_numpy(dtype=float) if column is not None else np.empty(0)
            low, high = interval if interval is not None else (None, None)
            low = low if low is not None else (numbers.min() if len(numbers) else None)
            high = high if high is not None else (numbers.max() if len(numbers) else None)
            if allowed is not None:
                grid = np.asarray(allowed, dtype=float)
            elif low is None or high is None:
                skipped.append(name)
                continue
            else:
                inside = numbers[(numbers >= low) & (numbers <= high)]
                grid = np.quantile(inside, np.linspace(0, 1, _GRID_POINTS)) if len(inside) else \
                    np.linspace(low, high, _GRID_POINTS)
                grid = np.concatenate([[low, high], grid])
            if integer:
                grid = np.round(grid)
            if interval is not None:
                grid = grid[(grid >= low) & (grid <= high)]
            grid = np.unique(grid)
            candidates = [float(v) for v in grid if v != float(current)]
            scale = _scale(numbers, low, high)
        if candidates:
            bounds = (float(low), float(high)) if not categorical and allowed is None else (None, None)
            features.append(_Feature(name, categorical, integer, scale, candidates, *bounds))
        else:
            skipped.append(name)
    return features, skipped


def _scale(numbers: np.ndarray, low: float | None, high: float | None) -> float:
    if len(numbers):
        mad = float(np.median(np.abs(numbers - np.median(numbers))))
        if mad > 0:
            return mad
        std = float(np.std(numbers))
        if std > 0:
            return std
    if low is not None and high is not None and high > low:
        return (high - low) / 4.0  # the MAD of a uniform spread over the range
    return 1.0


class _Search:
    """Candidate evaluation shared by the search steps: model calls, flip test, distances."""

    def __init__(self, f: ModelFunction, x0: pd.DataFrame, features: list[_Feature], want_positive: bool,
                 threshold: float, sparsity: float) -> None:
        self.f, self.x0, self.want_positive, self.threshold, self.sparsity = f, x0, want_positive, threshold, sparsity
        self.features = {feature.name: feature for feature in features}
        self.original = {name: x0[name].iloc[0] for name in x0.columns}
        self.rows = 0
        self.calls = 0

    def probability(self, assignments: Sequence[Mapping[str, Any]]) -> np.ndarray:
        if not assignments:
            return np.empty(0)
        self.rows += len(assignments)
        self.calls += 1
        return self.f(_apply(self.x0, assignments))

    def flips(self, p: np.ndarray) -> np.ndarray:
        return p >= self.threshold if self.want_positive else p < self.threshold

    def margin(self, p: np.ndarray) -> np.ndarray:
        p = np.clip(p, 1e-12, 1 - 1e-12)
        logit = np.log(p / (1 - p)) - np.log(self.threshold / (1 - self.threshold))
        return logit if self.want_positive else -logit

    def distance(self, assignment: Mapping[str, Any]) -> float:
        total = 0.0
        for name, value in assignment.items():
            feature = self.features[name]
            total += 1.0 if feature.categorical else abs(float(value) - float(self.original[name])) / feature.scale
        return total + self.sparsity * len(assignment)


# -- linear models: the exact nearest change ---------------------------------------------------------------------

#: scikit-learn steps that map each numeric input column to ``a * x + b`` (for a value that is not missing).
_AFFINE_STEPS = ("StandardScaler", "MinMaxScaler", "MaxAbsScaler", "RobustScaler", "SimpleImputer")
#: The decision boundary is crossed by this much (in log-odds) so the flip survives rounding.
_NUDGE = 1e-9


def _affine_step(step: Any) -> bool:
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return True
    if type(step).__module__.startswith("sklearn.pipeline") and hasattr(step, "steps"):
        return all(_affine_step(s) for _, s in step.steps)
    if type(step).__name__ == "FunctionTransformer" and getattr(step, "func", 0) is None:
        return True  # the identity (a column transformer's "passthrough")
    return (type(step).__name__ in _AFFINE_STEPS and type(step).__module__.startswith("sklearn.")
            and not getattr(step, "clip", False))


def _columns_of(transformer: Any, columns: Any) -> list[str] | None:
    """The input column names a fitted ColumnTransformer sends to one of its transformers (None: unknown)."""
    names = [str(c) for c in getattr(transformer, "feature_names_in_", [])]
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, slice):
        return names[columns] if names else None
    values = np.asarray(columns)
    if values.dtype == bool:
        return [n for n, keep in zip(names, values, strict=False) if keep] if names else None
    if values.dtype.kind in "iu":
        return [names[i] for i in values] if names else None
    if values.dtype.kind in "OU":
        return [str(v) for v in values]
    return None


def _looks_linear(model: Any, moving: set[str]) -> bool:
    """A binary scikit-learn linear classifier, alone or after steps that are affine in the ``moving`` columns
    (scalers; in a first ColumnTransformer, any transformer for the columns that do not move)."""
    steps = [s for _, s in model.steps] if type(model).__module__.startswith("sklearn.pipeline") and hasattr(
        model, "steps") else [model]
    final = steps[-1]
    coef = getattr(final, "coef_", None)
    if not (type(final).__module__.startswith("sklearn.linear_model") and coef is not None
            and np.atleast_2d(coef).shape[0] == 1 and hasattr(final, "decision_function")
            and len(getattr(final, "classes_", [])) == 2):
        return False
    for position, step in enumerate(steps[:-1]):
        if _affine_step(step):
            continue
        parts = getattr(step, "transformers_", None)
        # a column transformer first, where the columns it names are the raw inputs
        if parts is None or position > 0 or not type(step).__module__.startswith("sklearn.compose"):
            return False
        for _, transformer, columns in parts:
            if isinstance(transformer, str) and transformer == "drop" or _affine_step(transformer):
                continue
            names = _columns_of(step, columns)
            if names is None or moving & set(names):
                return False
    return True


@dataclass
class _Linear:
    """The decision of a linear model along the searched features: moving feature i by one unit in its helpful
    direction ``sign[i]`` raises the margin (log-odds past the threshold, towards the target) by ``gain[i]``;
    ``need`` is the margin to make up, ``room[i]`` how far feature i may move within its range."""

    names: list[str]
    sign: np.ndarray
    gain: np.ndarray
    room: np.ndarray
    need: float
    rows: int  # model rows the probes used


def _linear_form(search: _Search, seed: int) -> _Linear | None:
    """The exact linear margin of a linear model over the searched features, or None when the model is not one.

    The structure is checked first (:func:`_looks_linear`); then the decision function is probed at each
    feature's range ends and at random points of the box, and must be affine to 1e-8 there, with the explained
    probability the logistic of a multiple of it.
    """
    f, features = search.f, list(search.features.values())
    if f.kind != "classifier" or not features or any(
            ft.categorical or ft.low is None or not ft.low <= float(search.original[ft.name]) <= ft.high
            for ft in features):
        return None
    model = f.model
    if not _looks_linear(model, {ft.name for ft in features}):
        return None
    names = [ft.name for ft in features]
    x0 = np.array([float(search.original[name]) for name in names])
    low = np.array([ft.low for ft in features])
    high = np.array([ft.high for ft in features])
    k = len(names)
    rng = np.random.default_rng(seed)
    probes: list[dict] = [{}]
    for i, name in enumerate(names):
        probes += [{name: low[i]}, {name: high[i]}]
    points = low + (high - low) * rng.random((3, k))
    probes += [dict(zip(names, point, strict=True)) for point in points]
    frame = _apply(search.x0, probes)
    try:
        decision = np.asarray(model.decision_function(f.prepare(frame)), dtype=float).reshape(-1)
    except Exception:  # noqa: BLE001 - any failure means "not this fast path": the search still runs
        return None
    p = search.probability(probes)
    if decision.shape[0] != len(probes) or not np.all(np.isfinite(decision)):
        return None
    span = np.where(high > low, high - low, 1.0)
    slope = np.where(high > low, (decision[2:2 + 2 * k:2] - decision[1:1 + 2 * k:2]) / span, 0.0)
    moved = np.array([[float(a.get(name, x0[i])) - x0[i] for i, name in enumerate(names)] for a in probes])
    predicted = decision[0] + moved @ slope
    if np.max(np.abs(predicted - decision)) > 1e-8 * (1.0 + abs(decision[0]) + float(np.abs(slope) @ (high - low))):
        return None
    # the explained class's log-odds is +-c * decision (c = 1 for a logistic regression)
    direction = 1.0 if f.class_index == 1 else -1.0
    usable = (p > 1e-9) & (p < 1 - 1e-9) & (np.abs(decision) > 1e-6)
    if not usable.any():
        return None
    c = float(np.median(np.log(p[usable] / (1 - p[usable])) / (direction * decision[usable])))
    if not c > 0 or np.max(np.abs(special.expit(direction * c * decision) - p)) > 1e-9:
        return None
    toward = 1.0 if search.want_positive else -1.0  # the margin rises with the target's log-odds
    threshold = float(np.log(search.threshold / (1 - search.threshold)))
    per_unit = toward * direction * c * slope
    sign = np.sign(per_unit)
    room = np.where(sign > 0, high - x0, x0 - low)
    integer = np.array([ft.integer for ft in features])
    room = np.where(integer, np.floor(room + 1e-9), room)
    room = np.where(sign == 0, 0.0, np.maximum(room, 0.0))
    need = toward * (threshold - direction * c * decision[0])
    return _Linear(names, sign, np.abs(per_unit), room, float(need), len(probes))


def _milp(search: _Search, lin: _Linear, max_changes: int, cuts: list[frozenset], exact_sets: bool,
          nudge: float) -> dict | str:
    """The nearest change (one mixed-integer program) whose feature set contains no set of ``cuts`` (or, with
    ``exact_sets``, is none of them, each change then at least one tolerance); "none" when there is no such
    change, "failed" when the solver did not finish."""
    from scipy.optimize import Bounds, LinearConstraint, milp

    use = np.flatnonzero((lin.room > 0) & (lin.gain > 0))
    if use.size == 0:
        return "none"
    features = [search.features[lin.names[i]] for i in use]
    scale = np.array([ft.scale for ft in features])
    integer = np.array([ft.integer for ft in features])
    gain, room = lin.gain[use], lin.room[use]
    m = use.size
    target = lin.need + nudge
    # variables: the move of each feature in its helpful direction (>= 0), then whether it changes (0/1)
    cost = np.r_[1.0 / scale, np.full(m, max(search.sparsity, 0.0))]
    rows = [np.r_[gain, np.zeros(m)]]
    lows, highs = [target], [np.inf]
    link = np.hstack([np.eye(m), -np.diag(room)])
    rows += list(link)
    lows += [-np.inf] * m
    highs += [0.0] * m
    rows.append(np.r_[np.zeros(m), np.ones(m)])
    lows.append(-np.inf)
    highs.append(float(max_changes))
    position = {lin.names[i]: j for j, i in enumerate(use)}
    least = np.where(integer, 1.0, LINE_SEARCH_TOL * scale)
    if exact_sets:
        rows += list(np.hstack([np.eye(m), -np.diag(np.minimum(least, room))]))
        lows += [0.0] * m
        highs += [np.inf] * m
    for found in cuts:
        inside = np.array([name in found for name in lin.names])[use]
        if exact_sets:
            rows.append(np.r_[np.zeros(m), np.where(inside, 1.0, -1.0)])
        else:
            rows.append(np.r_[np.zeros(m), inside.astype(float)])
        lows.append(-np.inf)
        highs.append(float(len(found) - 1))
    result = milp(cost, constraints=LinearConstraint(np.array(rows), lows, highs),
                  integrality=np.r_[integer.astype(int), np.ones(m, dtype=int)],
                  bounds=Bounds(np.zeros(2 * m), np.r_[room, np.ones(m)]),
                  options={"mip_rel_gap": 0.0, "time_limit": 30.0})
    if result.status == 2:
        return "none"
    if result.status != 0 or result.x is None:
        return "failed"
    move, on = result.x[:m], result.x[m:] > 0.5
    chosen = on & (move > 1e-12 * np.maximum(room, 1.0))
    # the same support solved exactly: whole numbers kept, then the continuous moves filled by efficiency
    floor = np.where(exact_sets, np.minimum(least, room), 0.0)
    exact = np.where(chosen & integer, np.clip(np.round(move), np.maximum(floor, 0.0), room), 0.0)
    exact = np.where(chosen & ~integer, floor, exact)
    left = target - float(gain @ exact)
    for j in sorted(np.flatnonzero(chosen & ~integer), key=lambda j: -gain[j] * scale[j]):
        if left <= 0:
            break
        step = min(room[j] - exact[j], left / gain[j])
        exact[j] += step
        left -= step * gain[j]
    if left > 1e-12 * max(1.0, abs(target)):
        exact = np.where(chosen, np.clip(move, 0.0, room), 0.0)
    keep = chosen & (exact > 0) if not exact_sets else chosen
    assignment = {}
    for name, j in position.items():
        if keep[j]:
            value = float(search.original[name]) + lin.sign[use[j]] * exact[j]
            assignment[name] = float(np.round(value)) if integer[j] else value
    return assignment or "failed"


#: Continuous problems with at most this many candidate feature sets are solved by enumerating them.
_MAX_SETS = 20_000


def _enumerate(search: _Search, lin: _Linear, max_changes: int, cuts: list[frozenset], exact_sets: bool,
               nudge: float) -> dict | str | None:
    """:func:`_milp` for continuous features, in closed form: on each candidate feature set the nearest change
    fills the features in order of margin gained per unit of distance (``gain * scale``) up to their ranges until
    the margin is made up; the nearest over the sets is the optimum. None when there are too many sets."""
    use = np.flatnonzero((lin.room > 0) & (lin.gain > 0))
    if use.size == 0:
        return "none"
    features = [search.features[lin.names[i]] for i in use]
    if any(ft.integer for ft in features):
        return None
    sizes = range(1, min(max_changes, use.size) + 1)
    if sum(math.comb(use.size, k) for k in sizes) > _MAX_SETS:
        return None
    scale = np.array([ft.scale for ft in features])
    order = np.argsort(-lin.gain[use] * scale, kind="stable")  # most efficient first
    use, scale = use[order], scale[order]
    gain, room = lin.gain[use], lin.room[use]
    least = np.minimum(LINE_SEARCH_TOL * scale, room) if exact_sets else np.zeros(use.size)
    free = room - least
    target = lin.need + nudge
    names = [lin.names[i] for i in use]
    member_of = {name: j for j, name in enumerate(names)}
    best: tuple[float, np.ndarray, np.ndarray] | None = None
    for k in sizes:
        combos = np.array(list(itertools.combinations(range(use.size), k)), dtype=np.intp)
        rows = np.arange(combos.shape[0])
        member = np.zeros((combos.shape[0], use.size), dtype=bool)
        member[rows[:, None], combos] = True
        allowed = np.ones(combos.shape[0], dtype=bool)
        for found in cuts:
            if not set(found) <= set(member_of):
                continue  # a set with a feature that cannot move: no candidate contains or equals it
            mask = np.zeros(use.size, dtype=bool)
            mask[[member_of[name] for name in found]] = True
            allowed &= ~((member == mask).all(axis=1) if exact_sets else member[:, mask].all(axis=1))
        g, f, lo, sc = gain[combos], free[combos], least[combos], scale[combos]
        left = target - (g * lo).sum(axis=1)
        capacity = np.cumsum(g * f, axis=1)
        allowed &= capacity[:, -1] >= left
        last = np.where(left > 0, np.argmax(capacity >= left[:, None], axis=1), -1)
        if not exact_sets:
            allowed &= last == k - 1  # else a smaller set does it: it is enumerated too, and cheaper
        if not allowed.any():
            continue
        position = np.arange(k)[None, :]
        before = np.where(last > 0, capacity[rows, np.maximum(last - 1, 0)], 0.0)
        partial = (left - before) / g[rows, np.maximum(last, 0)]
        move = lo + np.where(position < last[:, None], f, 0.0) + np.where(position == last[:, None],
                                                                           partial[:, None], 0.0)
        cost = (move / sc).sum(axis=1) + search.sparsity * k
        cost = np.where(allowed, cost, np.inf)
        i = int(np.argmin(cost))
        if best is None or cost[i] < best[0]:
            best = (float(cost[i]), combos[i], move[i])
    if best is None:
        return "none"
    _, combo, move = best
    return {names[j]: float(search.original[names[j]]) + lin.sign[use[j]] * m
            for j, m in zip(combo.tolist(), move.tolist(), strict=True)}


def _nearest(search: _Search, lin: _Linear, max_changes: int, cuts: list[frozenset], exact_sets: bool,
             nudge: float) -> dict | str:
    found = _enumerate(search, lin, max_changes, cuts, exact_sets, nudge)
    return _milp(search, lin, max_changes, cuts, exact_sets, nudge) if found is None else found


def _linear_search(search: _Search, lin: _Linear, n: int,
                   max_changes: int) -> tuple[list[dict], np.ndarray] | None:
    """Up to ``n`` exact nearest changes and their probabilities: each the nearest whose feature set contains
    none of the earlier ones, then (when fewer exist) the nearest with a set not yet chosen. None when the
    solver fails or a flip cannot be confirmed by the model (the search runs instead)."""
    for nudge in (_NUDGE * max(1.0, abs(lin.need)), 1e-6, 1e-3):
        found: list[dict] = []
        for exact_sets in (False, True):
            while len(found) < n:
                sets = [frozenset(a) for a in found]
                assignment = _nearest(search, lin, max_changes, sets, exact_sets, nudge)
                if assignment == "failed" and not found:
                    return None
                if isinstance(assignment, str) or frozenset(assignment) in sets:
                    break
                found.append(assignment)
        if not found:
            return [], np.empty(0)
        p = search.probability(found)
        if bool(np.all(search.flips(p))):
            return found, p
    return None


def _lower_bound(search: _Search, assignment: Mapping[str, Any]) -> float:
    """The least distance ``assignment``'s feature set can reach, however small its numeric changes."""
    return sum(1.0 + search.sparsity if search.features[k].categorical else search.sparsity for k in assignment)


def _beam_search(search: _Search, max_changes: int, n: int, budget: int,
                 beam: int) -> tuple[dict[frozenset, tuple[dict, float]], set[frozenset], bool]:
    """Flipping assignments (the cheapest per feature set), the sets the first pass found, and whether the budget
    ran out.

    The first pass grows non-flipping moves level by level and does not grow a set that contains a flipping
    one; those supersets (a flipping feature moved less, plus another feature) are kept aside and tried in a
    second pass with the budget left, since adding a feature can shorten the distance. Supersets whose
    least reachable distance is no better than the n-th found are not tried.
    """
    solutions: dict[frozenset, tuple[dict, float]] = {}
    p0 = search.probability([{}])
    base_margin = float(search.margin(p0)[0])
    frontier: list[dict] = [{}]
    exhausted = False
    deferred: list[dict] = []
    deferred_seen: set = set()
    for level in range(1, max_changes + 1):
        if len(solutions) >= n:
            nth = sorted(d for _, d in solutions.values())[n - 1]
            if nth <= search.sparsity * level:
                break  # every further change costs more than the n found already
        expansions: list[dict] = []
        seen: set = set()
        for state in frontier:
            for feature in search.features.values():
                if feature.name in state:
                    continue
                names = frozenset(state) | {feature.name}
                superset = any(found <= names for found in solutions)
                into, keys = (deferred, deferred_seen) if superset else (expansions, seen)
                for value in feature.candidates:
                    child = {**state, feature.name: value}
                    key = tuple(sorted((k, repr(v)) for k, v in child.items()))
                    if key not in keys:
                        keys.add(key)
                        into.append(child)
        room = budget - search.rows
        if len(expansions) > room:
            expansions, exhausted = expansions[:max(room, 0)], True
        if not expansions:
            break
        p = search.probability(expansions)
        flips = search.flips(p)
        progress = search.margin(p) - base_margin
        best: dict[frozenset, list[tuple[float, float, dict]]] = {}
        for child, flipped, gain in zip(expansions, flips, progress, strict=True):
            names = frozenset(child)
            cost = search.distance(child)
            if flipped:
                if names not in solutions or cost < solutions[names][1]:
                    solutions[names] = (child, cost)
            elif gain > 0:
                best.setdefault(names, []).append((gain, cost, child))
        # per feature set keep the move that gains most and the one that gains most per unit of distance
        ranked = []
        for states in best.values():
            strongest = max(states, key=lambda s: s[0])
            efficient = max(states, key=lambda s: s[0] / s[1])
            ranked.append((strongest[0], [strongest[2]] + ([efficient[2]] if efficient is not strongest else [])))
        ranked.sort(key=lambda item: -item[0])
        frontier = [state for _, states in ranked[:beam] for state in states]
        if exhausted or not frontier:
            break
    first = set(solutions)
    if deferred and len(solutions) >= n:
        nth = sorted(d for _, d in solutions.values())[n - 1]
        deferred = [child for child in deferred if _lower_bound(search, child) < nth]
    room = budget - search.rows
    if len(deferred) > room:
        deferred, exhausted = deferred[:max(room, 0)], True
    if deferred:
        flips = search.flips(search.probability(deferred))
        for child, flipped in zip(deferred, flips, strict=True):
            names = frozenset(child)
            cost = search.distance(child)
            if flipped and (names not in solutions or cost < solutions[names][1]):
                solutions[names] = (child, cost)
    return solutions, first, exhausted


def _to_refine(solutions: dict[frozenset, tuple[dict, float]], first: set[frozenset], n: int) -> list[tuple]:
    """The candidates worth refining: the 3n cheapest of the first pass, and the 3n cheapest of each size.

    Refining each candidate only ever shortens it and does not depend on the others, so the nearest result is
    never farther than the first pass alone would give, nor than the nearest single-feature change.
    """
    ranked = sorted(solutions, key=lambda names: solutions[names][1])
    keep = set([names for names in ranked if names in first][:3 * n])
    for size in sorted({len(names) for names in ranked}):
        keep.update([names for names in ranked if len(names) == size][:3 * n])
    return [solutions[names] for names in ranked if names in keep]


def _sparsify(search: _Search, candidates: list[dict]) -> list[dict]:
    """Undo changes that are not needed for the flip, the costliest first, until none can go."""
    candidates = [dict(c) for c in candidates]
    while True:
        trials, owners = [], []
        for i, c in enumerate(candidates):
            if len(c) > 1:
                for name in c:
                    trials.append({k: v for k, v in c.items() if k != name})
                    owners.append((i, name))
        if not trials:
            return candidates
        flips = search.flips(search.probability(trials))
        removed: dict[int, tuple[float, str]] = {}
        for (i, name), trial, flipped in zip(owners, trials, flips, strict=True):
            if flipped:
                saving = search.distance(candidates[i]) - search.distance(trial)
                if i not in removed or saving > removed[i][0]:
                    removed[i] = (saving, name)
        if not removed:
            return candidates
        for i, (_, name) in removed.items():
            del candidates[i][name]


def _shrink(search: _Search, candidates: list[dict], points: int = 7) -> list[dict]:
    """Move each numeric change towards the original value as far as the flip allows.

    A batched multi-point bisection: every round tries ``points`` evenly spaced values between the
    nearest known non-flipping value (``lo``, at first the original) and the nearest known flipping
    one (``hi``), for all candidates in one model call, and keeps the first flipping value and the
    one before it.
    """
    candidates = [dict(c) for c in candidates]
    orders = []
    for c in candidates:
        numeric = [k for k in c if not search.features[k].categorical]
        numeric.sort(key=lambda k: -abs(float(c[k]) - float(search.original[k])) / search.features[k].scale)
        orders.append(numeric)
    fractions = np.arange(1, points + 1) / (points + 1)
    for position in range(max((len(o) for o in orders), default=0)):
        jobs = [(i, orders[i][position]) for i in range(len(candidates)) if position < len(orders[i])]
        lo = [float(search.original[name]) for _, name in jobs]
        hi = [float(candidates[i][name]) for i, name in jobs]
        for _ in range(64):
            trials, owners = [], []
            for a, (i, name) in enumerate(jobs):
                feature = search.features[name]
                if abs(hi[a] - lo[a]) <= (1.0 if feature.integer else LINE_SEARCH_TOL * feature.scale):
                    continue
                between = lo[a] + (hi[a] - lo[a]) * fractions
                if feature.integer:
                    between = np.unique(np.round(between))
                    between = between[(between - lo[a]) * (between - hi[a]) < 0]
                    between = between[np.argsort(np.abs(between - lo[a]))]
                owners.append((a, between))
                trials.extend({**candidates[i], name: float(v)} for v in between)
            if not owners:
                break
            flipped = search.flips(search.probability(trials))
            start = 0
            for a, between in owners:
                flags = flipped[start:start + len(between)]
                start += len(between)
                first = int(np.argmax(flags)) if flags.any() else len(between)
                if first < len(between):
                    hi[a] = float(between[first])
                if first > 0:
                    lo[a] = float(between[first - 1])
        for (i, name), value in zip(jobs, hi, strict=True):
            candidates[i][name] = value
    return candidates


def _pick_diverse(found: list[tuple[dict, float, float]], n: int) -> list[tuple[dict, float, float]]:
    """The n cheapest with different feature sets; a set containing an already chosen one only if needed."""
    found = sorted(found, key=lambda item: item[1])
    chosen: list[tuple[dict, float, float]] = []
    sets: list[frozenset] = []
    for allow_supersets in (False, True):
        for item in found:
            names = frozenset(item[0])
            if len(chosen) >= n or names in sets:
                continue
            if not allow_supersets and any(s <= names for s in sets):
                continue
            chosen.append(item)
            sets.append(names)
    return sorted(chosen, key=lambda item: item[1])


def counterfactuals(
    model: Any,
    row: Any,
    *,
    actionable: Sequence[str] | None = None,
    immutable: Sequence[str] = (),
    ranges: Mapping[str, Any] | None = None,
    n: int = 3,
    target: Any = None,
    threshold: float = 0.5,
    data: pd.DataFrame | None = None,
    max_changes: int | None = None,
    seed: int = 0,
    budget: int = 20_000,
    sparsity: float = 0.5,
    feature_names: Sequence[str] | None = None,
    class_index: Any = None,
) -> Counterfactuals:
    """Up to ``n`` small, different changes to ``row`` that move a binary classifier's decision to ``target``.

    The decision is ``probability >= threshold`` for the explained class (``class_index``; a
    binary classifier's second class by default). ``target`` defaults to the class the row is not
    in. Only ``actionable`` features change (default: every input not ``immutable``), each within
    ``ranges[feature]``: ``(low, high)`` (either end None for open) or a list of allowed values.
    ``data`` (training rows) gives each feature's scale (median absolute deviation), its plausible
    range (observed min to max when ``ranges`` does not say) and its categories; a numeric feature
    with neither data nor a range is not searched. ``max_changes`` caps the features changed at once
    (default 3); ``budget`` caps the candidate rows the search sends to the model; ``sparsity`` is
    the cost added per changed feature. ``seed`` fixes the sample of a large ``data`` (and the probes
    of a linear model).

    The distance is ``sum(|new - old| / scale)`` over numeric changes ``+ 1`` per changed category
    ``+ sparsity`` per change. For a linear model over numeric actionable features (see the module
    notes) the first result is the exact nearest change under that distance, placed 1e-9 in log-odds
    past the boundary, and each next one the nearest whose feature set contains none of the earlier
    ones; ``extra["method"]`` is then ``"linear"``. For any other model (``"search"``) the results are
    the nearest the search finds on its grid, refined to the boundary within :data:`LINE_SEARCH_TOL`
    of each feature's scale: not guaranteed to be the global optimum, and never farther than the
    nearest found with fewer features allowed.

    Returns a :class:`Counterfactuals`; when nothing flips the decision it is empty and ``message``
    says why.

    >>> import numpy as np, pandas as pd
    >>> from sklearn.linear_model import LogisticRegression
    >>> X = pd.DataFrame({"x": np.linspace(0, 10, 50), "y": np.tile([0.0, 1.0], 25)})
    >>> model = LogisticRegression().fit(X, (X["x"] > 5).astype(int))
    >>> found = counterfactuals(model, {"x": 2.0, "y": 0.0}, data=X, immutable=["y"], n=1)
    >>> found.to_frame()[["features_changed", "n_changes"]].to_dict("records")
    [{'features_changed': 'x', 'n_changes': 1}]
    >>> found.extra["method"]  # a logistic regression: the exact nearest change
    'linear'
    """
    f, x0 = _model_and_row(model, row, feature_names, output="probability", class_index=class_index)
    if f.kind == "regressor":
        raise ExplainError("counterfactuals need a binary classifier; this model is a regressor")
    if f.kind == "classifier" and len(f.classes or []) != 2:
        raise ExplainError(f"counterfactuals need a binary classifier; this one has {len(f.classes or [])} classes "
                           f"{f.classes}")
    if not 0 < threshold < 1:
        raise ExplainError(f"threshold={threshold!r}: expected a probability strictly between 0 and 1")
    if not isinstance(n, int | np.integer) or n < 1:
        raise ExplainError(f"n={n!r}: expected a whole number >= 1")
    if data is not None:
        if not isinstance(data, pd.DataFrame):
            data = pd.DataFrame(np.asarray(data), columns=f.feature_names)
        for name in f.feature_names:
            if name in data.columns and data[name].dtype != x0[name].dtype:
                with contextlib.suppress(TypeError, ValueError):
                    cast = x0[name].astype(data[name].dtype)
                    if _is_categorical(cast.dtype) or cast.iloc[0] == x0[name].iloc[0]:
                        x0[name] = cast
    names = f.feature_names
    immutable = [immutable] if isinstance(immutable, str) else list(immutable)
    actionable_given = actionable is not None
    actionable = ([actionable] if isinstance(actionable, str) else list(actionable)) if actionable_given \
        else [c for c in names if c not in set(immutable)]
    ranges = dict(ranges or {})
    for argument, given in (("actionable", actionable), ("immutable", immutable), ("ranges", list(ranges))):
        unknown = [c for c in given if c not in names]
        if unknown:
            raise ExplainError(f"{argument} names unknown feature(s) {unknown}; the model's inputs are {names}")
    both = [c for c in actionable if c in set(immutable)]
    if both:
        raise ExplainError(f"feature(s) {both} are both actionable and immutable: remove them from one of the two")

    if f.kind == "classifier":
        positive = f.classes[f.class_index]
        negative = f.classes[1 - f.class_index]
    else:
        positive, negative = 1, 0
    p0 = float(f(x0)[0])
    if f.kind != "classifier" and not 0 <= p0 <= 1:
        raise ExplainError(f"the model returned {p0!r} for the row: counterfactuals need a probability in [0, 1]")
    current = positive if p0 >= threshold else negative
    if target is None:
        target = negative if current == positive else positive
    if target not in (positive, negative):
        raise ExplainError(f"target={target!r} is not one of the model's classes {[negative, positive]}")
    if target == current:
        raise ExplainError(f"the row is already classified as {target!r} ({f.output} {p0:.4g}, threshold "
                           f"{threshold:g}): choose the other class as target")

    features, skipped = _features(f, x0, actionable, ranges, data, seed)
    max_changes = min(3 if max_changes is None else int(max_changes), len(features))
    search = _Search(f, x0, features, target == positive, threshold, sparsity)
    method, extra_calls, extra_rows = "search", 0, 0
    solutions, exhausted = ({}, False)
    linear = _linear_form(search, seed) if features and max_changes >= 1 else None
    exact = _linear_search(search, linear, n, max_changes) if linear is not None else None
    if linear is not None:
        extra_calls, extra_rows = 1, linear.rows  # the decision function's probes
    if exact is not None:
        method = "linear"
        search_rows = search.rows
        found = [(c, search.distance(c), float(pi)) for c, pi in zip(exact[0], exact[1], strict=True)]
    else:
        if features and max_changes >= 1:
            solutions, first, exhausted = _beam_search(search, max_changes, n, budget, beam=max(16, 4 * n))
        else:
            first = set()
        search_rows = search.rows
        refined = _shrink(search, _sparsify(search, [c for c, _ in _to_refine(solutions, first, n)]))
        p = search.probability(refined) if refined else np.empty(0)
        found = [(c, search.distance(c), float(pi)) for c, pi, ok in zip(refined, p, search.flips(p), strict=True)
                 if ok]
    chosen = _pick_diverse(found, n)

    message = ""
    if not chosen:
        searched = [feature.name for feature in features]
        how = ("solved exactly for this linear model" if method == "linear" else
               f"{search_rows} candidate rows tried{'; the budget ran out' if exhausted else ''}")
        message = (f"no change of at most {max_changes} of the searchable actionable features {searched} within their "
                   f"ranges moves the decision to {target!r} ({how})")
        if skipped:
            message += f"; not searched (no data, range or other value): {skipped}"
    elif len(chosen) < n:
        message = (f"found {len(chosen)} of the {n} asked for: no other set of at most {max_changes} features "
                   f"flips the decision{' within the budget' if exhausted else ''}")
    changes = [{k: _plain(c[k], search.features[k]) for k in names if k in c} for c, _, _ in chosen]
    rows = _apply(x0, changes) if changes else x0.iloc[:0].copy()
    return Counterfactuals(
        original=x0, original_probability=p0, target=target, threshold=float(threshold), output=f.output,
        changes=changes, rows=rows, distances=[d for _, d, _ in chosen], probabilities=[pi for _, _, pi in chosen],
        message=message,
        extra={"method": method, "model_calls": search.calls + extra_calls + 1,
               "model_rows": search.rows + extra_rows + 1, "search_rows": search_rows, "budget_exhausted": exhausted,
               "scales": {feature.name: feature.scale for feature in features}, "not_searched": skipped},
    )


def _plain(value: Any, feature: _Feature) -> Any:
    value = value.item() if isinstance(value, np.generic) else value
    return int(round(value)) if feature.integer else value
