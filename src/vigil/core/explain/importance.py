"""Global views of a model: which features matter overall, how the output moves with one feature, and drift.

- :func:`mean_abs_importance`: mean |attribution| per feature of an :class:`Explanation`.
- :func:`permutation_importance`: the drop in a metric when one raw input column is shuffled,
  with scikit-learn's permutation scheme (same seed, same permutations, same numbers) but one
  batched model call per feature.
- :func:`partial_dependence`: the average model output (PDP) and each row's output (ICE) as one
  feature walks a grid, everything else held at the row's values; :func:`partial_dependence_figure`
  draws it.
- :func:`explanation_drift`: how much the importance profile moved between two explanations.

>>> import numpy as np
>>> from vigil.core.explain.explanation import Explanation
>>> e = Explanation(method="exact", output="regression value", feature_names=["a", "b"],
...                 values=np.array([[1.0, -0.5], [-3.0, 0.5]]), expected_value=0.0,
...                 model_output=np.array([0.5, -2.5]), baseline="zeros")
>>> mean_abs_importance(e)[["feature", "mean_abs_attribution", "rank"]].to_dict("list")
{'feature': ['a', 'b'], 'mean_abs_attribution': [2.0, 0.5], 'rank': [1, 2]}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from vigil.core.explain.adapters import ExplainError, ModelFunction, as_model_function
from vigil.core.explain.explanation import Explanation

__all__ = [
    "DRIFT_THRESHOLD",
    "ExplanationDrift",
    "mean_abs_importance",
    "permutation_importance",
    "partial_dependence",
    "partial_dependence_figure",
    "explanation_drift",
]

#: Default alarm level of :func:`explanation_drift`'s score (share of attribution mass that moved).
DRIFT_THRESHOLD = 0.2

#: Rows sent to the model in one call; larger batches are cut into pieces of this size.
_MAX_BATCH_ROWS = 400_000


def mean_abs_importance(explanation: Explanation) -> pd.DataFrame:
    """Mean |attribution| and mean signed attribution per feature, most important first (rank 1).

    >>> import numpy as np
    >>> from vigil.core.explain.explanation import Explanation
    >>> e = Explanation(method="exact", output="model output", feature_names=["x", "y"],
    ...                 values=np.array([[0.2, -1.0], [0.2, 3.0]]), expected_value=0.0,
    ...                 model_output=np.array([-0.8, 3.2]), baseline="zeros")
    >>> mean_abs_importance(e).round(2).to_dict("records")[0]
    {'feature': 'y', 'mean_abs_attribution': 2.0, 'mean_attribution': 1.0, 'rank': 1}
    """
    if not isinstance(explanation, Explanation):
        raise ExplainError(f"explanation: expected an Explanation, got {type(explanation).__name__}")
    values = explanation.values
    frame = pd.DataFrame({
        "feature": list(explanation.feature_names),
        "mean_abs_attribution": np.abs(values).mean(axis=0) if len(values) else np.zeros(values.shape[1]),
        "mean_attribution": values.mean(axis=0) if len(values) else np.zeros(values.shape[1]),
    })
    return _ranked(frame, "mean_abs_attribution")


def _ranked(frame: pd.DataFrame, column: str) -> pd.DataFrame:
    order = np.argsort(-frame[column].to_numpy(dtype=float), kind="stable")
    frame = frame.iloc[order].reset_index(drop=True)
    frame["rank"] = np.arange(1, len(frame) + 1)
    return frame


# -- permutation importance ----------------------------------------------------------------------------------


def _frame_of(data: Any, names: Sequence[str] | None, argument: str = "data") -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        return data
    arr = np.asarray(data)
    if arr.ndim != 2:
        raise ExplainError(f"{argument}: expected a DataFrame or a 2-D array, got shape {arr.shape}")
    if names is None:
        names = [f"x{i}" for i in range(arr.shape[1])]
    if len(names) != arr.shape[1]:
        raise ExplainError(f"{argument} has {arr.shape[1]} columns but feature_names has {len(names)}: {list(names)}")
    return pd.DataFrame(arr, columns=list(names)).infer_objects()


def _model_function(model: Any, frame: pd.DataFrame, feature_names: Sequence[str] | None,
                    **kwargs: Any) -> ModelFunction:
    names = feature_names
    if names is None and isinstance(model, ModelFunction):
        names = model.feature_names
    if names is None and getattr(model, "feature_names_in_", None) is None:
        names = [str(c) for c in frame.columns]
    return as_model_function(model, names, **kwargs)


@dataclass(frozen=True)
class _Metric:
    name: str
    response: str  # "predict", "score" (ranking score of the class), "proba" (all columns) or "scorer"
    function: Callable[..., float] | None = None


def _metric_table() -> dict[str, _Metric]:
    from sklearn import metrics as m

    def labels(fn: Callable[..., float], **kw: Any) -> Callable[..., float]:
        return lambda y, r, ctx: fn(y, r, **kw)

    def binary(fn: Callable[..., float], sign: float = 1.0) -> Callable[..., float]:
        return lambda y, r, ctx: sign * fn(np.asarray(y) == ctx["label"], r)

    def positive(fn: Callable[..., float]) -> Callable[..., float]:
        return lambda y, r, ctx: fn(y, r, pos_label=ctx["label"])

    return {
        "accuracy": _Metric("accuracy", "predict", labels(m.accuracy_score)),
        "balanced_accuracy": _Metric("balanced_accuracy", "predict", labels(m.balanced_accuracy_score)),
        "f1": _Metric("f1", "predict", positive(m.f1_score)),
        "precision": _Metric("precision", "predict", positive(m.precision_score)),
        "recall": _Metric("recall", "predict", positive(m.recall_score)),
        "roc_auc": _Metric("roc_auc", "score", binary(m.roc_auc_score)),
        "average_precision": _Metric("average_precision", "score", binary(m.average_precision_score)),
        "neg_brier_score": _Metric("neg_brier_score", "probability", binary(m.brier_score_loss, -1.0)),
        "neg_log_loss": _Metric("neg_log_loss", "proba",
                                lambda y, r, ctx: -m.log_loss(y, r, labels=ctx["classes"])),
        "r2": _Metric("r2", "predict", labels(m.r2_score)),
        "explained_variance": _Metric("explained_variance", "predict", labels(m.explained_variance_score)),
        "neg_mean_squared_error": _Metric("neg_mean_squared_error", "predict",
                                          lambda y, r, ctx: -m.mean_squared_error(y, r)),
        "neg_root_mean_squared_error": _Metric("neg_root_mean_squared_error", "predict",
                                               lambda y, r, ctx: -m.root_mean_squared_error(y, r)),
        "neg_mean_absolute_error": _Metric("neg_mean_absolute_error", "predict",
                                           lambda y, r, ctx: -m.mean_absolute_error(y, r)),
    }


def _resolve_metric(metric: Any, f: ModelFunction) -> _Metric:
    if callable(metric):
        return _Metric(getattr(metric, "__name__", type(metric).__name__), "scorer", metric)
    if not isinstance(metric, str):
        raise ExplainError(f"metric={metric!r}: give a metric name or a scorer function(model, X, y)")
    table = _metric_table()
    if metric == "auto":
        return table["accuracy" if f.kind == "classifier" else "r2"]
    if metric in table:
        return table[metric]
    from sklearn.metrics import get_scorer, get_scorer_names

    if metric in get_scorer_names():
        return _Metric(metric, "scorer", get_scorer(metric))
    raise ExplainError(f"metric={metric!r} is not known: use 'auto', one of {sorted(table)}, any scikit-learn "
                       "scorer name, or a scorer function(model, X, y) (higher is better)")


def _response(f: ModelFunction, metric: _Metric, prepared: Any) -> np.ndarray:
    model = f.model
    if metric.response == "predict":
        if f.kind in ("classifier", "regressor"):
            return np.asarray(model.predict(prepared))
        if metric.name not in ("r2", "explained_variance") and not metric.name.startswith("neg_"):
            raise ExplainError(f"metric={metric.name!r} needs class decisions from model.predict; this "
                               f"{f.kind} model only gives its output: use a regression metric or 'roc_auc'")
        return np.asarray(f.predict_fn(prepared), dtype=float)
    if metric.response == "proba":
        if f.kind != "classifier":
            raise ExplainError(f"metric={metric.name!r} needs predict_proba; the model is a {f.kind}")
        return np.asarray(model.predict_proba(prepared))
    if metric.response == "score" and f.kind == "classifier" and f.classes is not None and len(f.classes) == 2 \
            and hasattr(model, "decision_function"):
        # scikit-learn's ranking scorers prefer the decision function; the positive class decides its sign
        score = np.asarray(model.decision_function(prepared), dtype=float)
        return score if f.class_index == 1 else -score
    return np.asarray(f.predict_fn(prepared), dtype=float)


def permutation_importance(
    model: Any,
    data: Any,
    y: Any,
    *,
    metric: str | Callable[..., float] = "auto",
    n_repeats: int = 5,
    seed: int = 0,
    feature_names: Sequence[str] | None = None,
    class_index: Any = None,
) -> pd.DataFrame:
    """How much a metric drops when one raw input column is shuffled (higher = more important).

    ``metric``: "auto" (accuracy of the decisions for classifiers, R² for regressors, as
    ``model.score``), a name ("roc_auc", "neg_log_loss", "f1", "r2", "neg_mean_squared_error"... or
    any scikit-learn scorer name) or a scorer ``metric(model, X, y)`` where higher is better.
    Raw columns are permuted, so a Pipeline sees whole shuffled inputs (categorical ones included);
    columns of ``data`` the model does not take are left out.
    The permutations are scikit-learn's for ``random_state=seed``: the numbers equal
    ``sklearn.inspection.permutation_importance``; the model is called once per feature on all
    ``n_repeats`` shuffled copies at once. ``class_index`` picks the positive class of ranking
    metrics (default: a binary classifier's second class).

    Returns feature, importance_mean, importance_std (over repeats, ddof=0) and rank, most important
    first; ``attrs`` holds metric, baseline_score, n_repeats and model_calls.

    >>> from sklearn.linear_model import LogisticRegression
    >>> X = [[1, 9], [1, 8], [1, 9], [0, 8], [0, 9], [0, 8]]
    >>> y = [1, 1, 1, 0, 0, 0]
    >>> model = LogisticRegression().fit(X, y)
    >>> permutation_importance(model, X, y, n_repeats=10, feature_names=["a", "b"]).round(4).to_dict("list")
    {'feature': ['a', 'b'], 'importance_mean': [0.4667, 0.0], 'importance_std': [0.2211, 0.0], 'rank': [1, 2]}
    """
    if not isinstance(n_repeats, int | np.integer) or n_repeats < 1:
        raise ExplainError(f"n_repeats={n_repeats!r}: expected a whole number >= 1")
    if not isinstance(seed, int | np.integer):
        raise ExplainError(f"seed={seed!r}: expected an integer")
    frame = _frame_of(data, feature_names)
    f = _model_function(model, frame, feature_names, class_index=class_index)
    missing = [c for c in f.feature_names if c not in frame.columns]
    if missing:
        raise ExplainError(f"data lacks the model's input column(s) {missing}")
    X = frame[f.feature_names].reset_index(drop=True)
    y_arr = np.asarray(y)
    if len(y_arr) != len(X):
        raise ExplainError(f"y has {len(y_arr)} values for {len(X)} rows of data")
    resolved = _resolve_metric(metric, f)
    ctx = {"label": None if f.classes is None else f.classes[f.class_index or 0], "classes": f.classes}
    if f.kind != "classifier":
        ctx["label"] = 1

    def score(rows: pd.DataFrame, y_part: np.ndarray) -> float:
        prepared = f.prepare(rows)
        if resolved.response == "scorer":
            return float(resolved.function(f.model, prepared, y_part))
        return float(resolved.function(y_part, _response(f, resolved, prepared), ctx))

    n = len(X)
    baseline = score(X, y_arr)
    calls = 1
    # scikit-learn draws one seed, then restarts a RandomState from it for every column and shuffles
    # the (already shuffled) column again at each repeat
    column_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    orders = np.empty((n_repeats, n), dtype=np.intp)
    rng = np.random.RandomState(column_seed)
    shuffling = np.arange(n)
    current = np.arange(n)
    for r in range(n_repeats):
        rng.shuffle(shuffling)
        current = current[shuffling]
        orders[r] = current

    importances = np.empty((len(X.columns), n_repeats))
    if resolved.response == "scorer":
        for j, name in enumerate(X.columns):
            copy = X.copy()
            for r in range(n_repeats):
                copy[name] = X[name].array.take(orders[r])
                importances[j, r] = baseline - score(copy, y_arr)
                calls += 1
    else:
        stacked = X.iloc[np.tile(np.arange(n), n_repeats)].reset_index(drop=True)
        for j, name in enumerate(X.columns):
            stacked[name] = X[name].array.take(orders.ravel())
            response = _batched_response(f, resolved, stacked)
            calls += -(-len(stacked) // _MAX_BATCH_ROWS)
            for r in range(n_repeats):
                importances[j, r] = baseline - float(resolved.function(y_arr, response[r * n:(r + 1) * n], ctx))
            stacked[name] = X[name].array.take(np.tile(np.arange(n), n_repeats))
    out = pd.DataFrame({
        "feature": [str(c) for c in X.columns],
        "importance_mean": importances.mean(axis=1),
        "importance_std": importances.std(axis=1),
    })
    out = _ranked(out, "importance_mean")
    out.attrs.update(metric=resolved.name, baseline_score=baseline, n_repeats=int(n_repeats), model_calls=calls)
    return out


def _batched_response(f: ModelFunction, metric: _Metric, rows: pd.DataFrame) -> np.ndarray:
    parts = [_response(f, metric, f.prepare(rows.iloc[start:start + _MAX_BATCH_ROWS]))
             for start in range(0, len(rows), _MAX_BATCH_ROWS)]
    return np.concatenate(parts, axis=0)


# -- partial dependence --------------------------------------------------------------------------------------


def _is_categorical(series: pd.Series) -> bool:
    return not pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)


def _grid(series: pd.Series, grid: Any, percentiles: tuple[float, float]) -> np.ndarray:
    if grid is not None and not isinstance(grid, int | np.integer):
        values = np.asarray(list(grid), dtype=object if _is_categorical(series) else float)
        if values.ndim != 1 or len(values) == 0:
            raise ExplainError("grid: expected a number of points or a non-empty list of values")
        return values
    points = 20 if grid is None else int(grid)
    if points < 2:
        raise ExplainError(f"grid={grid!r}: ask for at least 2 points")
    present = series.dropna()
    if len(present) == 0:
        raise ExplainError(f"feature {series.name!r} has no values to build a grid from")
    if _is_categorical(series):
        if isinstance(series.dtype, pd.CategoricalDtype):
            seen = set(present.unique())
            return np.asarray([c for c in series.cat.categories if c in seen], dtype=object)
        return np.asarray(sorted(present.unique(), key=str), dtype=object)
    numbers = present.to_numpy(dtype=float)
    unique = np.unique(numbers)
    if len(unique) <= points:
        return unique
    low, high = percentiles
    if not 0 <= low < high <= 1:
        raise ExplainError(f"percentiles={percentiles!r}: expected 0 <= low < high <= 1")
    return np.unique(np.quantile(numbers, np.linspace(low, high, points)))


def _with_column(rows: pd.DataFrame, name: str, values: np.ndarray, template: pd.Series) -> pd.DataFrame:
    rows = rows.copy()
    if isinstance(template.dtype, pd.CategoricalDtype):
        rows[name] = pd.Categorical(values, categories=template.cat.categories)
    elif _is_categorical(template):
        rows[name] = pd.Series(values, dtype=object).astype(template.dtype)
    else:
        rows[name] = np.asarray(values, dtype=float)
    return rows


def partial_dependence(
    model: Any,
    data: Any,
    feature: str,
    *,
    grid: int | Sequence[Any] | None = None,
    kind: str = "average",
    sample: int | None = 1_000,
    output: str = "auto",
    class_index: Any = None,
    feature_names: Sequence[str] | None = None,
    percentiles: tuple[float, float] = (0.05, 0.95),
    seed: int = 0,
) -> pd.DataFrame:
    """The model output as ``feature`` walks a grid, all other inputs kept at each row's values.

    The grid: a numeric feature gets ``grid`` (default 20) quantiles between ``percentiles`` of
    its values (all its distinct values if there are fewer), a categorical one its categories; a
    list gives the grid directly. ``sample`` rows of ``data`` are used (a seeded random subset; None
    for all). ``kind``: "average" (the partial dependence curve), "individual" (one ICE curve per
    row) or "both". ``output`` as for :func:`~vigil.core.explain.adapters.as_model_function`
    (probability of the positive class for classifiers, the prediction for regressors).

    Returns one long frame with columns feature, kind ("average" or "individual"), row (the row's
    position in ``data``; missing for the average), value (the grid value) and prediction;
    ``attrs["output"]`` says what the prediction is.

    >>> import pandas as pd
    >>> from sklearn.linear_model import LinearRegression
    >>> X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
    >>> model = LinearRegression().fit(X, 2 * X["a"] + X["b"])
    >>> pd_frame = partial_dependence(model, X, "a", grid=[0.0, 10.0])
    >>> pd_frame[["value", "prediction"]].round(6).to_dict("list")
    {'value': [0.0, 10.0], 'prediction': [0.5, 20.5]}
    """
    if kind not in ("average", "individual", "both"):
        raise ExplainError(f"kind={kind!r}: choose 'average', 'individual' or 'both'")
    frame = _frame_of(data, feature_names)
    f = _model_function(model, frame, feature_names, output=output, class_index=class_index)
    if feature not in f.feature_names:
        raise ExplainError(f"feature={feature!r} is not one of the model's inputs {f.feature_names}")
    missing = [c for c in f.feature_names if c not in frame.columns]
    if missing:
        raise ExplainError(f"data lacks the model's input column(s) {missing}")
    X = frame[f.feature_names]
    positions = np.arange(len(X))
    if sample is not None and len(X) > sample:
        positions = np.sort(np.random.default_rng(seed).choice(len(X), size=int(sample), replace=False))
        X = X.iloc[positions]
    X = X.reset_index(drop=True)
    values = _grid(frame[feature], grid, percentiles)
    m, k = len(X), len(values)
    if m == 0:
        raise ExplainError("data has no rows")
    per_call = max(1, _MAX_BATCH_ROWS // m)
    predictions = np.empty((k, m))
    calls = 0
    for start in range(0, k, per_call):
        chunk = values[start:start + per_call]
        stacked = X.iloc[np.tile(np.arange(m), len(chunk))].reset_index(drop=True)
        stacked = _with_column(stacked, feature, np.repeat(chunk, m), frame[feature])
        predictions[start:start + len(chunk)] = f(stacked).reshape(len(chunk), m)
        calls += 1
    parts = []
    if kind in ("average", "both"):
        parts.append(pd.DataFrame({"feature": feature, "kind": "average", "row": pd.array([None] * k, dtype="Int64"),
                                   "value": values, "prediction": predictions.mean(axis=1)}))
    if kind in ("individual", "both"):
        parts.append(pd.DataFrame({"feature": feature, "kind": "individual",
                                   "row": pd.array(np.tile(positions, k), dtype="Int64"),
                                   "value": np.repeat(values, m), "prediction": predictions.ravel()}))
    out = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
    out.attrs.update(output=f.output, rows=m, model_calls=calls)
    return out


def partial_dependence_figure(frame: pd.DataFrame, *, ice_lines: int = 20, title: str | None = None) -> Any:
    """A plotly figure of a :func:`partial_dependence` frame: the average curve over up to ``ice_lines`` ICE curves.

    >>> frame = pd.DataFrame({"feature": "a", "kind": ["average"] * 2 + ["individual"] * 4,
    ...                       "row": [None, None, 0, 1, 0, 1], "value": [0, 1, 0, 0, 1, 1],
    ...                       "prediction": [0.5, 1.5, 0.0, 1.0, 1.0, 2.0]})
    >>> [trace.name for trace in partial_dependence_figure(frame).data]
    ['ICE', None, 'partial dependence']
    """
    import plotly.graph_objects as go

    required = {"feature", "kind", "row", "value", "prediction"}
    if not required <= set(frame.columns):
        raise ExplainError(f"frame lacks column(s) {sorted(required - set(frame.columns))}: "
                           "give the output of partial_dependence")
    figure = go.Figure()
    ice = frame[frame["kind"] == "individual"]
    rows = pd.unique(ice["row"])
    if len(rows) > ice_lines:
        rows = rows[np.linspace(0, len(rows) - 1, ice_lines).round().astype(int)]
    for i, row in enumerate(rows):
        line = ice[ice["row"] == row]
        figure.add_trace(go.Scatter(x=line["value"], y=line["prediction"], mode="lines",
                                    line={"color": "rgba(120, 120, 120, 0.35)", "width": 1},
                                    name="ICE" if i == 0 else None, showlegend=i == 0, legendgroup="ice",
                                    hovertemplate=f"row {row}<br>%{{x}}: %{{y:.4g}}<extra></extra>"))
    average = frame[frame["kind"] == "average"]
    if len(average):
        figure.add_trace(go.Scatter(x=average["value"], y=average["prediction"], mode="lines+markers",
                                    line={"color": "#1f4e9c", "width": 3}, name="partial dependence"))
    feature = str(frame["feature"].iloc[0]) if len(frame) else "feature"
    figure.update_layout(title=title or f"Partial dependence on {feature}", xaxis_title=feature,
                         yaxis_title=frame.attrs.get("output", "prediction"), template="plotly_white")
    return figure


# -- explanation drift ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ExplanationDrift:
    """How far the importance profile moved from ``reference`` to ``current``.

    ``score`` is the total variation distance between the two importance *distributions*
    (each feature's share of the summed mean |attribution|): half the L1 distance, in [0, 1] — the
    fraction of attribution mass that moved between features. It ignores a change of overall
    scale (see ``table``'s change column for that). ``drifted`` is ``score > threshold``.
    """

    score: float
    threshold: float
    drifted: bool
    rank_correlation: float
    top_k: int
    top_k_overlap: float
    largest_mover: str | None
    table: pd.DataFrame = field(repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The summary numbers (without the table), JSON-ready."""
        return {"score": self.score, "threshold": self.threshold, "drifted": self.drifted,
                "rank_correlation": self.rank_correlation, "top_k": self.top_k,
                "top_k_overlap": self.top_k_overlap, "largest_mover": self.largest_mover}


def _importance_vectors(value: Any, argument: str) -> tuple[pd.Series, pd.Series | None, str | None]:
    if isinstance(value, Explanation):
        frame = mean_abs_importance(value)
        return (pd.Series(frame["mean_abs_attribution"].to_numpy(), index=frame["feature"]),
                pd.Series(frame["mean_attribution"].to_numpy(), index=frame["feature"]), value.output)
    if isinstance(value, pd.DataFrame):
        if "feature" not in value.columns:
            raise ExplainError(f"{argument}: an importance frame needs a 'feature' column")
        for column in ("mean_abs_attribution", "importance_mean", "importance"):
            if column in value.columns:
                importance = pd.Series(value[column].to_numpy(dtype=float), index=value["feature"].astype(str))
                signed = (pd.Series(value["mean_attribution"].to_numpy(dtype=float), index=importance.index)
                          if "mean_attribution" in value.columns else None)
                return importance, signed, None
        raise ExplainError(f"{argument}: an importance frame needs a 'mean_abs_attribution', 'importance_mean' or "
                           f"'importance' column; it has {list(value.columns)}")
    if isinstance(value, pd.Series | Mapping):
        series = pd.Series(value, dtype=float)
        return pd.Series(series.to_numpy(), index=series.index.astype(str)), None, None
    arr = np.asarray(value, dtype=float)
    if arr.ndim != 1:
        raise ExplainError(f"{argument}: expected an Explanation, an importance frame, a Series/dict of feature "
                           f"importances or a 1-D vector; got shape {arr.shape}")
    return pd.Series(arr, index=[str(i) for i in range(len(arr))]), None, None


def explanation_drift(
    reference: Any,
    current: Any,
    *,
    top_k: int = 10,
    threshold: float = DRIFT_THRESHOLD,
) -> ExplanationDrift:
    """Compare two explanations (or importance frames, or feature → importance mappings).

    Per feature (``table``): mean |attribution| in each, change, relative change, share of the total
    in each, share change, ranks, and the shift of the mean signed attribution (when both sides
    carry it). Summary: ``score`` = total variation distance between the importance shares (see
    :class:`ExplanationDrift`), Spearman rank correlation of the importances
    (``scipy.stats.spearmanr``), Jaccard overlap of the top-k features, and the largest mover (the
    feature whose share changed most). A feature missing on one side counts as importance 0;
    permutation importances below 0 count as 0.

    >>> ref = {"age": 0.5, "income": 0.3, "tenure": 0.2}
    >>> cur = {"age": 0.1, "income": 0.3, "tenure": 0.2}
    >>> d = explanation_drift(ref, cur)
    >>> round(d.score, 3), d.drifted, d.largest_mover
    (0.333, True, 'age')
    """
    if not 0 <= threshold <= 1:
        raise ExplainError(f"threshold={threshold!r}: the score lies in [0, 1]")
    if not isinstance(top_k, int | np.integer) or top_k < 1:
        raise ExplainError(f"top_k={top_k!r}: expected a whole number >= 1")
    ref_imp, ref_signed, ref_output = _importance_vectors(reference, "reference")
    cur_imp, cur_signed, cur_output = _importance_vectors(current, "current")
    if ref_output is not None and cur_output is not None and ref_output != cur_output:
        raise ExplainError(f"reference explains {ref_output!r} but current explains {cur_output!r}: "
                           "compare explanations of the same output")
    features = list(ref_imp.index) + [c for c in cur_imp.index if c not in set(ref_imp.index)]
    ref = ref_imp.reindex(features).fillna(0.0).clip(lower=0.0).to_numpy()
    cur = cur_imp.reindex(features).fillna(0.0).clip(lower=0.0).to_numpy()
    ref_share = ref / ref.sum() if ref.sum() > 0 else np.zeros_like(ref)
    cur_share = cur / cur.sum() if cur.sum() > 0 else np.zeros_like(cur)
    score = float(np.clip(0.5 * np.abs(cur_share - ref_share).sum(), 0.0, 1.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(ref > 0, (cur - ref) / np.where(ref > 0, ref, 1.0), np.where(cur > 0, np.inf, 0.0))
    shift = (cur_signed.reindex(features).fillna(0.0) - ref_signed.reindex(features).fillna(0.0)).to_numpy() \
        if ref_signed is not None and cur_signed is not None else np.full(len(features), np.nan)
    ref_rank = stats.rankdata(-ref, method="min").astype(int)
    cur_rank = stats.rankdata(-cur, method="min").astype(int)
    table = pd.DataFrame({
        "feature": features,
        "reference_importance": ref,
        "current_importance": cur,
        "change": cur - ref,
        "relative_change": relative,
        "reference_share": ref_share,
        "current_share": cur_share,
        "share_change": cur_share - ref_share,
        "reference_rank": ref_rank,
        "current_rank": cur_rank,
        "mean_attribution_shift": shift,
    })
    table = table.iloc[np.argsort(-np.abs(table["share_change"].to_numpy()), kind="stable")].reset_index(drop=True)
    if len(features) > 1 and np.ptp(ref) > 0 and np.ptp(cur) > 0:
        rank_correlation = float(stats.spearmanr(ref, cur).statistic)
    else:
        rank_correlation = float("nan")
    k = min(int(top_k), len(features))
    top_ref = {features[i] for i in np.argsort(-ref, kind="stable")[:k]}
    top_cur = {features[i] for i in np.argsort(-cur, kind="stable")[:k]}
    overlap = len(top_ref & top_cur) / len(top_ref | top_cur) if top_ref | top_cur else 1.0
    mover = str(table["feature"].iloc[0]) if len(table) and table["share_change"].abs().iloc[0] > 0 else None
    return ExplanationDrift(score=score, threshold=float(threshold), drifted=score > threshold,
                            rank_correlation=rank_correlation, top_k=k, top_k_overlap=float(overlap),
                            largest_mover=mover, table=table)
