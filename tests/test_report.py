"""The HTML report: built from a demo store's real monitoring frames, self-contained, and through ``vigil report``."""

from __future__ import annotations

import html as htmllib
import re
import struct
import subprocess
from pathlib import Path

import pandas as pd
import plotly.offline
import pytest

import vigil
from cli_helpers import run
from test_cli_errors import error_lines
from vigil.demo import make_demo_data
from vigil.errors import EXIT_CODES
from vigil.interfaces.report import (
    NO_LABELS,
    Report,
    Section,
    build_report,
    drift_heatmap,
    drift_summary_table,
    fairness_figure,
    integrity_figure,
    latest_drift,
    performance_figure,
    table_html,
    traffic_figure,
)

MODEL = "m"
HEADINGS = ["Summary", "Performance", "Drift", "Data integrity", "Traffic"]
FRAMES = ("performance", "drift", "integrity", "traffic")
CHROMIUM = Path("/usr/bin/chromium")


def one_error_line(result) -> str:
    """The ``error: ...`` line of a failing command (a ``hint: ...`` line may follow it)."""
    return error_lines(result)[0]


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame], tuple[pd.Timestamp, pd.Timestamp]]:
    """A store with 8 days of demo traffic and its late labels, its daily monitoring frames and the time of its
    first and last event.

    The model is fit on a fifth of Adult instead of half: fitting is most of this module's time.
    """
    d = make_demo_data(days=8, events_per_day=150, train_fraction=0.2)
    home = tmp_path_factory.mktemp("report-home")
    with vigil.open(home) as store:
        store.register_model(MODEL, version="1", model=d.model, training_data=d.train_df, target="income",
                             metadata=["channel"])
        store.log_predictions(MODEL, "1", d.events)
        store.log_labels(MODEL, d.labels)
        frames = {name: getattr(store, name)(MODEL, version="1", window="1d") for name in FRAMES}
        times = store.events(MODEL)["timestamp"]
    return home, frames, (times.min(), times.max())


@pytest.fixture(scope="module")
def frames(demo_home) -> dict[str, pd.DataFrame]:
    return demo_home[1]


@pytest.fixture(scope="module")
def span(demo_home) -> tuple[pd.Timestamp, pd.Timestamp]:
    return demo_home[2]


@pytest.fixture(scope="module")
def report(frames, span) -> Report:
    return build_report(title="m version 1", meta={"model": MODEL, "version": "1", "baseline": "training",
                                                   "window": "1d"}, data_span=span, **frames)


def last_complete(windows, length: pd.Timedelta, data_end: pd.Timestamp) -> pd.Timestamp:
    """The oracle: the last window start whose window ends at or before the last event."""
    starts = sorted(pd.to_datetime(pd.Series(list(windows)), utc=True).unique())
    return [w for w in starts if w + length <= data_end][-1]


@pytest.fixture(scope="module")
def document(report) -> str:
    return report.html


def without_plotly_js(text: str) -> str:
    return text.replace(plotly.offline.get_plotlyjs(), "")


def section_html(document: str, heading: str) -> str:
    match = re.search(rf"<section id=\"[^\"]+\"><h2>{re.escape(heading)}</h2>(.*?)</section>", document, re.S)
    assert match, f"no section {heading!r}"
    return match.group(1)


def test_the_demo_frames_have_something_to_show(frames):
    for name in FRAMES:
        assert len(frames[name]), name
    latest = frames["drift"][frames["drift"]["window"] == frames["drift"]["window"].max()]
    assert latest["drifted"].any()  # the demo traffic drifts


def test_plotly_js_is_inlined_exactly_once_and_nothing_is_fetched(document, report):
    assert document.count("plotly.js v") == 1
    assert document.count(plotly.offline.get_plotlyjs()) == 1
    assert document.index("plotly.js v") < document.index("</head>")
    rest = without_plotly_js(document)
    for pattern in (r'src\s*=\s*["\']?\s*(https?:)?//', r'href\s*=\s*["\']?\s*(https?:)?//', r"@import",
                    r"url\(\s*['\"]?(https?:)?//", r"<link\b", r"<script[^>]*\bsrc="):
        assert not re.search(pattern, rest, re.I), pattern
    assert 'src="http' not in rest and 'href="http' not in rest
    assert "default-src 'none'" in document  # the Content-Security-Policy forbids fetching anything
    assert document.count('class="plotly-graph-div"') == len(report.figures) == 4  # integrity has missing values
    assert document.count("include_plotlyjs") == 0 and "cdn.plot.ly" not in rest


