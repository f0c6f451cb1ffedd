"""The ``vigil`` command: create a store, register models, ingest predictions and labels, look at the data.

Every command has ``--help``. ``--home DIR`` and ``--project NAME`` come before the command and apply to it.
Errors are one line on stderr, ``error: <message>`` (and for some a ``hint:`` line), with the exit code of the
error's code (:data:`vigil.errors.EXIT_CODES`: 3 for something not found, 5 for a refused batch...; the
table is docs/errors.md), 2 for a usage error such as a bad option value, and 1 for an unexpected failure. A
batch that is refused as a whole is an error, rows sent to the quarantine are not.

>>> from typer.testing import CliRunner
>>> result = CliRunner().invoke(app, ["--help"])
>>> result.exit_code, "ingest" in result.output
(0, True)
"""

import contextlib
import datetime as dt
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import pyarrow as pa
import typer
from rich.console import Console
from rich.measure import Measurement
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from typer.core import TyperGroup

import vigil
from vigil.core.schema import TASKS
from vigil.core.validation import REASONS, SIGNALS
from vigil.errors import ArtifactError, BatchError, StoreError, VigilError, exit_code
from vigil.interfaces.api import DEFAULT_PROJECT, FILE_BATCH_ROWS, Store
from vigil.services.ingest import IngestResult
from vigil.services.monitoring import parse_window
from vigil.services.registry import STATUSES
from vigil.services.sources import read_file
from vigil.store.database import CURRENT_FORMAT, DB_FILE, default_home

try:  # Typer >= 0.20 vendors Click; older releases use the click package
    from typer._click.exceptions import ClickException, UsageError
except ImportError:  # pragma: no cover - depends on the installed Typer
    from click.exceptions import ClickException, UsageError

__all__ = ["app", "main"]

#: Set to show the traceback of an unexpected error instead of one line (as ``--debug`` does).
DEBUG_ENV = "VIGIL_DEBUG"
DEBUG_OPTION = "--debug"
#: A second line, ``hint: ...``, after the error line of these error codes.
HINTS = {
    "store_busy": "another process is writing to this store; try again once it has finished",
    "store_version": "this store was written by a newer Vigil: upgrade Vigil to open it",
}
#: Rows the table view shows when no ``--limit`` is given.
TABLE_ROWS = 20

Task = StrEnum("Task", {t: t for t in TASKS})
Status = StrEnum("Status", {s: s for s in STATUSES})


class Format(StrEnum):
    """How ``events`` and ``quarantine`` print rows."""

    table = "table"
    csv = "csv"
    json = "json"


# -- errors: one line, never a traceback ---------------------------------------------------------------


def one_line(message: str) -> str:
    """A message folded onto one line.

    >>> one_line("columns ['a']\\n  match nothing ")
    "columns ['a'] match nothing"
    """
    return re.sub(r"\s*\n\s*", " ", str(message).strip())


def _hint(err: VigilError) -> str | None:
    """The hint shown under an error: the error's own (``details["hint"]``), else the one for its code.

    >>> from vigil.errors import NotFoundError, StoreBusyError
    >>> _hint(StoreBusyError("locked")).startswith("another process"), _hint(NotFoundError("x", hint="try y"))
    (True, 'try y')
    """
    hint = err.details.get("hint") if isinstance(err.details, dict) else None
    if not hint and err.code == "not_found" and err.field in ("model", "version"):
        hint = "`vigil model list` shows the models and versions of the project (--project NAME for another)"
    return str(hint) if hint else HINTS.get(err.code)


