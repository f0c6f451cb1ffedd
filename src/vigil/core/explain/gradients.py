"""Integrated Gradients for differentiable PyTorch models on tabular rows.

Integrated Gradients (Sundararajan et al., 2017) gives feature j the share
``(x_j - b_j) * mean gradient along the straight path from the baseline b to x``.
The shares add up to ``f(x) - f(b)`` up to the error of the path integral, the
*completeness delta*, which every explanation reports row by row.

torch and captum are an optional extra: ``pip install 'vigil[torch]'``.

>>> import pytest; torch = pytest.importorskip("torch")
>>> model = torch.nn.Linear(2, 1)
>>> with torch.no_grad():
...     _ = model.weight.copy_(torch.tensor([[2.0, -1.0]])); _ = model.bias.fill_(0.5)
>>> e = integrated_gradients(model, np.array([[1.0, 3.0]]), feature_names=["a", "b"])
>>> e.values.round(4).tolist(), e.baseline
([[2.0, -3.0]], 'zeros')
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from vigil.core.explain.adapters import OUTPUTS, ExplainError
from vigil.core.explain.explanation import Explanation

TORCH_HINT = "needs the torch extra: pip install 'vigil[torch]' (torch==2.13.0)"
IG_METHODS = ("gausslegendre", "riemann_right", "riemann_left", "riemann_middle", "riemann_trapezoid")


def require_torch(what: str) -> tuple[Any, Any]:
    """The ``torch`` and ``captum.attr`` modules, or an ExplainError saying how to install them."""
    try:
        import torch
        from captum import attr
    except ImportError as err:
        raise ExplainError(f"{what} {TORCH_HINT}") from err
    return torch, attr


def is_torch_module(model: Any) -> bool:
    """True for a ``torch.nn.Module`` (checked without importing torch)."""
    return any(c.__module__.startswith("torch.nn") and c.__name__ == "Module" for c in type(model).__mro__)


def output_text(output: str, class_index: int | None) -> str:
    """What a torch model's explained number means, worded as ``adapters.as_model_function`` does."""
    if output == "probability":
        return "probability" if class_index is None else f"probability of class {class_index}"
    return "model output" if class_index is None else f"model output {class_index}"


def select_output(out: Any, output: str, class_index: int | None, torch: Any) -> Any:
    """One number per row from a module's output: the torch convention of ``as_model_function``.

    A single output column is squeezed (sigmoid for ``output="probability"``);
    several columns need ``class_index`` (softmax first for probabilities).
    "auto", "raw" and "log-odds" leave the module's output (its logits) unchanged.
    """
    if out.ndim == 1 or out.shape[-1] == 1:
        out = out.reshape(-1)
        return torch.sigmoid(out) if output == "probability" else out
    if class_index is None:
        raise ExplainError(f"the module returns {out.shape[-1]} outputs a row: pass class_index=")
    if not 0 <= class_index < out.shape[-1]:
        raise ExplainError(f"class_index={class_index} is out of range for a module with {out.shape[-1]} outputs")
    if output == "probability":
        out = torch.softmax(out, dim=-1)
    return out[:, class_index]


def check_output(output: str) -> None:
    """Raise an ExplainError for an ``output=`` that is not one of adapters.OUTPUTS."""
    if output not in OUTPUTS:
        raise ExplainError(f"output={output!r}: choose one of {list(OUTPUTS)}")


def module_place(model: Any, torch: Any) -> tuple[Any, Any]:
    """The (device, floating dtype) of a module's first parameter, else (cpu, float32)."""
    for p in model.parameters():
        if p.is_floating_point():
            return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def relative_delta(delta: np.ndarray, change: np.ndarray) -> np.ndarray:
    """|delta| / |f(x) - f(baseline)|; NaN where the output did not move (nothing to share)."""
    change = np.abs(change)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(change > 1e-12, np.abs(delta) / np.where(change > 0, change, 1.0), np.nan)


