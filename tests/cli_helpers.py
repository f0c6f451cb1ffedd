"""Running the ``vigil`` command in-process for tests, and reading its one-line errors."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from vigil.interfaces.cli import app

ENV = {"COLUMNS": "200", "VIGIL_HOME": None}


def run(home: Path, *args: str, ok: bool = True):
    """``vigil --home HOME ARGS...``; with ``ok`` it must exit 0."""
    result = CliRunner().invoke(app, ["--home", str(home), *args], env=ENV)
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def one_error_line(result) -> str:
    """The single ``error: ...`` line a failing command prints (and no traceback)."""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.output
    return lines[0]
