"""`dlcli batch`: several pipelines in turn, for cron."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from dlcli.cli.options import (
    JsonOpt,
    LogFileOpt,
    PrecisionOpt,
    QuietOpt,
    RunsOpt,
    SetOpt,
    StrategyOpt,
    WaitLockOpt,
    train_overrides,
)
from dlcli.cli.runs_cmds import format_metric
from dlcli.cli.train_cmds import PANEL


def batch(
    pipelines: Annotated[
        list[str],
        typer.Argument(
            help="Pipeline files, folders of them, or quoted globs ('pipelines/*.yaml').",
            metavar="PIPELINE",
        ),
    ],
    set_: SetOpt = None,
    runs_dir: RunsOpt = Path("runs"),
    strategy: StrategyOpt = None,
    precision: PrecisionOpt = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Stop at the first pipeline that fails.")
    ] = False,
    wait_lock: WaitLockOpt = False,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Run pipelines in turn, each as `dlcli run` does (train, evaluate, export); then a table.

    A failed pipeline is recorded and the next one starts (unless --fail-fast).

    Exits with the largest code of its pipelines: 0 ok, 1 runtime, 2 config, 3 locked.
    """
    from dlcli.batch import expand_pipelines, run_batch
    from dlcli.cli.logs import setup_logging
    from dlcli.tfenv import import_tensorflow

    setup_logging(quiet, log_file, tensorflow=False)  # a usage error reaches --log-file too
    paths = expand_pipelines(pipelines)
    import_tensorflow()
    result = run_batch(
        paths,
        train_overrides(set_, strategy, precision),
        runs_dir=runs_dir,
        show_progress=not quiet,
        fail_fast=fail_fast,
        wait_lock=wait_lock,
    )
    _print_table(result.to_json())
    if json_:
        print(json.dumps(result.to_json(), indent=2))
    if result.exit_code == 130:
        raise KeyboardInterrupt  # the table is out; exit as an interrupted command does
    raise typer.Exit(result.exit_code)


def _print_table(document: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from dlcli import console

    table = Table("pipeline", "status", "run dir", "metric", "seconds", box=None)
    styles = {"ok": "green", "skipped": "dim"}
    for row in document["pipelines"]:
        table.add_row(
            escape(row["pipeline"]),
            f"[{styles.get(row['status'], 'red')}]{row['status']}[/]",
            escape(row["run_dir"] or ""),
            escape(format_metric(row["metric"])),
            f"{row['seconds']:.1f}",
        )
    console.print_table(table, stderr=True)
    console.err().print(
        f"{document['passed']} passed, {document['failed']} failed, {document['skipped']} skipped"
    )


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(batch)
