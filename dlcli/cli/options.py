"""Option and argument types shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

PipelineArg = Annotated[
    Path, typer.Argument(help="Pipeline YAML file.", show_default=False, metavar="PIPELINE")
]
RunArg = Annotated[
    Path,
    typer.Argument(help="Run directory (runs/NAME/N) or a .keras model file.", metavar="RUN"),
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--set",
        "-s",
        help="Override a pipeline key, e.g. --set train.epochs=3 (repeatable).",
        metavar="KEY=VALUE",
    ),
]
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document to stdout; humans read stderr.")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="Only print errors and the result.")]
