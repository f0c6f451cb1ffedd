"""Tree explanation benchmark: Vigil's tree_shap against shap's TreeExplainer and XGBoost's pred_contribs, in one run.

usage: python benchmarks/explain_tree.py [--quick] [--rows N] [--calls K]

The workload is the peer benchmarks' (``/work/shared/peer-bench/explain.py``): an
``XGBClassifier(n_estimators=200, max_depth=6, tree_method="hist", random_state=0)`` trained on
``make_frame(50_000, seed=3, n_num=20, n_cat=0)``, explaining ``make_frame(ROWS, seed=4, ...)`` (2,000 rows;
500 with ``--quick``). All three explain the same model and rows in this process, in log-odds:

- Vigil: ``tree_shap(model, X)``, the whole call (reading the trees, building the leaf tables, the rows);
- shap: ``TreeExplainer(model).shap_values(X)``, the explainer built beforehand (its setup is shown apart);
- XGBoost: ``booster.predict(DMatrix(X), pred_contribs=True)``.

Each runs ``--calls`` times after one untimed warm-up; the figure is the median. The table gives rows/s,
Vigil's speed-up, the CPU seconds other processes used during the calls (the machine is shared and noisy:
compare the ratios of one run), and the largest absolute difference between each pair of results
(XGBoost computes in float32, so ~1e-6 is agreement). The first call in a fresh process is measured in a
subprocess: with numba's cache in place (the usual case) and, without ``--quick``, from an empty cache
(compiling every kernel). A short interventional section compares ``feature_perturbation="interventional"``
against shap's, on the same 100 background rows. Goal: no slower than shap, same values.

Two more sections, each against shap in the same run:

- interaction values: ``tree_shap_interactions(model, X)`` against ``TreeExplainer(model).shap_interaction_values``
  on the same model (the first 200 rows; 50 with ``--quick``). For XGBoost models shap hands this to XGBoost's
  own ``pred_interactions`` (float32), so agreement is ~1e-6. Goal: no slower, same values.
- all classes in one pass: a 10-class ``XGBClassifier(n_estimators=50, max_depth=6)`` and a 10-class
  ``RandomForestClassifier(n_estimators=50, max_depth=10)`` (trained on ``make_frame(20_000, seed=3, ...)``, the
  class being the decile of a score of the features), ``tree_shap_classes(model, X)`` (rows, features, 10) against
  ``TreeExplainer(model).shap_values(X)`` and against ``tree_shap`` called once per class. Goal: at least as fast
  as shap, same values.
- IsolationForest: ``IsolationForest(n_estimators=200, random_state=0)`` fitted on the first 20,000 training rows,
  ``tree_shap(model, X)`` (the mean path length behind ``score_samples``) against shap's TreeExplainer on the
  same rows. Goal: no slower, same values.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from drift import make_frame
from measure import busy_s, wait_idle

FEATURES = [f"num_{i}" for i in range(20)]
SRC = Path(__file__).resolve().parents[1] / "src"

_COLD = """
import json, sys, time
t = time.perf_counter()
from vigil.core.explain.treeshap import tree_shap
import_s = time.perf_counter() - t
import numpy as np, xgboost as xgb
model = xgb.XGBClassifier()
model.load_model(sys.argv[1])
X = np.load(sys.argv[2])
t = time.perf_counter()
e = tree_shap(model, X[:10])
print(json.dumps({"import_s": import_s, "first_s": time.perf_counter() - t, "compile_s": e.extra["compile_s"]}))
"""


def _timed(fn, calls: int) -> tuple[float, float, object]:
    """(median wall seconds, max CPU seconds other processes used in a call, last result) after a warm-up call."""
    out = fn()
    walls, foreign = [], []
    for _ in range(calls):
        b, c, t = busy_s(), time.process_time(), time.perf_counter()
        out = fn()
        walls.append(time.perf_counter() - t)
        foreign.append(max(0.0, (busy_s() - b) - (time.process_time() - c)))
    return statistics.median(walls), max(foreign), out


def _cold(model_path: str, x_path: str, empty_cache: bool) -> dict | str:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    with tempfile.TemporaryDirectory() as cache:
        if empty_cache:
            env["NUMBA_CACHE_DIR"] = cache
        proc = subprocess.run([sys.executable, "-c", _COLD, model_path, x_path], capture_output=True, text=True,
                              env=env, timeout=900)
    if proc.returncode != 0:
        return f"failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(rows: int, calls: int, quick: bool) -> dict:
    """Train the workload's model, time the three explainers, return the figures."""
    import shap
    import xgboost as xgb

    from vigil.core.explain.treeshap import tree_shap

    train = make_frame(50_000, seed=3, n_num=20, n_cat=0)
    held = make_frame(rows, seed=4, n_num=20, n_cat=0)
    X_train, X = train[FEATURES].to_numpy(), held[FEATURES].to_numpy()
    t = time.perf_counter()
    model = xgb.XGBClassifier(n_estimators=200, max_depth=6, tree_method="hist", random_state=0)
    model.fit(X_train, train["label"].to_numpy())
    train_s = time.perf_counter() - t
    booster = model.get_booster()

    out: dict = {"rows": rows, "calls": calls, "train_s": train_s, "cold": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model_path, x_path = str(Path(tmp) / "model.ubj"), str(Path(tmp) / "x.npy")
        model.save_model(model_path)
        np.save(x_path, X)
        tree_shap(model, X[:10])  # make sure numba's cache holds the kernels
        out["cold"]["cached"] = _cold(model_path, x_path, empty_cache=False)
        if not quick:
            out["cold"]["compile"] = _cold(model_path, x_path, empty_cache=True)

    out["idle_wait_s"] = wait_idle(max_wait_s=30.0 if quick else 120.0)
    t = time.perf_counter()
    explainer = shap.TreeExplainer(model)
    out["shap_setup_s"] = time.perf_counter() - t
    runs = {
        "vigil": lambda: tree_shap(model, X),
        "shap": lambda: explainer.shap_values(X),
        "xgboost": lambda: booster.predict(xgb.DMatrix(X), pred_contribs=True)[:, :-1],
    }
    results, values = {}, {}
    for name, fn in runs.items():
        wall, foreign, res = _timed(fn, calls)
        results[name] = {"wall_s": wall, "foreign_cpu_s": foreign}
        values[name] = np.asarray(res.values if name == "vigil" else res, dtype=np.float64)
        if name == "vigil":
            out["efficiency_gap"] = res.efficiency_gap()
            out["vigil_extra"] = res.extra
    out["results"] = results
    out["diff"] = {f"{a} vs {b}": float(np.abs(values[a] - values[b]).max())
                   for a, b in (("vigil", "shap"), ("vigil", "xgboost"), ("shap", "xgboost"))}
    out["scale"] = float(np.abs(values["xgboost"]).max())

    n_int = 100 if quick else 500
    picked = np.sort(np.random.default_rng(0).choice(len(X_train), size=100, replace=False))
    background = X_train[picked]
    inter = shap.TreeExplainer(model, data=background, feature_perturbation="interventional")
    v_wall, v_foreign, v_res = _timed(lambda: tree_shap(model, X[:n_int], background=background,
                                                        feature_perturbation="interventional"), calls)
    s_wall, s_foreign, s_res = _timed(lambda: inter.shap_values(X[:n_int]), calls)
    out["interventional"] = {
        "rows": n_int, "vigil_s": v_wall, "shap_s": s_wall, "foreign_cpu_s": max(v_foreign, s_foreign),
        "diff": float(np.abs(v_res.values - np.asarray(s_res)).max()), "efficiency_gap": v_res.efficiency_gap(),
    }
    out["interactions"] = _interaction_section(model, X[:50 if quick else 200], calls)
    out["classes"] = _classes_section(X, calls)
    out["isolation"] = _isolation_section(X_train, X[:500 if quick else 2000], calls)
    out["versions"] = f"shap {shap.__version__}, xgboost {xgb.__version__}"
    return out


def _interaction_section(model, X: np.ndarray, calls: int) -> dict:
    import shap

    from vigil.core.explain.tree_interactions import tree_shap_interactions

    explainer = shap.TreeExplainer(model)
    calls = min(calls, 2)  # shap's call is long here
    v_wall, v_foreign, v_res = _timed(lambda: tree_shap_interactions(model, X), calls)
    s_wall, s_foreign, s_res = _timed(lambda: explainer.shap_interaction_values(X), calls)
    reference = np.asarray(s_res, dtype=np.float64)
    return {"rows": len(X), "calls": calls, "vigil_s": v_wall, "shap_s": s_wall,
            "foreign_cpu_s": max(v_foreign, s_foreign), "diff": float(np.abs(v_res.interactions - reference).max()),
            "scale": float(np.abs(reference).max()), "efficiency_gap": v_res.efficiency_gap(),
            "row_sums_vs_values": float(np.abs(v_res.interactions.sum(axis=2) - v_res.values).max())}


def _classes_section(X: np.ndarray, calls: int) -> dict:
    import shap
    import xgboost as xgb
    from sklearn.ensemble import RandomForestClassifier

    from vigil.core.explain.tree_interactions import tree_shap_classes
    from vigil.core.explain.treeshap import tree_shap

    train = make_frame(20_000, seed=3, n_num=20, n_cat=0)
    X_train = train[FEATURES].to_numpy()
    score = X_train[:, 0] + X_train[:, 1] - X_train[:, 2] + 0.5 * X_train[:, 3] * X_train[:, 4]
    y = np.digitize(score, np.quantile(score, np.linspace(0.1, 0.9, 9)))
    models = {
        "XGBClassifier 50 rounds depth 6": xgb.XGBClassifier(n_estimators=50, max_depth=6, tree_method="hist",
                                                              random_state=0),
        "RandomForestClassifier 50 trees depth 10": RandomForestClassifier(n_estimators=50, max_depth=10,
                                                                           random_state=0, n_jobs=2),
    }
    out = {}
    for label, model in models.items():
        t = time.perf_counter()
        model.fit(X_train, y)
        train_s = time.perf_counter() - t
        explainer = shap.TreeExplainer(model)
        v_wall, v_foreign, v_res = _timed(lambda m=model: tree_shap_classes(m, X), calls)
        s_wall, s_foreign, s_res = _timed(lambda e=explainer: e.shap_values(X), calls)
        p_wall, p_foreign, _ = _timed(lambda m=model: [tree_shap(m, X, class_index=c) for c in range(10)], calls)
        ours = np.stack([e.values for e in v_res], axis=-1)
        theirs = np.asarray(s_res, dtype=np.float64)
        out[label] = {"rows": len(X), "train_s": train_s, "vigil_s": v_wall, "shap_s": s_wall, "per_class_s": p_wall,
                      "foreign_cpu_s": max(v_foreign, s_foreign, p_foreign), "diff": float(np.abs(ours - theirs).max()),
                      "scale": float(np.abs(theirs).max()),
                      "efficiency_gap": max(e.efficiency_gap() for e in v_res)}
    return out


def _isolation_section(X_train: np.ndarray, X: np.ndarray, calls: int) -> dict:
    """IsolationForest (200 trees) explained path-dependently: Vigil against shap's TreeExplainer."""
    import shap
    from sklearn.ensemble import IsolationForest

    from vigil.core.explain.treeshap import tree_shap

    model = IsolationForest(n_estimators=200, random_state=0).fit(X_train[:20_000])
    explainer = shap.TreeExplainer(model)
    v_wall, v_foreign, v_res = _timed(lambda: tree_shap(model, X), calls)
    s_wall, s_foreign, s_res = _timed(lambda: explainer.shap_values(X), calls)
    theirs = np.asarray(s_res, dtype=np.float64)
    return {"rows": len(X), "vigil_s": v_wall, "shap_s": s_wall, "foreign_cpu_s": max(v_foreign, s_foreign),
            "diff": float(np.abs(v_res.values - theirs).max()), "scale": float(np.abs(theirs).max()),
            "efficiency_gap": v_res.efficiency_gap()}


def _print(out: dict) -> bool:
    rows, res = out["rows"], out["results"]
    vigil_s = res["vigil"]["wall_s"]
    labels = {"vigil": "Vigil tree_shap", "shap": "shap TreeExplainer.shap_values",
              "xgboost": "XGBoost pred_contribs"}
    print(f"tree explanations: XGBClassifier 200 trees depth 6, 20 features, {rows:,} rows, median of "
          f"{out['calls']} calls ({out['versions']}; model trained in {out['train_s']:.1f} s, shap explainer "
          f"built in {out['shap_setup_s']:.2f} s, waited {out['idle_wait_s']:.0f} s for an idle machine)")
    print()
    print("| explainer | warm s | rows/s | Vigil speed-up | other processes' CPU s |")
    print("| --- | --- | --- | --- | --- |")
    for name, rec in res.items():
        ratio = "—" if name == "vigil" else f"{rec['wall_s'] / vigil_s:.1f}x"
        print(f"| {labels[name]} | {rec['wall_s']:.3f} | {rows / rec['wall_s']:,.0f} | {ratio} | "
              f"{rec['foreign_cpu_s']:.2f} |")
    print()
    print("largest |difference| (log-odds; attributions up to "
          f"{out['scale']:.2f}): " + ", ".join(f"{k} {v:.1e}" for k, v in out["diff"].items()))
    print(f"Vigil efficiency gap (sum + expected value - margin): {out['efficiency_gap']:.1e}; "
          f"engine {out['vigil_extra']['engine']}, {out['vigil_extra']['trees']} trees")
    for label, key in (("numba cache in place", "cached"), ("empty numba cache (compiles every kernel)", "compile")):
        rec = out["cold"].get(key)
        if isinstance(rec, dict):
            print(f"first call in a fresh process, {label}: import {rec['import_s']:.2f} s, first tree_shap call "
                  f"(10 rows) {rec['first_s']:.2f} s, of which compiling/loading kernels {rec['compile_s']:.2f} s")
        elif rec is not None:
            print(f"first call in a fresh process, {label}: {rec}")
    inter = out["interventional"]
    print()
    print(f"interventional, 100 background rows, {inter['rows']} rows: Vigil {inter['vigil_s']:.3f} s "
          f"({inter['rows'] / inter['vigil_s']:,.0f} rows/s), shap {inter['shap_s']:.3f} s "
          f"({inter['rows'] / inter['shap_s']:,.0f} rows/s), speed-up {inter['shap_s'] / inter['vigil_s']:.1f}x, "
          f"largest |difference| {inter['diff']:.1e}, Vigil efficiency gap {inter['efficiency_gap']:.1e}, "
          f"other processes' CPU s {inter['foreign_cpu_s']:.2f}")
    inter = out["interactions"]
    print()
    print(f"interaction values, {inter['rows']} rows (median of {inter['calls']}): Vigil tree_shap_interactions "
          f"{inter['vigil_s']:.3f} s, shap shap_interaction_values {inter['shap_s']:.3f} s, speed-up "
          f"{inter['shap_s'] / inter['vigil_s']:.1f}x, largest |difference| {inter['diff']:.1e} (interactions up to "
          f"{inter['scale']:.2f}), Vigil efficiency gap {inter['efficiency_gap']:.1e}, rows sum to the SHAP values "
          f"within {inter['row_sums_vs_values']:.1e}, other processes' CPU s {inter['foreign_cpu_s']:.2f}")
    print()
    print(f"all classes in one pass (10 classes, {rows:,} rows):")
    print()
    print("| model | Vigil tree_shap_classes s | shap shap_values s | tree_shap per class s | speed-up vs shap | "
          "speed-up vs per class | largest abs difference | efficiency gap | other processes' CPU s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for label, rec in out["classes"].items():
        print(f"| {label} | {rec['vigil_s']:.3f} | {rec['shap_s']:.3f} | {rec['per_class_s']:.3f} | "
              f"{rec['shap_s'] / rec['vigil_s']:.1f}x | {rec['per_class_s'] / rec['vigil_s']:.1f}x | "
              f"{rec['diff']:.1e} | {rec['efficiency_gap']:.1e} | {rec['foreign_cpu_s']:.2f} |")
    iso = out["isolation"]
    print()
    print(f"IsolationForest 200 trees, {iso['rows']:,} rows (mean path length behind score_samples): Vigil "
          f"{iso['vigil_s']:.3f} s, shap TreeExplainer {iso['shap_s']:.3f} s, speed-up "
          f"{iso['shap_s'] / iso['vigil_s']:.1f}x, largest |difference| {iso['diff']:.1e} (attributions up to "
          f"{iso['scale']:.2f}), Vigil efficiency gap {iso['efficiency_gap']:.1e}, other processes' CPU s "
          f"{iso['foreign_cpu_s']:.2f}")
    print()
    checks = [
        ("no slower than shap's TreeExplainer", vigil_s <= res["shap"]["wall_s"],
         f"{res['shap']['wall_s'] / vigil_s:.1f}x"),
        ("same values as XGBoost's pred_contribs (float32: 2e-5 relative)",
         out["diff"]["vigil vs xgboost"] <= 2e-5 * max(1.0, out["scale"]), f"{out['diff']['vigil vs xgboost']:.1e}"),
        ("efficiency within 1e-9", out["efficiency_gap"] <= 1e-9, f"{out['efficiency_gap']:.1e}"),
        ("interaction values no slower than shap's shap_interaction_values", inter["vigil_s"] <= inter["shap_s"],
         f"{inter['shap_s'] / inter['vigil_s']:.1f}x"),
        ("same interaction values (float32: 2e-5 relative)", inter["diff"] <= 2e-5 * max(1.0, inter["scale"]),
         f"{inter['diff']:.1e}"),
    ]
    for label, rec in out["classes"].items():
        checks.append((f"all 10 classes of the {label} at least as fast as shap", rec["vigil_s"] <= rec["shap_s"],
                       f"{rec['shap_s'] / rec['vigil_s']:.1f}x"))
        checks.append((f"same values as shap for the {label} (2e-5 relative)",
                       rec["diff"] <= 2e-5 * max(1.0, rec["scale"]), f"{rec['diff']:.1e}"))
    checks += [
        ("IsolationForest no slower than shap's TreeExplainer", iso["vigil_s"] <= iso["shap_s"],
         f"{iso['shap_s'] / iso['vigil_s']:.1f}x"),
        ("same IsolationForest values as shap (1e-9 relative)", iso["diff"] <= 1e-9 * max(1.0, iso["scale"]),
         f"{iso['diff']:.1e}"),
    ]
    for goal, ok, detail in checks:
        print(f"goal: {goal}: {'met' if ok else 'NOT met'} ({detail})")
    return all(ok for _, ok, _ in checks)


def tree_section(quick: bool) -> None:
    """Print the tree-explanation table (2,000 rows and 3 calls; 500 rows and 2 calls when quick)."""
    _print(run(500 if quick else 2000, 2 if quick else 3, quick))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="500 rows, 2 calls, no from-scratch compile timing")
    ap.add_argument("--rows", type=int, default=None, help="explained rows (default 2,000; 500 with --quick)")
    ap.add_argument("--calls", type=int, default=None, help="timed calls each (default 3; 2 with --quick)")
    args = ap.parse_args(argv)
    rows = args.rows or (500 if args.quick else 2000)
    calls = args.calls or (2 if args.quick else 3)
    if rows < 10 or calls < 1:
        ap.error("--rows must be >= 10 and --calls >= 1")
    return 0 if _print(run(rows, calls, args.quick)) else 1


if __name__ == "__main__":
    sys.exit(main())