def test_every_section_heading_is_present_in_order(document, span):
    positions = [document.index(f"<h2>{heading}</h2>") for heading in HEADINGS]
    assert positions == sorted(positions)
    assert "<title>m version 1</title>" in document
    header = document[:document.index("<section")]
    for fact in ("model", "version", "baseline", "windows", "8 × 1d", "(partial)"):
        assert fact in header
    first, last = span  # the data's actual span, not the start of the last window
    assert f"<b>data</b> {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M} UTC" in header
    assert "Generated " in header and " UTC" in header


def test_drift_table_lists_every_drifted_column_of_the_last_complete_window(frames, document, span):
    drift = frames["drift"]
    window = last_complete(drift["window"], pd.Timedelta(days=1), span[1])
    assert window < drift["window"].max()  # the demo's last day is partial: it ends with the data
    latest = drift[drift["window"] == window]
    drifted = set(latest.loc[latest["drifted"], "column"])
    table = section_html(document, "Drift")
    flagged = {htmllib.unescape(c) for c in re.findall(r'<tr class="flag"><td>([^<]*)</td>', table)}
    listed = {htmllib.unescape(c) for c in re.findall(r"<tr(?: class=\"flag\")?><td>([^<]*)</td>", table)}
    assert flagged == drifted
    assert listed == set(latest["column"])
    assert f"{len(drifted)} of {len(latest)}" in section_html(document, "Summary")
    assert latest_drift(drift, window)["drifted"].tolist() == sorted(latest["drifted"], reverse=True)


def test_summary_headlines(frames, document):
    summary = section_html(document, "Summary")
    for label in ("Drifted columns", "Accuracy", "ROC-AUC", "Label coverage", "Events", "Quarantined rows"):
        assert f'<div class="label">{label}</div>' in summary
    events = frames["traffic"].query("metric == 'events'")["value"].sum()
    assert f"{int(events):,}" in summary


def test_figure_builders_from_the_frames(frames):
    drift = frames["drift"]
    heat = drift_heatmap(drift)
    columns, windows = drift["column"].nunique(), drift["window"].nunique()
    z = heat.data[0].z
    assert (len(z), len(z[0])) == (columns, windows)
    assert "method" in heat.data[0].hovertemplate and "p-value" in heat.data[0].hovertemplate
    assert len(heat.data[1].x) == int(drift["drifted"].sum())  # one × per drifted cell
    table = drift_summary_table(drift).data[0]
    assert list(table.cells.values[0]) == latest_drift(drift)["column"].tolist()
    perf = performance_figure(frames["performance"])
    assert [t.name for t in perf.data] == ["Accuracy", "ROC-AUC", "F1"]
    assert len(perf.data[0].x) == frames["performance"]["window"].nunique()
    traffic = traffic_figure(frames["traffic"])
    assert [t.type for t in traffic.data] == ["bar", "scatter"] and traffic.data[1].yaxis == "y2"
    missing = frames["integrity"].query("metric == 'missing_rate'")
    with_missing = sorted(missing.loc[missing["value"] > 0, "column"].unique())
    lines = integrity_figure(frames["integrity"]).data
    assert sorted(t.name.split(" (identical to ")[0] for t in lines) == with_missing
    by_name = {t.name.split(" (identical to ")[0]: t for t in lines}
    for line in lines:  # a line said to repeat another one does, and is drawn so that both show
        if "(identical to " in line.name:
            twin = by_name[line.name.split(" (identical to ")[1].rstrip(")")]
            assert list(line.y) == list(twin.y) and line.line.dash and line.marker.symbol.endswith("-open")


def test_regression_performance_shows_mae():
    perf = pd.DataFrame({"window": pd.to_datetime(["2026-01-01"] * 3, utc=True), "segment": "all",
                         "metric": ["mae", "rmse", "r2"], "value": [1.5, 2.0, 0.7], "labelled": 80, "events": 100})
    assert [t.name for t in performance_figure(perf).data] == ["MAE", "RMSE", "R²"]
    summary = section_html(build_report(title="r", meta={}, performance=perf).html, "Summary")
    assert '<div class="label">MAE</div>' in summary and "1.500" in summary