def _error_message(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: {err.filename!r}" if err.filename else err.strerror
    if isinstance(err, pa.ArrowException):
        return f"{type(err).__name__}: {err}"
    return str(err) or type(err).__name__


class _VigilGroup(TyperGroup):
    """The top-level group: runs the command and turns every expected failure into ``error: ...``."""

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        debug = bool(os.environ.get(DEBUG_ENV)) or DEBUG_OPTION in argv[:_first_command(argv)]
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except UsageError as err:
            if type(err).__name__ == "NoArgsIsHelpError":  # a bare group: its help is the answer
                if err.message.strip():
                    typer.echo(err.message)
                sys.exit(err.exit_code)
            hint = f" (see '{err.ctx.command_path} --help')" if err.ctx is not None else ""
            _fail(err.format_message() + hint, err.exit_code)
        except ClickException as err:
            _fail(err.format_message(), err.exit_code)
        except typer.Abort:
            _fail("aborted", 1)
        except BrokenPipeError:  # the reader went away (`vigil events m -f csv | head`): stop quietly
            _silence_stdout()
            sys.exit(1)
        except VigilError as err:  # control flow follows the error's code, never its message
            _fail(_error_message(err), exit_code(err), hint=_hint(err))
        except (OSError, pa.ArrowException) as err:
            _fail(_error_message(err), 1)
        except Exception as err:
            if debug:
                raise
            _fail(f"unexpected {type(err).__name__}: {err} (a bug in Vigil: please report it; run with "
                  f"{DEBUG_OPTION} or set {DEBUG_ENV}=1 to see the traceback)", 1)
        sys.exit(rv if isinstance(rv, int) and not isinstance(rv, bool) else 0)


def _silence_stdout() -> None:
    with contextlib.suppress(OSError, ValueError, AttributeError):  # not a real file (e.g. under CliRunner)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _first_command(argv: list[str]) -> int:
    """The position of the command in ``vigil`` arguments: the global options come before it."""
    valued = {"--home", "--project"}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i += 2 if argv[i] in valued else 1
    return i


def _fail(message: str, code: int, hint: str | None = None) -> None:
    typer.echo(f"error: {one_line(message)}", err=True)
    if hint:
        typer.echo(f"hint: {one_line(hint)}", err=True)
    sys.exit(code)


# -- the app and shared options ------------------------------------------------------------------------

app = typer.Typer(
    name="vigil",
    cls=_VigilGroup,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
model_app = typer.Typer(help="Register models and look at them.", no_args_is_help=True,
                        context_settings={"help_option_names": ["-h", "--help"]})
app.add_typer(model_app, name="model")


class _DefaultCommandGroup(TyperGroup):
    """A group whose first argument, when it is not one of its commands, goes to its default command.

    So ``vigil events MODEL`` is ``vigil events show MODEL`` while ``vigil events delete MODEL`` deletes.
    """

    default_command = "show"

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ctx.help_option_names:
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)


events_app = typer.Typer(
    cls=_DefaultCommandGroup, no_args_is_help=True, context_settings={"help_option_names": ["-h", "--help"]},
    help="Show or export stored events (`vigil events MODEL`, the same as `vigil events show MODEL`), or delete "
         "some (`vigil events delete MODEL`).")
app.add_typer(events_app, name="events")


@dataclass
class Settings:
    """The global options, shared with every command through the context."""

    home: Path | None = None
    project: str = DEFAULT_PROJECT

    def resolved_home(self, override: Path | None = None) -> Path:
        """The home to use: ``override``, then ``--home``, then ``$VIGIL_HOME`` or ``./vigil-data``.

        >>> Settings(Path("a")).resolved_home(), Settings(Path("a")).resolved_home(Path("b"))
        (PosixPath('a'), PosixPath('b'))
        """
        return override or self.home or default_home()


def _version(value: bool) -> None:
    if value:
        typer.echo(f"vigil {vigil.__version__}")
        raise typer.Exit()


@app.callback()
def root(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option(
        "--home", metavar="DIR", help="The store's directory.", show_default="$VIGIL_HOME or ./vigil-data")] = None,
    project: Annotated[str, typer.Option("--project", metavar="NAME", help="The project to work in.")]
    = DEFAULT_PROJECT,
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                          help="Print Vigil's version and exit.")] = False,
    debug: Annotated[bool, typer.Option(DEBUG_OPTION, help=f"Show the traceback of an unexpected error "
                                                          f"(as {DEBUG_ENV}=1 does).")] = False,
) -> None:
    """Vigil: record model predictions, join labels later, and keep the record monitoring is built on.

    Put --home and --project before the command, e.g. `vigil --home /data/vigil events credit`.\f

    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["--version"]).output.startswith("vigil ")
    True
    """
    ctx.obj = Settings(home=home, project=project)


def _settings(ctx: typer.Context) -> Settings:
    found = ctx.find_object(Settings)
    return found if found is not None else Settings()


def _open(ctx: typer.Context, *, read_only: bool = False, must_exist: bool = False) -> Store:
    """Open the store; only ``init``, ``model register`` and ``demo`` may create it (a mistyped --home should not)."""
    settings = _settings(ctx)
    home = settings.resolved_home()
    if must_exist and not read_only and not (home / DB_FILE).is_file():
        raise StoreError(f"no Vigil store in {str(home)!r}: run `vigil init` there first", field="home")
    return vigil.open(home, project=settings.project, read_only=read_only)


def _out() -> Console:
    return Console(soft_wrap=False, highlight=False)


def _err() -> Console:
    return Console(stderr=True, highlight=False)


def _progress(count: Any) -> Progress:
    """A progress display on stderr; off when stderr is not a terminal, so logs and errors stay clean."""
    console = _err()
    return Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), count, TimeElapsedColumn(),
                    console=console, disable=not console.is_terminal)


def _split(values: list[str] | None) -> list[str]:
    """Values of a repeatable option, each of which may also hold a comma-separated list."""
    return [v.strip() for value in values or [] for v in value.split(",") if v.strip()]


def _require_file(path: Path) -> None:
    if not path.is_file():
        raise BatchError(f"no such file: {str(path)!r}")


def _time(value: str | None, option: str) -> pd.Timestamp | None:
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError, OverflowError):
        ts = pd.NaT
    if ts is pd.NaT:
        raise typer.BadParameter(f"{value!r} is not a time (e.g. 2026-01-31 or 2026-01-31T12:00:00Z)",
                                 param_hint=option)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")  # naive times are UTC


# -- init ----------------------------------------------------------------------------------------------


@app.command("init")
def init(ctx: typer.Context) -> None:
    """Create the store (or open and migrate an existing one) and print where it is.\f

    >>> import tempfile
    >>> from typer.testing import CliRunner
    >>> result = CliRunner().invoke(app, ["--home", tempfile.mkdtemp(), "init"])
    >>> result.exit_code, "Created a Vigil store in" in result.output
    (0, True)
    """
    home = _settings(ctx).resolved_home()
    existed = (home / DB_FILE).is_file()
    with _open(ctx) as store:
        projects = store.projects()
        where = store.home.resolve()
    verb = "Opened the Vigil store in" if existed else "Created a Vigil store in"
    typer.echo(f"{verb} {where} (format {CURRENT_FORMAT}; projects: {', '.join(projects)})")
    if not existed:
        typer.echo("Next: vigil model register NAME --version 1 --task binary --training-data train.parquet "
                   "--target COLUMN")


# -- model ---------------------------------------------------------------------------------------------


def _load_model_file(path: Path) -> Any:
    _require_file(path)
    if path.suffix.lower() not in (".pkl", ".pickle", ".joblib"):
        raise ArtifactError(f"cannot load a model from {str(path)!r}: give a .pkl or .joblib file")
    import joblib

    try:
        return joblib.load(path)
    except Exception as err:  # noqa: BLE001 - unpickling fails in many ways; all mean "not a loadable model"
        raise ArtifactError(f"cannot load the model from {str(path)!r}: {type(err).__name__}: {err}") from None


