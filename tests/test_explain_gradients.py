"""Integrated Gradients on tabular rows: exact on linear models, complete on MLPs, same output as the adapters."""

from __future__ import annotations

import copy
import sys

import numpy as np
import pandas as pd
import pytest

from vigil.core.explain.adapters import ExplainError, as_model_function
from vigil.core.explain.gradients import integrated_gradients

torch = pytest.importorskip("torch")
pytest.importorskip("captum")


pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _linear(d: int, seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(d, 1)


def _train_mlp(activation: type, X: pd.DataFrame, y: torch.Tensor) -> torch.nn.Module:
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(10, 16), activation(), torch.nn.Linear(16, 16), torch.nn.Tanh(),
                              torch.nn.Linear(16, 1))
    opt = torch.optim.Adam(mlp.parameters(), lr=0.02)
    xt = torch.tensor(X.to_numpy(), dtype=torch.float32)
    for _ in range(150):
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(mlp(xt).reshape(-1), y)
        loss.backward()
        opt.step()
    with torch.no_grad():
        accuracy = float(((mlp(xt).reshape(-1) > 0).float() == y).float().mean())
    assert accuracy > 0.9
    return mlp


@pytest.fixture(scope="module")
def cancer_mlps():
    """Small tanh and ReLU MLPs trained on scikit-learn's bundled breast-cancer data (standardised)."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    X = data.data.iloc[:, :10]
    X = (X - X.mean()) / X.std()
    y = torch.tensor(data.target.to_numpy(), dtype=torch.float32)
    return {"tanh": _train_mlp(torch.nn.Tanh, X, y), "relu": _train_mlp(torch.nn.ReLU, X, y)}, X


def test_linear_model_gets_weight_times_distance_to_the_baseline_exactly():
    r = np.random.default_rng(1)
    model = _linear(4)
    rows = pd.DataFrame(r.normal(size=(6, 4)), columns=list("abcd"))
    background = pd.DataFrame(r.normal(loc=2.0, size=(50, 4)), columns=list("abcd"))
    w = model.weight.detach().numpy()[0].astype(float)
    for method in ("gausslegendre", "riemann_right"):
        e = integrated_gradients(model, rows, background=background, method=method, steps=8)
        assert e.baseline == "mean of 50 background rows"
        expected = w * (rows.to_numpy() - background.to_numpy().mean(axis=0))
        np.testing.assert_allclose(e.values, expected, atol=1e-5)
        assert e.efficiency_gap() < 1e-5
    zero = integrated_gradients(model, rows.to_numpy(), feature_names=list("abcd"))
    assert zero.baseline == "zeros"
    np.testing.assert_allclose(zero.values, w * rows.to_numpy(), atol=1e-5)
    np.testing.assert_allclose(zero.expected_value, model.bias.detach().item(), atol=1e-6)


def test_default_steps_keep_the_completeness_delta_below_one_percent_on_a_smooth_mlp(cancer_mlps):
    mlps, X = cancer_mlps
    rows = X.iloc[::15]
    for output in ("probability", "raw"):
        e = integrated_gradients(mlps["tanh"], rows, background=X, output=output)
        moved = np.abs(e.model_output - e.expected_value) > 1e-3
        assert moved.sum() >= len(rows) - 2
        assert e.extra["completeness_delta_relative"][moved].max() < 0.01
        assert set(e.extra["steps"]) == {64}, "a smooth MLP needs no more than the default steps"
        np.testing.assert_allclose(e.extra["completeness_delta"],
                                   e.values.sum(axis=1) - (e.model_output - e.expected_value), atol=1e-6)
        assert e.extra["model_calls"] >= 1


def test_relu_kinks_get_more_steps_until_the_delta_is_below_one_percent(cancer_mlps):
    mlps, X = cancer_mlps
    rows = X.iloc[::15]
    fixed = integrated_gradients(mlps["relu"], rows, background=X, output="probability", tolerance=None)
    moved = np.abs(fixed.model_output - fixed.expected_value) > 1e-3
    assert fixed.extra["completeness_delta_relative"][moved].max() > 0.01, "64 steps are not enough across kinks"
    e = integrated_gradients(mlps["relu"], rows, background=X, output="probability")
    assert e.extra["completeness_delta_relative"][moved].max() < 0.01
    assert e.extra["steps"].max() > 64 and e.extra["steps"].max() <= 1024
    assert (e.extra["steps"] == 64).sum() > len(rows) // 2, "only the rows that need it are refined"


@pytest.mark.parametrize(("activation", "tol"), [("tanh", 1e-4), ("relu", 5e-2)])
def test_matches_an_independent_fine_riemann_integral(cancer_mlps, activation, tol):
    mlps, X = cancer_mlps
    mlp = mlps[activation]
    rows = X.iloc[[3, 40, 100, 300]].to_numpy()
    base = X.to_numpy().mean(axis=0)
    e = integrated_gradients(mlp, rows, baseline=base, feature_names=list(X.columns), output="probability")
    assert e.baseline == "the given baseline point"
    m = 4000
    alphas = (np.arange(m) + 0.5) / m  # midpoint rule in float64, computed without captum
    twin = copy.deepcopy(mlp).double()
    for i, x in enumerate(rows):
        path = torch.tensor(base + alphas[:, None] * (x - base), dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(torch.sigmoid(twin(path).reshape(-1)).sum(), path)
        oracle = (x - base) * grad.numpy().mean(axis=0)
        scale = abs(e.model_output[i] - e.expected_value[i])
        np.testing.assert_allclose(e.values[i], oracle, atol=tol * scale + 1e-6)


def test_model_output_follows_the_adapters_torch_convention():
    torch.manual_seed(3)
    net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 4))
    rows = np.random.default_rng(0).normal(size=(5, 3))
    names = ["p", "q", "r"]
    for output in ("probability", "raw"):
        e = integrated_gradients(net, rows, feature_names=names, output=output, class_index=2)
        f = as_model_function(net, names, output=output, class_index=2)
        np.testing.assert_allclose(e.model_output, f(rows), atol=1e-6)
        np.testing.assert_allclose(e.expected_value, f(np.zeros((1, 3)))[0], atol=1e-6)
        assert e.output == f.output
        assert e.efficiency_gap() < 1e-3
    with pytest.raises(ExplainError, match="class_index"):
        integrated_gradients(net, rows, feature_names=names)


def test_per_row_baselines_and_training_mode_restored():
    model = _linear(2, seed=5)
    model.train()
    rows = np.array([[1.0, 2.0], [3.0, -1.0]])
    base = np.array([[0.5, 0.5], [1.0, 1.0]])
    e = integrated_gradients(model, rows, baseline=base)
    assert model.training
    assert e.feature_names == ["x0", "x1"] and e.baseline == "one given baseline point per row"
    w = model.weight.detach().numpy()[0]
    np.testing.assert_allclose(e.values, w * (rows - base), atol=1e-5)
    assert e.data is not None and e.data.shape == (2, 2)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"baseline": "mean"}, "needs background"),
    ({"baseline": "median"}, "baseline='median'"),
    ({"baseline": np.zeros((3, 2))}, "3 rows"),
    ({"output": "odds"}, "output='odds'"),
    ({"method": "simpson"}, "method='simpson'"),
    ({"steps": 1}, "steps=1"),
])
def test_bad_options_are_named(kwargs, message):
    with pytest.raises(ExplainError, match=message):
        integrated_gradients(_linear(2), np.ones((2, 2)), **kwargs)


def test_bad_inputs_are_named():
    with pytest.raises(ExplainError, match=r"\['city'\] are not numeric"):
        integrated_gradients(_linear(2), pd.DataFrame({"age": [1.0], "city": ["Oslo"]}))
    with pytest.raises(ExplainError, match="NaN"):
        integrated_gradients(_linear(2), np.array([[1.0, np.nan]]))
    with pytest.raises(ExplainError, match="lack the model's input column"):
        integrated_gradients(_linear(2), pd.DataFrame({"a": [1.0]}), feature_names=["a", "b"])
    with pytest.raises(ExplainError, match="torch.nn.Module"):
        integrated_gradients(lambda x: x, np.ones((1, 2)))


def test_missing_torch_extra_is_explained(monkeypatch):
    monkeypatch.setitem(sys.modules, "captum", None)
    with pytest.raises(ExplainError, match=r"pip install 'vigil\[torch\]'"):
        integrated_gradients(_linear(2), np.ones((1, 2)))
