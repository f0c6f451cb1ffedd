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

from vigil.errors import VigilError

__all__ = [
    "Report",
    "Section",
    "Tile",
    "build_report",
    "drift_heatmap",
    "drift_summary_table",
    "fairness_figure",
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
#: At most this many date ticks on a time axis (ticks fall on window starts, every k-th window beyond).
MAX_TICKS = 12
#: How a line that repeats another one's values is drawn, so that it stays visible on top of it.
DUPLICATE_DASHES = ("dash", "dot", "dashdot", "longdash")
DUPLICATE_SYMBOLS = ("circle-open", "square-open", "diamond-open", "triangle-up-open")
#: What the quarantined-rows count of a window counts when the integrity frame does not say.
QUARANTINE_COUNTED_BY = "refusal time"
#: ... and when its windows were counted differently (some rows by their own time, some by when refused).
QUARANTINE_COUNTED_MIXED = "event time, else refusal time"
#: Integrity-frame columns that may carry a metric's value on the training data.
TRAINING_COLUMNS = ("training", "baseline", "training_value")

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
.vigil-report table.data td.pass{color:#15803d;font-weight:600}
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


# -- windows: which are complete, and the time axis --------------------------------------------------------


def _naive(value: Any) -> pd.Timestamp:
    """A time as a naive UTC timestamp (frames carry aware and naive window starts alike)."""
    ts = pd.Timestamp(value)
    return ts.tz_convert("UTC").tz_localize(None) if ts.tzinfo is not None else ts


def _starts(windows: Iterable[Any]) -> list[pd.Timestamp]:
    return sorted({_naive(w) for w in windows if w is not None and not pd.isna(w)})


def _window_length(window: Any) -> pd.Timedelta | None:
    """The length of a window like ``"1w"`` or a timedelta (None when it is neither).

    >>> _window_length("1w"), _window_length("6h"), _window_length(None)
    (Timedelta('7 days 00:00:00'), Timedelta('0 days 06:00:00'), None)
    """
    if window is None:
        return None
    if isinstance(window, dt.timedelta):
        return pd.Timedelta(window)
    from vigil.services.monitoring import parse_window

    try:
        return pd.Timedelta(parse_window(str(window))[1])
    except VigilError:
        return None


def _inferred_length(windows: Iterable[Any]) -> pd.Timedelta | None:
    """The smallest gap between window starts: their length when no window text is given."""
    starts = _starts(windows)
    gaps = [b - a for a, b in zip(starts, starts[1:], strict=False) if b > a]
    return min(gaps) if gaps else None


@dataclass(frozen=True)
class _Timeline:
    """Windows of one length and where the data ends: a window is complete once the data ends past its end.

    Without the last event's time, the report's generation time stands in for it (a window that ends
    later is partial for sure). With only partial windows, the last one is used and called partial.

    >>> t = _Timeline(pd.Timedelta(days=7), None, pd.Timestamp("2026-12-01 23:47"), pd.Timestamp("2026-12-02"))
    >>> weeks = pd.to_datetime(["2026-11-16", "2026-11-23", "2026-11-30"], utc=True)
    >>> t.complete(weeks[1]), t.complete(weeks[2])
    (True, False)
    >>> t.describe(*t.pick(weeks))
    '2026-11-23 (the last complete window)'
    >>> t.describe(*t.pick(weeks[2:]))
    '2026-11-30 (partial)'
    """

    length: pd.Timedelta | None
    first_event: pd.Timestamp | None
    last_event: pd.Timestamp | None
    now: pd.Timestamp

    @property
    def data_end(self) -> pd.Timestamp:
        """The last event's time, or the generation time when it is not known."""
        return self.last_event if self.last_event is not None else self.now

    def of(self, length: pd.Timedelta | None) -> _Timeline:
        """The same data with windows of another length (None keeps this one)."""
        return self if length is None else _Timeline(length, self.first_event, self.last_event, self.now)

    def complete(self, window: Any) -> bool:
        """Whether the data runs past the window's end (True when the length is unknown: no claim made)."""
        return self.length is None or self.data_end >= _naive(window) + self.length

    def pick(self, windows: Iterable[Any]) -> tuple[pd.Timestamp, bool]:
        """The last complete window of ``windows`` and True, else the last one and False."""
        starts = _starts(windows)
        done = [w for w in starts if self.complete(w)]
        return (done[-1], True) if done else (starts[-1], False)

    def describe(self, window: Any, complete: bool) -> str:
        """A window's label saying whether it is the last complete one or partial."""
        label = _window_labels([window])[0]
        return f"{label} (the last complete window)" if complete else f"{label} (partial)"


def _timeline(window: Any = None, data_end: Any = None, windows: Iterable[Any] = (),
              data_start: Any = None) -> _Timeline:
    length = _window_length(window) or _inferred_length(windows)
    return _Timeline(length, None if data_start is None else _naive(data_start),
                     None if data_end is None else _naive(data_end), _naive(dt.datetime.now(dt.UTC)))


def _time_axis(fig: go.Figure, windows: Iterable[Any], timeline: _Timeline) -> None:
    """Ticks on the window starts (a Monday and every 7 days for weekly windows; every k-th window when many),
    and partial windows shaded and labelled."""
    starts = _starts(windows)
    if not starts:
        return
    length = timeline.length
    if length is not None:
        step = max(1, math.ceil(len(starts) / MAX_TICKS))
        daily = length % pd.Timedelta(days=1) == pd.Timedelta(0) and all(s == s.normalize() for s in starts)
        fig.update_xaxes(type="date", tickmode="linear", tick0=starts[0].isoformat(),
                         dtick=step * length / pd.Timedelta(milliseconds=1),
                         tickformat="%Y-%m-%d" if daily else "%Y-%m-%d %H:%M")
        partial = [s for s in starts if not timeline.complete(s)]
        if partial:  # shaded from the first partial window's start to where the data ends
            end = max(partial[-1], min(partial[-1] + length, timeline.data_end))
            fig.add_vrect(x0=partial[0].isoformat(), x1=end.isoformat(), fillcolor="#9aa5b1",
                          opacity=0.12, line_width=0, layer="below", annotation_text="partial",
                          annotation_position="top left", annotation_font={"size": 10, "color": "#616e7c"})


def _keep_visible(fig: go.Figure) -> go.Figure:
    """Lines that repeat an earlier line's values exactly are dashed with open markers and say so in the legend.

    >>> fig = go.Figure([go.Scatter(x=[1, 2], y=[0.1, 0.2], name="occupation"),
    ...                  go.Scatter(x=[1, 2], y=[0.1, 0.2], name="workclass")])
    >>> [t.name for t in _keep_visible(fig).data], fig.data[1].line.dash
    (['occupation', 'workclass (identical to occupation)'], 'dash')
    """
    seen: dict[tuple[Any, ...], str] = {}
    repeats = 0
    for trace in fig.data:
        if trace.type != "scatter" or trace.y is None or trace.x is None:
            continue
        if not np.isfinite(np.asarray(trace.y, dtype=float)).any():  # no points: nothing to hide or be hidden
            continue
        key = (tuple(str(v) for v in trace.x), tuple(f"{float(v):.9g}" for v in trace.y))
        if key in seen:
            trace.name = f"{trace.name} (identical to {seen[key]})"
            trace.line.dash = DUPLICATE_DASHES[repeats % len(DUPLICATE_DASHES)]
            trace.line.width = 3
            trace.marker.symbol = DUPLICATE_SYMBOLS[repeats % len(DUPLICATE_SYMBOLS)]
            trace.marker.size = 11
            repeats += 1
        else:
            seen[key] = str(trace.name)
    return fig


# -- figures ---------------------------------------------------------------------------------------------


def _performance_metrics(perf: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    present = list(dict.fromkeys(perf["metric"]))
    chosen = [m for m in metrics if m in present]
    if not chosen:
        chosen = [m for m in REGRESSION_METRICS if m in present] or present[:3]
    return chosen


def performance_figure(perf: pd.DataFrame | None, metrics: Sequence[str] = ("accuracy", "roc_auc", "f1"), *,
                       window: str | None = None, data_end: Any = None) -> go.Figure:
    """Lines of model quality over the windows, one per metric (MAE, RMSE, R² for a regression frame).

    ``window`` (the window length, text or timedelta, else inferred from the starts) puts the ticks on the
    window starts;
    ``data_end`` (the last event's time) shades the windows it does not cover to their end as partial.

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
    _keep_visible(fig)
    _time_axis(fig, frame["window"], _timeline(window, data_end, frame["window"]))
    fig.update_xaxes(title_text="window start (UTC)")
    fig.update_yaxes(title_text="value")
    return fig


def _drift_frame(drift: pd.DataFrame) -> pd.DataFrame:
    """The drift rows with a row label (column, plus segment when several) and the value / threshold ratio."""
    _require(drift, ("window", "column", "value", "threshold", "drifted"), "drift")
    frame = drift.sort_values("window", kind="stable").copy()
    # undecided (too few values to test) shows as not drifted
    frame["drifted"] = frame["drifted"].astype("boolean").fillna(False).astype(bool)
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


def latest_drift(drift: pd.DataFrame | None, window: Any = None) -> pd.DataFrame:
    """The latest window's drift (or ``window``'s), one row per column: drifted first, then by value / threshold,
    largest first.

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
    chosen = frame["window"].max() if window is None else window
    latest = frame[[_naive(w) == _naive(chosen) for w in frame["window"]]]
    latest = latest.sort_values(["drifted", "ratio"], ascending=[False, False], kind="stable")
    if len(_segments(latest)) > 1:
        columns = ["segment", *columns]
    if "p_value" in latest.columns:
        columns.append("p_value")
    out = latest[columns].reset_index(drop=True)
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


def traffic_figure(traffic: pd.DataFrame | None, *, window: str | None = None, data_end: Any = None) -> go.Figure:
    """Events per window (bars) and label coverage (a line, on a second axis in percent).

    ``window`` and ``data_end`` as for :func:`performance_figure`: ticks on the window starts, partial
    windows shaded.

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
    _time_axis(fig, traffic["window"], _timeline(window, data_end, traffic["window"]))
    fig.update_xaxes(title_text="window start (UTC)")
    fig.update_yaxes(title_text="events", secondary_y=False, rangemode="tozero")
    fig.update_yaxes(title_text="label coverage", secondary_y=True, range=[0, 1.05], tickformat=".0%", dtick=0.25,
                     showgrid=False)
    return fig


def integrity_figure(integrity: pd.DataFrame | None, *, window: str | None = None,
                     data_end: Any = None) -> go.Figure:
    """Missing rate per column over the windows: one line per column that has missing values at all.

    A column whose line repeats another's exactly (values missing together) is dashed and named
    "identical to ..." in the legend. ``window`` and ``data_end`` as for :func:`performance_figure`.

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
    _keep_visible(fig)
    _time_axis(fig, missing["window"], _timeline(window, data_end, missing["window"]))
    fig.update_xaxes(title_text="window start (UTC)")
    fig.update_yaxes(title_text="missing rate", tickformat=".1%", rangemode="tozero")
    return fig


def fairness_figure(by_group: pd.DataFrame | None, attribute: str, metric: str = "selection_rate", *,
                    window: str | None = None, data_end: Any = None) -> go.Figure:
    """One line per group of ``attribute``: ``metric`` per window, from a fairness result's ``by_group`` frame.

    A group too small to measure in a window has no point there (and no line if it never is); ``window`` and
    ``data_end`` as for :func:`performance_figure`.

    >>> by_group = pd.DataFrame({"window": pd.to_datetime(["2026-01-05", "2026-01-05"]), "attribute": "sex",
    ...                          "group": ["F", "M"], "selection_rate": [0.2, 0.2], "count": [50, 60]})
    >>> [t.name for t in fairness_figure(by_group, "sex").data]
    ['F', 'M (identical to F)']
    """
    label = metric.replace("_", " ")
    fig = _base_figure(f"{label.capitalize()} by {attribute} per window", 360)
    if not _has(by_group) or metric not in by_group.columns:
        return _empty(fig, "No fairness results")
    frame = by_group[by_group["attribute"] == attribute].sort_values("window", kind="stable")
    for group, part in frame.groupby("group", sort=True):
        if not np.isfinite(part[metric].astype(float)).any():  # never large enough to measure: no line
            continue
        counts = part["count"] if "count" in part.columns else pd.Series(np.nan, index=part.index)
        fig.add_trace(go.Scatter(
            x=_utc(part["window"]), y=part[metric].astype(float), mode="lines+markers", name=str(group),
            customdata=[_fmt(v) for v in counts],
            hovertemplate=(f"<b>{_esc(group)}</b> {label} %{{y:.3f}}<br>window %{{x|%Y-%m-%d %H:%M}} UTC<br>"
                           "%{customdata} labelled events<extra></extra>")))
    _keep_visible(fig)
    _time_axis(fig, frame["window"], _timeline(window, data_end, frame["window"]))
    fig.update_xaxes(title_text="window start (UTC)")
    fig.update_yaxes(title_text=label, rangemode="tozero")
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

    The table is a DataFrame rendered as an HTML table with every cell escaped; ``passes`` names its boolean
    columns that are checks passed when true (shown green, and red when false; by default those whose name
    holds "pass").

    >>> s = Section("Traffic", table=pd.DataFrame({"events": [3]}), note="<b> is escaped")
    >>> "&lt;b&gt;" in Report("r", [s]).html
    True
    """

    heading: str
    figure: go.Figure | None = None
    table: pd.DataFrame | None = None
    note: str | None = None
    tiles: Sequence[Tile] = field(default_factory=tuple)
    passes: Sequence[str] | None = None

    @property
    def anchor(self) -> str:
        """The section's id in the document."""
        slug = "".join(ch if ch.isalnum() else "-" for ch in self.heading.lower()).strip("-")
        return f"section-{slug or 'untitled'}"


def table_html(frame: pd.DataFrame, *, passes: Iterable[str] | None = None) -> str:
    """A DataFrame as an HTML table, every cell escaped; a row with a true boolean cell is flagged.

    A boolean column named in ``passes`` (by default those whose name holds "pass") is a check: true is a
    pass, shown green, and false flags the row.

    >>> table_html(pd.DataFrame({"column": ["<age>"], "drifted": [True]}))
    '<table class="data"><thead><tr><th>column</th><th>drifted</th></tr></thead><tbody><tr class="flag"><td>&lt;age&gt;</td><td class="flag">yes</td></tr></tbody></table>'
    >>> table_html(pd.DataFrame({"four-fifths": [True]}), passes=["four-fifths"])
    '<table class="data"><thead><tr><th>four-fifths</th></tr></thead><tbody><tr><td class="pass">yes</td></tr></tbody></table>'
    """  # noqa: E501 - the doctests' expected lines
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        frame = frame.reset_index()
    checks = ({str(c) for c in frame.columns if "pass" in str(c).lower()} if passes is None
              else {str(c) for c in passes})
    is_check = [str(c) in checks for c in frame.columns]
    head = "".join(f"<th>{_esc(c)}</th>" for c in frame.columns)
    body = []
    for record in frame.itertuples(index=False, name=None):
        cells, flagged = [], False
        for value, check in zip(record, is_check, strict=True):
            if isinstance(value, bool | np.bool_) and check:
                flagged = flagged or not bool(value)
                cls = ' class="pass"' if value else ' class="flag"'
            elif isinstance(value, bool | np.bool_):
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
                parts.append(table_html(section.table, passes=section.passes))
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


def _main_segment(frame: pd.DataFrame) -> pd.DataFrame:
    """With several segments, the rows of the segment of all events (else of the first one)."""
    segments = _segments(frame)
    if len(segments) > 1:
        return frame[frame["segment"] == ("all" if "all" in segments else segments[0])]
    return frame


def _at(frame: pd.DataFrame, window: Any) -> pd.DataFrame:
    """The rows of one window (aware and naive window starts alike)."""
    return frame[(_utc(frame["window"]) == _naive(window)).to_numpy()]


def _length_text(length: pd.Timedelta | None) -> str | None:
    """``"7d"``, ``"6h"``... for a window length.

    >>> _length_text(pd.Timedelta(days=30)), _length_text(pd.Timedelta(hours=6)), _length_text(None)
    ('30d', '6h', None)
    """
    if length is None:
        return None
    if length % pd.Timedelta(days=1) == pd.Timedelta(0):
        return f"{length // pd.Timedelta(days=1)}d"
    return f"{length // pd.Timedelta(hours=1)}h"


def _latest_performance(perf: pd.DataFrame, timeline: _Timeline) -> tuple[pd.Timestamp, bool, pd.DataFrame]:
    """The window the performance headline reads, whether it is complete, and its rows.

    Among the complete windows (all of them when none is), the latest with at least ``MIN_LABELLED``
    labelled events, else the latest; with several segments, the segment of all events.
    """
    frame = _main_segment(perf)
    starts = _starts(frame["window"])
    pool = [w for w in starts if timeline.complete(w)] or starts
    if "labelled" in frame.columns:
        labelled = frame.groupby(_utc(frame["window"]).to_numpy())["labelled"].max()
        enough = [w for w in pool if labelled.get(w, 0) >= MIN_LABELLED]
    else:
        enough = pool
    chosen = (enough or pool)[-1]
    return chosen, timeline.complete(chosen), _at(frame, chosen)


def _metric_tile(rows: pd.DataFrame, metric: str, when: str) -> Tile | None:
    hit = rows[rows["metric"] == metric]
    if hit.empty or not np.isfinite(float(hit["value"].iloc[0])):
        return None
    detail = f"window {when}"
    if "labelled" in hit.columns:
        detail += f", {_fmt(hit['labelled'].iloc[0])} labelled"
    return Tile(METRIC_NAMES.get(metric, metric), f"{float(hit['value'].iloc[0]):.3f}", detail)


def _traffic_totals(traffic: pd.DataFrame, timeline: _Timeline) -> dict[str, Any]:
    wide = _pivot(_main_segment(traffic))
    wide.index = pd.DatetimeIndex(_utc(wide.index))
    events = float(wide["events"].sum()) if "events" in wide else float("nan")
    labelled = float(wide["labelled"].sum()) if "labelled" in wide else float("nan")
    window, complete = timeline.pick(wide.index)
    coverage = wide["label_coverage"] if "label_coverage" in wide else pd.Series(dtype=float)
    delays = (wide["label_delay_hours_median"].dropna() if "label_delay_hours_median" in wide
              else pd.Series(dtype=float))
    return {"events": events, "labelled": labelled, "windows": len(wide), "window": window, "complete": complete,
            "coverage": float(coverage.get(window, float("nan"))),
            "overall_coverage": labelled / events if events else float("nan"),
            "delay": float(delays.iloc[-1]) if len(delays) else float("nan"),
            "delay_window": delays.index[-1] if len(delays) else None}


def _counted_by(integrity: pd.DataFrame) -> str:
    """What the period's quarantined rows are counted by, as the frame's ``counted_by`` column says of the
    windows that counted rows (of every window when none did): one answer when they agree, "event time, else
    refusal time" when they differ; a ``counted_by`` attribute, else refusal time, when the frame does not say.

    >>> frame = pd.DataFrame({"metric": "quarantined_rows", "value": [2.0, 1.0, 0.0],
    ...                       "counted_by": ["event time", "refusal time", "event time"]})
    >>> _counted_by(frame), _counted_by(frame.iloc[[0, 2]]), _counted_by(frame.drop(columns="counted_by"))
    ('event time, else refusal time', 'event time', 'refusal time')
    """
    said: Any = None
    if "counted_by" in integrity.columns:
        rows = integrity[integrity["metric"] == "quarantined_rows"]
        counted = rows[rows["value"].fillna(0) > 0]
        values = (counted if len(counted) else rows)["counted_by"].dropna()
        kinds = list(dict.fromkeys(str(v).replace("_", " ") for v in values))
        said = kinds[0] if len(kinds) == 1 else (QUARANTINE_COUNTED_MIXED if kinds else None)
    said = said if said is not None else integrity.attrs.get("counted_by")
    return str(said).replace("_", " ") if said else QUARANTINE_COUNTED_BY


def _training_column(integrity: pd.DataFrame) -> str | None:
    """The integrity frame's column holding each metric's value on the training data, if it has one."""
    for name in TRAINING_COLUMNS:
        if name in integrity.columns and pd.api.types.is_numeric_dtype(integrity[name]):
            return name
    return None


def _summary_section(performance: pd.DataFrame | None, drift: pd.DataFrame | None,
                     integrity: pd.DataFrame | None, traffic: pd.DataFrame | None, timeline: _Timeline) -> Section:
    tiles: list[Tile] = []
    notes: list[str] = []
    if _has(drift):
        window, complete = timeline.pick(drift["window"])
        when = timeline.describe(window, complete)
        latest = latest_drift(drift, window)
        drifted = latest[latest["drifted"]]
        tiles.append(Tile("Drifted columns", f"{len(drifted)} of {len(latest)}", f"window {when}",
                          alert=bool(len(drifted))))
        if len(drifted):
            notes.append(f"Drifted in window {when}: {', '.join(map(str, drifted['column']))}.")
        else:
            notes.append(f"No column drifted in window {when}.")
    else:
        tiles.append(Tile("Drifted columns", "–", "no drift results"))
    if _has(performance):
        window, complete, rows = _latest_performance(performance, timeline)
        when = _window_labels([window])[0] + ("" if complete else " (partial)")
        metrics = ("accuracy", "roc_auc") if rows["metric"].isin(["accuracy", "roc_auc"]).any() else ("mae",)
        tiles += [t for t in (_metric_tile(rows, m, when) for m in metrics) if t is not None]
    else:
        tiles.append(Tile("Performance", "–", "no labelled events yet"))
        notes.append(NO_LABELS)
    if _has(traffic):
        totals = _traffic_totals(traffic, timeline)
        tiles.append(Tile("Label coverage", _pct(totals["coverage"]),
                          f"window {timeline.describe(totals['window'], totals['complete'])}; "
                          f"{_pct(totals['overall_coverage'])} over the period"))
        tiles.append(Tile("Events", _fmt(totals["events"]), f"in {totals['windows']} windows"))
    else:
        tiles.append(Tile("Events", "0", "no events in the period"))
    if _has(integrity):
        quarantined = integrity[integrity["metric"] == "quarantined_rows"]["value"].sum()
        tiles.append(Tile("Quarantined rows", _fmt(float(quarantined)),
                          f"refused at ingestion in the period, counted by {_counted_by(integrity)}",
                          alert=bool(quarantined)))
    starts = _starts(w for f in (performance, drift, integrity, traffic) if _has(f) and "window" in f.columns
                     for w in f["window"])
    partial = [w for w in starts if not timeline.complete(w)]
    if partial and len(partial) < len(starts):
        end = f" (the data ends {_fmt(timeline.last_event)} UTC)" if timeline.last_event is not None else ""
        notes.append(f"The figures above are of the last complete window; the window from "
                     f"{_window_labels(partial[:1])[0]} on is partial{end}.")
    elif partial:
        notes.append("Every window is partial (the data does not yet cover one whole window): the figures above "
                     "are of the last one.")
    return Section("Summary", tiles=tiles, note="\n".join(notes) or None)


def _performance_section(performance: pd.DataFrame | None, timeline: _Timeline) -> Section:
    if not _has(performance):
        return Section("Performance", note=NO_LABELS)
    window, complete, rows = _latest_performance(performance, timeline)
    when = _window_labels([window])[0] + ("" if complete else ", partial")
    table = pd.DataFrame({"metric": [METRIC_NAMES.get(m, m) for m in rows["metric"]],
                          "value": rows["value"].astype(float).to_numpy()})
    labelled = int(rows["labelled"].iloc[0]) if "labelled" in rows.columns else None
    windows = performance["window"].nunique()
    note = (f"Quality on labelled events, in {windows} window(s) with labels; the table is the latest complete "
            f"window with at least {MIN_LABELLED} labelled events, or else the latest complete one ({when}"
            + (f", {labelled:,} labelled events" if labelled is not None else "") + "). "
            "Windows whose labels have not arrived yet have no point.")
    figure = performance_figure(performance, window=timeline.length, data_end=timeline.last_event)
    return Section("Performance", figure=figure, table=table, note=note)


def _drift_section(drift: pd.DataFrame | None, timeline: _Timeline) -> Section:
    if not _has(drift):
        return Section("Drift", note=NO_DRIFT)
    methods = drift.drop_duplicates("column")
    by_kind = (methods.groupby("kind")["method"].agg(lambda s: ", ".join(dict.fromkeys(s))).to_dict()
               if "kind" in methods.columns else {})
    how = "; ".join(f"{kind} columns: {m}" for kind, m in sorted(by_kind.items()))
    baseline = ", ".join(map(str, dict.fromkeys(drift["baseline"]))) if "baseline" in drift.columns else ""
    window, complete = timeline.pick(drift["window"])
    note = ("Colour: the drift measure divided by its threshold (1 is the threshold, red from there on); "
            "× marks a drifted cell. " + (f"Baseline: {baseline}. " if baseline else "")
            + (f"Methods: {how}. " if how else "")
            + f"The table is window {timeline.describe(window, complete)}, drifted first.")
    return Section("Drift", figure=drift_heatmap(drift), table=latest_drift(drift, window), note=note)


def _outlier_tile(outliers: pd.DataFrame, timeline: _Timeline) -> Tile | None:
    """The share of rows found anomalous in the headline window, beside the training data's share."""
    _require(outliers, ("window", "value"), "outliers")
    frame = _main_segment(outliers)
    window, complete = timeline.pick(frame["window"])
    row = _at(frame, window).iloc[-1]
    value = float(row["value"])
    if not np.isfinite(value):
        return None
    training = float(row["baseline"]) if "baseline" in row.index and pd.notna(row["baseline"]) else float("nan")
    detail = f"window {timeline.describe(window, complete)}"
    if np.isfinite(training):
        detail += f"; training data {_pct(training)}"
    return Tile("Outlying rows", _pct(value), detail, alert=bool(np.isfinite(training) and value > 2 * training))


def _integrity_section(integrity: pd.DataFrame | None, timeline: _Timeline,
                       outliers: pd.DataFrame | None = None) -> Section:
    if not _has(integrity):
        return Section("Data integrity", note=NO_INTEGRITY)
    per_column = integrity[integrity["column"].notna() & integrity["metric"].isin(INTEGRITY_METRICS)]
    window, complete = timeline.pick(per_column["window"] if len(per_column) else integrity["window"])
    when = timeline.describe(window, complete)
    at = _at(per_column, window)
    metrics = [m for m in INTEGRITY_METRICS if m in set(at["metric"])]
    wide = _pivot(at, index="column")[metrics] if len(at) else pd.DataFrame()
    issues = wide[(wide.fillna(0) > 0).any(axis=1)] if len(wide) else wide
    quarantined = integrity[integrity["metric"] == "quarantined_rows"]["value"]
    any_missing = bool((per_column[per_column["metric"] == "missing_rate"]["value"].fillna(0) > 0).any())
    notes = [f"{_fmt(float(quarantined.sum()))} row(s) quarantined at ingestion in the period, counted by "
             f"{_counted_by(integrity)}."]
    if not any_missing:
        notes.insert(0, f"No missing values in any of the {per_column['column'].nunique()} monitored columns.")
    table = None
    if len(issues):
        training = _training_column(integrity)
        train_wide = (at.pivot_table(index="column", columns="metric", values=training, aggfunc="first")
                      if training else pd.DataFrame())
        table = pd.DataFrame({"column": issues.index.astype(str)})
        for metric in metrics:
            name = METRIC_NAMES.get(metric, metric)
            table[name] = [_pct(v) for v in issues[metric]]
            if metric in train_wide.columns:
                table[f"{name} (training)"] = [_pct(v) for v in train_wide[metric].reindex(issues.index)]
        notes.append(f"The table lists the columns with missing, out-of-range, outlying or unseen values in "
                     f"window {when}; shares of the window's events"
                     + (", each beside the same share in the training data." if training else "."))
    else:
        notes.append(f"No missing, out-of-range, outlying or unseen values in window {when}.")
    figure = (integrity_figure(integrity, window=timeline.length, data_end=timeline.last_event) if any_missing
              else None)
    tiles = [t for t in (_outlier_tile(outliers, timeline) if _has(outliers) else None,) if t is not None]
    if tiles:
        notes.append("Outlying rows: the share of the window's rows an isolation forest fit on the training "
                     "features finds anomalous, beside the same share of the training rows.")
    return Section("Data integrity", figure=figure, table=table, note=" ".join(notes), tiles=tiles)


def _traffic_section(traffic: pd.DataFrame | None, timeline: _Timeline) -> Section:
    if not _has(traffic):
        return Section("Traffic", note=NO_TRAFFIC)
    totals = _traffic_totals(traffic, timeline)
    note = (f"{_fmt(totals['events'])} events in {totals['windows']} window(s); {_fmt(totals['labelled'])} "
            f"labelled so far ({_pct(totals['overall_coverage'])}).")
    if totals["delay_window"] is not None:
        note += (f" Median label delay {totals['delay']:.1f} h in the latest window with labels "
                 f"({_window_labels([totals['delay_window']])[0]}).")
    figure = traffic_figure(traffic, window=timeline.length, data_end=timeline.last_event)
    return Section("Traffic", figure=figure, note=note)


def _explanations_section(importance: pd.DataFrame | None, drift: pd.DataFrame | None,
                          timeline: _Timeline) -> Section:
    if not _has(importance):
        return Section("Explanations", note=NO_EXPLANATIONS)
    production = importance[importance["source"] == "production"]
    training = importance[importance["source"] == "training"]
    latest, label = production, "latest window"
    if len(production):
        window, complete = timeline.pick(production["window"])
        latest = _at(production, window)
        label = f"window {timeline.describe(window, complete)}"
    order = (training if len(training) else latest).sort_values("rank")["feature"].head(TOP_FEATURES).tolist()
    fig = _base_figure(f"Mean |attribution| per feature: training data vs {label}", 360)
    for name, part in (("training data", training), (label, latest)):
        if len(part):
            values = part.set_index("feature")["mean_abs_attribution"].reindex(order)
            fig.add_trace(go.Bar(x=order, y=values.to_numpy(), name=name))
    fig.update_layout(barmode="group", yaxis_title="mean |attribution|")
    table = pd.DataFrame({"feature": order})
    for name, part in (("training", training), ("window", latest)):
        if len(part):
            indexed = part.set_index("feature")
            table[f"{name} rank"] = indexed["rank"].reindex(order).to_numpy()
            table[f"{name} mean |attribution|"] = indexed["mean_abs_attribution"].reindex(order).to_numpy()
    tiles: list[Tile] = []
    explained = float(production.drop_duplicates("window")["explained"].sum()) if len(production) else 0.0
    notes = [f"{_fmt(explained)} "
             f"production events explained in {production['window'].nunique()} window(s)."]
    if _has(drift):
        window, complete = timeline.pick(drift["window"])
        last = _at(drift, window).iloc[-1]
        tiles.append(Tile("Explanation drift", f"{float(last['score']):.2f}",
                          f"window {timeline.describe(window, complete)}; threshold {float(last['threshold']):.2f}",
                          alert=bool(last["drifted"])))
        if last.get("largest_mover"):
            tiles.append(Tile("Largest mover", str(last["largest_mover"]), "share of attribution changed most"))
        flagged = int(drift["drifted"].sum())
        notes.append(f"Explanation drift: the share of attribution mass that moved between features against the "
                     f"training data; {flagged} of {len(drift)} window(s) above the threshold.")
    return Section("Explanations", figure=fig, table=table, note=" ".join(notes), tiles=tiles)


def _fairness_section(fairness: Any, timeline: _Timeline, fairness_window: str | None) -> Section:
    summary = getattr(fairness, "summary", fairness)
    if not isinstance(summary, pd.DataFrame) or not len(summary):
        return Section("Fairness", note=NO_FAIRNESS)
    by_group = getattr(fairness, "by_group", None)
    notes = []
    if "window" in summary.columns:
        length = _window_length(fairness_window) or _inferred_length(summary["window"]) or timeline.length
        own = timeline.of(length)
        window, complete = own.pick(summary["window"])
        latest = _at(summary, window)
        shown = _length_text(length)
        notes.append(f"Fairness per {shown} window" + (f" (the rest of the report: {_length_text(timeline.length)} "
                                                       "windows)" if length != timeline.length else "")
                     + f"; the table and the headline are window {own.describe(window, complete)}.")
    else:
        own, latest = timeline, summary
    tiles = []
    for row in latest.itertuples(index=False):
        ratio, detail = getattr(row, "demographic_parity_ratio", float("nan")), "all groups"
        if isinstance(by_group, pd.DataFrame) and {"status", "selection_rate"} <= set(by_group.columns):
            # the headline leaves out groups too small to measure, as their rates say little
            groups = by_group[(by_group["attribute"] == row.attribute) & (by_group["status"] == "ok")]
            if "window" in groups.columns and "window" in latest.columns:
                groups = _at(groups, row.window)
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
    if protected and isinstance(by_group, pd.DataFrame) and len(by_group) and "selection_rate" in by_group.columns:
        figure = fairness_figure(by_group, protected[0], window=own.length, data_end=timeline.last_event)
    notes.append("Disparities between the groups of each protected attribute and their intersections, on labelled "
                 "events (largest minus smallest rate; the ratio is the disparate impact; four-fifths: yes is a "
                 "pass).")
    representation = getattr(fairness, "representation", None)
    if isinstance(representation, pd.DataFrame) and len(representation) and "flag" in representation.columns:
        rep_window, _ = own.pick(representation["window"])
        off = _at(representation, rep_window)
        off = off[off["flag"] != "ok"]
        if len(off):
            notes.append(f"Representation against the training data, window {_window_labels([rep_window])[0]}: "
                         + "; ".join(f"{r.attribute}={r.group} {str(r.flag).replace('_', '-')}"
                                     for r in off.itertuples(index=False)) + ".")
    table = latest[keep].rename(columns=FAIRNESS_NAMES) if "demographic_parity_difference" in latest.columns \
        else latest
    return Section("Fairness", figure=figure, table=table.reset_index(drop=True), tiles=tiles,
                   note=" ".join(notes), passes=[FAIRNESS_NAMES["four_fifths_passed"], "four_fifths_passed"])


def _windows_text(meta: Mapping[str, Any], frames: Sequence[pd.DataFrame | None], timeline: _Timeline) -> str | None:
    starts = _starts(w for f in frames if _has(f) and "window" in f.columns for w in f["window"])
    if not starts:
        return None
    labels = _window_labels(starts)
    text = f"{len(starts)}" + (f" × {meta['window']}" if meta.get("window") else "")
    text += (f", the first starting {labels[0]}, the last {labels[-1]}" if len(starts) > 1
             else f", starting {labels[0]}")
    return text + ("" if timeline.complete(starts[-1]) else " (partial)")


def _data_text(first: Any, last: Any, frames: Sequence[pd.DataFrame | None], timeline: _Timeline) -> str | None:
    """The header's span of the data: its first to its last event time; without them, the bounds of the
    windows, said to be only that (the start of the last window is not where the data ends).

    >>> days = pd.DataFrame({"window": pd.to_datetime(["2026-01-05", "2026-01-06"], utc=True)})
    >>> t = _timeline("1d", windows=days["window"])
    >>> _data_text("2026-01-05 00:10", "2026-01-06 09:00", [days], t)
    '2026-01-05 00:10 to 2026-01-06 09:00 UTC'
    >>> _data_text(None, None, [days], t)
    'within 2026-01-05 00:00 to 2026-01-07 00:00 UTC (the windows; the first and last event times were not given)'
    """
    if first is not None and last is not None:
        return f"{_naive(first):%Y-%m-%d %H:%M} to {_naive(last):%Y-%m-%d %H:%M} UTC"
    starts = _starts(w for f in frames if _has(f) and "window" in f.columns for w in f["window"])
    if not starts or timeline.length is None:
        return None
    return (f"within {starts[0]:%Y-%m-%d %H:%M} to {starts[-1] + timeline.length:%Y-%m-%d %H:%M} UTC (the windows; "
            "the first and last event times were not given)")


def build_report(*, title: str, meta: Mapping[str, Any] | None, performance: pd.DataFrame | None = None,
                 drift: pd.DataFrame | None = None, integrity: pd.DataFrame | None = None,
                 traffic: pd.DataFrame | None = None, importance: pd.DataFrame | None = None,
                 explanation_drift: pd.DataFrame | None = None, fairness: Any = None,
                 outliers: pd.DataFrame | None = None, data_span: tuple[Any, Any] | None = None) -> Report:
    """A report from the monitoring frames: summary, performance, drift, data integrity, traffic, then
    explanations (``importance`` and ``explanation_drift`` frames) and fairness (a store's fairness result or
    its summary frame) when given. ``outliers`` (``Store.outliers``: the share of rows found anomalous per
    window, with the training data's share in ``baseline``) adds a card to the data-integrity section.

    ``meta`` gives the header: ``model``, ``version``, ``baseline``, ``window`` (the window length),
    ``fairness_window`` (the fairness result's, when it differs) and anything else worth showing.
    ``data_span`` is the time of the first and the last event: the header shows it (without it, the bounds of
    the windows, saying so), and a window is complete once the data runs past its end. The headline figures
    read the last complete window and say which (the last, called partial, when none is complete); without
    ``data_span`` the generation time stands in for the data's end. A frame that is ``None`` or empty gives its
    section a note saying so.

    >>> r = build_report(title="credit v1", meta={"model": "credit", "version": "1", "baseline": "training"})
    >>> "No labelled events yet" in r.html and "No drift results" in r.html
    True
    >>> traffic = pd.DataFrame({"window": pd.to_datetime(["2026-01-05", "2026-01-12"], utc=True),
    ...                         "metric": "label_coverage", "value": [0.7, 0.0]})
    >>> r = build_report(title="t", meta={"window": "1w"}, traffic=traffic,
    ...                  data_span=("2026-01-05 00:10", "2026-01-13 09:00"))
    >>> r.meta["windows"], r.meta["data"]
    ('2 × 1w, the first starting 2026-01-05, the last 2026-01-12 (partial)', '2026-01-05 00:10 to 2026-01-13 09:00 UTC')
    >>> [t.value for t in r.sections[0].tiles if t.label == "Label coverage"]
    ['70.0%']
    """
    meta = dict(meta or {})
    generated_at = dt.datetime.now(dt.UTC)
    first, last = (None, None) if data_span is None else data_span
    frames = (performance, drift, integrity, traffic)
    timeline = _Timeline(
        _window_length(meta.get("window"))
        or _inferred_length(w for f in frames if _has(f) and "window" in f.columns for w in f["window"]),
        None if first is None else _naive(first), None if last is None else _naive(last), _naive(generated_at))
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
    windows = meta.get("windows") or _windows_text(meta, frames, timeline)
    if windows:
        header["windows"] = windows
    elif meta.get("window"):
        header["windows"] = f"{meta['window']} (none with events)"
    data = _data_text(first, last, frames, timeline)
    if data:
        header["data"] = data
    header.update({k: v for k, v in meta.items()
                   if k not in ("model", "version", "baseline", "window", "windows", "fairness_window")})
    sections = [
        _summary_section(performance, drift, integrity, traffic, timeline),
        _performance_section(performance, timeline),
        _drift_section(drift, timeline),
        _integrity_section(integrity, timeline, outliers),
        _traffic_section(traffic, timeline),
    ]
    if importance is not None or explanation_drift is not None:
        sections.append(_explanations_section(importance, explanation_drift, timeline))
    if fairness is not None:
        sections.append(_fairness_section(fairness, timeline, meta.get("fairness_window")))
    return Report(title, sections, meta=header, generated_at=generated_at)