@model_app.command("register")
def model_register(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The model's name.")],
    version: Annotated[str, typer.Option("--version", "-v", help="The version label, e.g. 1 or 2026-01.")],
    task: Annotated[Task, typer.Option("--task", help="What the model predicts.")],
    training_data: Annotated[str, typer.Option(
        "--training-data", metavar="PATH",
        help="The training set (Parquet, CSV or JSON lines), or the name of a registered dataset.")],
    target: Annotated[str, typer.Option("--target", metavar="COL", help="The label column.")],
    model: Annotated[Path | None, typer.Option(
        "--model", metavar="PATH", help="The fitted model, a .pkl or .joblib file.")] = None,
    protected: Annotated[list[str] | None, typer.Option(
        "--protected", metavar="COL", help="A protected attribute (repeat, or separate with commas).")] = None,
    metadata: Annotated[list[str] | None, typer.Option(
        "--metadata", metavar="COL", help="A column events carry besides the features (repeatable).")] = None,
    pii: Annotated[list[str] | None, typer.Option(
        "--pii", metavar="COL", help="A column holding personal data, stored hashed (repeatable).")] = None,
    owner: Annotated[str | None, typer.Option("--owner", help="Who answers for the model.")] = None,
    description: Annotated[str | None, typer.Option("--description", help="What the model is for.")] = None,
    status: Annotated[Status, typer.Option("--status", help="The version's status.")] = Status.draft,
) -> None:
    """Register a model version: its training data, schema (inferred from it) and optional artifact.\f

    >>> from typer.testing import CliRunner
    >>> result = CliRunner().invoke(app, ["model", "register", "--help"])
    >>> result.exit_code, "--training-data" in result.output
    (0, True)
    """
    data_path = Path(training_data)
    if data_path.is_file():
        data: Any = read_file(data_path)
    elif not data_path.suffix:
        data = training_data  # the name of a registered dataset
    else:
        raise BatchError(f"no such file: {training_data!r}")
    artifact = _load_model_file(model) if model is not None else None
    options: dict[str, Any] = {}
    for key, values in (("protected", protected), ("metadata", metadata), ("pii", pii)):
        if _split(values):
            options[key] = _split(values)
    with _open(ctx) as store:
        with _err().status(f"Registering {name} version {version}..."):
            mv = store.register_model(
                name, version=version, task=task.value, model=artifact, training_data=data, target=target,
                owner=owner, description=description,
                status="draft" if status.value == "production" else status.value, **options)
            if status.value == "production":  # set_status retires the previous production version
                mv = store.set_status(name, version, "production")
        lineage = store.lineage(name, version=mv.version)
    ds = lineage["training_data"]
    schema = mv.schema
    typer.echo(f"Registered {mv.model} version {mv.version} ({mv.task}, {mv.status}) in project {store.project!r}")
    typer.echo(f"  features: {len(schema.features)}; target: {target}"
               + (f"; protected: {', '.join(c.name for c in schema.protected)}" if schema.protected else "")
               + (f"; pii: {', '.join(c.name for c in schema.pii)}" if schema.pii else ""))
    if ds is not None:
        typer.echo(f"  training data: {ds['name']}@{ds['version']} ({ds['rows']:,} rows), "
                   f"content hash {ds['content_hash']}")
    if mv.artifact_sha256:
        typer.echo(f"  artifact: {mv.artifact_type}, sha256 {mv.artifact_sha256}")
    typer.echo(f"Next: vigil ingest {mv.model} {mv.version} predictions.parquet")


@model_app.command("list")
def model_list(ctx: typer.Context) -> None:
    """List the models and versions in the project.\f

    >>> import tempfile
    >>> from typer.testing import CliRunner
    >>> home = tempfile.mkdtemp()
    >>> CliRunner().invoke(app, ["--home", home, "init"]).exit_code
    0
    >>> result = CliRunner().invoke(app, ["--home", home, "model", "list"])
    >>> result.exit_code, "no models" in result.output
    (0, True)
    """
    with _open(ctx, read_only=True) as store:
        models = store.models()
        project = store.project
    if models.empty:
        typer.echo(f"no models registered in project {project!r} yet: add one with `vigil model register`")
        return
    table = Table(title=f"Models in project {project!r}", title_justify="left")
    for col in ("model", "version", "task", "status", "owner", "artifact sha256", "created (UTC)"):
        table.add_column(col, overflow="fold")
    for row in models.itertuples(index=False):
        table.add_row(row.model, row.version, row.task, row.status, _cell(row.owner),
                      _cell(row.artifact_sha256)[:12], _cell(row.created_at))
    _out().print(table)


@model_app.command("show")
def model_show(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The model's name.")],
    version: Annotated[str | None, typer.Option("--version", "-v", help="A version (default: the latest).")]
    = None,
) -> None:
    """Print a version's lineage as JSON: artifact sha256, training data and its content hash, schema.\f

    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["model", "show", "--help"]).exit_code
    0
    """
    with _open(ctx, read_only=True) as store:
        lineage = store.lineage(name, version=version)
    typer.echo(json.dumps(lineage, indent=2, default=str))