def _as_float_matrix(rows: Any, names: list[str] | None, what: str) -> tuple[np.ndarray, list[str], pd.DataFrame]:
    if isinstance(rows, pd.Series):
        rows = rows.to_frame().T
    if isinstance(rows, pd.DataFrame):
        cols = [str(c) for c in rows.columns] if names is None else names
        missing = [c for c in cols if c not in rows.columns]
        if missing:
            raise ExplainError(f"{what} lack the model's input column(s) {missing}")
        frame = rows[cols]
        bad = [c for c in cols if not (pd.api.types.is_numeric_dtype(frame[c]) or pd.api.types.is_bool_dtype(frame[c]))]
        if bad:
            raise ExplainError(f"{what}: column(s) {bad} are not numeric; Integrated Gradients needs float inputs "
                               "(encode them first, or use a model-agnostic method)")
        matrix = frame.to_numpy(dtype=float)
    else:
        try:
            matrix = np.asarray(rows, dtype=float)
        except (TypeError, ValueError) as err:
            raise ExplainError(f"{what} are not numeric; Integrated Gradients needs float inputs") from err
        if matrix.ndim == 1:
            matrix = matrix[None, :]
        if matrix.ndim != 2:
            raise ExplainError(f"{what} of shape {matrix.shape}: give a 2-D array or a DataFrame")
        cols = names if names is not None else [f"x{j}" for j in range(matrix.shape[1])]
        if matrix.shape[1] != len(cols):
            raise ExplainError(f"{what} have {matrix.shape[1]} columns but feature_names has {len(cols)}: {cols}")
        frame = pd.DataFrame(matrix, columns=cols)
    if not np.all(np.isfinite(matrix)):
        raise ExplainError(f"{what} hold NaN or infinite values; impute them before explaining")
    return matrix, cols, frame.reset_index(drop=True)


def _baseline_points(baseline: Any, background: Any, names: list[str], n: int) -> tuple[np.ndarray, str]:
    """The baseline as an (n, d) array and its description in words."""
    d = len(names)
    if baseline is None:
        baseline = "mean" if background is not None else "zeros"
    if isinstance(baseline, str):
        if baseline == "zeros":
            return np.zeros((n, d)), "zeros"
        if baseline == "mean":
            if background is None:
                raise ExplainError("baseline='mean' needs background= (training rows to average)")
            bg, _, _ = _as_float_matrix(background, names, "background rows")
            if len(bg) == 0:
                raise ExplainError("background= has no rows")
            return np.repeat(bg.mean(axis=0)[None, :], n, axis=0), f"mean of {len(bg)} background rows"
        raise ExplainError(f"baseline={baseline!r}: choose None, 'zeros', 'mean', an array of {d} values, "
                           "or a DataFrame row")
    points, _, _ = _as_float_matrix(baseline, names, "baseline")
    if len(points) == 1:
        return np.repeat(points, n, axis=0), "the given baseline point"
    if len(points) == n:
        return points, "one given baseline point per row"
    raise ExplainError(f"baseline has {len(points)} rows: give one point, or one per explained row ({n})")


def needs_more_steps(delta: np.ndarray, f_x: np.ndarray, f_b: np.ndarray, tolerance: float) -> np.ndarray:
    """Rows whose |completeness delta| exceeds ``tolerance`` of |f(x) - f(baseline)|.

    Deltas at the level of float32 rounding (1e-5 of the outputs' size) never count.
    """
    floor = 1e-5 * np.maximum(1.0, np.maximum(np.abs(f_x), np.abs(f_b)))
    return (np.abs(delta) > tolerance * np.abs(f_x - f_b)) & (np.abs(delta) > floor)


