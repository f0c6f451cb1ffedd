"""Explanations: why did the model say this?

:func:`explain` picks a method for the model at hand (TreeSHAP for tree
ensembles, Integrated Gradients for PyTorch modules, exact or sampled
Shapley values for anything else) and returns an :class:`Explanation`.

>>> import numpy as np, pandas as pd
>>> from sklearn.linear_model import LinearRegression
>>> X = pd.DataFrame({"a": [0.0, 1.0, 2.0, 3.0], "b": [1.0, 0.0, 1.0, 0.0]})
>>> model = LinearRegression().fit(X, 2 * X["a"] - X["b"])
>>> e = explain(model, X.iloc[[3]], background=X, method="exact")
>>> np.round(e.values, 6).tolist()   # coefficient x (x - background mean)
[[3.0, 0.5]]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from vigil.core.explain.adapters import ExplainError, ModelFunction, as_model_function
from vigil.core.explain.explanation import Explanation

#: Every method :func:`explain` knows, with what it suits.
METHODS = {
    "tree": "exact path-dependent TreeSHAP (tree ensembles; no background needed)",
    "tree_interventional": "exact interventional TreeSHAP against a background sample (tree ensembles)",
    "exact": "exact Shapley values by enumerating every coalition (up to ~12 features)",
    "permutation": "sampled Shapley values: permutations with antithetic pairs (any model)",
    "kernel": "Kernel SHAP: weighted least squares over sampled coalitions (any model)",
    "linear": "closed form coefficient x (x - background mean) (linear models)",
    "integrated_gradients": "Integrated Gradients along a straight path from a baseline (PyTorch modules)",
}

#: Above this many features ``method="auto"`` samples instead of enumerating.
EXACT_FEATURE_LIMIT = 10


def _rows_frame(rows: Any, feature_names: list[str] | None) -> pd.DataFrame | np.ndarray:
    if isinstance(rows, dict):
        return pd.DataFrame([rows])
    if isinstance(rows, pd.Series):
        return rows.to_frame().T.infer_objects()
    if isinstance(rows, pd.DataFrame):
        return rows
    arr = np.asarray(rows)
    return arr[None, :] if arr.ndim == 1 else arr


def _is_torch(model: Any) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(model).__mro__)


def _is_linear(model: Any) -> bool:
    module = type(model).__module__
    return module.startswith("sklearn.linear_model") and hasattr(model, "coef_")


def choose_method(model: Any, n_features: int) -> str:
    """The method ``method="auto"`` uses for a model with ``n_features`` inputs.

    >>> from sklearn.linear_model import LinearRegression
    >>> fitted = LinearRegression().fit([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]], [0.0, 1.0, 3.0])
    >>> choose_method(fitted, 2), choose_method(lambda df: df, 8), choose_method(lambda df: df, 30)
    ('linear', 'exact', 'kernel')
    """
    if _is_torch(model):
        return "integrated_gradients"
    from vigil.core.explain.treeshap import tree_supports

    if tree_supports(model):
        return "tree"
    if _is_linear(model):
        return "linear"
    return "exact" if n_features <= EXACT_FEATURE_LIMIT else "kernel"


def _method_function(method: str) -> Callable[..., Explanation]:
    if method == "tree":
        from vigil.core.explain.treeshap import tree_shap

        return lambda *a, **k: tree_shap(*a, feature_perturbation="path_dependent", **k)
    if method == "tree_interventional":
        from vigil.core.explain.treeshap import tree_shap

        return lambda *a, **k: tree_shap(*a, feature_perturbation="interventional", **k)
    if method in ("exact", "permutation", "kernel", "linear"):
        from vigil.core.explain import shapley

        return getattr(shapley, f"{method}_shapley")
    if method == "integrated_gradients":
        from vigil.core.explain.gradients import integrated_gradients

        return integrated_gradients
    raise ExplainError(f"method={method!r}: choose 'auto' or one of {sorted(METHODS)}")


def explain(
    model: Any,
    rows: Any,
    *,
    background: Any = None,
    method: str = "auto",
    feature_names: list[str] | None = None,
    output: str = "auto",
    class_index: Any = None,
    **options: Any,
) -> Explanation:
    """Attributions of ``model``'s output for each of ``rows``.

    ``rows``: a DataFrame (or a dict for one row, or an array with
    ``feature_names``). ``background``: rows the attributions are measured
    against (training data, or a sample of it); model-agnostic methods need
    it. ``method``: "auto" or one of :data:`METHODS`. ``options`` go to the
    method (``budget=``, ``seed=``, ``steps=``...).

    >>> from sklearn.linear_model import LinearRegression
    >>> X = pd.DataFrame({"a": [0.0, 1.0, 2.0], "b": [1.0, 1.0, 0.0]})
    >>> e = explain(LinearRegression().fit(X, X["a"]), {"a": 2.0, "b": 0.0}, background=X)
    >>> e.method, round(float(e.values[0, 0]), 6)
    ('linear', 1.0)
    """
    frame = _rows_frame(rows, feature_names)
    if len(frame) == 0:
        raise ExplainError("no rows to explain")
    if method == "auto":
        n_features = len(feature_names) if feature_names is not None else (
            len(getattr(model, "feature_names_in_", [])) or frame.shape[1])
        method = choose_method(model, n_features)
    function = _method_function(method)
    needs_background = method in ("exact", "permutation", "kernel", "linear", "tree_interventional")
    if needs_background and background is None:
        raise ExplainError(f"method {method!r} measures attributions against background rows: pass background= "
                           "(training data or a sample of it)")
    kwargs: dict[str, Any] = {"feature_names": feature_names, "output": output, "class_index": class_index, **options}
    if background is not None:
        kwargs["background"] = background
    return function(model, frame, **kwargs)


__all__ = [
    "EXACT_FEATURE_LIMIT",
    "METHODS",
    "ExplainError",
    "Explanation",
    "ModelFunction",
    "as_model_function",
    "choose_method",
    "explain",
]