@model_app.command("status")
def model_status(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(metavar="NAME", help="The model's name.")],
    version: Annotated[str, typer.Argument(metavar="VERSION", help="The version.")],
    status: Annotated[Status, typer.Argument(metavar="STATUS", help="The new status.")],
) -> None:
    """Change a version's status; promoting one to production retires the previous production version.\f

    >>> from typer.testing import CliRunner
    >>> "production" in CliRunner().invoke(app, ["model", "status", "--help"]).output
    True
    """
    with _open(ctx, must_exist=True) as store:
        before = store.model(name, version=version).status
        models = store.models()
        was_production = models[(models["model"] == name) & (models["status"] == "production")
                                & (models["version"] != version)]["version"].tolist()
        mv = store.set_status(name, version, status.value)
    typer.echo(f"{mv.model} version {mv.version}: {before} -> {mv.status}")
    if mv.status == "production" and was_production:
        typer.echo(f"  retired: version {', '.join(was_production)}")


# -- ingest and labels -----------------------------------------------------------------------------------


class _RowProgress:
    """A Rich progress bar on stderr, fed by the ``progress(rows_done, rows_total_or_None)`` callback."""

    def __init__(self, description: str) -> None:
        self.done = 0
        self._progress = _progress(TextColumn("{task.completed:,.0f} rows"))
        self._task = self._progress.add_task(description, total=None)

    def __call__(self, done: int, total: int | None) -> None:
        self.done = done
        self._progress.update(self._task, completed=done, total=total)

    def __enter__(self) -> "_RowProgress":
        self._progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._progress.__exit__(*exc)

    def run(self, ingest: Callable[["_RowProgress"], IngestResult]) -> IngestResult:
        """Run ``ingest(self)`` with the bar shown; a failure says how many rows were committed before it."""
        with self._progress:
            try:
                return ingest(self)
            except VigilError as err:
                if self.done:
                    raise type(err)(f"{err} (the first {self.done:,} rows were committed before this; sending the "
                                    "file again is safe: rows already stored are skipped)",
                                    field=err.field, **err.details) from None
                raise


def _print_result(model: str, result: IngestResult, what: str) -> None:
    typer.echo(f"{model}: {what} {result.summary()}")
    out = _out()
    if result.reasons:
        table = Table(title="Quarantined rows by reason", title_justify="left")
        table.add_column("reason")
        table.add_column("rows", justify="right")
        table.add_column("meaning")
        for reason, count in sorted(result.reasons.items(), key=lambda kv: (-kv[1], kv[0])):
            table.add_row(reason, f"{count:,}", REASONS.get(reason, ""))
        out.print(table)
    signals = [(name, col, n) for name, cols in result.signals.items() for col, n in cols.items() if n]
    if signals:
        table = Table(title="Accepted, but worth a look (signals)", title_justify="left")
        table.add_column("signal")
        table.add_column("column")
        table.add_column("rows", justify="right")
        table.add_column("meaning")
        for name, col, n in sorted(signals, key=lambda s: (s[0], -s[2], s[1])):
            table.add_row(name, col, f"{n:,}", SIGNALS.get(name, ""))
        out.print(table)
    if result.quarantined:
        typer.echo(f"The quarantined rows are kept with their reason: vigil quarantine {model}")


@app.command("ingest")
def ingest(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model's name.")],
    version: Annotated[str, typer.Argument(metavar="VERSION", help="The version that made the predictions.")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Events: Parquet, CSV or JSON lines.",
                                         show_default=False)],
    batch_rows: Annotated[int, typer.Option("--batch-rows", min=1, metavar="N",
                                            help="Rows per transaction.")] = FILE_BATCH_ROWS,
) -> None:
    """Ingest prediction events from a file; bad rows go to the quarantine with a reason.\f

    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["ingest", "--help"]).exit_code
    0
    """
    with _open(ctx, must_exist=True) as store:
        store.model(model, version=version)  # an unknown model or version fails before the file is read
        _require_file(file)
        result = _RowProgress(f"Ingesting {file.name}").run(lambda cb: store.log_predictions(
            model, version, file, batch_rows=batch_rows, progress=cb))
    _print_result(model, result, "events")


@app.command("labels")
def labels(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model's name.")],
    file: Annotated[Path, typer.Argument(metavar="FILE", help="event_id, the target column, optionally label_time.",
                                         show_default=False)],
    batch_rows: Annotated[int, typer.Option("--batch-rows", min=1, metavar="N",
                                            help="Rows per transaction.")] = FILE_BATCH_ROWS,
) -> None:
    """Join ground-truth labels to stored events by event id.\f

    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["labels", "--help"]).exit_code
    0
    """
    with _open(ctx, must_exist=True) as store:
        store.model(model)
        _require_file(file)
        result = _RowProgress(f"Joining labels from {file.name}").run(lambda cb: store.log_labels(
            model, file, batch_rows=batch_rows, progress=cb))
    _print_result(model, result, "labels")


# -- reading: events and quarantine ----------------------------------------------------------------------


#: The ``--format`` and ``--output`` options of every command that prints or exports rows.
FormatOption = Annotated[Format | None, typer.Option(
    "--format", "-f", help="table, csv or json (default: table, or from the --output suffix).", show_default=False)]
OutputOption = Annotated[Path | None, typer.Option("--output", "-o", metavar="PATH",
                                                   help="Write to this file instead of stdout.")]


def _cell(value: Any) -> str:
    if value is None or (not isinstance(value, list | dict | tuple) and pd.isna(value)):
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _resolve_format(fmt: Format | None, output: Path | None) -> Format:
    if fmt is not None:
        if fmt is Format.table and output is not None:
            raise typer.BadParameter("a table cannot be written to a file; use csv or json", param_hint="--format")
        return fmt
    if output is None:
        return Format.table
    by_suffix = {".csv": Format.csv, ".json": Format.json}
    if output.suffix.lower() not in by_suffix:
        raise typer.BadParameter(f"cannot tell the format of {str(output)!r}; add --format csv or --format json",
                                 param_hint="--output")
    return by_suffix[output.suffix.lower()]


