"""What every `batchgen` command shares: how it fails, and how it reads a job spec."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batchgen.spec.job import JobSpec, SpecError, load_spec

JobFile = Annotated[Path, typer.Argument(help="job spec (YAML)", show_default=False)]
Overrides = Annotated[list[str], typer.Option("--set", help="override a spec key: key.path=value (repeatable)")]


def fail(message: str, code: int = 1) -> typer.Exit:
    """Prints one line and returns the exit to raise."""
    typer.echo(f"batchgen: {message}", err=True)
    return typer.Exit(code)


def spec_or_exit(job: Path, overrides: list[str]) -> JobSpec:
    try:
        return load_spec(job, overrides)
    except SpecError as error:
        raise fail(f"{job}: {error}", 2) from None