def test_absent_and_empty_frames_give_notes_not_errors(frames):
    for given in ({}, {name: frames[name].iloc[0:0] for name in FRAMES}, {name: pd.DataFrame() for name in FRAMES}):
        r = build_report(title="nothing yet", meta={"model": MODEL, "window": "1d"}, **given)
        document = r.html
        assert [s.heading for s in r.sections] == HEADINGS
        assert NO_LABELS in section_html(document, "Performance")
        assert "No drift results" in section_html(document, "Drift")
        assert "No events" in section_html(document, "Traffic")
        assert "No integrity results" in section_html(document, "Data integrity")
        assert r.figures == [] and "plotly.js v" not in document
    # no labels yet, everything else there: the performance section says so and the other figures still render
    partial = build_report(title="no labels", meta={}, **{**frames, "performance": None}).html
    assert NO_LABELS in section_html(partial, "Performance") and partial.count('class="plotly-graph-div"') == 3
    for figure in (performance_figure(None), drift_heatmap(pd.DataFrame()), traffic_figure(None),
                   integrity_figure(None), drift_summary_table(None)):
        assert figure.layout.annotations  # an empty figure says why instead of failing


def test_fairness_is_shown_as_a_table_when_given(frames):
    fairness = pd.DataFrame({"group": ["Female", "Male"], "selection_rate": [0.12, 0.31]})
    r = build_report(title="f", meta={}, traffic=frames["traffic"], fairness=fairness)
    assert [s.heading for s in r.sections] == [*HEADINGS, "Fairness"]
    assert "selection_rate" in section_html(r.html, "Fairness") and "Female" in r.html


def test_tables_and_text_are_escaped():
    evil = "<script>alert(1)</script>"
    r = Report(evil, [Section(evil, table=pd.DataFrame({evil: [evil]}), note=evil)], meta={"model": evil})
    assert "<script>alert" not in r.html and "&lt;script&gt;alert(1)&lt;/script&gt;" in r.html


def test_repr_html_is_a_fragment_with_the_figures(report):
    fragment = report._repr_html_()
    assert isinstance(fragment, str) and "<html" not in fragment.lower()
    assert fragment.count("plotly.js v") == 1
    assert fragment.index("plotly.js v") < fragment.index('class="plotly-graph-div"')
    ids = re.findall(r'<div id="([^"]+)" class="plotly-graph-div"', fragment)
    assert len(ids) == len(report.figures) and len(set(ids)) == len(ids)
    assert all(fragment.count(f'"{i}"') >= 2 for i in ids)  # the div, and the script that draws into it
    assert ".vigil-report " in fragment  # its style is scoped to the report, not the notebook


def test_save_writes_utf8_and_returns_the_path(report, tmp_path):
    path = report.save(tmp_path / "r.html")
    assert path == tmp_path / "r.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert "×" in path.read_text(encoding="utf-8")  # non-ASCII written as UTF-8


# -- which window the headline reads, and the time axis -------------------------------------------------------

WEEKS = pd.to_datetime(["2026-01-05", "2026-01-12", "2026-01-19"], utc=True)  # Mondays
#: Two full weeks and the first day and a half of a third one.
WEEKLY_SPAN = (pd.Timestamp("2026-01-05 00:05", tz="UTC"), pd.Timestamp("2026-01-20 10:00", tz="UTC"))


def weekly_frames() -> dict[str, pd.DataFrame]:
    traffic = pd.DataFrame([{"window": w, "segment": "all", "metric": m, "value": v}
                            for w, events, coverage in zip(WEEKS, [700, 680, 150], [0.8, 0.6, 0.0], strict=True)
                            for m, v in (("events", events), ("labelled", events * coverage),
                                         ("label_coverage", coverage))])
    performance = pd.DataFrame({"window": WEEKS[:2].repeat(2), "segment": "all",
                                "metric": ["accuracy", "roc_auc"] * 2, "value": [0.9, 0.95, 0.8, 0.85],
                                "labelled": [560, 560, 408, 408], "events": [700, 700, 680, 680]})
    drift = pd.DataFrame({"window": WEEKS.repeat(2), "segment": "all", "column": ["age", "sex"] * 3,
                          "method": "wasserstein", "value": [0.0, 0.0, 0.2, 0.0, 0.3, 0.4], "threshold": 0.1,
                          "drifted": [False, False, True, False, True, True]})
    return {"traffic": traffic, "performance": performance, "drift": drift}


def tile(report: Report, label: str):
    found = [t for t in report.sections[0].tiles if t.label == label]
    assert len(found) == 1, label
    return found[0]


