"""Self-contained HTML monitoring reports: Plotly figures built from the monitoring frames.

Pure: frames in (what ``Store.performance``, ``drift``, ``integrity`` and
``traffic`` return), HTML out; nothing here opens a store. plotly.js is
inlined once in the document's head and every figure is a ``<div>`` that
uses it, so the file opens anywhere without a network: no CDN script, no web
font, and a Content-Security-Policy that forbids fetching anything.

>>> import pandas as pd
>>> traffic = pd.DataFrame({"window": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True), "segment": "all",
...                         "metric": "events", "value": [120.0, 95.0]})
>>> report = build_report(title="credit", meta={"model": "credit", "version": "1"}, traffic=traffic)
>>> [s.heading for s in report.sections]
['Summary', 'Performance', 'Drift', 'Data integrity', 'Traffic']
>>> "No labelled events yet" in report.html
True
"""

from __future__ import annotations

import datetime as dt
import functools
import html
import math
import numbers
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import plotly.offline
from plotly.subplots import make_subplots

__all__ = [
    "Report",
    "Section",
    "Tile",
    "build_report",
    "drift_heatmap",
    "drift_summary_table",
    "integrity_figure",
    "latest_drift",
    "performance_figure",
    "table_html",
    "traffic_figure",
]

#: Display names of the metrics the frames carry.
METRIC_NAMES = {
    "accuracy": "Accuracy", "precision": "Precision", "recall": "Recall", "specificity": "Specificity",
    "npv": "NPV", "f1": "F1", "fpr": "FPR", "fnr": "FNR", "roc_auc": "ROC-AUC", "pr_auc": "PR-AUC",
    "ece": "ECE", "log_loss": "Log loss", "brier": "Brier score", "mae": "MAE", "rmse": "RMSE", "mape": "MAPE",
    "r2": "R²", "residual_mean": "Mean residual", "missing_rate": "missing", "out_of_range_rate": "out of range",
    "outlier_rate": "outliers", "unseen_category_rate": "unseen categories", "quarantined_rows": "quarantined rows",
}
REGRESSION_METRICS = ("mae", "rmse", "r2")
INTEGRITY_METRICS = ("missing_rate", "out_of_range_rate", "outlier_rate", "unseen_category_rate")
#: The summary and the performance table show the latest window with at least this many labelled events.
MIN_LABELLED = 30

NO_LABELS = ("No labelled events yet: performance is computed once ground truth is joined to the events "
             "(vigil labels, Store.log_labels).")
NO_DRIFT = ("No drift results: no window with events to compare with the baseline (with baseline 'previous' "
            "the first window has nothing before it).")
NO_INTEGRITY = "No integrity results: no events in the period."
NO_TRAFFIC = "No events in the period."
NO_EXPLANATIONS = ("No explanations stored yet: explain a sample of events first (`vigil explain MODEL --sample "
                   "0.1`, or store.explain_sample / store.explain_online).")
NO_FAIRNESS = "No fairness results: no labelled events with protected attributes in the period."
FAIRNESS_NAMES = {"demographic_parity_difference": "parity diff.", "demographic_parity_ratio": "disparate impact",
                  "equal_opportunity_difference": "equal opp. diff.", "equalized_odds_difference": "eq. odds diff.",
                  "predictive_parity_difference": "pred. parity diff.",
                  "calibration_gap_difference": "calibration diff.", "four_fifths_passed": "four-fifths"}
#: Features shown in the explanations section.
TOP_FEATURES = 10

#: Colour of the value / threshold ratio: greens below the threshold, reds from it on (capped at 2).
DRIFT_RATIO_CAP = 2.0
DRIFT_COLORSCALE = [[0.0, "#e8f5e9"], [0.25, "#c7e9c0"], [0.4999, "#ffe08a"], [0.5, "#fc8d59"],
                    [0.75, "#e34a33"], [1.0, "#99000d"]]
FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif'
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "modeBarButtonsToRemove": ["select2d", "lasso2d"],
                 "toImageButtonOptions": {"format": "png", "scale": 2}}
#: Nothing may be fetched when the file is opened: scripts and styles are inline, images only data: URLs.
CSP = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
       "img-src data: blob:; font-src data:")

CSS = """
.vigil-report{font-family:FONT_FAMILY;color:#1f2933;line-height:1.45;max-width:1180px;margin:0 auto;padding:24px 28px;
  background:#fff;box-sizing:border-box}
.vigil-report *{box-sizing:border-box}
.vigil-report h1{font-size:1.6em;margin:0 0 .2em}
.vigil-report h2{font-size:1.25em;margin:0 0 .6em;padding-bottom:.25em;border-bottom:2px solid #e4e7eb}
.vigil-report .meta{display:flex;flex-wrap:wrap;gap:4px 22px;margin:.5em 0;padding:0;list-style:none;color:#3e4c59}
.vigil-report .meta b{color:#1f2933;font-weight:600}
.vigil-report .generated{color:#7b8794;font-size:.85em;margin:0}
.vigil-report nav{margin:14px 0 4px;font-size:.9em}
.vigil-report nav a{color:#2563eb;text-decoration:none;margin-right:14px}
.vigil-report section{margin:26px 0 0;padding-top:4px}
.vigil-report .note{color:#3e4c59;margin:.4em 0 .8em;white-space:pre-line}
.vigil-report .empty{background:#f5f7fa;border-left:4px solid #9aa5b1;padding:10px 14px;border-radius:3px}
.vigil-report .tiles{display:flex;flex-wrap:wrap;gap:12px;margin:6px 0 12px}
.vigil-report .tile{flex:1 1 150px;border:1px solid #e4e7eb;border-radius:6px;padding:10px 14px;background:#fbfcfd}
.vigil-report .tile .label{font-size:.8em;text-transform:uppercase;letter-spacing:.04em;color:#616e7c}
.vigil-report .tile .value{font-size:1.6em;font-weight:600;margin:2px 0}
.vigil-report .tile .detail{font-size:.82em;color:#7b8794}
.vigil-report .tile.alert{border-color:#f5a3a3;background:#fff5f5}
.vigil-report .tile.alert .value{color:#b91c1c}
.vigil-report table.data{border-collapse:collapse;font-size:.88em;margin:8px 0 4px;min-width:40%}
.vigil-report table.data th{background:#f0f3f7;text-align:left;font-weight:600;padding:5px 10px;
  border-bottom:1px solid #cbd2d9}
.vigil-report table.data td{padding:4px 10px;border-bottom:1px solid #eef1f4}
.vigil-report table.data td.num{text-align:right;font-variant-numeric:tabular-nums}
.vigil-report table.data tr.flag td{background:#fff1f1}
.vigil-report table.data td.flag{color:#b91c1c;font-weight:600}
.vigil-report .figure{margin:6px 0}
.vigil-report footer{margin-top:32px;color:#9aa5b1;font-size:.8em}
@media print{.vigil-report section{break-inside:avoid}.vigil-report nav{display:none}}
""".replace("FONT_FAMILY", FONT)