def _json_value(value: Any) -> Any:
    """What ``json`` cannot write itself: times as ISO 8601, numpy scalars as Python numbers."""
    if isinstance(value, pd.Timestamp | dt.datetime | dt.date):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def _emit(frame: pd.DataFrame, fmt: Format, output: Path | None, what: str) -> None:
    """Write rows as CSV or a JSON array, to ``output`` or stdout."""
    if fmt is Format.csv:
        text = frame.to_csv(index=False)
    else:
        records = frame.astype(object).where(frame.notna(), None).to_dict("records")
        text = json.dumps(records, default=_json_value, ensure_ascii=False) + "\n"
    if output is None:
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        output.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {len(frame):,} {what} to {output}", err=True)


def _print_table(frame: pd.DataFrame, title: str, more: bool, limit_hint: str, *, blocks: bool = True) -> None:
    """Rows as a Rich table, or one block per row (like ``psql -x``) when the table is wider than the terminal
    and ``blocks`` allows it (else the table folds its cells)."""
    console = _out()
    table = Table(title=title, title_justify="left")
    for col in frame.columns:
        table.add_column(str(col), overflow="fold")
    cells = [[_cell(v) for v in row] for row in frame.itertuples(index=False)]
    for row in cells:
        table.add_row(*row)
    if not blocks or Measurement.get(console, console.options.update(width=100_000), table).maximum <= console.width:
        console.print(table)
    else:
        typer.echo(title)
        width = max(len(str(c)) for c in frame.columns)
        for number, row in enumerate(cells, start=1):
            typer.echo(f"-[ {number} ]" + "-" * max(0, width - 4))
            for col, value in zip(frame.columns, row, strict=True):
                typer.echo(f"{str(col):<{width}}  {value}")
    if more:
        typer.echo(limit_hint)


def _columns(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    if not columns:
        return frame
    unknown = [c for c in columns if c not in frame.columns]
    if unknown:
        raise typer.BadParameter(f"no column {unknown}; columns: {list(frame.columns)}", param_hint="--columns")
    return frame[columns]


@events_app.command("show")
def events(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model's name.")],
    version: Annotated[str | None, typer.Option("--version", "-v", help="Only this version's events.")] = None,
    start: Annotated[str | None, typer.Option("--start", metavar="TIME",
                                              help="From this time, inclusive (naive times are UTC).")] = None,
    end: Annotated[str | None, typer.Option("--end", metavar="TIME", help="Until this time, exclusive.")] = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", "-n", min=1, metavar="N",
        help=f"At most N events (the table shows {TABLE_ROWS} unless given).")] = None,
    fmt: FormatOption = None,
    output: OutputOption = None,
    columns: Annotated[list[str] | None, typer.Option(
        "--columns", metavar="COL", help="Only these columns (repeat, or separate with commas).")] = None,
) -> None:
    """Show or export stored events with their labels, oldest first (`vigil events MODEL` for short).\f

    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["events", "show", "--help"]).exit_code
    0
    """
    fmt = _resolve_format(fmt, output)
    start_ts, end_ts = _time(start, "--start"), _time(end, "--end")
    fetch = limit
    if fmt is Format.table:
        shown = TABLE_ROWS if limit is None else limit
        fetch = shown + 1
    with _open(ctx, read_only=True) as store:
        frame = store.events(model, version=version, start=start_ts, end=end_ts, limit=fetch)
    frame = _columns(frame, _split(columns))
    if fmt is not Format.table:
        _emit(frame, fmt, output, "events")
        return
    more = len(frame) > shown
    frame = frame.head(shown)
    if frame.empty:
        typer.echo(f"no events for {model}" + (" in that range" if start or end else ""))
        return
    _print_table(frame, f"Events of {model} (times in UTC)", more,
                 "more events follow; use --limit N, or --format csv/json to export them all")


