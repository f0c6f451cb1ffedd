"""Exact TreeSHAP for tree ensembles: XGBoost, LightGBM and scikit-learn trees, alone or at the end of a pipeline.

``tree_shap`` explains what the trees add up to: the margin of a boosted model (log-odds for a binary
classifier, the raw score of each class for a multiclass one, the prediction of a regressor) or the
averaged leaf class fractions of a scikit-learn forest (the probability). Two games are available:

- ``feature_perturbation="path_dependent"`` (default): a feature left out follows every branch in
  proportion to the training cover recorded in the trees (Lundberg et al., 2020, Algorithm 2).
- ``feature_perturbation="interventional"``: a feature left out takes its value from background rows
  (at most ``max_background``, sampled); the expected value is the mean output over them.

Both are exact, and computed the same way: every leaf's share depends on a row only through which of
its path features the row passes, so a table per leaf (built once per call) turns each row into one
walk over the leaves (``_treeshap_kernels``). A scikit-learn ``Pipeline`` is explained on its
transformed features, then the attributions are summed back to the raw input columns (all one-hot
columns of "workclass" into "workclass"), which keeps efficiency exact.

>>> import numpy as np
>>> from sklearn.tree import DecisionTreeRegressor
>>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
>>> tree = DecisionTreeRegressor(max_depth=2).fit(X, [0.0, 1.0, 2.0, 5.0])
>>> e = tree_shap(tree, X, feature_names=["a", "b"])
>>> e.output, e.efficiency_gap() < 1e-12
('regression value', True)
"""

from __future__ import annotations

import itertools
import json
import os
import struct
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from vigil.core.explain.adapters import ExplainError, class_position
from vigil.core.explain.explanation import Explanation

try:
    from vigil.core.explain import _treeshap_kernels as _kernels
except ImportError:  # numba missing: shap's TreeExplainer does the work
    _kernels = None

PERTURBATIONS = ("path_dependent", "interventional")
MAX_BACKGROUND = 100
TABLE_BUDGET_MB = 128.0  # per-leaf tables beyond this are not built: those leaves are solved per row
TABLE_MAX_SLOTS = 16

_SKLEARN_FORESTS = {
    "DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier", "ExtraTreeRegressor",
    "RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor",
}
_SKLEARN_BOOSTERS = {
    "GradientBoostingClassifier", "GradientBoostingRegressor",
    "HistGradientBoostingClassifier", "HistGradientBoostingRegressor",
}
_ISOLATION_FOREST = "IsolationForest"
_LOG_LINK = {"count:poisson", "reg:gamma", "reg:tweedie", "poisson", "gamma", "tweedie", "survival:cox"}
_IDENTITY = {
    "reg:squarederror", "reg:linear", "reg:absoluteerror", "reg:pseudohubererror", "reg:quantileerror",
    "reg:squaredlogerror", "regression", "regression_l2", "l2", "mse", "mean_squared_error", "rmse",
    "regression_l1", "l1", "mae", "huber", "fair", "quantile", "mape", "squared_error", "absolute_error",
}
_BINARY = {"binary:logistic", "binary:logitraw", "reg:logistic", "binary", "cross_entropy", "xentropy"}


@dataclass
class _Trees:
    """A single-output ensemble as flat node arrays (all trees concatenated), plus what its sum means."""

    tree_node_start: np.ndarray
    left: np.ndarray
    right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    kind: np.ndarray
    default_left: np.ndarray
    cover: np.ndarray
    value: np.ndarray
    base_offset: float
    n_features: int
    input_dtype: Any
    output_kind: str  # "log-odds", "probability", "margin" or "raw"
    output_text: str
    library: str
    names: list[str] | None = None
    categorical: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def n_trees(self) -> int:
        return len(self.tree_node_start) - 1


def _in_order(tree: dict[str, Any]) -> dict[str, np.ndarray]:
    """The tree with its reachable nodes only, each after its parent (the row kernel's single pass needs it)."""
    tree = {k: np.asarray(v) for k, v in tree.items()}
    feature, left, right = tree["feature"], tree["left"].astype(np.int64), tree["right"].astype(np.int64)
    inner = np.flatnonzero(feature >= 0)
    children = np.concatenate([left[inner], right[inner]])
    n = len(feature)
    if (np.all(left[inner] > inner) and np.all(right[inner] > inner)
            and np.array_equal(np.sort(children), np.arange(1, n))):
        return tree
    order, queue = [], deque([0])
    while queue:
        node = queue.popleft()
        order.append(node)
        if feature[node] >= 0:
            queue.extend((int(left[node]), int(right[node])))
    order = np.array(order, dtype=np.int64)
    renumber = np.full(n, -1, np.int64)
    renumber[order] = np.arange(len(order))
    out = {k: v[order] for k, v in tree.items()}
    is_inner = out["feature"] >= 0
    out["left"] = np.where(is_inner, renumber[np.where(is_inner, out["left"], 0)], -1)
    out["right"] = np.where(is_inner, renumber[np.where(is_inner, out["right"], 0)], -1)
    return out


def _concat(trees: list[dict[str, np.ndarray]], **meta: Any) -> _Trees:
    trees = [_in_order(t) for t in trees]
    sizes = np.array([len(t["feature"]) for t in trees], dtype=np.int64)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)

    def cat(key: str, dtype: Any) -> np.ndarray:
        return np.concatenate([np.asarray(t[key], dtype=dtype) for t in trees]) if trees else np.zeros(0, dtype)

    offsets = np.repeat(starts[:-1], sizes)
    left, right = cat("left", np.int64), cat("right", np.int64)
    feature = cat("feature", np.int64)
    inner = feature >= 0
    left = np.where(inner, left + offsets, -1)
    right = np.where(inner, right + offsets, -1)
    return _Trees(starts, left, right, feature, cat("threshold", np.float64), cat("kind", np.int8),
                  cat("default_left", np.int8), cat("cover", np.float64), cat("value", np.float64), **meta)


# -- which models -------------------------------------------------------------------------------------------

def _class_names(model: Any) -> set[str]:
    return {f"{c.__module__.split('.')[0]}.{c.__name__}" for c in type(model).__mro__}


def _sklearn_kind(model: Any) -> str | None:
    """The scikit-learn tree model ``model`` is or derives from ("RandomForestRegressor"...), else None.

    Classes of other packages built on a scikit-learn forest (scikit-optimize's, for example) keep its trees
    in ``estimators_``/``tree_``, so they are read like the scikit-learn class they derive from.
    """
    known = _SKLEARN_FORESTS | _SKLEARN_BOOSTERS | {_ISOLATION_FOREST}
    for cls in type(model).__mro__:
        if cls.__module__.startswith("sklearn.") and cls.__name__ in known:
            return cls.__name__
    return None


def _library(model: Any) -> str | None:
    names = _class_names(model)
    if names & {"xgboost.XGBModel", "xgboost.Booster"}:
        return "xgboost"
    if names & {"lightgbm.LGBMModel", "lightgbm.Booster"}:
        return "lightgbm"
    if names & {"catboost.CatBoost"}:
        return "catboost"
    if _sklearn_kind(model) is not None:
        return "sklearn"
    return None


def _split_pipeline(model: Any) -> tuple[Any, Any]:
    """(final estimator, the transforming steps before it or None)."""
    if "sklearn.Pipeline" in _class_names(model) and hasattr(model, "steps"):
        final = model.steps[-1][1]
        return final, (model[:-1] if len(model.steps) > 1 else None)
    return model, None


def tree_supports(model: Any) -> bool:
    """Whether ``tree_shap`` can explain ``model`` (a tree ensemble, or a Pipeline ending in one).

    >>> from sklearn.ensemble import IsolationForest, RandomForestRegressor
    >>> from sklearn.linear_model import LinearRegression
    >>> tree_supports(RandomForestRegressor()), tree_supports(IsolationForest()), tree_supports(LinearRegression())
    (True, True, False)
    """
    final, _ = _split_pipeline(model)
    library = _library(final)
    if library == "xgboost":
        booster = final if hasattr(final, "save_raw") else getattr(final, "booster", "gbtree")
        return booster != "gblinear"
    return library is not None


# -- classes ------------------------------------------------------------------------------------------------

def _objective_text(objective: str, n_classes: int, label: Any) -> tuple[str, str]:
    if n_classes > 2:
        return "margin", f"margin of class {label} (softmax input)"
    if objective in _BINARY:
        return "log-odds", f"log-odds of class {label}"
    if objective in _IDENTITY:
        return "raw", "regression value"
    if objective in _LOG_LINK:
        return "raw", "log of the predicted mean"
    return "raw", f"raw score ({objective})"


