"""The Python API: ``vigil.open()`` and the :class:`Store` it returns.

>>> import tempfile, pandas as pd
>>> from sklearn.linear_model import LogisticRegression
>>> train = pd.DataFrame({"income": [20.0, 35.0, 50.0, 80.0], "sex": ["F", "M", "F", "M"], "default": [1, 1, 0, 0]})
>>> clf = LogisticRegression().fit(train[["income"]], train["default"])
>>> store = open(tempfile.mkdtemp())
>>> ds = store.register_dataset("credit-train", train)
>>> mv = store.register_model("credit", version="1", task="binary", model=clf, training_data=ds,
...                           target="default", protected=["sex"])
>>> events = pd.DataFrame({"event_id": ["e1", "e2"], "income": [30.0, 70.0], "sex": ["F", "M"],
...                        "prediction": [1, 0], "score": [0.8, 0.1]})
>>> store.log_predictions("credit", "1", events).accepted
2
>>> store.log_labels("credit", pd.DataFrame({"event_id": ["e1"], "default": [1]})).accepted
1
>>> store.events("credit")[["event_id", "prediction", "default"]].to_dict("list")
{'event_id': ['e1', 'e2'], 'prediction': [1, 0], 'default': [1, None]}
>>> store.close()
"""

from __future__ import annotations

import functools
import os
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from vigil.core.explain import Explanation
from vigil.core.schema import Schema, check_event_ids
from vigil.errors import BatchError, InvalidParameterError
from vigil.services import rowwise
from vigil.services.events import EventReader
from vigil.services.explaining import DRIFT_THRESHOLD, Explainer, OnlineExplainer
from vigil.services.fairness import StoreFairness, store_fairness
from vigil.services.ingest import Ingestor, IngestResult
from vigil.services.monitoring import Monitor, parse_window
from vigil.services.refresher import ProfileRefresher
from vigil.services.registry import Dataset, ModelVersion, Registry, version_label
from vigil.services.sources import count_file_rows, iter_file_batches
from vigil.store import open_backend

DEFAULT_PROJECT = "default"
#: Rows per transaction when ingesting a file.
FILE_BATCH_ROWS = 100_000

ProgressCallback = Callable[[int, int | None], None]


def open(  # noqa: A001 - the public name the API promises: vigil.open()
    home: str | os.PathLike[str] | None = None, *, project: str = DEFAULT_PROJECT, read_only: bool = False
) -> Store:
    """Open a store: a home directory or a store URI (``duckdb:///path``), ``$VIGIL_HOME`` or ``./vigil-data``
    by default; a writable home is created if needed.

    ``read_only=True`` opens it for reading only: every read works, every write raises
    :class:`~vigil.errors.ReadOnlyError`, and (for the embedded home) another process may read it meanwhile.
    """
    backend = open_backend(home, read_only=read_only)
    try:
        return Store(backend, project)
    except BaseException:
        backend.close()
        raise


