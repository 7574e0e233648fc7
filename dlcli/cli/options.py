"""Option and argument types shared by several commands."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal, Optional

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
QuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet", "-q", envvar="DLCLI_QUIET", help="Only print errors and the result (1/0)."
    ),
]
RunsOpt = Annotated[
    Path,
    typer.Option(
        "--runs-dir", envvar="DLCLI_RUNS_DIR", help="Folder that holds the runs of every pipeline."
    ),
]
LogFileOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--log-file",
        envvar="DLCLI_LOG_FILE",
        help="Also append the log (timestamped, errors included, even with --quiet) to this file.",
        show_default=False,
    ),
]
WaitLockOpt = Annotated[
    bool,
    typer.Option(
        "--wait-lock",
        help="If another process is training into the same run directory, wait for it "
        "(default: stop at once with exit code 3).",
    ),
]
# The values of train.strategy and train.precision (dlcli/train/config.py; a test keeps
# them equal), spelled out so that `--help` needs no pydantic.
Strategy = Literal["auto", "cpu", "gpu", "mirrored", "multi_worker", "tpu"]
Precision = Literal["auto", "float32", "mixed_float16", "mixed_bfloat16"]
StrategyOpt = Annotated[
    Optional[Strategy],
    typer.Option(
        envvar="DLCLI_STRATEGY",
        help="Set train.strategy, whatever the pipeline says (a --set of it still wins).",
        show_default=False,
    ),
]
PrecisionOpt = Annotated[
    Optional[Precision],
    typer.Option(
        envvar="DLCLI_PRECISION",
        help="Set train.precision, whatever the pipeline says (a --set of it still wins).",
        show_default=False,
    ),
]


def train_overrides(
    set_: list[str] | None, strategy: str | None = None, precision: str | None = None
) -> list[str]:
    """--strategy and --precision as the overrides they stand for, before the --set ones."""
    shortcuts = [f"train.strategy={strategy}"] * bool(strategy)
    shortcuts += [f"train.precision={precision}"] * bool(precision)
    return [*shortcuts, *(set_ or [])]