def integrated_gradients(
    model: Any,
    rows: Any,
    *,
    background: Any = None,
    baseline: Any = None,
    steps: int = 64,
    method: str = "gausslegendre",
    output: str = "auto",
    class_index: int | None = None,
    feature_names: Sequence[str] | None = None,
    tolerance: float | None = 0.01,
    max_steps: int = 1024,
    batch_size: int = 16384,
) -> Explanation:
    """Integrated Gradients of a torch module's output for tabular float rows.

    ``rows``: a DataFrame or a 2-D array (columns in ``feature_names`` order;
    unnamed arrays get x0, x1, ...). ``baseline``: None (the mean of
    ``background`` when given, else zeros), "zeros", "mean", one point (array
    or one-row DataFrame) or one point per row. ``output``: "probability"
    (sigmoid of a single output, softmax column ``class_index`` of several) or
    the raw module output for "auto"/"raw"/"log-odds", as in
    ``adapters.as_model_function``. ``method``: captum's path-integral rule.

    Rows whose completeness delta exceeds ``tolerance`` (a fraction of
    |f(x) - f(baseline)|) are integrated again with twice the steps, up to
    ``max_steps``: smooth models meet 1% with the 64 starting steps, ReLU
    networks (kinks along the path) may need a few hundred.
    ``extra["completeness_delta"]`` holds, per row, sum(attributions) - (f(x) - f(baseline));
    ``extra["completeness_delta_relative"]`` its size relative to |f(x) - f(baseline)|;
    ``extra["steps"]`` the steps each row used.

    >>> import pytest; torch = pytest.importorskip("torch")
    >>> _ = torch.manual_seed(0)
    >>> mlp = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    >>> X = pd.DataFrame({"a": [0.5, -1.0], "b": [1.0, 2.0], "c": [0.0, 1.5]})
    >>> e = integrated_gradients(mlp, X, background=X, output="probability")
    >>> e.baseline, e.output, bool(e.extra["completeness_delta_relative"].max() < 0.01)
    ('mean of 2 background rows', 'probability', True)
    """
    torch, attr = require_torch("integrated_gradients")
    if not is_torch_module(model):
        raise ExplainError(f"integrated_gradients explains a torch.nn.Module, not a {type(model).__name__}: "
                           "use a model-agnostic method (permutation, kernel) for other models")
    check_output(output)
    if method not in IG_METHODS:
        raise ExplainError(f"method={method!r}: choose one of {list(IG_METHODS)}")
    if int(steps) < 2:
        raise ExplainError(f"steps={steps}: Integrated Gradients needs at least 2 steps")
    if tolerance is not None and not tolerance > 0:
        raise ExplainError(f"tolerance={tolerance}: give a positive fraction (0.01 is 1%) or None")
    names = None if feature_names is None else [str(n) for n in feature_names]
    x, names, data = _as_float_matrix(rows, names, "rows")
    n, d = x.shape
    base, described = _baseline_points(baseline, background, names, n)
    cls = None if class_index is None else int(class_index)
    device, dtype = module_place(model, torch)
    calls = {"forward": 0, "rows": 0}

    def forward(inputs: Any) -> Any:
        calls["forward"] += 1
        calls["rows"] += int(inputs.shape[0])
        return select_output(model(inputs), output, cls, torch)

    values, delta = np.zeros((n, d)), np.zeros(n)
    f_x, f_b = np.zeros(n), np.zeros(n)
    used = np.full(n, int(steps))
    was_training = model.training
    model.eval()
    try:
        ig = attr.IntegratedGradients(forward)

        def run(index: np.ndarray, n_steps: int) -> None:
            chunk = max(1, int(batch_size) // n_steps)
            for start in range(0, len(index), chunk):
                part = index[start:start + chunk]
                xs = torch.tensor(x[part], dtype=dtype, device=device)
                bs = torch.tensor(base[part], dtype=dtype, device=device)
                a = ig.attribute(xs, baselines=bs, n_steps=n_steps, method=method)
                values[part] = a.detach().double().cpu().numpy()
                # in float64 from the outputs reported, so that efficiency_gap() equals max |delta|
                delta[part] = values[part].sum(axis=1) - (f_x[part] - f_b[part])
                used[part] = n_steps

        with torch.no_grad():
            for start in range(0, n, int(batch_size)):
                part = slice(start, start + int(batch_size))
                f_x[part] = forward(torch.tensor(x[part], dtype=dtype, device=device)).double().cpu().numpy()
                f_b[part] = forward(torch.tensor(base[part], dtype=dtype, device=device)).double().cpu().numpy()
        todo, n_steps = np.arange(n), int(steps)
        while len(todo):
            run(todo, n_steps)
            if tolerance is None or n_steps * 2 > max_steps:
                break
            todo = todo[needs_more_steps(delta[todo], f_x[todo], f_b[todo], tolerance)]
            n_steps *= 2
    finally:
        model.train(was_training)
    return Explanation(
        method="integrated_gradients",
        output=output_text(output, cls),
        feature_names=names,
        values=values,
        expected_value=f_b,
        model_output=f_x,
        baseline=described,
        data=data,
        extra={
            "model_calls": calls["forward"],
            "rows_evaluated": calls["rows"],
            "steps": used,
            "integration": method,
            "baseline_values": base,
            "completeness_delta": delta,
            "completeness_delta_relative": relative_delta(delta, f_x - f_b),
        },
    )