def _keyword_reads(*old_positions: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Accept a read's former positional options (``old_positions`` after the model) with a warning."""

    def wrap(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(self: Store, model: str, *args: Any, **options: Any) -> Any:
            if args:
                if len(args) > len(old_positions):
                    raise InvalidParameterError(f"{method.__name__}() takes the model, then keyword options: "
                                                f"{', '.join(old_positions)}=...", field=old_positions[0])
                warnings.warn(f"{method.__name__}(model, {', '.join(old_positions[:len(args)])}) by position is "
                              f"deprecated: pass {', '.join(f'{n}=' for n in old_positions[:len(args)])} by name",
                              DeprecationWarning, stacklevel=2)
                for name, value in zip(old_positions, args, strict=False):
                    if name in options:
                        raise InvalidParameterError(f"{name} given twice (by position and by name)", field=name)
                    options[name] = value
            return method(self, model, **options)

        return call

    return wrap


class Store:
    """A Vigil store: the registry, the events and labels, and everything computed from them.

    One store holds many projects; a ``Store`` object works in one of them
    (``store.use("other")`` gives another view on the same store). Every method
    delegates to one service; one ``Store`` may be used from several threads.

    Reads take the model, then keyword options: ``version`` (default: the
    latest registered), ``window``, ``segment`` (a mapping or an expression,
    see ``docs/segments.md``), ``start`` (inclusive) and ``end`` (exclusive).
    """

    def __init__(self, backend: Any, project: str = DEFAULT_PROJECT, *, _shared: dict[str, Any] | None = None
                 ) -> None:
        self._backend = backend
        self._registry = Registry(backend, project)
        shared = _shared if _shared is not None else {"refresher": None, "owner": True}
        self._shared = shared
        if shared["refresher"] is None and not backend.read_only:
            shared["refresher"] = ProfileRefresher(self._refresh_key)
            shared["versions"] = {}
        self._refresher: ProfileRefresher | None = shared["refresher"]
        self._ingestor = Ingestor(self._registry, on_write=self._written if self._refresher else None)
        self._monitor = Monitor(self._registry)
        self._explainer = Explainer(self._monitor)
        self._events = EventReader(self._registry)

    # -- profiles on the write path ------------------------------------------------------------------
    def _written(self, mv: ModelVersion) -> None:
        """A write committed: the refresher brings the daily profiles of all events, and every (grain, segment)
        kept for the version, up to date."""
        key = (mv.model_id, mv.version)
        self._shared["versions"][key] = (self._monitor, mv)
        self._refresher.notify(key, [("1d", ""), *self._backend.profiles.tracked(mv.model_id, mv.version)])

    def _refresh_key(self, key: tuple[int, str], grain: str, segment: str) -> None:
        monitor, mv = self._shared["versions"][key]
        monitor.refresh(mv, grain, segment)

    def _settled(self, mv: ModelVersion) -> None:
        """Let the write path finish bringing this version's profiles up to date before reading them."""
        if self._refresher is not None:
            self._refresher.wait((mv.model_id, mv.version))

    # -- housekeeping --------------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        """The home directory."""
        return self._backend.home

    @property
    def uri(self) -> str:
        """The store's URI."""
        return self._backend.uri

    @property
    def read_only(self) -> bool:
        """Whether the store was opened for reading only."""
        return self._backend.read_only

    @property
    def _db(self) -> Any:
        """The embedded backend's database (for tests and tools of that backend)."""
        return self._backend.db

    @property
    def project(self) -> str:
        """The project this object works in."""
        return self._registry.project

    def use(self, project: str) -> Store:
        """A view of the same store working in ``project`` (created on first use)."""
        return Store(self._backend, project, _shared={**self._shared, "owner": False})

    def projects(self) -> list[str]:
        """The names of all projects."""
        return self._backend.metadata.project_names()

    def close(self) -> None:
        """Finish bringing profiles up to date and close the store (closing twice is harmless)."""
        if self._shared.get("owner") and self._refresher is not None:
            self._refresher.close()
        self._backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store(home={str(self.home)!r}, project={self.project!r})"

    # -- registry ------------------------------------------------------------------------------------
    def register_dataset(self, name: str, data: Any, **options: Any) -> Dataset:
        """Register a table (pandas, polars, Arrow or a file path) by content hash.

        Identical content under the same name returns the same dataset; new
        content under a name already used becomes its next version. Options:
        ``description``, ``created_by``, ``pii`` (columns to hash or drop).
        """
        return self._registry.register_dataset(name, data, **options)

    def dataset(self, name: str, version: int | None = None) -> Dataset:
        """A registered dataset, the latest version unless ``version`` is given."""
        return self._registry.dataset(name, version)

    def datasets(self) -> pd.DataFrame:
        """All datasets and their versions."""
        return self._registry.datasets()

    def register_model(self, name: str, *, version: str, **options: Any) -> ModelVersion:
        """Register a version of a model.

        Options: ``task`` (binary, multiclass, regression, ranking), ``model``
        (a fitted estimator, booster or any callable; stored with its sha256),
        ``training_data`` (a :class:`Dataset`, a dataset name, or a frame,
        registered as ``<name>-training``), ``target``, ``schema`` (an explicit
        :class:`~vigil.core.schema.Schema`; otherwise inferred from the training
        data with ``features``, ``prediction``, ``scores``, ``metadata``,
        ``protected``, ``pii``, ``event_id``, ``timestamp``, ``overrides``),
        ``owner``, ``description``, ``status`` (default ``draft``), ``created_by``.
        """
        mv = self._registry.register_model(name, version=version, **options)
        # what reads need from the model is computed now, while the caller holds it: reads never unpickle
        model = options.get("model")
        self._monitor.prepare_baseline(mv, model)
        if model is not None:
            self._explainer.prepare_at_registration(mv, model)
        return mv

    def model(self, name: str, version: str | None = None) -> ModelVersion:
        """A registered model version (the latest when ``version`` is None)."""
        return self._registry.model_version(name, version)

    def models(self) -> pd.DataFrame:
        """All models and versions in this project."""
        return self._registry.models()

    def schema(self, name: str, version: str | None = None) -> Schema:
        """A model version's schema."""
        return self.model(name, version).schema

    def set_status(self, name: str, version: str, status: str) -> ModelVersion:
        """Change a version's status (promoting to production retires the previous production version)."""
        return self._registry.set_status(name, version_label(version), status)

    def lineage(self, name: str, version: str | None = None) -> dict[str, Any]:
        """A version's artifact hash, training data (name, version, content hash) and schema."""
        return self._registry.lineage(name, version)

    def audit_log(self) -> pd.DataFrame:
        """Who did what, when, to which object; append-only."""
        return self._registry.audit_log()

    # -- ingestion -----------------------------------------------------------------------------------
    def log_predictions(
        self, model: str, version: str, data: Any, *, batch_rows: int = FILE_BATCH_ROWS,
        progress: ProgressCallback | None = None,
    ) -> IngestResult:
        """Validate and store prediction events from a frame, an Arrow table or a file.

        A frame is one transaction. A file (Parquet, CSV, JSON lines) is read
        in batches of ``batch_rows``, each committed on its own, and
        ``progress(rows_done, rows_total_or_None)`` is called after each.
        An events frame holds the schema's features, its ``prediction`` (and
        ``score`` or class-probability) columns and metadata; ``event_id``,
        ``timestamp`` and the target are optional.
        """
        if version is None:
            raise InvalidParameterError("give the version that made these predictions: version='1'",
                                        field="version")
        version = version_label(version)
        if isinstance(data, str | Path):
            return self._ingest_file(data, batch_rows, progress,
                                     lambda chunk: self._ingestor.log_predictions(model, version, chunk,
                                                                                  source=str(data)))
        result = self._ingestor.log_predictions(model, version, data)
        if progress:
            progress(result.received, result.received)
        return result

    def log_labels(self, model: str, data: Any, *, batch_rows: int = FILE_BATCH_ROWS,
                   progress: ProgressCallback | None = None) -> IngestResult:
        """Join ground truth (event id, target, optional ``label_time``) to stored events."""
        if isinstance(data, str | Path):
            return self._ingest_file(data, batch_rows, progress,
                                     lambda chunk: self._ingestor.log_labels(model, chunk, source=str(data)))
        result = self._ingestor.log_labels(model, data)
        if progress:
            progress(result.received, result.received)
        return result

    def retry_labels(self, model: str) -> IngestResult:
        """Join quarantined labels (``unknown_event``) whose events have arrived since.

        This also happens by itself after every prediction batch while such
        labels wait; the joined quarantine rows are marked resolved.
        """
        return self._ingestor.retry_labels(model)

    def _ingest_file(self, path: str | Path, batch_rows: int, progress: ProgressCallback | None,
                     ingest: Callable[[Any], IngestResult]) -> IngestResult:
        if not isinstance(batch_rows, int) or batch_rows < 1:
            raise InvalidParameterError(f"batch_rows={batch_rows!r}: a number of rows, 1 or more", field="batch_rows")
        total = count_file_rows(path)
        result: IngestResult | None = None
        done = 0
        for chunk in iter_file_batches(path, batch_rows):
            part = ingest(chunk)
            result = part if result is None else result + part
            done += chunk.num_rows
            if progress:
                progress(done, total)
        if result is None:
            raise BatchError(f"{str(path)!r} holds no rows", field="data")
        return result

    def delete_events(self, model: str, *, event_ids: list[str] | str | None = None, version: str | None = None,
                      start: Any = None, end: Any = None, actor: str | None = None) -> int:
        """Delete stored events (by id, or every event in ``[start, end)``) with their labels and explanations.

        Audited; the profiles of the windows they were in are recomputed. Returns how many were deleted.
        """
        deleted, mvs = self._events.delete(model, event_ids=event_ids, version=version, start=start, end=end,
                                           actor=actor)
        for mv in mvs:
            if self._refresher is not None:
                self._written(mv)
        return deleted

    # -- monitoring ----------------------------------------------------------------------------------
    def _version(self, model: str, version: str | None) -> ModelVersion:
        """A version to compute metrics of (settled: its profiles are up to date on the write path)."""
        mv = self.model(model) if version is None else self._registry.version_for_writing(model, version)
        self._settled(mv)
        return mv

    @_keyword_reads("version", "window", "segment")
    def performance(self, model: str, *, version: str | None = None, window: str = "1d", segment: Any = None,
                    start: Any = None, end: Any = None, threshold: float | None = None,
                    average: str | None = None, metrics: list[str] | None = None) -> pd.DataFrame:
        """Model quality per window from labelled events: one row per (window, metric).

        Classification: accuracy, precision, recall, specificity, NPV, F1,
        FPR, FNR, ROC-AUC, PR-AUC, log loss, Brier score and expected
        calibration error (binary scores; ``threshold`` re-decides predictions
        from the scores, at 1/1000 resolution); regression: MAE, RMSE, MAPE,
        R². ``segment`` is a column filter (``{"sex": "Female"}``) or an
        expression (``"age < 25 and channel == 'web'"``). ``metrics`` limits the
        metrics computed (a long series of one metric reads fastest). Columns:
        window, segment, metric, value, labelled, events.
        """
        return self._monitor.performance(self._version(model, version), window=window, segment=segment,
                                         start=start, end=end, threshold=threshold, average=average,
                                         metrics=metrics)

    @_keyword_reads("version", "window", "baseline", "segment")
    def drift(self, model: str, *, version: str | None = None, window: str = "1d", baseline: Any = "training",
              segment: Any = None, start: Any = None, end: Any = None, methods: dict[str, str] | None = None,
              thresholds: dict[str, float] | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """Drift per window and column: method, value, threshold, drifted, with p-value, PSI, JS, Hellinger.

        ``baseline``: ``"training"`` (the training data, and the model's
        outputs on it), ``"previous"`` (each window against the one before),
        or a ``(start, end)`` reference period. See ``docs/monitoring.md`` for
        exactly what decides; ``methods`` and ``thresholds`` override the
        defaults per column; ``columns`` limits the columns compared (and read).
        Columns: window, segment, column, role, kind, method, value, threshold,
        drifted, status, p_value, psi, js_distance, hellinger, baseline.
        """
        return self._monitor.drift(self._version(model, version), window=window, baseline=baseline,
                                   segment=segment, start=start, end=end, methods=methods,
                                   thresholds=thresholds, columns=columns)

    @_keyword_reads("version", "window", "segment")
    def integrity(self, model: str, *, version: str | None = None, window: str = "1d", segment: Any = None,
                  start: Any = None, end: Any = None) -> pd.DataFrame:
        """Data integrity per window and column: missing rate, out-of-range, unseen-category and outlier shares
        beside the same figures on the training data, and the rows quarantined in the window. Columns: window,
        segment, column, metric, value, training, counted_by (see ``docs/frames.md``)."""
        return self._monitor.integrity(self._version(model, version), window=window, segment=segment,
                                       start=start, end=end)

    @_keyword_reads("version", "window", "segment")
    def traffic(self, model: str, *, version: str | None = None, window: str = "1d", segment: Any = None,
                start: Any = None, end: Any = None) -> pd.DataFrame:
        """Events, labelled events, label coverage and label delay per window. Columns: window, segment, metric,
        value."""
        return self._monitor.traffic(self._version(model, version), window=window, segment=segment,
                                     start=start, end=end)

    @_keyword_reads("version", "metric")
    def worst_segments(self, model: str, *, version: str | None = None, metric: str = "accuracy",
                       by: list[str] | None = None, start: Any = None, end: Any = None, min_count: int = 30,
                       threshold: float | None = None) -> pd.DataFrame:
        """Segments ranked worst first on a performance metric (``gap``: how far below the overall value).
        Columns: column, value, segment, metric, score, overall, gap, labelled."""
        return self._monitor.worst_segments(self._version(model, version), metric=metric, by=by, start=start,
                                            end=end, min_count=min_count, threshold=threshold)

    # -- row-wise metrics (computed from the raw events of each window, not from profiles) -------------
    @_keyword_reads("version", "window", "method", "segment")
    def multivariate_drift(self, model: str, *, version: str | None = None, window: str = "1d",
                           method: str = "pca", segment: Any = None, start: Any = None, end: Any = None,
                           sample: int = 10_000) -> pd.DataFrame:
        """Drift of the features taken together, per window against the training data.

        ``method="pca"``: PCA reconstruction error; ``"domain_classifier"``: the
        cross-validated AUC of a classifier telling window rows from training
        rows. Thresholds follow each window's size (see ``docs/monitoring.md``).
        Catches changes no single column shows, such as a broken correlation.
        """
        return rowwise.multivariate_drift(self._monitor, self._version(model, version), window=window,
                                          method=method, segment=segment, start=start, end=end, sample=sample)

    @_keyword_reads("version", "window", "segment")
    def outliers(self, model: str, *, version: str | None = None, window: str = "1d", segment: Any = None,
                 start: Any = None, end: Any = None) -> pd.DataFrame:
        """Share of each window's rows an IsolationForest fit on the training features finds anomalous.

        A row is an outlier above the 99th percentile of the training rows'
        anomaly scores, so training-like traffic gives about 0.01
        (``baseline``). Columns: window, segment, metric, value, baseline, rows.
        """
        return rowwise.multivariate_outliers(self._monitor, self._version(model, version), window=window,
                                             segment=segment, start=start, end=end)

    @_keyword_reads("version", "window", "column", "baseline", "segment")
    def embedding_drift(self, model: str, *, version: str | None = None, window: str = "1d",
                        column: str | None = None, baseline: str = "training", segment: Any = None,
                        start: Any = None, end: Any = None, sample: int = 500, permutations: int = 100
                        ) -> pd.DataFrame:
        """Drift of embedding features per window: distances between mean vectors and an MMD permutation test.

        ``baseline``: ``"training"`` or ``"previous"`` (the window before).
        Metrics ``mean_distance_euclidean``, ``mean_distance_cosine`` and
        ``mmd`` (with ``p_value``); ``drifted`` when the MMD p-value < 0.01.
        """
        return rowwise.embedding_drift(self._monitor, self._version(model, version), window=window, column=column,
                                       baseline=baseline, segment=segment, start=start, end=end, sample=sample,
                                       permutations=permutations)

    @_keyword_reads("metric", "version", "window", "segment")
    def custom_metric(self, model: str, *, metric: Any = None, version: str | None = None, window: str = "1d",
                      segment: Any = None, start: Any = None, end: Any = None) -> pd.DataFrame:
        """A :class:`~vigil.core.metrics.performance.CustomMetric` (a ratio of sums) per window.

        The metric sees the window's events with the labels joined. Columns:
        window, segment, metric, value, numerator, denominator; any window's
        value is the ratio of its sums.
        """
        if metric is None:
            raise InvalidParameterError("give the metric: custom_metric(model, metric=CustomMetric(...))",
                                        field="metric")
        return rowwise.custom_metric(self._monitor, self._version(model, version), metric, window=window,
                                     segment=segment, start=start, end=end)

    @_keyword_reads("version", "k", "window", "segment")
    def ranking_performance(self, model: str, *, version: str | None = None, k: int = 10, window: str = "1d",
                            segment: Any = None, start: Any = None, end: Any = None) -> pd.DataFrame:
        """Precision, recall, NDCG, MAP and hit rate at ``k`` per window for a ranking model.

        Over the labelled events: the prediction is the ranked list of
        recommended items, the target the items acted upon. Columns: window,
        segment, metric, value, labelled.
        """
        return rowwise.ranking_performance(self._monitor, self._version(model, version), k=k, window=window,
                                           segment=segment, start=start, end=end)

    @_keyword_reads("version", "path")
    def report(self, model: str, *, version: str | None = None, path: str | os.PathLike[str] | None = None,
               window: str = "1d", baseline: Any = "training", segment: Any = None,
               fairness_window: str | None = None) -> Any:
        """A self-contained HTML report (performance, drift, integrity, traffic, explanations, fairness); written
        to ``path`` if given.

        Explanations appear once a sample of events is explained (:meth:`explain_sample`); fairness when the
        schema declares protected attributes (per ``fairness_window``, the report's window by default). It
        renders in Jupyter as it is (``_repr_html_``) and needs no network: plotly.js is inlined.
        """
        from vigil.interfaces.report import build_report

        mv = self._version(model, version)
        options = {"version": mv.version, "window": window, "segment": segment}
        frames: dict[str, Any] = {
            "performance": self.performance(model, **options),
            "drift": self.drift(model, baseline=baseline, **options),
            "integrity": self.integrity(model, **options),
            "traffic": self.traffic(model, **options),
        }
        if self._explainer.has_explanations(mv):
            frames["importance"] = self.feature_importance(model, version=mv.version, window=window)
            frames["explanation_drift"] = self.explanation_drift(model, version=mv.version, window=window)
        if mv.schema.protected and mv.schema.target is not None and mv.task in ("binary", "regression"):
            frames["fairness"] = self.fairness(model, version=mv.version, window=fairness_window or window,
                                               segment=segment)
        report = build_report(
            title=f"{model} version {mv.version}: monitoring report",
            meta={"model": model, "version": mv.version, "task": mv.task, "window": window,
                  "baseline": baseline, "project": self.project, "status": mv.status},
            data_span=self._events.span(mv), **frames)
        if path is not None:
            report.save(path)
        return report

    @_keyword_reads("version", "window")
    def refresh_profiles(self, model: str, *, version: str | None = None, window: str = "1d",
                         segment: Any = None) -> int:
        """Compute and keep the profiles of a window's grain and a segment now; returns the windows recomputed.

        The store keeps the daily profiles of all events up to date by itself after each write; a grain
        (hourly windows) or segment refreshed once here is kept up to date from then on, so its reads come
        from stored profiles. Reads of anything else compute from the events, without storing anything.
        """
        grain, _ = parse_window(window)
        mv = self._version(model, version)
        return self._monitor.refresh(mv, grain, segment)

    # -- explanations --------------------------------------------------------------------------------
    def explain(self, model: str, event_id: str | list[str] | None = None, *, version: str | None = None,
                method: str = "auto", rows: Any = None, trust: bool = False, **options: Any) -> Explanation:
        """Why did the model say this? Attributions of stored events (or of given ``rows``).

        A stored event is explained by the version that predicted it, against a
        sample of that version's training data, and the explanation is kept:
        asking again returns exactly what was shown the first time. ``method``
        is "auto" (TreeSHAP for tree ensembles, Integrated Gradients for
        PyTorch modules, exact Shapley values up to 10 features, Kernel SHAP
        beyond) or one named in ``vigil.core.explain.METHODS``. ``rows``
        explains rows that are not stored (nothing is kept); ``options`` go to
        the method (``budget=``, ``seed=``...). The model is loaded only when
        its signature verifies under your key; ``trust=True`` loads it anyway
        (see ``docs/security.md``).
        """
        if (event_id is None) == (rows is None):
            raise InvalidParameterError("give event_id= (stored events) or rows= (rows to explain), not both or "
                                        "neither", field="event_id")
        if rows is not None:
            mv = self.model(model, version)
            frame = pd.DataFrame([rows]) if isinstance(rows, dict) else pd.DataFrame(rows)
            return self._explainer.explain_rows(mv, frame, method, trust=trust, **options)
        ids = check_event_ids(event_id, "event_id")
        mv = self.model(model, version if version is not None else self._events.event_version(model, ids))
        return self._explainer.explain_events(mv, ids, method, trust=trust, **options)

    @_keyword_reads("version")
    def explain_sample(self, model: str, *, version: str | None = None, rate: float = 0.1, start: Any = None,
                       end: Any = None, method: str = "auto", limit: int | None = None,
                       progress: ProgressCallback | None = None, trust: bool = False) -> int:
        """Explain and keep a stable sample (share ``rate``, chosen by event id) of a version's events in
        ``[start, end)``; events already explained are skipped. Returns how many were explained now."""
        return self._explainer.explain_sample(self.model(model, version), rate=rate, start=start, end=end,
                                              method=method, limit=limit, progress=progress, trust=trust)

    @_keyword_reads("version")
    def explain_online(self, model: str, *, version: str | None = None, rate: float = 0.1, interval: float = 5.0,
                       method: str = "auto", trust: bool = False) -> OnlineExplainer:
        """Start explaining a sample of incoming events in a background thread (off the ingest path).

        Returns the running :class:`~vigil.services.explaining.OnlineExplainer`; ``stop()`` it (or use it as a
        context manager) when done. A failing pass is logged and shown in its ``status`` at once.
        """
        return OnlineExplainer(self._explainer, self.model(model, version), rate=rate, interval=interval,
                               method=method, trust=trust)

    @_keyword_reads("version", "window")
    def feature_importance(self, model: str, *, version: str | None = None, window: str = "1d",
                           start: Any = None, end: Any = None, method: str = "auto",
                           training: bool = True) -> pd.DataFrame:
        """Feature-importance ranking per window, from the stored explanations of production events.

        One row per (window, feature): explained events, mean |attribution|, mean attribution, rank. With
        ``training`` the training data's ranking comes first (``source`` "training", window NaT). Explain a
        sample first (:meth:`explain_sample` or :meth:`explain_online`). Never loads the model.
        """
        return self._explainer.feature_importance(self.model(model, version), window=window, start=start,
                                                  end=end, method=method, training=training)

    @_keyword_reads("version", "window")
    def explanation_drift(self, model: str, *, version: str | None = None, window: str = "1d",
                          start: Any = None, end: Any = None, method: str = "auto",
                          threshold: float | None = None) -> pd.DataFrame:
        """Per window, how far the explanations moved from the training data's: a drift score (flagged at
        ``threshold``), the rank correlation of feature importance and the feature that moved most."""
        return self._explainer.explanation_drift(self.model(model, version), window=window, start=start, end=end,
                                                 method=method,
                                                 threshold=DRIFT_THRESHOLD if threshold is None else threshold)

    def what_if(self, model: str, event_id: str, changes: dict[str, Any], *, version: str | None = None,
                explain: bool = True, trust: bool = False) -> Any:
        """Re-predict a stored event with some feature values changed, with attributions before and after."""
        from vigil.core.explain.counterfactual import what_if

        mv, row, ready = self._stored_row(model, event_id, version, trust)
        return what_if(ready.model, row, changes, background=ready.background, explain=explain)

    def counterfactuals(self, model: str, event_id: str, *, version: str | None = None, trust: bool = False,
                        **options: Any) -> Any:
        """The smallest changes to actionable features that flip a stored event's decision (binary models).

        ``options`` go to :func:`vigil.counterfactuals` (``actionable=``, ``immutable=``, ``ranges=``,
        ``n=``...); the version's training data sets the feature scales and plausible values.
        """
        from vigil.core.explain.counterfactual import counterfactuals

        mv, row, ready = self._stored_row(model, event_id, version, trust)
        if "data" not in options and mv.training_dataset is not None:
            options["data"] = mv.training_dataset.load()[ready.columns]
        return counterfactuals(ready.model, row, **options)

    def _stored_row(self, model: str, event_id: str, version: str | None, trust: bool
                    ) -> tuple[ModelVersion, Any, Any]:
        ids = check_event_ids(event_id, "event_id")
        if len(ids) != 1:
            raise InvalidParameterError(f"give one event_id, got {len(ids)}", field="event_id")
        mv = self.model(model, version if version is not None else self._events.event_version(model, ids))
        ready = self._explainer.prepare(mv, trust=trust)
        rows = self._explainer.event_rows(model, mv.model_id, ids)
        return mv, rows[ready.columns].iloc[0], ready

    # -- fairness ------------------------------------------------------------------------------------
    @_keyword_reads("version", "protected", "window", "segment")
    def fairness(self, model: str, *, version: str | None = None, protected: list[str] | str | None = None,
                 window: str = "30d", segment: Any = None, start: Any = None, end: Any = None,
                 **options: Any) -> StoreFairness:
        """Bias and fairness of a version's predictions per window, by protected attribute and intersection.

        ``protected``: attributes to group by (default: the schema's protected columns, features or
        metadata). Returns group metrics (count, share, base rate, selection rate, accuracy, TPR, FPR,
        precision, NPV, AUC, calibration...), disparities against a reference group with confidence
        intervals (four-fifths rule, equal opportunity, equalized odds, predictive parity) adjusted for
        the number of comparisons, representation against the training data, and proxies (features tied
        to a protected attribute, with their attributions when explanations are stored). Never needs the
        model. ``options`` go to :func:`vigil.fairness` (``reference=``, ``min_group_size=``,
        ``confidence=``...).
        """
        return store_fairness(self._monitor, self._version(model, version), explainer=self._explainer,
                              protected=protected, window=window, segment=segment, start=start, end=end,
                              **options)

    # -- reading -------------------------------------------------------------------------------------
    @_keyword_reads("version", "start", "end")
    def events(self, model: str, *, version: str | None = None, start: Any = None, end: Any = None,
               segment: Any = None, labelled: bool | None = None, limit: int | None = None, offset: int = 0,
               ) -> pd.DataFrame:
        """Stored events with their labels joined, oldest first (by time, then event id).

        ``start`` is inclusive and ``end`` exclusive (anything pandas reads as
        a time; naive times are UTC); ``segment`` filters as in the metric
        reads; ``labelled`` keeps only labelled (True) or unlabelled (False)
        events; ``limit`` and ``offset`` page through them. Timestamps come back
        in UTC. PII columns hold their tokens, never the clear values. Columns:
        event_id, timestamp, model_version, the stored event columns, then the
        target and label_time when the model has a target.
        """
        return self._events.events(model, version=version, start=start, end=end, segment=segment,
                                   labelled=labelled, limit=limit, offset=offset)

    def quarantine(self, model: str, *, reason: str | None = None, kind: str | None = None,
                   include_resolved: bool = False) -> pd.DataFrame:
        """Refused rows of a model, with the reason, the column, the value and the original row.

        Rows since resolved (labels that came before their events, joined
        when the events came) are left out unless ``include_resolved``.
        Columns: batch_id, kind, version, row_number, event_id, reason, column,
        value, message, raw, quarantined_at, resolved_at.
        """
        return self._events.quarantine(model, reason=reason, kind=kind, include_resolved=include_resolved)

    def batches(self, model: str) -> pd.DataFrame:
        """The record of every ingest call for a model: counts and when it committed."""
        return self._events.batches(model)


__all__ = ["DEFAULT_PROJECT", "FILE_BATCH_ROWS", "Store", "open"]