@events_app.command("delete")
def events_delete(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model's name.")],
    event_ids: Annotated[list[str] | None, typer.Option(
        "--event-id", metavar="ID", help="An event to delete (repeat, or separate with commas).")] = None,
    start: Annotated[str | None, typer.Option("--start", metavar="TIME",
                                              help="Delete the events from this time, inclusive (naive times "
                                                   "are UTC); give --end too.")] = None,
    end: Annotated[str | None, typer.Option("--end", metavar="TIME", help="... until this time, exclusive.")]
    = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete stored events, by id or by time range, with their labels and explanations; print how many.\f

    >>> from typer.testing import CliRunner
    >>> "--event-id" in CliRunner().invoke(app, ["events", "delete", "--help"]).output
    True
    """
    ids = _split(event_ids)
    start_ts, end_ts = _time(start, "--start"), _time(end, "--end")
    by_range = start_ts is not None or end_ts is not None
    if bool(ids) == by_range:
        raise typer.BadParameter("give --event-id ID... or --start TIME --end TIME (one of them)")
    if by_range and (start_ts is None or end_ts is None):
        raise typer.BadParameter("a time range needs both --start and --end",
                                 param_hint="--end" if end_ts is None else "--start")
    if by_range and end_ts <= start_ts:
        raise typer.BadParameter(f"--end {end!r} is not after --start {start!r}", param_hint="--end")
    what = (f"{len(ids):,} event id(s)" if ids else f"the events from {start} to {end}") + f" of {model}"
    with _open(ctx, must_exist=True) as store:
        store.model(model)  # an unknown model fails before the question
        if not yes:
            typer.confirm(f"Delete {what}, with their labels and explanations?", abort=True, err=True)
        deleted = (store.delete_events(model, event_ids=ids) if ids
                   else store.delete_events(model, start=start_ts, end=end_ts))
    typer.echo(f"deleted {deleted:,} event(s) of {model}")


@app.command("quarantine")
def quarantine(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model's name.")],
    reason: Annotated[str | None, typer.Option("--reason", "-r", help="Only rows refused for this reason.")]
    = None,
    limit: Annotated[int | None, typer.Option(
        "--limit", "-n", min=1, metavar="N",
        help=f"At most N rows (the table shows {TABLE_ROWS} unless given).")] = None,
    fmt: FormatOption = None,
    output: OutputOption = None,
) -> None:
    """List refused rows with the reason, the column and the value that failed.\f

    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["quarantine", "--help"]).exit_code
    0
    """
    if reason is not None and reason not in REASONS:
        raise typer.BadParameter(f"{reason!r} is not a reason; reasons: {', '.join(REASONS)}",
                                 param_hint="--reason")
    fmt = _resolve_format(fmt, output)
    with _open(ctx, read_only=True) as store:
        rows = store.quarantine(model, reason=reason)
    total = len(rows)
    if fmt is not Format.table:
        rows = rows if limit is None else rows.head(limit)
        rows = rows.assign(raw=[json.loads(r) if isinstance(r, str) else None for r in rows["raw"]])
        if fmt is Format.csv:
            rows = rows.assign(raw=[json.dumps(r) for r in rows["raw"]])
        _emit(rows, fmt, output, "quarantined rows")
        return
    if not total:
        typer.echo(f"no quarantined rows for {model}" + (f" with reason {reason!r}" if reason else ""))
        return
    counts = rows["reason"].value_counts()
    typer.echo(f"{total:,} quarantined rows for {model}: "
               + ", ".join(f"{r}: {n:,}" for r, n in counts.items()))
    shown = TABLE_ROWS if limit is None else limit
    view = rows[["kind", "version", "row_number", "event_id", "reason", "column", "value", "message",
                 "quarantined_at"]].head(shown).rename(columns={"row_number": "row"})
    _print_table(view, f"Quarantine of {model} (times in UTC)", total > shown,
                 f"showing {shown:,} of {total:,}; use --limit N, --reason R, or --format csv/json for all of them")


# -- report --------------------------------------------------------------------------------------------


def _check_window(window: str) -> None:
    """A bad ``--window`` is a usage error of that option, found before the store is opened."""
    try:
        parse_window(window)
    except VigilError as err:
        raise typer.BadParameter(str(err), param_hint="--window") from None


#: The ``--segment`` option of the commands that can look at a part of the events only.
SegmentOption = Annotated[str | None, typer.Option(
    "--segment", "-s", metavar="CONDITION",
    help="Only the events that meet this condition on their columns, e.g. \"age < 25 and channel = 'web'\".")]


class Baseline(StrEnum):
    """What ``report`` compares each window's data with."""

    training = "training"
    previous = "previous"


@app.command("report")
def report(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model's name.")],
    version: Annotated[str | None, typer.Option("--version", "-v", help="A version (default: the latest).")]
    = None,
    window: Annotated[str, typer.Option("--window", "-w", metavar="LENGTH",
                                        help="Window length: 1h, 6h, 1d, 7d, 1w, 30d...")] = "1d",
    baseline: Annotated[Baseline, typer.Option(
        "--baseline", help="Drift against the training data, or each window against the one before.")]
    = Baseline.training,
    segment: SegmentOption = None,
    output: Annotated[Path | None, typer.Option(
        "--output", "-o", metavar="PATH", help="The HTML file to write.",
        show_default="MODEL-vVERSION-WINDOW-report.html in the current folder")] = None,
) -> None:
    """Write a self-contained HTML monitoring report per window: a summary, performance, drift, data integrity
    and traffic, then explanations (once a sample of events is explained) and fairness (when the schema
    declares protected attributes).\f

    The file inlines plotly.js and fetches nothing when opened.

    >>> from typer.testing import CliRunner
    >>> "fairness" in CliRunner().invoke(app, ["report", "--help"]).output
    True
    """
    _check_window(window)
    with _open(ctx, must_exist=True) as store:
        version = store.model(model, version=version).version
        options: dict[str, Any] = {"window": window, "baseline": baseline.value}
        if segment is not None:
            options["segment"] = segment
        path = store.report(model, version=version, **options).save(
            output or Path(_report_file_name(model, version, window)))
    typer.echo(str(path))


def _report_file_name(model: str, version: str, window: str) -> str:
    """The default file of ``vigil report``: named after the model, the version and the window, made safe.

    >>> _report_file_name("adult-income", "1", "1w")
    'adult-income-v1-1w-report.html'
    >>> _report_file_name("../credit risk", "2026/01", "7d")
    'credit_risk-v2026_01-7d-report.html'
    """
    safe = [re.sub(r"[^A-Za-z0-9._-]+", "_", part).strip("._") or "_" for part in (model, version, window)]
    return f"{safe[0]}-v{safe[1]}-{safe[2]}-report.html"


# -- explanations and fairness --------------------------------------------------------------------------