# -- parsers --------------------------------------------------------------------------------------------------

_NUM = {b"i": ">i1", b"U": ">u1", b"I": ">i2", b"l": ">i4", b"L": ">i8", b"d": ">f4", b"D": ">f8"}
_STRUCT = {tag: struct.Struct(code) for tag, code in
           {b"i": ">b", b"U": ">B", b"I": ">h", b"l": ">i", b"L": ">q", b"d": ">f", b"D": ">d"}.items()}


def _ubjson(buf: bytes) -> Any:
    """Decode UBJSON (XGBoost's raw model format); typed arrays come back as (big-endian) numpy arrays."""
    view = memoryview(buf)

    def number(tag, at):
        unpack = _STRUCT[tag]
        return unpack.unpack_from(view, at)[0], at + unpack.size

    def length(at):
        tag = bytes(view[at:at + 1])
        return number(tag, at + 1)

    def value(tag, at):
        if tag in _NUM:
            return number(tag, at)
        if tag == b"S" or tag == b"H":
            n, at = length(at)
            return bytes(view[at:at + n]).decode("utf-8"), at + n
        if tag == b"C":
            return bytes(view[at:at + 1]).decode("latin1"), at + 1
        if tag in (b"T", b"F", b"Z"):
            return {b"T": True, b"F": False, b"Z": None}[tag], at
        if tag == b"[":
            return array(at)
        if tag == b"{":
            return obj(at)
        raise ValueError(f"UBJSON tag {tag!r} at {at - 1}")

    def container(at):
        kind = count = None
        if view[at:at + 1] == b"$":
            kind, at = bytes(view[at + 1:at + 2]), at + 2
        if view[at:at + 1] == b"#":
            count, at = length(at + 1)
        return kind, count, at

    def array(at):
        kind, count, at = container(at)
        if kind in _NUM and count is not None:
            dt = np.dtype(_NUM[kind])
            return np.frombuffer(view, dt, count, at), at + count * dt.itemsize
        out = []
        while count is None or len(out) < count:
            tag = kind or bytes(view[at:at + 1])
            if kind is None:
                at += 1
                if tag == b"]":
                    break
                if tag == b"N":
                    continue
            item, at = value(tag, at)
            out.append(item)
        return out, at

    def obj(at):
        kind, count, at = container(at)
        out = {}
        while count is None or len(out) < count:
            if count is None and view[at:at + 1] == b"}":
                return out, at + 1
            n, at = length(at)
            key = bytes(view[at:at + n]).decode("utf-8")
            at += n
            tag = kind
            if tag is None:
                tag, at = bytes(view[at:at + 1]), at + 1
            out[key], at = value(tag, at)
        return out, at

    result, _ = value(bytes(view[0:1]), 1)
    return result


_DECODED: dict[Any, Any] = {}  # filled only while every class of one model is parsed in a row


def _decoded_model(raw: bytes) -> Any:
    """``_ubjson(raw)``, decoded once while ``_DECODED`` is in use (see ``tree_interactions._parse_classes``)."""
    if "on" not in _DECODED:
        return _ubjson(raw)
    if raw not in _DECODED:
        _DECODED.clear()
        _DECODED.update({"on": True, raw: _ubjson(raw)})
    return _DECODED[raw]


def _parse_xgboost(model: Any, class_index: Any) -> _Trees:
    sklearn_api = not hasattr(model, "save_raw")
    booster = model.get_booster() if sklearn_api else model
    doc = _decoded_model(bytes(booster.save_raw(raw_format="ubj")))
    learner = doc["learner"]
    params = learner["learner_model_param"]
    objective = learner["objective"]["name"]
    gbm = learner["gradient_booster"]
    if gbm["name"] == "gblinear":
        raise ExplainError("a gblinear XGBoost model has no trees: use a model-agnostic method (method='exact', "
                           "'permutation' or 'linear')")
    drop_weights = None
    if gbm["name"] == "dart":
        drop_weights = np.asarray(gbm.get("weight_drop", []), dtype=np.float64)
        gbm = gbm["gbtree"]
    forest = gbm["model"]
    if int(params.get("num_target", "1")) > 1:
        raise ExplainError("multi-target XGBoost models are not supported: explain one target's model")
    n_classes = max(int(params["num_class"]), 1)
    if sklearn_api and hasattr(model, "classes_"):
        classes = list(np.asarray(model.classes_).tolist())
    else:
        classes = list(range(n_classes)) if n_classes > 1 else ([0, 1] if objective in _BINARY else [None])
    pos = class_position(classes, class_index) if classes != [None] else 0
    base = json.loads(params["base_score"]) if params["base_score"].startswith("[") else [float(params["base_score"])]
    base = [float(b) for b in np.atleast_1d(base)]
    offset = base[pos] if len(base) > 1 and n_classes > 1 else base[0]
    if objective in ("binary:logistic", "reg:logistic"):
        offset = float(np.log(offset / (1.0 - offset)))
    elif objective in _LOG_LINK | {"survival:aft"}:
        offset = float(np.log(offset))
    trees_json = forest["trees"]
    info = np.asarray(forest["tree_info"], dtype=np.int64)
    n_use = len(trees_json)
    best = getattr(model, "best_iteration", None) if sklearn_api else None
    if best is not None and "iteration_indptr" in forest:
        n_use = int(forest["iteration_indptr"][int(best) + 1])
    iterations = int(best) + 1 if best is not None else 0
    group = pos if n_classes > 1 else 0
    flip = -1.0 if (n_classes <= 1 and objective in _BINARY and pos == 0 and len(classes) == 2) else 1.0
    trees, categorical = [], False
    for i in range(n_use):
        if info[i] != group:
            continue
        t = trees_json[i]
        left = np.asarray(t["left_children"], dtype=np.int64)
        leaf = left == -1
        cond = np.asarray(t["split_conditions"], dtype=np.float32).astype(np.float64)
        scale = flip * (drop_weights[i] if drop_weights is not None and len(drop_weights) > i else 1.0)
        categorical |= bool(np.any(np.asarray(t.get("split_type", [0])) != 0))
        trees.append({
            "left": left, "right": np.asarray(t["right_children"], dtype=np.int64),
            "feature": np.where(leaf, -1, np.asarray(t["split_indices"], dtype=np.int64)),
            "threshold": np.where(leaf, 0.0, cond), "kind": np.ones(len(left), np.int8),
            "default_left": np.asarray(t["default_left"], dtype=np.int8),
            "cover": np.asarray(t["sum_hessian"], dtype=np.float32).astype(np.float64),
            "value": np.where(leaf, cond * scale, 0.0),
        })
    kind, text = _objective_text(objective, n_classes, classes[pos])
    names = booster.feature_names
    missing = getattr(model, "missing", np.nan) if sklearn_api else np.nan
    return _concat(trees, base_offset=flip * offset, n_features=int(params["num_feature"]),
                   input_dtype=np.float32, output_kind=kind, output_text=text, library="xgboost",
                   names=list(names) if names else None, categorical=categorical,
                   extra={"missing": missing, "iterations": iterations, "classes": classes, "position": pos,
                          "n_classes": n_classes})


