"""Any model, seen as one function of its raw input rows: the output an explanation explains.

scikit-learn estimators and pipelines, XGBoost, LightGBM, PyTorch modules and
plain callables on a DataFrame all become a :class:`ModelFunction`: rows in
(a DataFrame with the model's raw input columns, or an array in that column
order), one number per row out, with the meaning of that number stated.

>>> import numpy as np
>>> from sklearn.linear_model import LogisticRegression
>>> X = np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 1.0], [3.0, 0.0]])
>>> f = as_model_function(LogisticRegression().fit(X, [0, 0, 1, 1]), feature_names=["a", "b"])
>>> f.output
'probability of class 1'
>>> f(X).shape
(4,)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from vigil.errors import ExplainError

OUTPUTS = ("auto", "probability", "log-odds", "raw")


@dataclass
class ModelFunction:
    """A model's explained output as a function of raw input rows.

    ``kind`` is "classifier", "regressor", "outlier detector" (its ``score_samples``), "torch" or
    "callable"; ``class_index`` the explained class for classifiers; ``output`` says what the number
    means ("probability of class 1", "log-odds of class 1", "regression value"...).
    ``wants_frame`` tells whether the model needs a DataFrame (named columns)
    rather than a plain array.
    """

    model: Any
    feature_names: list[str]
    output: str
    kind: str
    class_index: int | None
    wants_frame: bool
    predict_fn: Callable[[Any], np.ndarray]
    classes: list[Any] | None = None

    def __call__(self, rows: Any) -> np.ndarray:
        """The explained output for each row (float64, shape (n,))."""
        prepared = self.prepare(rows)
        out = np.asarray(self.predict_fn(prepared), dtype=float)
        if out.ndim == 2 and out.shape[1] == 1:
            out = out[:, 0]
        if out.ndim != 1:
            raise ExplainError(f"the model returned shape {out.shape} for {len(prepared)} rows; "
                               "expected one number a row")
        return out

    def prepare(self, rows: Any) -> Any:
        """Rows in the form the model takes: a DataFrame in ``feature_names`` order, or a 2-D array."""
        if isinstance(rows, pd.Series):
            rows = rows.to_frame().T
        if isinstance(rows, pd.DataFrame):
            missing = [c for c in self.feature_names if c not in rows.columns]
            if missing:
                raise ExplainError(f"rows lack the model's input column(s) {missing}")
            rows = rows[self.feature_names]
            return rows if self.wants_frame else rows.to_numpy()
        arr = np.asarray(rows)
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != len(self.feature_names):
            raise ExplainError(f"rows of shape {arr.shape}: the model takes {len(self.feature_names)} columns "
                               f"{self.feature_names}")
        if self.wants_frame:
            return _frame_from_array(arr, self.feature_names)
        return arr


def _frame_from_array(arr: np.ndarray, names: Sequence[str]) -> pd.DataFrame:
    if arr.dtype == object:
        frame = pd.DataFrame(arr, columns=list(names))
        return frame.infer_objects()
    return pd.DataFrame(arr, columns=list(names))


def _names_of(model: Any, feature_names: Sequence[str] | None) -> list[str] | None:
    if feature_names is not None:
        return [str(n) for n in feature_names]
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    booster_names = getattr(model, "feature_name_", None)  # LightGBM sklearn API
    if booster_names is not None and not callable(booster_names):
        return [str(n) for n in booster_names]
    return None


def _is_torch_module(model: Any) -> bool:
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(model).__mro__)


def _is_outlier_detector(model: Any) -> bool:
    """An outlier detector (IsolationForest...) predicts a +-1 label; its explainable output is its score."""
    try:
        from sklearn.base import is_outlier_detector
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return False
    try:
        return bool(is_outlier_detector(model))
    except Exception:  # noqa: BLE001 - an object scikit-learn cannot inspect is not one of its detectors
        return False


def class_position(classes: list[Any], class_index: Any) -> int:
    """The position of the class to explain: ``class_index`` as a label or a position; binary models default
    to the positive (last) class.

    >>> class_position(["no", "yes"], None), class_position(["a", "b", "c"], "c"), class_position([0, 1], 0)
    (1, 2, 0)
    """
    if class_index is None:
        if len(classes) <= 2:
            return len(classes) - 1
        raise ExplainError(f"a {len(classes)}-class model: say which class to explain with class_index= "
                           f"(one of {classes})")
    if class_index in classes:
        return classes.index(class_index)
    if isinstance(class_index, int | np.integer) and 0 <= class_index < len(classes):
        return int(class_index)
    raise ExplainError(f"class_index={class_index!r} is not one of the model's classes {classes}")


def as_model_function(
    model: Any,
    feature_names: Sequence[str] | None = None,
    *,
    output: str = "auto",
    class_index: Any = None,
) -> ModelFunction:
    """Wrap ``model`` as the function an explainer explains.

    ``output``: "auto" (probability for classifiers, the prediction for
    regressors, the anomaly score ``score_samples`` for outlier detectors, never
    their +-1 label), "probability", "log-odds" (logit of the class probability, or
    the decision function of a binary classifier) or "raw" (torch: the module's
    output unchanged). ``class_index``: the class to explain (a class label or
    position; binary classifiers default to the positive class).

    >>> f = as_model_function(lambda df: df["x"] * 2.0, feature_names=["x"])
    >>> f(pd.DataFrame({"x": [1.0, 2.0]})).tolist(), f.output
    ([2.0, 4.0], 'model output')
    """
    if isinstance(model, ModelFunction):
        return model
    if output not in OUTPUTS:
        raise ExplainError(f"output={output!r}: choose one of {list(OUTPUTS)}")
    names = _names_of(model, feature_names)
    if _is_torch_module(model):
        return _torch_function(model, names, output, class_index)
    kind, predict, text, position, classes = output_function(model, output=output, class_index=class_index)
    if kind is None:
        raise ExplainError(f"cannot explain a {type(model).__name__}: give a fitted estimator, a torch module "
                           "or a function of a DataFrame")
    if names is None:
        reason = "a plain function does not say which columns it reads" if kind == "callable" else \
            "the model does not record its input columns"
        raise ExplainError(f"{reason}: pass feature_names=")
    wants_frame = kind == "callable" or getattr(model, "feature_names_in_", None) is not None
    return ModelFunction(model, names, text, kind, position, wants_frame, predict, classes)


def output_function(model: Any, *, output: str = "auto", class_index: Any = None
                    ) -> tuple[str | None, Callable[[Any], np.ndarray], str, Any, list[Any] | None]:
    """``(kind, f, meaning, class position, classes)`` of a scikit-learn-style model or a plain function, on
    whatever inputs the model itself takes (rows, texts...); kind None when it is neither.

    >>> kind, f, text, _, _ = output_function(lambda xs: np.array([[0.2, 0.8]] * len(xs)), class_index=1)
    >>> kind, f(["a", "b"]).tolist(), text
    ('callable', [0.8, 0.8], 'model output 1')
    """
    if hasattr(model, "predict_proba") and hasattr(model, "classes_"):
        classes = list(np.asarray(model.classes_).tolist())
        position = class_position(classes, class_index)
        label = classes[position]
        if output == "log-odds":
            def log_odds(inputs: Any) -> np.ndarray:
                p = np.clip(model.predict_proba(inputs)[:, position], 1e-15, 1 - 1e-15)
                return np.log(p / (1 - p))
            return "classifier", log_odds, f"log-odds of class {label}", position, classes
        return ("classifier", lambda inputs: model.predict_proba(inputs)[:, position],
                f"probability of class {label}", position, classes)
    if _is_outlier_detector(model) and hasattr(model, "score_samples"):
        return ("outlier detector", lambda inputs: model.score_samples(inputs),
                "anomaly score (score_samples; lower is more anomalous)", None, None)
    if hasattr(model, "predict"):
        return "regressor", lambda inputs: model.predict(inputs), "regression value", None, None
    if callable(model):
        def call(inputs: Any) -> np.ndarray:
            out = np.asarray(model(inputs), dtype=float)
            if out.ndim == 2 and out.shape[1] > 1:
                if class_index is None:
                    raise ExplainError(f"the function returns {out.shape[1]} outputs an input: pass class_index=")
                out = out[:, int(class_index)]
            return out
        return ("callable", call, "model output" if class_index is None else f"model output {class_index}",
                class_index, None)
    return None, lambda inputs: np.zeros(0), "", None, None




def _torch_function(model: Any, names: list[str] | None, output: str, class_index: Any) -> ModelFunction:
    import torch

    if names is None:
        raise ExplainError("a torch module does not record its input columns: pass feature_names=")
    model.eval()

    def predict(rows: Any) -> np.ndarray:
        with torch.no_grad():
            out = model(torch.as_tensor(np.asarray(rows, dtype=np.float32)))
        if out.ndim == 1 or out.shape[-1] == 1:
            out = out.reshape(-1)
            if output == "probability":
                out = torch.sigmoid(out)
            return out.double().numpy()
        if class_index is None:
            raise ExplainError(f"the module returns {out.shape[-1]} outputs a row: pass class_index=")
        if output == "probability":
            out = torch.softmax(out, dim=-1)
        return out[:, int(class_index)].double().numpy()

    if output == "probability":
        text = "probability" if class_index is None else f"probability of class {class_index}"
    else:
        text = "model output" if class_index is None else f"model output {class_index}"
    return ModelFunction(model, names, text, "torch", None if class_index is None else int(class_index),
                         False, predict)