@app.command("explain")
def explain_events(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model's name.")],
    event_ids: Annotated[list[str] | None, typer.Argument(
        metavar="[EVENT_ID]...", help="Events to explain (kept with the event; asking again shows the same).",
        show_default=False)] = None,
    version: Annotated[str | None, typer.Option("--version", "-v", help="A version (default: the event's).")]
    = None,
    method: Annotated[str, typer.Option("--method", "-m", help="auto, tree, exact, permutation, kernel...")]
    = "auto",
    sample: Annotated[float | None, typer.Option(
        "--sample", min=0.0, max=1.0, metavar="RATE",
        help="Instead of events: explain this share of the version's stored events (0.1 = 10%).")] = None,
    top: Annotated[int, typer.Option("--top", "-k", min=1, help="Features shown per event.")] = 10,
    trust: Annotated[bool, typer.Option(
        "--trust", help="Load the model file even if its signature does not verify under your signing key: only "
                        "for a file you trust, as loading a pickle runs its code.")] = False,
    fmt: FormatOption = None,
    output: OutputOption = None,
) -> None:
    """Explain stored predictions: each feature's share of the model's output, largest first.\f

    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["explain", "--help"]).exit_code
    0
    """
    ids = event_ids or []
    if bool(ids) == (sample is not None):
        raise typer.BadParameter("give EVENT_IDs or --sample RATE (one of them)")
    fmt = _resolve_format(fmt, output)
    trusted: dict[str, Any] = {"trust": True} if trust else {}  # asked for only: the default verifies
    with _open(ctx, must_exist=True) as store:
        if sample is not None:
            with _RowProgress("Explaining events") as bar:
                done = store.explain_sample(model, version=version, rate=sample, method=method, progress=bar,
                                            **trusted)
            typer.echo(f"explained {done:,} event(s) of {model}; stored with them")
            return
        e = store.explain(model, event_id=ids, version=version, method=method, **trusted)
    frame = e.to_frame().drop(columns=["row"])
    if fmt is not Format.table:
        _emit(frame, fmt, output, "attributions")
        return
    for i, event_id in enumerate(e.event_ids or []):
        one = e.top(top, row=i)[["feature", "value", "attribution"]]
        typer.echo(f"{model} event {event_id}: {e.output} = {e.model_output[i]:.4g}, "
                   f"expected {e.expected_value[i]:.4g} ({e.method}, against {e.baseline})")
        _print_table(one, "", len(e.feature_names) > top, f"{len(e.feature_names) - top} more feature(s); use --top N")


#: The disparity columns the table shows, and their headings.
DISPARITY_COLUMNS = {"window": "window", "attribute": "attribute", "metric": "metric", "group": "group",
                     "reference_group": "vs", "value": "value", "reference_value": "reference", "difference": "diff.",
                     "ratio": "ratio", "ci": "95% CI of diff.", "status": "status"}


def _disparity_table(frame: pd.DataFrame, with_status: bool) -> pd.DataFrame:
    """The disparities as a narrow table: dates for daily windows, the interval in one column."""
    view = frame.copy()
    if "window" in view.columns:
        starts = pd.to_datetime(view["window"])
        daily = bool((starts == starts.dt.normalize()).all())
        view["window"] = starts.dt.strftime("%Y-%m-%d" if daily else "%Y-%m-%d %H:%M")
    if {"ci_low", "ci_high"} <= set(view.columns):
        view["ci"] = [f"[{_cell(lo)}, {_cell(hi)}]" if pd.notna(lo) and pd.notna(hi) else ""
                      for lo, hi in zip(view["ci_low"], view["ci_high"], strict=True)]
    keep = [c for c in DISPARITY_COLUMNS if c in view.columns and (with_status or c != "status")]
    return view[keep].rename(columns=DISPARITY_COLUMNS)


def _not_flagged_line(disparities: pd.DataFrame, shown: int) -> str:
    statuses = disparities.loc[disparities["status"] != "flagged", "status"].value_counts()
    left = int(statuses.sum())
    detail = ", ".join(f"{n:,} {str(status).replace('_', ' ')}" for status, n in statuses.items())
    return (f"{shown:,} flagged disparit{'y' if shown == 1 else 'ies'} shown; {left:,} not flagged"
            + (f" ({detail})" if left else "") + ("; --all shows every one" if left else ""))


@app.command("fairness")
def fairness_cmd(
    ctx: typer.Context,
    model: Annotated[str, typer.Argument(metavar="MODEL", help="The model's name.")],
    protected: Annotated[list[str] | None, typer.Option(
        "--protected", "-p", metavar="COL",
        help="Protected attributes (repeat, or separate with commas; default: the schema's).")] = None,
    version: Annotated[str | None, typer.Option("--version", "-v", help="A version (default: the latest).")]
    = None,
    window: Annotated[str, typer.Option("--window", "-w", metavar="LENGTH", help="Window length: 1d, 7d, 30d...")]
    = "30d",
    segment: SegmentOption = None,
    what: Annotated[str, typer.Option("--show", help="summary, groups, disparities or representation.")]
    = "summary",
    every: Annotated[bool, typer.Option(
        "--all", help="With --show disparities: every disparity, not only the flagged ones.")] = False,
    fmt: FormatOption = None,
    output: OutputOption = None,
) -> None:
    """Bias and fairness per window: group metrics, disparities with confidence intervals, representation.\f

    ``--show disparities`` lists the flagged disparities as one table (``--all``: every one) and says how
    many were not flagged; exports (``--format``) hold the same rows.

    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["fairness", "--help"]).exit_code
    0
    """
    frames = {"summary": "summary", "groups": "by_group", "disparities": "disparities",
              "representation": "representation"}
    if what not in frames:
        raise typer.BadParameter(f"choose one of {list(frames)}", param_hint="--show")
    _check_window(window)
    fmt = _resolve_format(fmt, output)
    options: dict[str, Any] = {"version": version, "protected": _split(protected) or None, "window": window}
    if segment is not None:
        options["segment"] = segment
    with _open(ctx, must_exist=True) as store:
        result = store.fairness(model, **options)
    frame = getattr(result, frames[what])
    title = f"Fairness of {model} version {result.version}: {what} per {window} window (UTC)"
    note = None
    if what == "disparities" and not every and "status" in frame.columns:
        all_rows, frame = frame, frame[frame["status"] == "flagged"].reset_index(drop=True)
        note = _not_flagged_line(all_rows, len(frame))
        title = f"Fairness of {model} version {result.version}: flagged disparities per {window} window (UTC)"
    if fmt is not Format.table:
        _emit(frame, fmt, output, f"{what} rows")
        if note:
            typer.echo(note, err=True)
        return
    if frame.empty and note is None:
        typer.echo(f"no labelled events of {model} to measure fairness on")
        return
    if what == "disparities":
        if len(frame):
            _print_table(_disparity_table(frame, with_status=every), title, False, "", blocks=False)
        else:
            typer.echo(f"no flagged disparities for {model} version {result.version}")
    else:
        _print_table(frame, title, False, "")
    if note:
        typer.echo(note)


