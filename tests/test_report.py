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
from cli_helpers import one_error_line, run
from vigil.demo import make_demo_data
from vigil.interfaces.report import (
    NO_LABELS,
    Report,
    Section,
    build_report,
    drift_heatmap,
    drift_summary_table,
    integrity_figure,
    latest_drift,
    performance_figure,
    traffic_figure,
)

MODEL = "m"
HEADINGS = ["Summary", "Performance", "Drift", "Data integrity", "Traffic"]
FRAMES = ("performance", "drift", "integrity", "traffic")
CHROMIUM = Path("/usr/bin/chromium")


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory) -> tuple[Path, dict[str, pd.DataFrame]]:
    """A store with 8 days of demo traffic and its late labels, and its daily monitoring frames.

    The model is fit on a fifth of Adult instead of half: fitting is most of this module's time.
    """
    d = make_demo_data(days=8, events_per_day=150, train_fraction=0.2)
    home = tmp_path_factory.mktemp("report-home")
    with vigil.open(home) as store:
        store.register_model(MODEL, version="1", model=d.model, training_data=d.train_df, target="income",
                             metadata=["channel"])
        store.log_predictions(MODEL, "1", d.events)
        store.log_labels(MODEL, d.labels)
        frames = {name: getattr(store, name)(MODEL, "1", window="1d") for name in FRAMES}
    return home, frames


@pytest.fixture(scope="module")
def frames(demo_home) -> dict[str, pd.DataFrame]:
    return demo_home[1]


@pytest.fixture(scope="module")
def report(frames) -> Report:
    return build_report(title="m version 1", meta={"model": MODEL, "version": "1", "baseline": "training",
                                                   "window": "1d"}, **frames)


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


def test_every_section_heading_is_present_in_order(document):
    positions = [document.index(f"<h2>{heading}</h2>") for heading in HEADINGS]
    assert positions == sorted(positions)
    assert "<title>m version 1</title>" in document
    header = document[:document.index("<section")]
    for fact in ("model", "version", "baseline", "windows", "8 × 1d"):
        assert fact in header
    assert "Generated " in header and " UTC" in header


def test_drift_table_lists_every_drifted_column_of_the_latest_window(frames, document):
    drift = frames["drift"]
    latest = drift[drift["window"] == drift["window"].max()]
    drifted = set(latest.loc[latest["drifted"], "column"])
    table = section_html(document, "Drift")
    flagged = {htmllib.unescape(c) for c in re.findall(r'<tr class="flag"><td>([^<]*)</td>', table)}
    listed = {htmllib.unescape(c) for c in re.findall(r"<tr(?: class=\"flag\")?><td>([^<]*)</td>", table)}
    assert flagged == drifted
    assert listed == set(latest["column"])
    assert f"{len(drifted)} of {len(latest)}" in section_html(document, "Summary")
    assert latest_drift(drift)["drifted"].tolist() == sorted(latest["drifted"], reverse=True)


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
    assert sorted(t.name for t in integrity_figure(frames["integrity"]).data) == with_missing


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


# -- the command ---------------------------------------------------------------------------------------------




def test_cli_report_writes_the_file(demo_home, tmp_path):
    home, _ = demo_home
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


def test_cli_report_weekly_window_default_output(demo_home, tmp_path, monkeypatch):
    home, _ = demo_home
    monkeypatch.chdir(tmp_path)
    result = run(home, "report", MODEL, "-w", "1w")
    assert result.exit_code == 0, (result.output, result.exception)
    assert (tmp_path / "report.html").is_file() and "× 1w" in (tmp_path / "report.html").read_text("utf-8")


@pytest.mark.parametrize("window", ["1x", "0d", "5h", "soon"])
def test_cli_report_bad_window_is_one_error_line(demo_home, tmp_path, window):
    home, _ = demo_home
    result = run(home, "report", MODEL, "--window", window, "--output", str(tmp_path / "r.html"), ok=False)
    assert result.exit_code in (1, 2)
    assert "--window" in one_error_line(result)
    assert not (tmp_path / "r.html").exists()


def test_cli_report_unknown_model_and_missing_store(demo_home, tmp_path):
    home, _ = demo_home
    result = run(home, "report", "nope", "--output", str(tmp_path / "r.html"), ok=False)
    assert result.exit_code == 1 and "'nope'" in one_error_line(result)
    result = run(tmp_path / "empty", "report", MODEL, ok=False)
    assert result.exit_code == 1 and "no Vigil store" in one_error_line(result)
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
