"""The result every explainer returns: attributions of one model output, row by row.

Whatever the method (TreeSHAP, sampled Shapley values, Integrated Gradients,
occlusion), an explanation carries the same fields, so the store can keep it
and show it again exactly as it was.

>>> import numpy as np
>>> e = Explanation(method="exact", output="regression value", feature_names=["a", "b"],
...                 values=np.array([[1.0, -0.5]]), expected_value=np.array([2.0]),
...                 model_output=np.array([2.5]), baseline="zeros")
>>> e.efficiency_gap()
0.0
>>> e.to_frame()[["feature", "attribution"]].to_dict("list")
{'feature': ['a', 'b'], 'attribution': [1.0, -0.5]}
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Explanation:
    """Attributions of ``output`` for ``len(values)`` rows.

    ``values[i, j]`` is feature j's share of ``model_output[i] - expected_value[i]``;
    for additive methods the shares sum to that difference (``efficiency_gap``).
    ``error`` holds a standard-error estimate per attribution for sampling methods.
    ``data`` holds the explained rows (raw input values) when they are tabular.
    ``extra`` holds method-specific facts: model calls made, IG completeness delta,
    background size, tokens, image shape...
    ``interactions`` (rows, features, features), when computed (tree models), holds SHAP interaction
    values: each row's matrix sums along its last axis to ``values``.
    """

    method: str
    output: str
    feature_names: list[str]
    values: np.ndarray
    expected_value: np.ndarray
    model_output: np.ndarray
    baseline: str
    data: pd.DataFrame | None = None
    error: np.ndarray | None = None
    event_ids: list[str] | None = None
    model_version: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    interactions: np.ndarray | None = None

    def __post_init__(self) -> None:
        values = np.atleast_2d(np.asarray(self.values, dtype=float))
        n = values.shape[0]
        object.__setattr__(self, "values", values)
        object.__setattr__(self, "expected_value", np.broadcast_to(
            np.asarray(self.expected_value, dtype=float), (n,)).copy())
        object.__setattr__(self, "model_output", np.broadcast_to(
            np.asarray(self.model_output, dtype=float), (n,)).copy())
        if values.shape[1] != len(self.feature_names):
            raise ValueError(f"{values.shape[1]} attribution columns for {len(self.feature_names)} feature names")
        if self.error is not None:
            object.__setattr__(self, "error", np.atleast_2d(np.asarray(self.error, dtype=float)))
        if self.interactions is not None:
            inter = np.asarray(self.interactions, dtype=float)
            d = len(self.feature_names)
            if inter.shape != (n, d, d):
                raise ValueError(f"interactions of shape {inter.shape}: expected (rows, features, features) = "
                                 f"{(n, d, d)}")
            object.__setattr__(self, "interactions", inter)

    def __len__(self) -> int:
        return self.values.shape[0]

    def __getitem__(self, rows: int | slice | Sequence[int] | np.ndarray) -> Explanation:
        """The explanation of some rows (an int keeps a one-row explanation)."""
        index = [rows] if isinstance(rows, int | np.integer) else rows
        picked = np.arange(len(self))[index]
        return replace(
            self,
            values=self.values[picked],
            expected_value=self.expected_value[picked],
            model_output=self.model_output[picked],
            data=None if self.data is None else self.data.iloc[picked].reset_index(drop=True),
            error=None if self.error is None else self.error[picked],
            event_ids=None if self.event_ids is None else [self.event_ids[i] for i in picked],
            interactions=None if self.interactions is None else self.interactions[picked],
        )

    def efficiency_gap(self) -> float:
        """Largest |sum of attributions + expected value - model output| over the rows."""
        gap = self.values.sum(axis=1) + self.expected_value - self.model_output
        return float(np.max(np.abs(gap))) if gap.size else 0.0

    def to_frame(self) -> pd.DataFrame:
        """One row per (explained row, feature): row, event_id, feature, value, attribution, error."""
        n, d = self.values.shape
        frame = pd.DataFrame({
            "row": np.repeat(np.arange(n), d),
            "event_id": np.repeat(np.array(self.event_ids, dtype=object), d) if self.event_ids else None,
            "feature": np.tile(np.array(self.feature_names, dtype=object), n),
            "value": self.data[self.feature_names].to_numpy(dtype=object).ravel()
            if self.data is not None and set(self.feature_names) <= set(self.data.columns) else None,
            "attribution": self.values.ravel(),
            "error": None if self.error is None else self.error.ravel(),
        })
        return frame

    def importance(self) -> pd.Series:
        """Mean |attribution| per feature, largest first."""
        return pd.Series(np.abs(self.values).mean(axis=0), index=self.feature_names,
                         name="mean_abs_attribution").sort_values(ascending=False)

    def interaction_importance(self, *, matrix: bool = False) -> pd.DataFrame:
        """Mean |interaction value| per feature pair: a tidy frame of pairs, largest first, or the matrix.

        The frame has one row per pair (feature_a before feature_b in column order) with
        ``mean_abs_interaction``, the mean over rows of |interactions[:, a, b]| (half the pair's total
        interaction, as shap reports it). ``matrix=True`` gives the symmetric features x features
        frame instead, with each feature's mean |main effect| on the diagonal.

        >>> import numpy as np
        >>> inter = np.array([[[1.0, 0.5], [0.5, -2.0]], [[3.0, -1.5], [-1.5, 0.0]]])
        >>> e = Explanation(method="tree", output="value", feature_names=["a", "b"], values=inter.sum(axis=2),
        ...                 expected_value=0.0, model_output=inter.sum(axis=(1, 2)), baseline="cover",
        ...                 interactions=inter)
        >>> e.interaction_importance().to_dict("records")
        [{'feature_a': 'a', 'feature_b': 'b', 'mean_abs_interaction': 1.0}]
        >>> e.interaction_importance(matrix=True).loc["a"].tolist()
        [2.0, 1.0]
        """
        if self.interactions is None:
            raise ValueError("this explanation has no interaction values: compute them with tree_shap_interactions")
        mean_abs = np.abs(self.interactions).mean(axis=0) if len(self) else np.zeros((len(self.feature_names),) * 2)
        if matrix:
            return pd.DataFrame(mean_abs, index=self.feature_names, columns=self.feature_names)
        a, b = np.triu_indices(len(self.feature_names), k=1)
        names = np.array(self.feature_names, dtype=object)
        frame = pd.DataFrame({"feature_a": names[a], "feature_b": names[b], "mean_abs_interaction": mean_abs[a, b]})
        order = np.argsort(-frame["mean_abs_interaction"].to_numpy(), kind="stable")
        return frame.iloc[order].reset_index(drop=True)

    def top(self, k: int = 5, row: int = 0) -> pd.DataFrame:
        """The k features with the largest |attribution| for one row."""
        frame = self[row].to_frame()
        order = np.argsort(-np.abs(frame["attribution"].to_numpy()), kind="stable")[:k]
        return frame.iloc[order].reset_index(drop=True)

    def __repr__(self) -> str:
        return (f"Explanation(method={self.method!r}, output={self.output!r}, rows={len(self)}, "
                f"features={len(self.feature_names)}, baseline={self.baseline!r})")