def test_headline_cards_read_the_last_complete_window_and_say_which():
    r = build_report(title="w", meta={"window": "1w"}, data_span=WEEKLY_SPAN, **weekly_frames())
    coverage = tile(r, "Label coverage")
    assert coverage.value == "60.0%"  # not the 0.0% of the partial third week
    assert "2026-01-12 (the last complete window)" in coverage.detail
    drifted = tile(r, "Drifted columns")
    assert drifted.value == "1 of 2" and "2026-01-12" in drifted.detail
    assert tile(r, "Accuracy").value == "0.800" and "2026-01-12" in tile(r, "Accuracy").detail
    summary = section_html(r.html, "Summary")
    assert "the window from 2026-01-19 on is partial (the data ends 2026-01-20 10:00 UTC)" in summary
    assert "The table is window 2026-01-12 (the last complete window)" in section_html(r.html, "Drift")


def test_with_only_partial_windows_the_last_is_used_and_called_partial():
    frames = {name: frame[frame["window"] == WEEKS[2]] for name, frame in weekly_frames().items()
              if name != "performance"}
    r = build_report(title="w", meta={"window": "1w"}, data_span=(WEEKS[2], WEEKLY_SPAN[1]), **frames)
    coverage = tile(r, "Label coverage")
    assert coverage.value == "0.0%" and "2026-01-19 (partial)" in coverage.detail
    assert tile(r, "Drifted columns").value == "2 of 2"
    assert "Every window is partial" in section_html(r.html, "Summary")


def test_the_header_shows_the_data_span_and_which_window_is_partial():
    r = build_report(title="w", meta={"window": "1w"}, data_span=WEEKLY_SPAN, **weekly_frames())
    assert r.meta["data"] == "2026-01-05 00:05 to 2026-01-20 10:00 UTC"
    assert r.meta["windows"] == "3 × 1w, the first starting 2026-01-05, the last 2026-01-19 (partial)"
    complete = build_report(title="w", meta={"window": "1w"}, data_span=(WEEKLY_SPAN[0], "2026-01-26 00:00"),
                            **weekly_frames())
    assert "partial" not in complete.meta["windows"]
    assert tile(complete, "Label coverage").value == "0.0%"  # the third week is complete: its value it is


@pytest.mark.parametrize("figure", [traffic_figure, performance_figure])
def test_weekly_ticks_fall_on_the_mondays_the_points_sit_on(figure):
    frame = weekly_frames()["traffic" if figure is traffic_figure else "performance"]
    fig = figure(frame, window="1w", data_end=WEEKLY_SPAN[1])
    axis = fig.layout.xaxis
    assert pd.Timestamp(axis.tick0).day_name() == "Monday" and pd.Timestamp(axis.tick0) == WEEKS[0].tz_localize(None)
    assert axis.dtick == pd.Timedelta(days=7) / pd.Timedelta(milliseconds=1) and axis.tickmode == "linear"
    points = [pd.Timestamp(x) for t in fig.data for x in t.x]
    assert all(p.day_name() == "Monday" for p in points)


def test_many_daily_windows_get_at_most_a_dozen_ticks_on_window_starts():
    days = pd.date_range("2026-01-01", periods=60, freq="D", tz="UTC")
    traffic = pd.DataFrame({"window": days, "metric": "events", "value": 10.0})
    axis = traffic_figure(traffic, window="1d").layout.xaxis
    assert pd.Timestamp(axis.tick0) == days[0].tz_localize(None)
    step = axis.dtick / (86_400_000)
    assert step == int(step) and 60 / step <= 12


def test_partial_windows_are_shaded_up_to_the_data_end():
    fig = traffic_figure(weekly_frames()["traffic"], window="1w", data_end=WEEKLY_SPAN[1])
    (shade,) = fig.layout.shapes
    assert (pd.Timestamp(shade.x0), pd.Timestamp(shade.x1)) == (WEEKS[2].tz_localize(None),
                                                                 WEEKLY_SPAN[1].tz_localize(None))
    assert "partial" in [a.text for a in fig.layout.annotations]


def test_lines_with_identical_values_stay_visible_and_say_so():
    integrity = pd.DataFrame({"window": WEEKS.repeat(3), "segment": "all",
                              "column": ["occupation", "workclass", "age"] * 3, "metric": "missing_rate",
                              "value": [0.05, 0.05, 0.01, 0.06, 0.06, 0.0, 0.05, 0.05, 0.02]})
    lines = {t.name: t for t in integrity_figure(integrity, window="1w").data}
    assert set(lines) == {"occupation", "workclass (identical to occupation)", "age"}
    twin, first = lines["workclass (identical to occupation)"], lines["occupation"]
    assert list(twin.y) == list(first.y)
    assert twin.line.dash not in (None, "solid") and first.line.dash is None and lines["age"].line.dash is None
    assert twin.marker.symbol != first.marker.symbol and twin.marker.size > 6