@functools.cache
def _plotly_js() -> str:
    return plotly.offline.get_plotlyjs()


# -- small helpers ---------------------------------------------------------------------------------------


def _has(frame: pd.DataFrame | None) -> bool:
    return frame is not None and len(frame) > 0


def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"the {what} frame has no column {missing}; it has {list(frame.columns)}")


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _utc(windows: pd.Series | Iterable[Any]) -> pd.Series:
    """Window starts as naive UTC timestamps (what Plotly plots without shifting them)."""
    values = pd.to_datetime(pd.Series(list(windows) if not isinstance(windows, pd.Series) else windows), utc=True)
    return values.dt.tz_localize(None)


def _window_labels(windows: Sequence[Any]) -> list[str]:
    """Text labels of window starts: dates when every window starts at midnight, else date and time.

    >>> _window_labels(pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True))
    ['2026-01-01', '2026-01-02']
    >>> _window_labels(pd.to_datetime(["2026-01-01 06:00"], utc=True))
    ['2026-01-01 06:00']
    """
    values = _utc(windows)
    daily = bool(len(values)) and bool((values == values.dt.normalize()).all())
    return [v.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M") for v in values]


def _fmt(value: Any) -> str:
    """A cell's text: ``–`` for missing, yes/no for booleans, 4 significant digits, thousands separators.

    >>> [_fmt(v) for v in (None, float("nan"), True, 1234567, 0.123456, 2.0, "x")]
    ['–', '–', 'yes', '1,234,567', '0.1235', '2', 'x']
    """
    if value is None or value is pd.NaT:
        return "–"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        v = float(value)
        if math.isnan(v):
            return "–"
        if math.isinf(v):
            return "∞" if v > 0 else "-∞"
        if v.is_integer() and abs(v) < 1e15:
            return f"{int(v):,}"
        return f"{v:.4g}"
    if isinstance(value, pd.Timestamp | dt.datetime):
        ts = pd.Timestamp(value)
        if ts.tzinfo is not None:
            ts = ts.tz_convert("UTC")
        return ts.strftime("%Y-%m-%d" if ts == ts.normalize() else "%Y-%m-%d %H:%M")
    try:
        if pd.isna(value):
            return "–"
    except (TypeError, ValueError):
        pass
    return str(value)


def _pct(value: float) -> str:
    return "–" if value is None or not np.isfinite(value) else f"{value:.1%}"


def _base_figure(title: str, height: int) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(template="plotly_white", title={"text": title, "x": 0.0, "xanchor": "left"}, height=height,
                      margin={"l": 60, "r": 30, "t": 56, "b": 48}, font={"family": FONT, "size": 12},
                      legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
                      hovermode="closest")
    return fig


def _empty(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(text=message, showarrow=False, xref="paper", yref="paper", x=0.5, y=0.5,
                       font={"size": 14, "color": "#7b8794"})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _segments(frame: pd.DataFrame) -> list[Any]:
    return list(dict.fromkeys(frame["segment"])) if "segment" in frame.columns else [None]


def _of_segment(frame: pd.DataFrame, segment: Any) -> pd.DataFrame:
    return frame if segment is None else frame[frame["segment"] == segment]


def _named(name: str, segment: Any, segments: list[Any]) -> str:
    return name if len(segments) < 2 else f"{name} ({segment})"


# -- figures ---------------------------------------------------------------------------------------------


def _performance_metrics(perf: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(perf["metric"]))
    chosen = [m for m in metrics if m in present]
    if not chosen:
        chosen = [m for m in REGRESSION_METRICS if m in present] or present[:3]
    return chosen


def performance_figure(perf: pd.DataFrame | None, metrics: Sequence[str] = ("accuracy", "roc_auc", "f1")) -> go.Figure:
    """Lines of model quality over the windows, one per metric (MAE, RMSE, R² for a regression frame).

    >>> perf = pd.DataFrame({"window": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True), "segment": "all",
    ...                      "metric": "accuracy", "value": [0.91, 0.87], "labelled": [40, 35], "events": [50, 50]})
    >>> [trace.name for trace in performance_figure(perf).data]
    ['Accuracy']
    """
    fig = _base_figure("Model performance per window (labelled events)", 380)
    if not _has(perf):
        return _empty(fig, "No labelled events yet")
    _require(perf, ("window", "metric", "value"), "performance")
    chosen = _performance_metrics(perf, metrics)
    frame = perf[perf["metric"].isin(chosen)].sort_values("window", kind="stable")
    segments = _segments(frame)
    for metric in chosen:
        for segment in segments:
            rows = _of_segment(frame[frame["metric"] == metric], segment)
            if rows.empty:
                continue
            name = _named(METRIC_NAMES.get(metric, metric), segment, segments)
            labelled = rows["labelled"] if "labelled" in rows else pd.Series(np.nan, index=rows.index)
            events = rows["events"] if "events" in rows else pd.Series(np.nan, index=rows.index)
            custom = np.column_stack([[_fmt(v) for v in labelled], [_fmt(v) for v in events]])
            fig.add_trace(go.Scatter(
                x=_utc(rows["window"]), y=rows["value"].astype(float), mode="lines+markers", name=name,
                customdata=custom,
                hovertemplate=(f"<b>{_esc(name)}</b> %{{y:.4f}}<br>window %{{x|%Y-%m-%d %H:%M}} UTC<br>"
                               "%{customdata[0]} labelled of %{customdata[1]} events<extra></extra>")))
    fig.update_xaxes(title_text="window start (UTC)")
    fig.update_yaxes(title_text="value")
    return fig


def _drift_frame(drift: pd.DataFrame) -> pd.DataFrame:
    """The drift rows with a row label (column, plus segment when several) and the value / threshold ratio."""
    _require(drift, ("window", "column", "value", "threshold", "drifted"), "drift")
    frame = drift.sort_values("window", kind="stable").copy()
    segments = _segments(frame)
    if len(segments) > 1:
        frame["label"] = [f"{c} [{s}]" for c, s in zip(frame["column"], frame["segment"], strict=True)]
    else:
        frame["label"] = frame["column"].astype(str)
    value, threshold = frame["value"].astype(float), frame["threshold"].astype(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(threshold > 0, value / threshold, np.where(value > 0, np.inf, 0.0))
    frame["ratio"] = np.where(np.isnan(value), np.nan, ratio)
    return frame


def drift_heatmap(drift: pd.DataFrame | None) -> go.Figure:
    """Columns x windows, coloured by value / threshold (red from 1 on); × marks the drifted cells.

    Hovering a cell shows the method, the value, the threshold and the p-value.

    >>> drift = pd.DataFrame({"window": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True), "segment": "all",
    ...                       "column": "age", "method": "wasserstein", "value": [0.05, 0.3], "threshold": 0.1,
    ...                       "drifted": [False, True], "p_value": [0.6, 0.001]})
    >>> fig = drift_heatmap(drift)
    >>> [list(row) for row in fig.data[0].z], list(fig.data[1].x)
    ([[0.5, 2.0]], ['2026-01-02'])
    """
    if not _has(drift):
        return _empty(_base_figure("Drift against the baseline", 300), "No drift results")
    frame = _drift_frame(drift)
    windows = list(dict.fromkeys(frame["window"]))
    xlabels = _window_labels(windows)
    xof = dict(zip(windows, xlabels, strict=True))
    rows = list(dict.fromkeys(frame["label"]))
    yof = {label: i for i, label in enumerate(rows)}
    z = np.full((len(rows), len(windows)), np.nan)
    custom = np.full((len(rows), len(windows), 5), "", dtype=object)
    marks_x, marks_y = [], []
    for rec in frame.itertuples(index=False):
        i, j = yof[rec.label], xlabels.index(xof[rec.window])
        z[i, j] = np.nan if np.isnan(rec.ratio) else min(rec.ratio, DRIFT_RATIO_CAP)
        p_value = getattr(rec, "p_value", float("nan"))
        custom[i, j] = [_esc(getattr(rec, "method", "")), _fmt(rec.value), _fmt(rec.threshold),
                        "–" if p_value is None or not np.isfinite(p_value) else f"{p_value:.3g}",
                        "<b>drifted</b>" if rec.drifted else "ok"]
        if rec.drifted:
            marks_x.append(xof[rec.window])
            marks_y.append(rec.label)
    height = int(min(1400, 150 + 24 * len(rows)))
    fig = _base_figure("Drift against the baseline: value / threshold per column and window", height)
    fig.add_trace(go.Heatmap(
        z=np.round(z, 4).tolist(), x=xlabels, y=rows, customdata=custom.tolist(), zmin=0.0, zmax=DRIFT_RATIO_CAP,
        colorscale=DRIFT_COLORSCALE, xgap=1, ygap=1, hoverongaps=False, name="drift",
        colorbar={"title": {"text": "value / threshold", "side": "right"}, "tickvals": [0, 0.5, 1, 1.5, 2],
                  "ticktext": ["0", "0.5", "1", "1.5", "≥ 2"], "len": 0.9, "thickness": 14},
        hovertemplate=("<b>%{y}</b>, window %{x}<br>method: %{customdata[0]}<br>value: %{customdata[1]}"
                       "<br>threshold: %{customdata[2]}<br>p-value: %{customdata[3]}<br>%{customdata[4]}"
                       "<extra></extra>")))
    fig.add_trace(go.Scatter(
        x=marks_x, y=marks_y, mode="markers", name="× drifted", hoverinfo="skip",
        marker={"symbol": "x", "size": max(4, min(9, 400 // max(len(windows), 1))), "color": "#ffffff",
                "line": {"width": 1, "color": "#1f2933"}}))
    fig.update_xaxes(type="category", categoryorder="array", categoryarray=xlabels, title_text="window (UTC)",
                     showgrid=False)
    fig.update_yaxes(type="category", categoryorder="array", categoryarray=rows, autorange="reversed",
                     showgrid=False)
    return fig


def latest_drift(drift: pd.DataFrame | None) -> pd.DataFrame:
    """The latest window's drift, one row per column: drifted first, then by value / threshold, largest first.

    >>> drift = pd.DataFrame({"window": pd.to_datetime(["2026-01-02", "2026-01-02"], utc=True),
    ...                       "column": ["age", "sex"], "method": ["wasserstein", "js_distance"],
    ...                       "value": [0.05, 0.3], "threshold": 0.1, "drifted": [False, True]})
    >>> latest_drift(drift)["column"].tolist()
    ['sex', 'age']
    """
    columns = ["column", "method", "value", "threshold", "drifted"]
    if not _has(drift):
        return pd.DataFrame(columns=columns)
    frame = _drift_frame(drift)
    latest = frame[frame["window"] == frame["window"].max()]
    latest = latest.assign(_drifted=latest["drifted"].astype(bool)).sort_values(
        ["_drifted", "ratio"], ascending=[False, False], kind="stable")
    if len(_segments(latest)) > 1:
        columns = ["segment", *columns]
    if "p_value" in latest.columns:
        columns.append("p_value")
    out = latest[columns].reset_index(drop=True)
    out["drifted"] = out["drifted"].astype(bool)
    return out.rename(columns={"p_value": "p-value"})


def drift_summary_table(drift: pd.DataFrame | None) -> go.Figure:
    """A table figure of the latest window's drift: column, method, value, threshold, drifted (drifted rows red).

    >>> drift = pd.DataFrame({"window": pd.to_datetime(["2026-01-02"], utc=True), "column": ["age"],
    ...                       "method": ["wasserstein"], "value": [0.3], "threshold": [0.1], "drifted": [True]})
    >>> [list(v) for v in drift_summary_table(drift).data[0].cells.values]
    [['age'], ['wasserstein'], ['0.3'], ['0.1'], ['yes']]
    """
    latest = latest_drift(drift)
    if not _has(drift):
        return _empty(_base_figure("Drift in the latest window", 200), "No drift results")
    window = _window_labels([drift["window"].max()])[0]
    fill = ["#fff1f1" if d else "#ffffff" for d in latest["drifted"]]
    fig = _base_figure(f"Drift in the latest window ({window})", int(min(1200, 110 + 26 * (len(latest) + 1))))
    fig.add_trace(go.Table(
        header={"values": [f"<b>{_esc(c)}</b>" for c in latest.columns], "fill_color": "#f0f3f7", "align": "left"},
        cells={"values": [[_fmt(v) for v in latest[c]] for c in latest.columns], "align": "left",
               "fill_color": [fill] * len(latest.columns)}))
    fig.update_layout(margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


def _pivot(frame: pd.DataFrame, index: str = "window") -> pd.DataFrame:
    return frame.pivot_table(index=index, columns="metric", values="value", aggfunc="first", sort=True)


def traffic_figure(traffic: pd.DataFrame | None) -> go.Figure:
    """Events per window (bars) and label coverage (a line, on a second axis in percent).

    >>> traffic = pd.DataFrame({"window": pd.to_datetime(["2026-01-01"] * 2, utc=True), "segment": "all",
    ...                         "metric": ["events", "label_coverage"], "value": [120.0, 0.5]})
    >>> [(t.type, t.name) for t in traffic_figure(traffic).data]
    [('bar', 'events'), ('scatter', 'label coverage')]
    """
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.update_layout(_base_figure("Traffic: events and label coverage per window", 360).layout)
    if not _has(traffic):
        return _empty(fig, "No events")
    _require(traffic, ("window", "metric", "value"), "traffic")
    segments = _segments(traffic)
    for segment in segments:
        wide = _pivot(_of_segment(traffic, segment))
        x = _utc(wide.index)
        if "events" in wide:
            fig.add_trace(go.Bar(
                x=x, y=wide["events"], name=_named("events", segment, segments), marker_color="#9db4d6",
                hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>%{y:,} events<extra></extra>"), secondary_y=False)
        if "label_coverage" in wide:
            labelled = wide["labelled"] if "labelled" in wide else pd.Series(np.nan, index=wide.index)
            fig.add_trace(go.Scatter(
                x=x, y=wide["label_coverage"], name=_named("label coverage", segment, segments),
                mode="lines+markers", line={"color": "#d9480f", "width": 2},
                customdata=[_fmt(v) for v in labelled],
                hovertemplate="%{x|%Y-%m-%d %H:%M} UTC<br>label coverage %{y:.1%}<br>%{customdata} labelled"
                              "<extra></extra>"), secondary_y=True)
    fig.update_xaxes(title_text="window start (UTC)")
    fig.update_yaxes(title_text="events", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text="label coverage", secondary_y=True, range=[0, 1.05], tickformat=".0%", dtick=0.25,
                     showgrid=False)
    return fig


def integrity_figure(integrity: pd.DataFrame | None) -> go.Figure:
    """Missing rate per column over the windows: one line per column that has missing values at all.

    >>> integrity = pd.DataFrame({"window": pd.to_datetime(["2026-01-01", "2026-01-02"], utc=True),
    ...                           "segment": "all", "column": "age", "metric": "missing_rate", "value": [0.0, 0.2]})
    >>> [trace.name for trace in integrity_figure(integrity).data]
    ['age']
    """
    fig = _base_figure("Data integrity: missing values per column and window", 360)
    if not _has(integrity):
        return _empty(fig, "No integrity results")
    _require(integrity, ("window", "column", "metric", "value"), "integrity")
    missing = integrity[(integrity["metric"] == "missing_rate") & integrity["column"].notna()]
    segments = _segments(missing)
    traced = 0
    for column in dict.fromkeys(missing["column"]):
        for segment in segments:
            rows = _of_segment(missing[missing["column"] == column], segment).sort_values("window", kind="stable")
            if rows.empty or not (rows["value"].fillna(0) > 0).any():
                continue
            traced += 1
            fig.add_trace(go.Scatter(
                x=_utc(rows["window"]), y=rows["value"].astype(float), mode="lines+markers",
                name=_named(str(column), segment, segments),
                hovertemplate=f"<b>{_esc(column)}</b><br>%{{x|%Y-%m-%d %H:%M}} UTC<br>missing %{{y:.2%}}"
                              "<extra></extra>"))
    if not traced:
        return _empty(fig, "No missing values in any monitored column")
    fig.update_xaxes(title_text="window start (UTC)")
    fig.update_yaxes(title_text="missing rate", tickformat=".1%", rangemode="tozero")
    return fig


# -- the report ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tile:
    """One headline number of a section: a label, the value as text, a detail line; ``alert`` shows it in red.

    >>> Tile("Drifted columns", "3 of 15", "latest window", alert=True).alert
    True
    """

    label: str
    value: str
    detail: str = ""
    alert: bool = False


@dataclass
class Section:
    """A part of a report: a heading, then headline tiles, a note, a Plotly figure and a table, each optional.

    The table is a DataFrame rendered as an HTML table with every cell escaped.

    >>> s = Section("Traffic", table=pd.DataFrame({"events": [3]}), note="<b> is escaped")
    >>> "&lt;b&gt;" in Report("r", [s]).html
    True
    """

    heading: str
    figure: go.Figure | None = None
    table: pd.DataFrame | None = None
    note: str | None = None
    tiles: Sequence[Tile] = field(default_factory=tuple)

    @property
    def anchor(self) -> str:
        """The section's id in the document."""
        slug = "".join(ch if ch.isalnum() else "-" for ch in self.heading.lower()).strip("-")
        return f"section-{slug or 'untitled'}"


def table_html(frame: pd.DataFrame) -> str:
    """A DataFrame as an HTML table, every cell escaped; a row with a true boolean cell is flagged.

    >>> table_html(pd.DataFrame({"column": ["<age>"], "drifted": [True]}))
    '<table class="data"><thead><tr><th>column</th><th>drifted</th></tr></thead><tbody><tr class="flag"><td>&lt;age&gt;</td><td class="flag">yes</td></tr></tbody></table>'
    """  # noqa: E501 - the doctest's expected line
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        frame = frame.reset_index()
    head = "".join(f"<th>{_esc(c)}</th>" for c in frame.columns)
    body = []
    for record in frame.itertuples(index=False, name=None):
        cells, flagged = [], False
        for value in record:
            if isinstance(value, bool | np.bool_):
                flagged = flagged or bool(value)
                cls = ' class="flag"' if value else ""
            elif isinstance(value, numbers.Number):
                cls = ' class="num"'
            else:
                cls = ""
            cells.append(f"<td{cls}>{_esc(_fmt(value))}</td>")
        row_class = ' class="flag"' if flagged else ""
        body.append(f"<tr{row_class}>{''.join(cells)}</tr>")
    return f'<table class="data"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


class Report:
    """An HTML report: a title, a header of facts (model, version, baseline, windows) and sections.

    ``html`` is the whole document, plotly.js inlined once in its head; ``save(path)`` writes it;
    in Jupyter the report shows itself (``_repr_html_``).

    >>> frame = pd.DataFrame({"window": ["2026-01-01", "2026-01-02"], "events": [10, 12]})
    >>> r = Report("Demo", [Section("Traffic", table=frame)], meta={"model": "credit"})
    >>> "<html" in r.html and "Traffic" in r.html and "credit" in r.html
    True
    """

    def __init__(self, title: str, sections: Sequence[Section], *, meta: Mapping[str, Any] | None = None,
                 generated_at: dt.datetime | None = None) -> None:
        self.title = title
        self.sections = list(sections)
        self.meta = dict(meta or {})
        self.generated_at = generated_at or dt.datetime.now(dt.UTC)
        self._uid = uuid.uuid4().hex[:10]

    def __repr__(self) -> str:
        return f"Report({self.title!r}, sections={[s.heading for s in self.sections]})"

    @property
    def figures(self) -> list[go.Figure]:
        """The report's figures, in order."""
        return [s.figure for s in self.sections if s.figure is not None]

    def _figure_id(self, index: int) -> str:
        return f"vigil-{self._uid}-fig{index}"

    def _body(self) -> str:
        """The report's content: header, contents and sections (no plotly.js, no style)."""
        parts = [f"<header><h1>{_esc(self.title)}</h1>"]
        if self.meta:
            items = "".join(f"<li><b>{_esc(k)}</b> {_esc(_fmt(v))}</li>" for k, v in self.meta.items())
            parts.append(f'<ul class="meta">{items}</ul>')
        when = pd.Timestamp(self.generated_at)
        when = when.tz_convert("UTC") if when.tzinfo is not None else when
        parts.append(f'<p class="generated">Generated {when:%Y-%m-%d %H:%M} UTC by Vigil</p>')
        if len(self.sections) > 1:
            links = "".join(f'<a href="#{s.anchor}">{_esc(s.heading)}</a>' for s in self.sections)
            parts.append(f"<nav>{links}</nav>")
        parts.append("</header>")
        figure_index = 0
        for section in self.sections:
            parts.append(f'<section id="{section.anchor}"><h2>{_esc(section.heading)}</h2>')
            if section.tiles:
                tiles = "".join(
                    f'<div class="tile{" alert" if t.alert else ""}"><div class="label">{_esc(t.label)}</div>'
                    f'<div class="value">{_esc(t.value)}</div><div class="detail">{_esc(t.detail)}</div></div>'
                    for t in section.tiles)
                parts.append(f'<div class="tiles">{tiles}</div>')
            if section.note:
                empty = " empty" if section.figure is None and section.table is None and not section.tiles else ""
                parts.append(f'<p class="note{empty}">{_esc(section.note)}</p>')
            if section.figure is not None:
                div = section.figure.to_html(full_html=False, include_plotlyjs=False,
                                             div_id=self._figure_id(figure_index), config=PLOTLY_CONFIG)
                figure_index += 1
                parts.append(f'<div class="figure">{div}</div>')
            if section.table is not None:
                parts.append(table_html(section.table))
            parts.append("</section>")
        parts.append("<footer>A self-contained Vigil monitoring report: the charts are interactive "
                     "and need no network.</footer>")
        return "\n".join(parts)

    def _plotly_script(self) -> str:
        return f'<script type="text/javascript">{_plotly_js()}</script>' if self.figures else ""

    @property
    def html(self) -> str:
        """The full HTML document (UTF-8 text): inline CSS, plotly.js inlined once, no external resource."""
        return (
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>{_esc(self.title)}</title>\n"
            f"<style>body{{margin:0;background:#f3f5f8}}{CSS}</style>\n"
            f"{self._plotly_script()}\n</head>\n<body>\n"
            f'<div class="vigil-report">\n{self._body()}\n</div>\n</body>\n</html>\n'
        )

    def save(self, path: str | Path) -> Path:
        """Write :attr:`html` to ``path`` (UTF-8) and return the path.

        >>> import tempfile
        >>> p = Report("r", [Section("s", note="n")]).save(Path(tempfile.mkdtemp()) / "r.html")
        >>> p.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
        True
        """
        path = Path(path)
        path.write_text(self.html, encoding="utf-8")
        return path

    def _repr_html_(self) -> str:
        """The report as a fragment for Jupyter: scoped style, plotly.js inline once, then the figures' divs.

        >>> "plotly-graph-div" in build_report(title="t", meta={}, traffic=pd.DataFrame({
        ...     "window": pd.to_datetime(["2026-01-01"], utc=True), "metric": ["events"], "value": [3.0]
        ... }))._repr_html_()
        True
        """
        script = self._plotly_script()
        if script:  # an AMD loader (classic Notebook's require.js) would keep older bundles off window.Plotly
            script = (f"<script>window.__vigilDefine = window.define; window.define = undefined;</script>{script}"
                      "<script>window.define = window.__vigilDefine;</script>")
        return (f'<div class="vigil-report-output"><style>{CSS}</style>{script}'
                f'<div class="vigil-report">{self._body()}</div></div>')


# -- assembling a report from the frames -----------------------------------------------------------------


def _latest_performance(perf: pd.DataFrame) -> tuple[pd.Timestamp, pd.DataFrame]:
    """The latest window with at least ``MIN_LABELLED`` labelled events (else the latest with any) and its rows.

    With several segments, the segment of all events (else the first one).
    """
    frame = perf
    segments = _segments(frame)
    if len(segments) > 1:
        frame = frame[frame["segment"] == ("all" if "all" in segments else segments[0])]
    enough = frame[frame["labelled"] >= MIN_LABELLED] if "labelled" in frame.columns else frame
    latest = (enough if len(enough) else frame)["window"].max()
    return latest, frame[frame["window"] == latest]


def _metric_tile(rows: pd.DataFrame, metric: str, when: str) -> Tile | None:
    hit = rows[rows["metric"] == metric]
    if hit.empty or not np.isfinite(float(hit["value"].iloc[0])):
        return None
    detail = f"window {when}"
    if "labelled" in hit.columns:
        detail += f", {_fmt(hit['labelled'].iloc[0])} labelled"
    return Tile(METRIC_NAMES.get(metric, metric), f"{float(hit['value'].iloc[0]):.3f}", detail)


def _traffic_totals(traffic: pd.DataFrame) -> dict[str, Any]:
    frame = traffic
    segments = _segments(frame)
    if len(segments) > 1:
        frame = frame[frame["segment"] == ("all" if "all" in segments else segments[0])]
    wide = _pivot(frame)
    events = float(wide["events"].sum()) if "events" in wide else float("nan")
    labelled = float(wide["labelled"].sum()) if "labelled" in wide else float("nan")
    latest = wide.index.max()
    coverage = wide["label_coverage"] if "label_coverage" in wide else pd.Series(dtype=float)
    delays = (wide["label_delay_hours_median"].dropna() if "label_delay_hours_median" in wide
              else pd.Series(dtype=float))
    return {"events": events, "labelled": labelled, "windows": len(wide), "latest": latest,
            "latest_coverage": float(coverage.get(latest, float("nan"))),
            "overall_coverage": labelled / events if events else float("nan"),
            "delay": float(delays.iloc[-1]) if len(delays) else float("nan"),
            "delay_window": delays.index[-1] if len(delays) else None}


def _summary_section(performance: pd.DataFrame | None, drift: pd.DataFrame | None,
                     integrity: pd.DataFrame | None, traffic: pd.DataFrame | None) -> Section:
    tiles: list[Tile] = []
    notes: list[str] = []
    if _has(drift):
        latest = latest_drift(drift)
        when = _window_labels([drift["window"].max()])[0]
        drifted = latest[latest["drifted"]]
        tiles.append(Tile("Drifted columns", f"{len(drifted)} of {len(latest)}", f"latest window {when}",
                          alert=bool(len(drifted))))
        if len(drifted):
            notes.append(f"Drifted in the latest window ({when}): {', '.join(map(str, drifted['column']))}.")
        else:
            notes.append(f"No column drifted in the latest window ({when}).")
    else:
        tiles.append(Tile("Drifted columns", "–", "no drift results"))
    if _has(performance):
        latest_window, rows = _latest_performance(performance)
        when = _window_labels([latest_window])[0]
        metrics = ("accuracy", "roc_auc") if rows["metric"].isin(["accuracy", "roc_auc"]).any() else ("mae",)
        tiles += [t for t in (_metric_tile(rows, m, when) for m in metrics) if t is not None]
    else:
        tiles.append(Tile("Performance", "–", "no labelled events yet"))
        notes.append(NO_LABELS)
    if _has(traffic):
        totals = _traffic_totals(traffic)
        tiles.append(Tile("Label coverage", _pct(totals["latest_coverage"]),
                          f"latest window; {_pct(totals['overall_coverage'])} over the period"))
        tiles.append(Tile("Events", _fmt(totals["events"]), f"in {totals['windows']} windows"))
    else:
        tiles.append(Tile("Events", "0", "no events in the period"))
    if _has(integrity):
        quarantined = integrity[integrity["metric"] == "quarantined_rows"]["value"].sum()
        tiles.append(Tile("Quarantined rows", _fmt(float(quarantined)), "refused at ingestion, in the period",
                          alert=bool(quarantined)))
    return Section("Summary", tiles=tiles, note="\n".join(notes) or None)


def _performance_section(performance: pd.DataFrame | None) -> Section:
    if not _has(performance):
        return Section("Performance", note=NO_LABELS)
    latest_window, rows = _latest_performance(performance)
    when = _window_labels([latest_window])[0]
    table = pd.DataFrame({"metric": [METRIC_NAMES.get(m, m) for m in rows["metric"]],
                          "value": rows["value"].astype(float).to_numpy()})
    labelled = int(rows["labelled"].iloc[0]) if "labelled" in rows.columns else None
    windows = performance["window"].nunique()
    note = (f"Quality on labelled events, in {windows} window(s) with labels; the table is the latest window with "
            f"at least {MIN_LABELLED} labelled events, or else the latest with any ({when}"
            + (f", {labelled:,} labelled events" if labelled is not None else "") + "). "
            "Windows whose labels have not arrived yet have no point.")
    return Section("Performance", figure=performance_figure(performance), table=table, note=note)


def _drift_section(drift: pd.DataFrame | None) -> Section:
    if not _has(drift):
        return Section("Drift", note=NO_DRIFT)
    methods = drift.drop_duplicates("column")
    by_kind = (methods.groupby("kind")["method"].agg(lambda s: ", ".join(dict.fromkeys(s))).to_dict()
               if "kind" in methods.columns else {})
    how = "; ".join(f"{kind} columns: {m}" for kind, m in sorted(by_kind.items()))
    baseline = ", ".join(map(str, dict.fromkeys(drift["baseline"]))) if "baseline" in drift.columns else ""
    when = _window_labels([drift["window"].max()])[0]
    note = ("Colour: the drift measure divided by its threshold (1 is the threshold, red from there on); "
            "× marks a drifted cell. " + (f"Baseline: {baseline}. " if baseline else "")
            + (f"Methods: {how}. " if how else "") + f"The table is the latest window ({when}), drifted first.")
    return Section("Drift", figure=drift_heatmap(drift), table=latest_drift(drift), note=note)


def _integrity_section(integrity: pd.DataFrame | None) -> Section:
    if not _has(integrity):
        return Section("Data integrity", note=NO_INTEGRITY)
    per_column = integrity[integrity["column"].notna() & integrity["metric"].isin(INTEGRITY_METRICS)]
    latest = per_column["window"].max() if len(per_column) else integrity["window"].max()
    when = _window_labels([latest])[0]
    wide = _pivot(per_column[per_column["window"] == latest], index="column") if len(per_column) else pd.DataFrame()
    wide = wide[[m for m in INTEGRITY_METRICS if m in wide.columns]]
    issues = wide[(wide.fillna(0) > 0).any(axis=1)] if len(wide) else wide
    quarantined = integrity[integrity["metric"] == "quarantined_rows"]["value"]
    any_missing = bool((per_column[per_column["metric"] == "missing_rate"]["value"].fillna(0) > 0).any())
    notes = [f"{_fmt(float(quarantined.sum()))} row(s) quarantined at ingestion in the period."]
    if not any_missing:
        notes.insert(0, f"No missing values in any of the {per_column['column'].nunique()} monitored columns.")
    table = None
    if len(issues):
        table = issues.map(_pct).rename(columns=METRIC_NAMES).reset_index()
        table.columns.name = None
        notes.append(f"The table lists the columns with missing, out-of-range, outlying or unseen values in the "
                     f"latest window ({when}); shares of the window's events.")
    else:
        notes.append(f"No missing, out-of-range, outlying or unseen values in the latest window ({when}).")
    return Section("Data integrity", figure=integrity_figure(integrity) if any_missing else None, table=table,
                   note=" ".join(notes))


def _traffic_section(traffic: pd.DataFrame | None) -> Section:
    if not _has(traffic):
        return Section("Traffic", note=NO_TRAFFIC)
    totals = _traffic_totals(traffic)
    note = (f"{_fmt(totals['events'])} events in {totals['windows']} window(s); {_fmt(totals['labelled'])} "
            f"labelled so far ({_pct(totals['overall_coverage'])}).")
    if totals["delay_window"] is not None:
        note += (f" Median label delay {totals['delay']:.1f} h in the latest window with labels "
                 f"({_window_labels([totals['delay_window']])[0]}).")
    return Section("Traffic", figure=traffic_figure(traffic), note=note)


def _explanations_section(importance: pd.DataFrame | None, drift: pd.DataFrame | None) -> Section:
    if not _has(importance):
        return Section("Explanations", note=NO_EXPLANATIONS)
    production = importance[importance["source"] == "production"]
    training = importance[importance["source"] == "training"]
    latest = production[production["window"] == production["window"].max()] if len(production) else production
    order = (training if len(training) else latest).sort_values("rank")["feature"].head(TOP_FEATURES).tolist()
    fig = _base_figure("Mean |attribution| per feature: training data vs latest window", 360)
    for name, part in (("training data", training), ("latest window", latest)):
        if len(part):
            values = part.set_index("feature")["mean_abs_attribution"].reindex(order)
            fig.add_trace(go.Bar(x=order, y=values.to_numpy(), name=name))
    fig.update_layout(barmode="group", yaxis_title="mean |attribution|")
    table = pd.DataFrame({"feature": order})
    for name, part in (("training", training), ("latest", latest)):
        if len(part):
            indexed = part.set_index("feature")
            table[f"{name} rank"] = indexed["rank"].reindex(order).to_numpy()
            table[f"{name} mean |attribution|"] = indexed["mean_abs_attribution"].reindex(order).to_numpy()
    tiles: list[Tile] = []
    explained = float(production.drop_duplicates("window")["explained"].sum()) if len(production) else 0.0
    notes = [f"{_fmt(explained)} "
             f"production events explained in {production['window'].nunique()} window(s)."]
    if _has(drift):
        last = drift.iloc[-1]
        when = _window_labels([last["window"]])[0]
        tiles.append(Tile("Explanation drift", f"{float(last['score']):.2f}",
                          f"latest window {when}; threshold {float(last['threshold']):.2f}",
                          alert=bool(last["drifted"])))
        if last.get("largest_mover"):
            tiles.append(Tile("Largest mover", str(last["largest_mover"]), "share of attribution changed most"))
        flagged = int(drift["drifted"].sum())
        notes.append(f"Explanation drift: the share of attribution mass that moved between features against the "
                     f"training data; {flagged} of {len(drift)} window(s) above the threshold.")
    return Section("Explanations", figure=fig, table=table, note=" ".join(notes), tiles=tiles)


def _fairness_section(fairness: Any) -> Section:
    summary = getattr(fairness, "summary", fairness)
    if not isinstance(summary, pd.DataFrame) or not len(summary):
        return Section("Fairness", note=NO_FAIRNESS)
    latest = summary[summary["window"] == summary["window"].max()] if "window" in summary.columns else summary
    tiles = []
    by_group = getattr(fairness, "by_group", None)
    for row in latest.itertuples(index=False):
        ratio, detail = getattr(row, "demographic_parity_ratio", float("nan")), "all groups"
        if isinstance(by_group, pd.DataFrame) and {"status", "selection_rate"} <= set(by_group.columns):
            # the headline leaves out groups too small to measure, as their rates say little
            groups = by_group[(by_group["attribute"] == row.attribute) & (by_group["status"] == "ok")]
            if "window" in groups.columns and "window" in latest.columns:
                groups = groups[groups["window"] == row.window]
            rates = groups["selection_rate"].dropna()
            ratio = float(rates.min() / rates.max()) if len(rates) > 1 and rates.max() > 0 else float("nan")
            detail = f"{len(rates)} groups large enough to measure"
        if np.isfinite(ratio):
            tiles.append(Tile(f"Disparate impact: {row.attribute}", f"{ratio:.2f}",
                              f"four-fifths rule {'passed' if ratio >= 0.8 else 'failed'}; {detail}",
                              alert=ratio < 0.8))
    keep = [c for c in ("attribute", "groups", "demographic_parity_difference", "demographic_parity_ratio",
                        "equal_opportunity_difference", "equalized_odds_difference",
                        "predictive_parity_difference", "calibration_gap_difference", "four_fifths_passed", "status")
            if c in latest.columns]
    figure = None
    protected = getattr(fairness, "protected", None)
    if protected and hasattr(fairness, "figure") and len(getattr(fairness, "by_group", ())):
        figure = fairness.figure("selection_rate", protected[0])
    notes = ["Disparities between the groups of each protected attribute and their intersections, on labelled "
             "events of the latest window (largest minus smallest rate; the ratio is the disparate impact)."]
    representation = getattr(fairness, "representation", None)
    if isinstance(representation, pd.DataFrame) and len(representation) and "flag" in representation.columns:
        off = representation[(representation["window"] == representation["window"].max())
                             & (representation["flag"] != "ok")]
        if len(off):
            notes.append("Representation against the training data, latest window: " + "; ".join(
                f"{r.attribute}={r.group} {str(r.flag).replace('_', '-')}" for r in off.itertuples(index=False))
                + ".")
    table = latest[keep].rename(columns=FAIRNESS_NAMES) if "demographic_parity_difference" in latest.columns \
        else latest
    return Section("Fairness", figure=figure, table=table.reset_index(drop=True), tiles=tiles,
                   note=" ".join(notes))


def _windows_text(meta: Mapping[str, Any], frames: Sequence[pd.DataFrame | None]) -> str | None:
    windows = sorted({w for f in frames if _has(f) and "window" in f.columns for w in f["window"]})
    if not windows:
        return None
    labels = _window_labels(windows)
    length = f" × {meta['window']}" if meta.get("window") else ""
    return f"{len(windows)}{length}, {labels[0]} to {labels[-1]}" if len(windows) > 1 else f"1{length}, {labels[0]}"


def build_report(*, title: str, meta: Mapping[str, Any] | None, performance: pd.DataFrame | None = None,
                 drift: pd.DataFrame | None = None, integrity: pd.DataFrame | None = None,
                 traffic: pd.DataFrame | None = None, importance: pd.DataFrame | None = None,
                 explanation_drift: pd.DataFrame | None = None, fairness: Any = None) -> Report:
    """A report from the monitoring frames: summary, performance, drift, data integrity, traffic, then
    explanations (``importance`` and ``explanation_drift`` frames) and fairness (a store's fairness result or
    its summary frame) when given.

    ``meta`` gives the header: ``model``, ``version``, ``baseline``, ``window`` (the window length) and
    anything else worth showing. A frame that is ``None`` or empty gives its section a note saying so.

    >>> r = build_report(title="credit v1", meta={"model": "credit", "version": "1", "baseline": "training"})
    >>> "No labelled events yet" in r.html and "No drift results" in r.html
    True
    """
    meta = dict(meta or {})
    header: dict[str, Any] = {}
    for key in ("model", "version"):
        if meta.get(key) is not None:
            header[key] = meta[key]
    baseline = meta.get("baseline")
    sources = list(dict.fromkeys(drift["baseline"])) if _has(drift) and "baseline" in drift.columns else []
    if baseline is not None or sources:
        shown = str(baseline) if baseline is not None else ", ".join(map(str, sources))
        if baseline is not None and sources and [str(baseline)] != list(map(str, sources)):
            shown += f" ({', '.join(map(str, sources))})"
        header["baseline"] = shown
    windows = meta.get("windows") or _windows_text(meta, (performance, drift, integrity, traffic))
    if windows:
        header["windows"] = windows
    elif meta.get("window"):
        header["windows"] = f"{meta['window']} (none with events)"
    header.update({k: v for k, v in meta.items() if k not in ("model", "version", "baseline", "window", "windows")})
    sections = [
        _summary_section(performance, drift, integrity, traffic),
        _performance_section(performance),
        _drift_section(drift),
        _integrity_section(integrity),
        _traffic_section(traffic),
    ]
    if importance is not None or explanation_drift is not None:
        sections.append(_explanations_section(importance, explanation_drift))
    if fairness is not None:
        sections.append(_fairness_section(fairness))
    return Report(title, sections, meta=header)