# -- demo ----------------------------------------------------------------------------------------------

_DEMO_STAGES = {
    "simulate": "Training the model and simulating traffic",
    "register": "Registering the training data and the model",
    "events": "Ingesting events, one batch per day",
    "labels": "Joining the late labels",
    "explain": "Explaining a sample of the events",
}


@app.command("demo")
def demo(
    ctx: typer.Context,
    home: Annotated[Path | None, typer.Option("--home", metavar="DIR", help="Build the demo here.",
                                              show_default="the global --home, $VIGIL_HOME or ./vigil-data")]
    = None,
    serve: Annotated[bool, typer.Option(
        "--serve/--no-serve", help="Serve a dashboard afterwards. There is none in this version: the command "
                                   "prints its summary and exits either way.")] = False,
    days: Annotated[int, typer.Option("--days", min=1, max=3650, help="Days of simulated traffic.")] = 60,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the simulation.")] = 0,
) -> None:
    """Build a demo project (an income model on UCI Adult with drifting traffic, late labels, a few bad rows), print
    a summary and commands to try, and exit; no dashboard is served in this version.\f

    >>> from typer.testing import CliRunner
    >>> CliRunner().invoke(app, ["demo", "--help"]).exit_code
    0
    """
    from vigil.demo.build import build_demo

    settings = _settings(ctx)
    target = settings.resolved_home(home)
    progress = _progress(MofNCompleteColumn())
    tasks: dict[str, TaskID] = {}

    def step(stage: str, done: int, total: int) -> None:
        if stage not in tasks:
            tasks[stage] = progress.add_task(_DEMO_STAGES.get(stage, stage), total=total)
        progress.update(tasks[stage], completed=done, total=total)

    with vigil.open(target, project=settings.project) as store, progress:
        summary = build_demo(store, days=days, seed=seed, progress=step)
    _print_demo_summary(summary, settings, explicit_home=home or settings.home)
    _serve_dashboard(summary.home, serve)


def _print_demo_summary(summary: Any, settings: Settings, explicit_home: Path | None) -> None:
    echo = typer.echo
    echo(f"Vigil demo in {summary.home.resolve()} (project {summary.project!r})")
    if summary.reused:
        echo(f"  model:          {summary.model} version {summary.version} was already registered here: reused")
    else:
        echo(f"  model:          {summary.model} version {summary.version} (binary, {summary.status}), "
             "registered now")
    echo(f"  events:         {summary.events_ingested:,} ingested of {summary.events_simulated:,} simulated"
         + (f" ({summary.duplicates:,} already stored)" if summary.duplicates else ""))
    echo(f"  labels joined:  {summary.labels_joined:,}")
    if summary.quarantined:
        reasons = ", ".join(f"{r}: {n}" for r, n in sorted(summary.quarantine_reasons.items()))
        echo(f"  quarantined:    {summary.quarantined} (as intended: malformed rows in the simulated feed; {reasons})")
    else:
        echo("  quarantined:    0 this run (the malformed rows of the simulated feed were quarantined before)")
    echo(f"  date range:     {summary.start:%Y-%m-%d %H:%M} to {summary.end:%Y-%m-%d %H:%M} UTC "
         f"({summary.days} days)")
    echo(f"  label coverage: {summary.label_coverage:.1%} of {summary.events_stored:,} stored events have a label")
    echo(f"  explained:      {summary.events_explained:,} events this run (a stable sample, kept with them)")
    echo(f"  artifact:       sha256 {summary.artifact_sha256}")
    if summary.training_data:
        ds = summary.training_data
        echo(f"  training data:  {ds['name']}@{ds['version']}, content hash {ds['content_hash']}")
    prefix = "vigil"
    if explicit_home is not None:
        prefix += f" --home {explicit_home}"
    if settings.project != DEFAULT_PROJECT:
        prefix += f" --project {settings.project}"
    echo("Try next:")
    for command in summary.next_steps:
        echo(f"  {command.replace('vigil', prefix, 1)}")


def _serve_dashboard(home: Path, serve: bool) -> None:
    """Where ``vigil demo`` hands over to the dashboard; there is none in this version, with or without --serve."""
    typer.echo("The dashboard is not available in this version of Vigil; use the commands above to explore.")


# -- entry point ---------------------------------------------------------------------------------------


def main(args: Sequence[str] | None = None) -> int:
    """Run the ``vigil`` command with ``args`` (default: the process's arguments); return the exit code.

    >>> main(["--version"]) == 0
    vigil ...
    True
    """
    try:
        app(args=list(args) if args is not None else None, prog_name="vigil")
    except SystemExit as exc:
        if exc.code is None or isinstance(exc.code, int):
            return exc.code or 0
        typer.echo(exc.code, err=True)
        return 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