def fairness_summary(passed: list[bool]) -> pd.DataFrame:
    return pd.DataFrame({"window": pd.Timestamp("2026-01-05"), "attribute": ["sex", "race"][:len(passed)],
                         "groups": 2, "demographic_parity_difference": 0.1,
                         "demographic_parity_ratio": [0.9 if p else 0.5 for p in passed],
                         "four_fifths_passed": passed, "status": "ok"})


def test_a_four_fifths_pass_is_green_and_a_failure_red():
    fairness = section_html(build_report(title="f", meta={}, fairness=fairness_summary([True, False])).html,
                            "Fairness")
    rows = re.findall(r"<tr(?: class=\"flag\")?>.*?</tr>", fairness.split("<tbody>")[1])
    passed, failed = rows
    assert passed.startswith("<tr>") and '<td class="pass">yes</td>' in passed
    assert failed.startswith('<tr class="flag">') and '<td class="flag">no</td>' in failed
    assert '<tr class="flag"><td>x</td><td class="flag">yes</td></tr>' in table_html(
        pd.DataFrame({"column": ["x"], "drifted": [True]}))  # a true flag stays red


def integrity_frame(**extra) -> pd.DataFrame:
    rows = [{"window": w, "segment": "all", "column": "hours", "metric": m, "value": v, **extra}
            for w in WEEKS[:2] for m, v in (("missing_rate", 0.0), ("out_of_range_rate", 0.0),
                                            ("outlier_rate", 0.184))]
    rows += [{"window": w, "segment": "all", "column": None, "metric": "quarantined_rows", "value": 3.0}
             for w in WEEKS[:2]]
    return pd.DataFrame(rows)


def test_outlier_shares_show_the_training_share_beside_them():
    with_training = integrity_frame(baseline=0.031)
    table = build_report(title="i", meta={"window": "1w"}, integrity=with_training).sections[3].table
    assert list(table.columns) == ["column", "missing", "missing (training)", "out of range",
                                   "out of range (training)", "outliers", "outliers (training)"]
    assert table.loc[0, "outliers"] == "18.4%" and table.loc[0, "outliers (training)"] == "3.1%"
    without = build_report(title="i", meta={"window": "1w"}, integrity=integrity_frame()).sections[3].table
    assert "outliers" in without.columns and not any("training" in c for c in without.columns)


def test_outlying_rows_show_the_training_share_beside_them(demo_home, frames, span):
    with vigil.open(demo_home[0], read_only=True) as store:
        outliers = store.outliers(MODEL, version="1", window="1d")
    r = build_report(title="o", meta={"window": "1d"}, integrity=frames["integrity"], outliers=outliers,
                     data_span=span)
    (card,) = [t for t in r.sections[3].tiles if t.label == "Outlying rows"]
    window = last_complete(outliers["window"], pd.Timedelta(days=1), span[1])
    row = outliers[outliers["window"] == window].iloc[0]
    assert card.value == f"{row['value']:.1%}"
    assert f"training data {row['baseline']:.1%}" in card.detail and f"{window:%Y-%m-%d}" in card.detail


def test_quarantined_rows_are_labelled_with_what_they_are_counted_by():
    default = build_report(title="q", meta={}, integrity=integrity_frame())
    assert "counted by refusal time" in tile(default, "Quarantined rows").detail
    assert "6 row(s) quarantined at ingestion in the period, counted by refusal time" in section_html(
        default.html, "Data integrity")
    said = integrity_frame().assign(counted_by="event_time")
    assert "counted by event time" in tile(build_report(title="q", meta={}, integrity=said),
                                           "Quarantined rows").detail


def test_the_fairness_section_says_its_window_when_it_is_not_the_reports():
    days = pd.concat([fairness_summary([True]).assign(window=pd.Timestamp(d)) for d in ("2026-01-05", "2026-01-06")])
    same = section_html(build_report(title="f", meta={"window": "1d"}, fairness=days).html, "Fairness")
    assert "Fairness per 1d window;" in same and "the rest of the report" not in same
    weekly = section_html(build_report(title="f", meta={"window": "1d", "fairness_window": "30d"},
                                       fairness=days).html, "Fairness")
    assert "Fairness per 30d window (the rest of the report: 1d windows)" in weekly