def _parse_lightgbm(model: Any, class_index: Any) -> _Trees:
    sklearn_api = hasattr(model, "booster_")
    booster = model.booster_ if sklearn_api else model
    dump = booster.dump_model()
    objective = str(dump.get("objective", "regression")).split(" ")[0]
    n_classes = max(int(dump.get("num_class", 1)), 1)
    per_iter = max(int(dump.get("num_tree_per_iteration", 1)), 1)
    if sklearn_api and hasattr(model, "classes_"):
        classes = list(np.asarray(model.classes_).tolist())
    else:
        classes = list(range(n_classes)) if n_classes > 1 else ([0, 1] if objective in _BINARY else [None])
    pos = class_position(classes, class_index) if classes != [None] else 0
    flip = -1.0 if (n_classes <= 1 and objective in _BINARY and pos == 0) else 1.0
    infos = dump["tree_info"]
    n_iter = max(len(infos) // per_iter, 1)
    scale = flip / n_iter if dump.get("average_output") else flip
    missing_kind = {"None": 2, "Zero": 3, "NaN": 0}
    trees, categorical = [], False
    for i, info in enumerate(infos):
        if per_iter > 1 and i % per_iter != pos:
            continue
        if info.get("is_linear"):
            raise ExplainError("LightGBM linear trees are not supported by TreeSHAP: use a model-agnostic method")
        cols: dict[str, list[Any]] = {k: [] for k in ("left", "right", "feature", "threshold", "kind",
                                                      "default_left", "cover", "value")}
        stack = [(info["tree_structure"], -1, False)]
        while stack:
            node, parent, is_left = stack.pop()
            me = len(cols["feature"])
            if parent >= 0:
                cols["left" if is_left else "right"][parent] = me
            if "split_index" in node:
                if node.get("decision_type", "<=") != "<=":
                    categorical = True
                thr = node["threshold"]
                cols["feature"].append(int(node["split_feature"]))
                cols["threshold"].append(float(thr) if not isinstance(thr, str) else 0.0)
                cols["kind"].append(missing_kind.get(node.get("missing_type", "NaN"), 0))
                cols["default_left"].append(1 if node.get("default_left", True) else 0)
                cols["cover"].append(float(node.get("internal_count", 0)))
                cols["value"].append(0.0)
                cols["left"].append(-1)
                cols["right"].append(-1)
                stack.append((node["right_child"], me, False))
                stack.append((node["left_child"], me, True))
            else:
                if "leaf_coeff" in node:
                    raise ExplainError("LightGBM linear trees are not supported by TreeSHAP: use a model-agnostic "
                                       "method")
                cols["feature"].append(-1)
                cols["threshold"].append(0.0)
                cols["kind"].append(0)
                cols["default_left"].append(0)
                cols["cover"].append(float(node.get("leaf_count", 0)))
                cols["value"].append(float(node["leaf_value"]) * scale)
                cols["left"].append(-1)
                cols["right"].append(-1)
        trees.append(cols)
    kind, text = _objective_text(objective, n_classes, classes[pos])
    if objective == "multiclassova":
        kind, text = "log-odds", f"log-odds of class {classes[pos]} (one-vs-all)"
    return _concat(trees, base_offset=0.0, n_features=int(dump.get("max_feature_idx", 0)) + 1,
                   input_dtype=np.float64, output_kind=kind, output_text=text, library="lightgbm",
                   names=list(dump.get("feature_names") or []) or None, categorical=categorical,
                   extra={"classes": classes, "position": pos, "n_classes": n_classes})


def _sklearn_tree(tree: Any, values: np.ndarray) -> dict[str, np.ndarray]:
    left = tree.children_left.astype(np.int64)
    inner = left >= 0
    go_left = getattr(tree, "missing_go_to_left", np.ones(len(left), dtype=np.uint8))
    return {
        "left": left, "right": tree.children_right.astype(np.int64),
        "feature": np.where(inner, tree.feature, -1), "threshold": np.where(inner, tree.threshold, 0.0),
        "kind": np.zeros(len(left), np.int8), "default_left": np.asarray(go_left, dtype=np.int8),
        "cover": tree.weighted_n_node_samples.astype(np.float64), "value": np.where(inner, 0.0, values),
    }


def _parse_sklearn(model: Any, class_index: Any) -> _Trees:
    trees = _parse_sklearn_kind(model, class_index)
    if not type(model).__module__.startswith("sklearn."):
        _check_subclass_output(model, trees)
    return trees


def _probe_rows(trees: _Trees, n_rows: int = 16) -> np.ndarray:
    """Rows that reach many leaves: each feature takes values just below and above its split thresholds."""
    rng = np.random.default_rng(0)
    X = np.zeros((n_rows, trees.n_features))
    for j in range(trees.n_features):
        cuts = np.unique(trees.threshold[trees.feature == j])
        if cuts.size:
            spread = max(1e-3, 1e-3 * float(np.abs(cuts).max()))
            X[:, j] = rng.choice(np.concatenate([cuts - spread, cuts + spread]), size=n_rows)
    return X


def _check_subclass_output(model: Any, trees: _Trees) -> None:
    """A class derived from a scikit-learn tree model may change what it predicts: refuse it if it does."""
    kind = _sklearn_kind(model)
    X = _probe_rows(trees)
    frame = pd.DataFrame(X, columns=trees.names) if trees.names is not None else X
    pos = trees.extra.get("position", 0)
    try:
        if kind == _ISOLATION_FOREST:
            c = trees.extra["path_normaliser"]
            theirs = -c * np.log2(-np.asarray(model.score_samples(frame), dtype=np.float64))
        elif trees.output_kind == "probability":
            theirs = np.asarray(model.predict_proba(frame), dtype=np.float64)[:, pos]
        elif trees.output_kind in ("log-odds", "margin"):
            theirs = np.asarray(model.decision_function(frame), dtype=np.float64)
            theirs = theirs[:, pos] if theirs.ndim == 2 else (theirs if pos == 1 or trees.output_kind == "margin"
                                                                else -theirs)
        elif trees.output_text == "log of the predicted mean":
            theirs = np.log(np.asarray(model.predict(frame), dtype=np.float64))
        else:
            theirs = np.asarray(model.predict(frame), dtype=np.float64)
            theirs = theirs[:, pos] if theirs.ndim == 2 else theirs
    except Exception as err:  # noqa: BLE001 - a subclass whose output cannot be read back is not explained
        raise ExplainError(f"{type(model).__name__} derives from scikit-learn's {kind} but its output could not "
                           f"be checked against its trees ({err}): use a model-agnostic method") from None
    ours = _tree_sum(trees, X.astype(trees.input_dtype).astype(np.float64))
    gap = float(np.max(np.abs(ours - theirs)))
    if not gap <= 1e-6 * max(1.0, float(np.max(np.abs(theirs)))):
        raise ExplainError(f"{type(model).__name__} derives from scikit-learn's {kind} but does not output what its "
                           f"trees add up to (differs by {gap:.3g}): use a model-agnostic method")


def _parse_sklearn_kind(model: Any, class_index: Any) -> _Trees:
    name = _sklearn_kind(model) or type(model).__name__
    is_classifier = hasattr(model, "classes_")
    classes = list(np.asarray(model.classes_).tolist()) if is_classifier else [None]
    if is_classifier and isinstance(model.classes_, list):
        raise ExplainError(f"a multi-output {name} is not supported: explain one output's model")
    names = [str(n) for n in model.feature_names_in_] if hasattr(model, "feature_names_in_") else None
    n_features = int(model.n_features_in_)
    if name == _ISOLATION_FOREST:
        return _parse_isolation_forest(model, names, n_features)
    if name.startswith("HistGradientBoosting"):
        return _parse_hgb(model, classes, class_index, names, n_features)
    pos = class_position(classes, class_index) if is_classifier else 0
    if name in _SKLEARN_FORESTS:
        estimators = list(getattr(model, "estimators_", [model]))
        outputs = getattr(model, "n_outputs_", 1)
        if outputs > 1:
            if is_classifier or class_index is None:
                raise ExplainError(f"a {outputs}-output {name}: pass class_index= (the output position) for a "
                                   "regressor; multi-output classifiers are not supported")
            pos = int(class_index)
        trees = []
        for est in estimators:
            tree = est.tree_
            if is_classifier:
                v = tree.value[:, 0, :]
                total = v.sum(axis=1, keepdims=True)
                values = (v / np.where(total > 0, total, 1.0))[:, pos]
            else:
                values = tree.value[:, pos, 0]
            trees.append(_sklearn_tree(tree, values / len(estimators)))
        if is_classifier:
            kind, text = "probability", f"probability of class {classes[pos]}"
        else:
            kind, text = "raw", "regression value"
        return _concat(trees, base_offset=0.0, n_features=n_features, input_dtype=np.float32, output_kind=kind,
                       output_text=text, library="sklearn", names=names,
                       extra={"classes": classes, "position": pos})
    # GradientBoosting: trees fit the margin, after a constant initial estimate
    init = model.init_
    if not (isinstance(init, str) or type(init).__name__ in ("DummyClassifier", "DummyRegressor")):
        raise ExplainError(f"{name} with init={type(init).__name__}: TreeSHAP needs a constant initial estimate "
                           "(the default); use a model-agnostic method")
    k = model.estimators_.shape[1]
    group = pos if k > 1 else 0
    flip = -1.0 if is_classifier and k == 1 and pos == 0 else 1.0
    lr = float(model.learning_rate)
    trees = [_sklearn_tree(e.tree_, e.tree_.value[:, 0, 0] * lr * flip) for e in model.estimators_[:, group]]
    probe = np.zeros((1, n_features), dtype=np.float64)
    probe_frame = pd.DataFrame(probe, columns=names) if names is not None else probe
    raw = model.decision_function(probe_frame) if is_classifier else model.predict(probe_frame)
    raw = float(np.atleast_2d(raw)[0, group]) * flip
    trees_sum = sum(float(e.predict(probe)[0]) * lr * flip for e in model.estimators_[:, group])  # fitted unnamed
    if is_classifier:
        kind, text = ("log-odds", f"log-odds of class {classes[pos]}") if k == 1 else \
            ("margin", f"margin of class {classes[pos]} (softmax input)")
    else:
        kind, text = "raw", "regression value"
    return _concat(trees, base_offset=raw - trees_sum, n_features=n_features, input_dtype=np.float32,
                   output_kind=kind, output_text=text, library="sklearn", names=names,
                   extra={"classes": classes, "position": pos})


def _average_path_length(n_samples: np.ndarray) -> np.ndarray:
    """c(n): the mean path length of an unsuccessful binary search among n points (Liu et al., 2008)."""
    n = np.asarray(n_samples, dtype=np.float64)
    safe = np.maximum(n, 3.0)
    deep = 2.0 * (np.log(safe - 1.0) + np.euler_gamma) - 2.0 * (safe - 1.0) / safe
    return np.where(n <= 1, 0.0, np.where(n == 2, 1.0, deep))


def _parse_isolation_forest(model: Any, names: list[str] | None, n_features: int) -> _Trees:
    """The trees of an IsolationForest, each leaf worth its path length: depth + c(training points in the leaf).

    What they add up to (averaged) is the mean path length h(x); ``score_samples`` is -2 ** (-h(x) / c(m)) for
    m = ``max_samples_``, a monotone transform of it, and ``decision_function`` that minus ``offset_``.
    """
    estimators = list(model.estimators_)
    subsets = list(getattr(model, "estimators_features_", [None] * len(estimators)))
    max_features = int(getattr(model, "_max_features", n_features))
    normaliser = float(_average_path_length(np.array([model.max_samples_]))[0])
    if normaliser <= 0:
        raise ExplainError("an IsolationForest with max_samples=1 gives every row the same score: nothing to explain")
    trees = []
    for est, subset in zip(estimators, subsets, strict=True):
        tree = est.tree_
        left, right = tree.children_left, tree.children_right
        depth = np.zeros(tree.node_count)
        for node in range(tree.node_count):  # scikit-learn numbers every child after its parent
            if left[node] >= 0:
                depth[left[node]] = depth[right[node]] = depth[node] + 1.0
        values = (depth + _average_path_length(tree.n_node_samples)) / len(estimators)
        arrays = _sklearn_tree(tree, values)
        if subset is not None and max_features != n_features:  # each tree saw only its own columns
            inner = arrays["feature"] >= 0
            arrays["feature"] = np.where(inner, np.asarray(subset)[np.where(inner, arrays["feature"], 0)], -1)
        trees.append(arrays)
    offset = float(getattr(model, "offset_", -0.5))
    text = (f"mean path length (score_samples = -2 ** (-mean path length / {normaliser:.6g}), decision_function = "
            f"score_samples - ({offset:.6g}); shorter paths are more anomalous)")
    return _concat(trees, base_offset=0.0, n_features=n_features, input_dtype=np.float32, output_kind="raw",
                   output_text=text, library="sklearn", names=names,
                   extra={"classes": [None], "position": 0, "path_normaliser": normaliser, "offset": offset})


def _parse_hgb(model: Any, classes: list[Any], class_index: Any, names: list[str] | None,
               n_features: int) -> _Trees:
    is_classifier = classes != [None]
    pos = class_position(classes, class_index) if is_classifier else 0
    baseline = np.atleast_1d(np.asarray(model._baseline_prediction, dtype=np.float64).ravel())
    k = len(model._predictors[0]) if model._predictors else 1
    group = pos if k > 1 else 0
    flip = -1.0 if is_classifier and k == 1 and pos == 0 else 1.0
    trees = []
    for predictors in model._predictors:
        nodes = predictors[group].nodes
        if np.any(nodes["is_categorical"]):
            raise ExplainError(f"{type(model).__name__} with categorical splits is not supported by TreeSHAP: "
                               "one-hot encode the column in a Pipeline, or use a model-agnostic method")
        leaf = nodes["is_leaf"].astype(bool)
        thr = nodes["num_threshold"] if "num_threshold" in nodes.dtype.names else nodes["threshold"]
        trees.append({
            "left": np.where(leaf, -1, nodes["left"].astype(np.int64)),
            "right": np.where(leaf, -1, nodes["right"].astype(np.int64)),
            "feature": np.where(leaf, -1, nodes["feature_idx"].astype(np.int64)),
            "threshold": np.where(leaf, 0.0, thr), "kind": np.zeros(len(nodes), np.int8),
            "default_left": nodes["missing_go_to_left"].astype(np.int8),
            "cover": nodes["count"].astype(np.float64), "value": np.where(leaf, nodes["value"] * flip, 0.0),
        })
    if is_classifier:
        kind, text = ("log-odds", f"log-odds of class {classes[pos]}") if k == 1 else \
            ("margin", f"margin of class {classes[pos]} (softmax input)")
    else:
        loss = str(getattr(model, "loss", "squared_error"))
        kind, text = "raw", ("log of the predicted mean" if loss in ("poisson", "gamma") else "regression value")
    from sklearn.ensemble._hist_gradient_boosting.common import X_DTYPE

    return _concat(trees, base_offset=flip * float(baseline[group if len(baseline) > 1 else 0]),
                   n_features=n_features, input_dtype=X_DTYPE, output_kind=kind, output_text=text,
                   library="sklearn", names=names, extra={"classes": classes, "position": pos})


_CATBOOST_IDENTITY = {"RMSE", "MAE", "Quantile", "MAPE", "Huber", "Expectile", "Lq", "SurvivalAft"}


def _parse_catboost(model: Any, class_index: Any) -> _Trees:
    """What a CatBoost model's trees add up to; its attributions come from CatBoost's own exact TreeSHAP.

    CatBoost splits a categorical column on target statistics of its categories (and of combinations of
    columns) that only CatBoost can recompute, so no node arrays are kept here: ``_catboost_contribs``
    asks the model for its path-dependent SHAP values instead.
    """
    if not model.is_fitted():
        raise ExplainError(f"the {type(model).__name__} is not fitted")
    params = model.get_all_params()
    objective = str(params.get("loss_function", "RMSE")).split(":")[0]
    classes_attr = getattr(model, "classes_", None)
    classes = list(np.asarray(classes_attr).tolist()) if classes_attr is not None and len(classes_attr) else None
    multiclass = objective in ("MultiClass", "MultiClassOneVsAll")
    binary = objective in ("Logloss", "CrossEntropy")
    if objective in ("MultiRMSE", "RMSEWithUncertainty", "MultiLogloss", "MultiCrossEntropy", "MultiQuantile"):
        raise ExplainError(f"a CatBoost model with loss_function={objective} has several outputs a row: TreeSHAP "
                           "explains one; use a model-agnostic method on one output")
    if multiclass:
        classes = classes or list(range(int(params.get("classes_count") or 0)))
    elif binary:
        classes = classes if classes and len(classes) == 2 else [0, 1]
    else:
        classes = [None]
    pos = class_position(classes, class_index) if classes != [None] else 0
    label = classes[pos]
    if objective == "MultiClassOneVsAll":
        kind, text = "log-odds", f"log-odds of class {label} (one-vs-all)"
    elif multiclass:
        kind, text = "margin", f"margin of class {label} (softmax input)"
    elif binary:
        kind, text = "log-odds", f"log-odds of class {label}"
    elif objective in _CATBOOST_IDENTITY:
        kind, text = "raw", "regression value"
    elif objective in ("Poisson", "Tweedie"):
        kind, text = "raw", "log of the predicted mean"
    else:
        kind, text = "raw", f"raw score ({objective})"
    names = [str(n) for n in model.feature_names_]
    return _concat([], base_offset=0.0, n_features=len(names), input_dtype=np.float64, output_kind=kind,
                   output_text=text, library="catboost", names=names, categorical=True,
                   extra={"classes": classes, "position": pos, "n_classes": len(classes) if multiclass else 1,
                          "n_trees": int(model.tree_count_), "max_depth": int(params.get("depth", 6)),
                          "cat_features": list(model.get_cat_feature_indices())})


def _catboost_contribs(model: Any, trees: _Trees, frame: pd.DataFrame,
                       background: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CatBoost's own exact TreeSHAP (it recomputes its categorical statistics itself): (phi, expected, raw
    output) per row, for the explained class. Path-dependent without ``background``; with it, interventional
    (CatBoost's "Independent Tree SHAP" against those rows)."""
    import catboost

    pos, n_classes = trees.extra["position"], trees.extra["n_classes"]
    cat_features = trees.extra["cat_features"]
    try:
        if background is None:
            pool = catboost.Pool(frame, cat_features=cat_features)
            out = model.get_feature_importance(pool, type="ShapValues", shap_calc_type="Regular")
        else:
            # CatBoost reads a label from both pools to build its loss; the raw output does not depend on it
            label = np.full(len(frame), trees.extra["classes"][0] if trees.extra["classes"] != [None] else 0.0)
            pool = catboost.Pool(frame, label=label, cat_features=cat_features)
            reference = catboost.Pool(background, label=label[:1].repeat(len(background)),
                                      cat_features=cat_features)
            out = model.get_feature_importance(pool, type="ShapValues", reference_data=reference)
        raw = np.asarray(model.predict(pool, prediction_type="RawFormulaVal"), dtype=np.float64)
    except catboost.CatBoostError as err:
        raise ExplainError(f"CatBoost could not explain these rows: {err}") from None
    out = np.asarray(out, dtype=np.float64)
    if out.ndim == 3:
        out, raw = out[:, pos, :], raw[:, pos]
    sign = -1.0 if (n_classes <= 1 and trees.output_kind == "log-odds" and pos == 0) else 1.0
    return sign * out[:, :-1], sign * out[:, -1], sign * raw


def _parse(model: Any, class_index: Any) -> _Trees:
    library = _library(model)
    if library == "catboost":
        return _parse_catboost(model, class_index)
    if library == "xgboost":
        return _parse_xgboost(model, class_index)
    if library == "lightgbm":
        return _parse_lightgbm(model, class_index)
    if library == "sklearn":
        if not hasattr(model, "n_features_in_"):
            raise ExplainError(f"the {type(model).__name__} is not fitted")
        return _parse_sklearn(model, class_index)
    raise ExplainError(f"TreeSHAP explains tree ensembles (XGBoost, LightGBM, CatBoost, scikit-learn trees); a "
                       f"{type(model).__name__} is not one: use a model-agnostic method (method='exact', "
                       "'permutation' or 'kernel')")


# -- pipelines: transformed columns back to raw input columns -------------------------------------------------

def _column_names(columns: Any, inputs: list[str]) -> list[str]:
    if isinstance(columns, str):
        return [columns]
    if isinstance(columns, int | np.integer):
        return [inputs[int(columns)]]
    if isinstance(columns, slice):
        if isinstance(columns.start, str) or isinstance(columns.stop, str):
            lo = inputs.index(columns.start) if columns.start is not None else 0
            hi = inputs.index(columns.stop) + 1 if columns.stop is not None else len(inputs)
            return inputs[lo:hi]
        return inputs[columns]
    cols = list(np.asarray(columns).tolist()) if not isinstance(columns, list) else list(columns)
    if cols and isinstance(cols[0], bool | np.bool_):
        return [name for name, keep in zip(inputs, cols, strict=True) if keep]
    return [inputs[int(c)] if isinstance(c, int | np.integer) else str(c) for c in cols]


def _sources(step: Any, inputs: list[str]) -> list[str]:
    """The raw input column behind each output column of a fitted transformer."""
    if step is None or (isinstance(step, str) and step == "passthrough"):
        return list(inputs)
    if isinstance(step, str) and step == "drop":
        return []
    names = _class_names(step)
    kind = type(step).__name__
    if "sklearn.Pipeline" in names:
        for _, sub in step.steps:
            inputs = _sources(sub, inputs)
        return inputs
    if kind == "ColumnTransformer":
        width = max((s.stop for s in step.output_indices_.values()), default=0)
        out: list[str | None] = [None] * width
        for name, trans, columns in step.transformers_:
            where = step.output_indices_.get(name)
            if where is None or where.stop == where.start:
                continue
            sub = _sources(trans, _column_names(columns, inputs))
            if len(sub) != where.stop - where.start:
                raise ExplainError(f"cannot map the {where.stop - where.start} outputs of transformer {name!r} "
                                   f"back to its input columns")
            out[where] = sub
        return [str(s) for s in out]
    if kind == "FeatureUnion":
        return [s for _, trans in step.transformer_list if trans != "drop" for s in _sources(trans, inputs)]
    if kind == "OneHotEncoder":
        counts = []
        infrequent = getattr(step, "infrequent_categories_", None)
        drop = getattr(step, "drop_idx_", None)
        for i, cats in enumerate(step.categories_):
            n = len(cats)
            if infrequent is not None and infrequent[i] is not None:
                n -= len(infrequent[i]) - 1
            if drop is not None and drop[i] is not None:
                n -= 1
            counts.append(n)
        return [col for col, n in zip(inputs, counts, strict=True) for _ in range(n)]
    if kind == "KBinsDiscretizer" and str(step.encode).startswith("onehot"):
        return [col for col, n in zip(inputs, step.n_bins_, strict=True) for _ in range(int(n))]
    if "sklearn.OneToOneFeatureMixin" in names:
        return list(inputs)
    if hasattr(step, "get_feature_names_out"):
        try:
            outs = [str(n) for n in step.get_feature_names_out(inputs)]
        except Exception:  # noqa: BLE001 - any refusal means the names cannot be traced
            outs = []
        if outs and set(outs) <= set(inputs):
            return outs
    raise ExplainError(f"cannot map the outputs of a {kind} in the pipeline back to its input columns: explain "
                       "the last step on transformed rows, or use a model-agnostic method on the pipeline")


# -- rows ------------------------------------------------------------------------------------------------------

def _frame(rows: Any, names: list[str] | None) -> pd.DataFrame:
    if isinstance(rows, pd.Series):
        rows = rows.to_frame().T
    if isinstance(rows, pd.DataFrame):
        if names is None:
            return rows.reset_index(drop=True)
        missing = [c for c in names if c not in rows.columns]
        if not missing:
            return rows[names].reset_index(drop=True)
        if rows.shape[1] == len(names) and not set(names) & set(map(str, rows.columns)):
            return rows.set_axis(names, axis=1).reset_index(drop=True)
        raise ExplainError(f"rows lack the model's input column(s) {missing}")
    arr = np.asarray(rows)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ExplainError(f"rows of shape {arr.shape}: give a DataFrame or a 2-D array")
    if names is None:
        names = [f"x{i}" for i in range(arr.shape[1])]
    if arr.shape[1] != len(names):
        raise ExplainError(f"rows of shape {arr.shape}: the model takes {len(names)} columns {names}")
    frame = pd.DataFrame(arr, columns=names)
    return frame.infer_objects() if arr.dtype == object else frame


def _matrix(frame: pd.DataFrame | np.ndarray, names: Sequence[str]) -> np.ndarray:
    if isinstance(frame, np.ndarray):
        try:
            return np.asarray(frame, dtype=np.float64)
        except (TypeError, ValueError) as err:
            raise ExplainError(f"the transformed rows are not numeric: {err}") from None
    bad = [c for c in frame.columns if not (pd.api.types.is_numeric_dtype(frame[c]) or
                                            pd.api.types.is_bool_dtype(frame[c]))]
    if bad:
        raise ExplainError(f"column(s) {bad} are not numeric: the trees split on numbers; encode them in a "
                           "Pipeline (OneHotEncoder, OrdinalEncoder) and pass the pipeline")
    return frame.to_numpy(dtype=np.float64, na_value=np.nan)


def _transform(prefix: Any, frame: pd.DataFrame) -> np.ndarray:
    out = prefix.transform(frame)
    if hasattr(out, "toarray"):
        out = out.toarray()
    if isinstance(out, pd.DataFrame):
        return _matrix(out, list(out.columns))
    return _matrix(np.asarray(out), [])


def _input_names(model: Any, final: Any, prefix: Any, feature_names: Sequence[str] | None,
                 rows: Any) -> list[str] | None:
    if feature_names is not None:
        return [str(n) for n in feature_names]
    for source in (model, final) if prefix is None else (model,):
        names = getattr(source, "feature_names_in_", None)
        if names is not None:
            return [str(n) for n in names]
    if prefix is None:
        lib = _library(final)
        if lib == "xgboost":
            booster = final if hasattr(final, "save_raw") else final.get_booster()
            if booster.feature_names:
                return list(booster.feature_names)
        if lib == "lightgbm":
            names = final.booster_.feature_name() if hasattr(final, "booster_") else final.feature_name()
            if isinstance(rows, pd.DataFrame) and rows.shape[1] == len(names) and \
                    all(n.startswith("Column_") for n in names):
                return [str(c) for c in rows.columns]
            return list(names)
        if lib == "catboost":
            return [str(n) for n in final.feature_names_]
    if isinstance(rows, pd.DataFrame):
        return [str(c) for c in rows.columns]
    return None


def _sample(frame: pd.DataFrame, max_rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= max_rows:
        return frame
    picked = np.sort(np.random.default_rng(seed).choice(len(frame), size=max_rows, replace=False))
    return frame.iloc[picked].reset_index(drop=True)


def _prepare_x(X: np.ndarray, trees: _Trees) -> np.ndarray:
    if X.shape[1] != trees.n_features:
        raise ExplainError(f"rows have {X.shape[1]} columns; the trees were fit on {trees.n_features}")
    out = X.astype(trees.input_dtype).astype(np.float64)
    missing = trees.extra.get("missing", np.nan)
    if missing is not None and not (isinstance(missing, float) and np.isnan(missing)):
        out[out == np.float32(missing)] = np.nan
    return np.ascontiguousarray(out)


# -- the computation -------------------------------------------------------------------------------------------

_COMPILED = {"done": False}


def _ensure_compiled() -> float:
    """Compile (or load from numba's cache) every kernel once per process; the seconds it took, else 0."""
    if _COMPILED["done"] or _kernels is None:
        return 0.0
    start = time.perf_counter()
    tiny = _concat([{"left": [1, -1, -1], "right": [2, -1, -1], "feature": [0, -1, -1], "threshold": [0.5, 0, 0],
                     "kind": [0, 0, 0], "default_left": [1, 0, 0], "cover": [2.0, 1.0, 1.0],
                     "value": [0.0, 1.0, 2.0]}],
                   base_offset=0.0, n_features=1, input_dtype=np.float64, output_kind="raw", output_text="",
                   library="")
    x = np.array([[0.0], [1.0]])
    _run(tiny, x, None, TABLE_BUDGET_MB)
    _run(tiny, x, None, 0.0)
    _run(tiny, x, x, TABLE_BUDGET_MB)
    _run(tiny, x, x, 0.0)
    _COMPILED["done"] = True
    return time.perf_counter() - start


@dataclass
class _Leaves:
    tree_leaf_start: np.ndarray
    leaf_node: np.ndarray
    node_slot: np.ndarray
    path_start: np.ndarray
    path_node: np.ndarray
    path_left: np.ndarray
    path_slot: np.ndarray
    slot_start: np.ndarray
    slot_feat: np.ndarray
    slot_r: np.ndarray
    value: np.ndarray
    table_start: np.ndarray
    table_size: int


def _leaves(trees: _Trees, budget_mb: float, max_table_rows: int | None = None) -> _Leaves:
    """Every leaf's path, slots and table place (-1: no table, the leaf is solved row by row).

    A leaf gets a table when it has at most TABLE_MAX_SLOTS distinct path features, the tables fit
    ``budget_mb``, and (with ``max_table_rows``) its table has no more rows (2**d) than that: a table
    is only worth building when it is used more often than it has entries.
    """
    k = _kernels
    args = (trees.tree_node_start, trees.left, trees.right, trees.feature, trees.cover, trees.value)
    e_i, e_f = np.zeros(0, np.int64), np.zeros(0, np.float64)
    n_leaves, n_path, n_slots, _ = k.collect_leaves(*args, False, e_i, e_i, e_f, e_i, e_i, e_i, e_i, e_i, e_i, e_f,
                                                    e_i)
    leaf_tree, leaf_node = np.empty(n_leaves, np.int64), np.empty(n_leaves, np.int64)
    value = np.empty(n_leaves)
    path_start, slot_start = np.empty(n_leaves + 1, np.int64), np.empty(n_leaves + 1, np.int64)
    path_node, path_left, path_slot = (np.empty(n_path, np.int64) for _ in range(3))
    slot_feat, slot_r = np.empty(n_slots, np.int64), np.empty(n_slots)
    node_slot = np.zeros(len(trees.feature), np.int64)
    k.collect_leaves(*args, True, leaf_tree, leaf_node, value, path_start, path_node, path_left,
                     path_slot, slot_start, slot_feat, slot_r, node_slot)
    tree_leaf_start = np.searchsorted(leaf_tree, np.arange(trees.n_trees + 1)).astype(np.int64)
    d = np.diff(slot_start)
    tabled = d <= TABLE_MAX_SLOTS
    if max_table_rows is not None:
        tabled &= 2.0 ** np.minimum(d, 62) <= max(max_table_rows, 1)
    sizes = np.where(tabled, (2 ** np.minimum(d, TABLE_MAX_SLOTS)) * d, -1).astype(np.int64)
    order = np.argsort(np.where(sizes < 0, np.iinfo(np.int64).max, sizes), kind="stable")
    fits = np.zeros(n_leaves, dtype=bool)
    cum = np.cumsum(np.maximum(sizes[order], 0))
    fits[order] = (sizes[order] >= 0) & (cum * 8 <= budget_mb * 2**20)
    table_start = np.full(n_leaves, -1, np.int64)
    kept = np.where(fits, sizes, 0)
    starts = np.concatenate([[0], np.cumsum(kept)])[:-1]
    table_start[fits] = starts[fits]
    return _Leaves(tree_leaf_start, leaf_node, node_slot, path_start, path_node, path_left, path_slot, slot_start,
                   slot_feat, slot_r, value, table_start, int(kept.sum()))


def _run(trees: _Trees, X: np.ndarray, background: np.ndarray | None,
         budget_mb: float) -> tuple[np.ndarray, np.ndarray, float, _Leaves]:
    """(phi (n, n_features), tree sums (n,), expected tree sum, leaves) for float64 rows X, exactly, any depth.

    Leaves with a table go through the one-pass row kernel; the others (many distinct path features,
    past the budget, or, in the interventional game, a table larger than the rows would use) are solved
    row by row without masks.
    """
    k = _kernels
    leaves = _leaves(trees, budget_mb, None if background is None else 2 * X.shape[0])
    n_leaves = len(leaves.value)
    deepest = int(np.diff(leaves.slot_start).max()) if n_leaves else 0
    weights = k.shapley_weights(max(k.MAX_SLOTS, deepest) + 2)
    table = np.zeros(leaves.table_size)
    leaf_expected = np.zeros(n_leaves)
    direct = np.flatnonzero(leaves.table_start < 0).astype(np.int64)
    if background is None:
        _in_threads(k.build_path_tables, n_leaves, leaves.slot_start, leaves.slot_r, leaves.value,
                    leaves.table_start, weights, table, leaf_expected)
    else:
        dirs = k.node_directions(background, trees.feature, trees.threshold, trees.kind, trees.default_left)
        _in_threads(k.build_interventional_tables, n_leaves, dirs, leaves.path_start, leaves.path_node,
                    leaves.path_left, leaves.path_slot, leaves.slot_start, leaves.value, leaves.table_start, weights,
                    table, leaf_expected)
        k.direct_expected(direct, dirs, leaves.path_start, leaves.path_node, leaves.path_left, leaves.value,
                          leaf_expected)
    phi = np.zeros((X.shape[0], trees.n_features))
    pred = np.zeros(X.shape[0])
    node_slot = np.minimum(leaves.node_slot, k.MAX_SLOTS)  # past 62 only on paths to leaves without a table
    _in_threads(k.shap_rows, X.shape[0], X, trees.tree_node_start, leaves.tree_leaf_start, trees.feature,
                trees.threshold, trees.kind, trees.default_left, trees.left, trees.right, node_slot,
                leaves.leaf_node, leaves.slot_start, leaves.slot_feat, leaves.slot_r, leaves.value,
                leaves.table_start, table, weights, phi, pred)
    if direct.size:
        if background is None:
            nodes, gl_weights = k.gauss_legendre(deepest // 2 + 1)
            _rows_in_threads(k.path_dependent_direct_rows, X.shape[0], X, direct, leaves.path_start,
                             leaves.path_node, leaves.path_left, leaves.path_slot, leaves.slot_start,
                             leaves.slot_feat, leaves.slot_r, leaves.value, trees.feature, trees.threshold,
                             trees.kind, trees.default_left, nodes, gl_weights, phi, pred)
        else:
            _rows_in_threads(k.interventional_direct_rows, X.shape[0], X, direct, dirs, leaves.path_start,
                             leaves.path_node, leaves.path_left, leaves.path_slot, leaves.slot_start,
                             leaves.slot_feat, leaves.value, trees.feature, trees.threshold, trees.kind,
                             trees.default_left, weights, phi, pred)
    return phi, pred, float(leaf_expected.sum()), leaves


def _rows_in_threads(kernel: Any, n: int, *args: Any) -> None:
    """Run kernel(lo, hi, *args) over rows 0..n split evenly across the cores (each row's work is heavy)."""
    workers = min(_threads(), n)
    if workers <= 1:
        kernel(0, n, *args)
        return
    bounds = np.linspace(0, n, workers + 1).astype(int)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for job in [pool.submit(kernel, int(lo), int(hi), *args) for lo, hi in itertools.pairwise(bounds)]:
            job.result()


SHAP_INTERVENTIONAL_MAX_NODES = 32767  # shap's tree_shap_indep indexes nodes with a signed short
EFFICIENCY_RTOL = 1e-9  # float64 engines (Vigil's kernels, shap): |sum phi + expected - output| / row scale
EFFICIENCY_RTOL_SHAP = 1e-7  # shap's C++ TreeSHAP in float64; its probability transform measured ~5e-9
EFFICIENCY_RTOL_FLOAT32 = 1e-4  # the libraries' own TreeSHAP accumulates in float32


def _own_kernel(trees: _Trees, X: np.ndarray, bg: np.ndarray | None,
                budget_mb: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Vigil's exact kernel: (phi, expected per row, model output per row, leaves solved without a table)."""
    phi, pred, expected_sum, leaves = _run(trees, X, bg, budget_mb)
    expected = np.full(len(X), expected_sum + trees.base_offset)
    return phi, expected, pred + trees.base_offset, int(np.sum(leaves.table_start < 0))


def _efficiency(phi: np.ndarray, expected: np.ndarray, model_output: np.ndarray) -> tuple[float, float]:
    """(largest efficiency gap relative to its row's scale, largest absolute gap) over the rows.

    A row's scale is |output| + |expected value| + the sum of |attributions|: what rounding in the sums
    that make the attributions is relative to (NaN anywhere counts as an infinite gap).
    """
    if phi.size == 0:
        return 0.0, 0.0
    gap = np.abs(phi.sum(axis=1) + expected - model_output)
    scale = np.abs(model_output) + np.abs(expected) + np.abs(phi).sum(axis=1)
    relative = gap / np.maximum(scale, np.finfo(np.float64).tiny)
    relative = np.where(np.isfinite(relative), relative, np.inf)
    gap = np.where(np.isfinite(gap), gap, np.inf)
    return float(relative.max()), float(gap.max())


def _threads() -> int:
    import numba

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, numba.config.NUMBA_NUM_THREADS))


def _in_threads(kernel: Any, n: int, *args: Any) -> None:
    """Run kernel(lo, hi, *args) over 0..n in a few chunks per core (the kernels release the GIL)."""
    workers = min(_threads(), max(1, n // 64))
    if workers == 1:
        kernel(0, n, *args)
        return
    bounds = np.linspace(0, n, 4 * workers + 1).astype(int)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for job in [pool.submit(kernel, int(lo), int(hi), *args) for lo, hi in itertools.pairwise(bounds)]:
            job.result()


def _native_contribs(final: Any, trees: _Trees,
                     frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Path-dependent TreeSHAP from the library itself (categorical splits): (phi, expected, margin) per row."""
    pos, n_classes = trees.extra["position"], trees.extra["n_classes"]
    if trees.library == "xgboost":
        import xgboost as xgb

        booster = final.get_booster() if hasattr(final, "get_booster") else final
        dm = xgb.DMatrix(frame, enable_categorical=True, missing=trees.extra.get("missing", np.nan))
        span = (0, trees.extra["iterations"])
        out = booster.predict(dm, pred_contribs=True, iteration_range=span)
        margin = booster.predict(dm, output_margin=True, iteration_range=span)
        out = out[:, pos, :] if out.ndim == 3 else out
    else:
        booster = final.booster_ if hasattr(final, "booster_") else final
        out = np.asarray(booster.predict(frame, pred_contrib=True))
        margin = np.asarray(booster.predict(frame, raw_score=True))
        if n_classes > 1:
            out = out.reshape(len(frame), n_classes, -1)[:, pos, :]
    margin = np.asarray(margin, dtype=np.float64)
    margin = margin[:, pos] if margin.ndim == 2 else margin
    out = np.asarray(out, dtype=np.float64)
    sign = -1.0 if (n_classes <= 1 and trees.output_kind == "log-odds" and pos == 0) else 1.0
    return sign * out[:, :-1], sign * out[:, -1], sign * margin


def _max_depth(trees: _Trees) -> int:
    """The longest root-to-leaf path, over all trees."""
    frontier, depth = trees.tree_node_start[:-1], 0
    while True:
        inner = frontier[trees.feature[frontier] >= 0]
        if inner.size == 0:
            return depth
        frontier, depth = np.concatenate([trees.left[inner], trees.right[inner]]), depth + 1


def _tree_sum(trees: _Trees, X: np.ndarray) -> np.ndarray:
    """What the trees add up to for each row (plus the base offset), level by level in numpy."""
    total = np.full(len(X), trees.base_offset)
    rows = np.arange(len(X))
    for t in range(trees.n_trees):
        node = np.full(len(X), trees.tree_node_start[t])
        while True:
            inner = trees.feature[node] >= 0
            if not inner.any():
                break
            f = np.where(inner, trees.feature[node], 0)
            x, thr, kind = X[rows, f], trees.threshold[node], trees.kind[node]
            x = np.where(np.isnan(x) & (kind >= 2), 0.0, x)
            missing = np.isnan(x) | ((kind == 3) & (np.abs(x) <= 1e-35))
            left = np.where(kind == 1, x < thr, x <= thr)
            left = np.where(missing, trees.default_left[node] != 0, left)
            node = np.where(inner, np.where(left, trees.left[node], trees.right[node]), node)
        total += trees.value[node]
    return total


def _shap_fallback(final: Any, trees: _Trees, X: np.ndarray, background: np.ndarray | None,
                   output: str) -> tuple[np.ndarray, np.ndarray]:
    """shap's TreeExplainer: (phi, expected per row) in the trees' output space (or probability).

    Refused (ExplainError) where shap's interventional code is known to crash: it walks a tree with
    16-bit signed node indices, so a tree of more than 32,767 nodes makes it read outside the tree.
    """
    import shap

    pos = trees.extra["position"]
    largest = int(np.diff(trees.tree_node_start).max()) if trees.n_trees else 0
    if background is not None and largest > SHAP_INTERVENTIONAL_MAX_NODES:
        raise ExplainError(f"a tree of {largest:,} nodes: the interventional {output} of this model is computed by "
                           f"shap's TreeExplainer, which fails on trees of more than "
                           f"{SHAP_INTERVENTIONAL_MAX_NODES:,} nodes; explain output='auto' ({trees.output_text}) "
                           "exactly, or use a model-agnostic method")
    if background is None:
        explainer = shap.TreeExplainer(final)
    else:
        explainer = shap.TreeExplainer(final, data=background, feature_perturbation="interventional",
                                       model_output="probability" if output == "probability" else "raw")
    values = explainer.shap_values(X.astype(trees.input_dtype), check_additivity=False)
    expected = np.atleast_1d(np.asarray(explainer.expected_value, dtype=np.float64))
    if isinstance(values, list):
        values = np.stack(values, axis=-1)
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 3:
        values, base = values[:, :, pos], expected[pos]
    else:
        base = expected[0]
        if trees.output_kind == "log-odds" and pos == 0:
            values, base = -values, -base
            if output == "probability":
                base = 1.0 + base
    return values, np.full(len(X), base)


def tree_shap(
    model: Any,
    rows: Any,
    *,
    background: Any = None,
    feature_perturbation: str = "path_dependent",
    output: str = "auto",
    class_index: Any = None,
    feature_names: Sequence[str] | None = None,
    max_background: int = MAX_BACKGROUND,
    seed: int = 0,
    table_budget_mb: float = TABLE_BUDGET_MB,
) -> Explanation:
    """Exact TreeSHAP attributions of a tree ensemble's output, one row per row of ``rows``.

    ``model``: an XGBoost or LightGBM model (scikit-learn API or Booster), a CatBoost model (explained by
    CatBoost's own exact TreeSHAP, string categorical columns included), a scikit-learn decision tree,
    random forest, extra trees, gradient boosting, histogram gradient boosting model or IsolationForest
    (or a class of another package derived from one, checked to output what its trees add up to), or a
    Pipeline ending in one (attributions are then summed back to the pipeline's raw input columns).
    An IsolationForest is explained on its mean path length, the additive quantity behind its anomaly
    score: ``score_samples = -2 ** (-mean path length / c)``, with c stated in the explanation's ``output``.
    ``rows``: a DataFrame or a 2-D array in the model's column order.
    ``feature_perturbation``: "path_dependent" (the trees' training cover; ``background`` is not used)
    or "interventional" (needs ``background`` rows; at most ``max_background`` of them, sampled with
    ``seed``). ``output``: "auto" or "raw" explain what the trees add up to (log-odds for binary
    boosters, class margins for multiclass boosters, probability for scikit-learn forests, the
    prediction for regressors); naming that space ("log-odds", "probability") is accepted too, and
    "probability" of a boosted classifier is explained with the interventional game only.
    ``class_index``: the class to explain (label or position; binary models default to the positive class).
    ``table_budget_mb``: memory for the per-leaf tables that make rows fast; leaves past it (or with
    more than 16 distinct features on their path, any number) are solved row by row, exactly too, in
    both games. Every result is checked: attributions + expected value must equal the output to 1e-9
    of the row's scale (1e-4 for the float32 pred_contribs of XGBoost/LightGBM), else the values are
    recomputed row by row or ``ExplainError`` reports the gap (``extra["efficiency_gap"]``).

    >>> import numpy as np
    >>> from sklearn.ensemble import RandomForestClassifier
    >>> X = np.random.default_rng(0).normal(size=(60, 3))
    >>> forest = RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0).fit(X, X[:, 0] > 0)
    >>> e = tree_shap(forest, X[:4], feature_names=["a", "b", "c"])
    >>> e.output, e.values.shape, e.efficiency_gap() < 1e-9
    ('probability of class True', (4, 3), True)
    """
    if feature_perturbation not in PERTURBATIONS:
        raise ExplainError(f"feature_perturbation={feature_perturbation!r}: choose one of {list(PERTURBATIONS)}")
    if output not in ("auto", "raw", "log-odds", "probability", "margin"):
        raise ExplainError(f"output={output!r}: choose 'auto', 'raw', 'log-odds' or 'probability'")
    interventional = feature_perturbation == "interventional"
    if interventional and background is None:
        raise ExplainError("feature_perturbation='interventional' needs background= rows (for example a sample of "
                           "the training data)")
    final, prefix = _split_pipeline(model)
    if not tree_supports(final):
        raise ExplainError(f"TreeSHAP explains tree ensembles (XGBoost, LightGBM, scikit-learn trees); a "
                           f"{type(final).__name__} is not one: use a model-agnostic method (method='exact', "
                           "'permutation' or 'kernel')")
    started = time.perf_counter()
    trees = _parse(final, class_index)
    if trees.library == "catboost" and prefix is not None:
        raise ExplainError("a CatBoost model at the end of a Pipeline: explain the CatBoost model on the "
                           "transformed rows (CatBoost encodes categorical columns itself), or use a "
                           "model-agnostic method on the pipeline")
    names = _input_names(model, final, prefix, feature_names, rows)
    if names is None and prefix is None:
        names = trees.names or [f"x{i}" for i in range(trees.n_features)]
    frame = _frame(rows, names)
    names = [str(c) for c in frame.columns]
    wants_probability = output == "probability" and trees.output_kind != "probability"
    if output not in ("auto", "raw") and output != trees.output_kind and not (wants_probability and interventional
                                                                             and trees.output_kind == "log-odds"):
        raise ExplainError(f"output={output!r}: TreeSHAP explains the {trees.output_text} of this model; pass "
                           "output='auto', use feature_perturbation='interventional' for the probability of a "
                           "binary booster, or a model-agnostic method")
    bg_frame = None
    if interventional:
        bg_frame = _sample(_frame(background, names), max_background, seed)
        if len(bg_frame) == 0:
            raise ExplainError("background= has no rows")
    if prefix is not None:
        X = _transform(prefix, frame)
        sources = _sources(prefix, names)
        if len(sources) != X.shape[1]:
            raise ExplainError(f"the pipeline makes {X.shape[1]} columns but {len(sources)} could be traced to inputs")
        X_bg = _transform(prefix, bg_frame) if bg_frame is not None else None
    else:
        sources = None
        X = None if trees.categorical else _matrix(frame, names)
        X_bg = None if bg_frame is None or trees.categorical else _matrix(bg_frame, names)

    compile_s = 0.0
    engine, extra = "numba", {"max_depth": trees.extra.get("max_depth", _max_depth(trees))}
    if trees.library == "catboost":
        engine = "catboost ShapValues"
        phi, expected, model_output = _catboost_contribs(final, trees, frame, bg_frame)
    elif trees.categorical and not interventional and prefix is None and trees.library in ("xgboost", "lightgbm"):
        engine = f"{trees.library} pred_contribs"
        phi, expected, model_output = _native_contribs(final, trees, frame)
    else:
        if trees.categorical:
            raise ExplainError("categorical splits are explained only path-dependently on the model itself: use "
                               "feature_perturbation='path_dependent' without a pipeline, or a model-agnostic method")
        X = _prepare_x(X, trees)
        bg = _prepare_x(X_bg, trees) if X_bg is not None else None
        if _kernels is not None and not wants_probability:
            compile_s = _ensure_compiled()
            phi, expected, model_output, direct = _own_kernel(trees, X, bg, table_budget_mb)
            extra["direct_leaves"] = direct
        else:
            engine = "shap"
            phi, expected = _shap_fallback(final, trees, X, bg, output)
            model_output = _tree_sum(trees, X)
            if wants_probability:
                model_output = 1.0 / (1.0 + np.exp(-model_output))
    tolerance = {"shap": EFFICIENCY_RTOL_SHAP}.get(engine, EFFICIENCY_RTOL_FLOAT32 if engine.endswith("pred_contribs")
                                                   else EFFICIENCY_RTOL)
    relative, gap = _efficiency(phi, expected, model_output)
    extra["efficiency_tolerance"] = tolerance
    if relative > tolerance and engine == "numba" and extra["direct_leaves"] < int(np.sum(trees.feature < 0)):
        # a wrong table or kernel: every leaf once more without tables (an independent exact computation)
        extra["recomputed"] = f"efficiency gap {gap:.3g} with tables; recomputed row by row"
        phi, expected, model_output, extra["direct_leaves"] = _own_kernel(trees, X, bg, 0.0)
        engine = "numba (row by row)"
        relative, gap = _efficiency(phi, expected, model_output)
    if not relative <= tolerance:
        explained = trees.output_text.replace("log-odds", "probability") if wants_probability else trees.output_text
        raise ExplainError(f"TreeSHAP ({engine}) failed its efficiency check: attributions + expected value differ "
                           f"from the {explained} by up to {gap:.3g} ({relative:.3g} of the output's scale; "
                           f"the tolerance is {tolerance:g}); no values are returned. Use a model-agnostic method "
                           "(method='exact' or 'permutation') for this model")
    extra["efficiency_gap"] = gap
    values = phi
    if sources is not None:
        index = {name: j for j, name in enumerate(names)}
        unknown = sorted(set(sources) - set(index))
        if unknown:
            raise ExplainError(f"the pipeline reads column(s) {unknown} that are not among the rows' columns {names}")
        values = np.zeros((len(frame), len(names)))
        np.add.at(values.T, np.array([index[s] for s in sources]), phi.T)
        extra["transformed_features"] = len(sources)
    output_text = trees.output_text
    if wants_probability:
        output_text = trees.output_text.replace("log-odds", "probability")
    if interventional:
        baseline = f"{len(bg_frame)} background rows" + (f" (sampled from {len(background)})"
                                                         if len(background) > len(bg_frame) else "")
    else:
        baseline = "training data (tree cover weights)"
    extra.update({"trees": trees.extra.get("n_trees", trees.n_trees), "compile_s": round(compile_s, 3),
                  "engine": engine, "model_calls": 0,
                  "library": trees.library, "seconds": round(time.perf_counter() - started, 4)})
    return Explanation(
        method="tree_interventional" if interventional else "tree", output=output_text, feature_names=names,
        values=values, expected_value=expected, model_output=model_output, baseline=baseline, data=frame,
        extra=extra,
    )