def test_fairness_figure_has_a_line_per_measured_group_on_window_starts():
    by_group = pd.DataFrame({"window": pd.to_datetime(["2026-01-05", "2026-01-12"] * 3), "attribute": "sex",
                             "group": ["F", "F", "M", "M", "X", "X"], "count": [80, 90, 70, 60, 3, 2],
                             "selection_rate": [0.2, 0.25, 0.4, 0.38, float("nan"), float("nan")]})
    fig = fairness_figure(by_group, "sex", window="1w")
    assert [t.name for t in fig.data] == ["F", "M"]  # X is never large enough to measure
    assert fig.layout.xaxis.dtick == 7 * 86_400_000


def test_the_demo_report_headline_is_the_last_complete_day(frames, span, report):
    traffic = frames["traffic"]
    window = last_complete(traffic["window"], pd.Timedelta(days=1), span[1])
    coverage = traffic[(traffic["window"] == window) & (traffic["metric"] == "label_coverage")]["value"].iloc[0]
    shown = tile(report, "Label coverage")
    assert shown.value == f"{coverage:.1%}" and f"{window:%Y-%m-%d} (the last complete window)" in shown.detail


# -- the command ---------------------------------------------------------------------------------------------




def test_cli_report_writes_the_file(demo_home, tmp_path):
    home = demo_home[0]
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    result = run(home, "report", MODEL, "--version", "1", "--window", "1d", "--baseline", "training",
                 "--output", str(out))
    assert result.exit_code == 0, (result.output, result.exception)
    assert result.stdout.strip() == str(out)
    document = out.read_text(encoding="utf-8")
    assert document.count("plotly.js v") == 1
    for heading in HEADINGS:
        assert f"<h2>{heading}</h2>" in document
    assert "m version 1: monitoring report" in document and "1d" in document


def test_cli_report_default_file_is_named_after_model_version_and_window(demo_home, tmp_path, monkeypatch):
    home = demo_home[0]
    monkeypatch.chdir(tmp_path)
    result = run(home, "report", MODEL, "-w", "1w")
    assert result.exit_code == 0, (result.output, result.exception)
    written = tmp_path / f"{MODEL}-v1-1w-report.html"
    assert result.stdout.strip() == written.name
    assert written.is_file() and "× 1w" in written.read_text("utf-8")
    assert [p.name for p in tmp_path.iterdir()] == [written.name]


@pytest.mark.parametrize("window", ["1x", "0d", "5h", "soon"])
def test_cli_report_bad_window_is_one_error_line(demo_home, tmp_path, window):
    home = demo_home[0]
    result = run(home, "report", MODEL, "--window", window, "--output", str(tmp_path / "r.html"), ok=False)
    assert result.exit_code == EXIT_CODES["invalid_parameter"]
    assert "--window" in one_error_line(result)
    assert not (tmp_path / "r.html").exists()


def test_cli_report_unknown_model_and_missing_store(demo_home, tmp_path):
    home = demo_home[0]
    result = run(home, "report", "nope", "--output", str(tmp_path / "r.html"), ok=False)
    assert result.exit_code == EXIT_CODES["not_found"] and "'nope'" in one_error_line(result)
    result = run(tmp_path / "empty", "report", MODEL, ok=False)
    assert result.exit_code == EXIT_CODES["store_error"] and "no Vigil store" in one_error_line(result)
    result = run(home, "report", MODEL, "--baseline", "yesterday", ok=False)
    assert result.exit_code == 2 and "--baseline" in one_error_line(result)


# -- rendering -----------------------------------------------------------------------------------------------


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", data[16:24])


@pytest.mark.skipif(not CHROMIUM.exists(), reason="no /usr/bin/chromium (.ci/run installs it)")
def test_the_saved_report_renders_in_headless_chromium(report, tmp_path):
    page = report.save(tmp_path / "report.html")
    png = tmp_path / "report.png"
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'chrome'}",
         f"--screenshot={png}", "--window-size=1200,2000", f"file://{page}"],
        check=True, capture_output=True, timeout=120)
    assert png.is_file()
    assert png_size(png) == (1200, 2000)
    try:
        from PIL import Image
    except ImportError:
        assert png.stat().st_size > 20_000  # a blank page compresses to a few kB; this one has charts and tables
    else:
        with Image.open(png) as image:
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or range(1 << 20)) > 50
    assert page.stat().st_size > 1_000_000  # plotly.js is inside
