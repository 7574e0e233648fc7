"""`dlcli tune`: search a pipeline's hyperparameters (its `tune:` section) with KerasTuner."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dlcli.cli.options import JsonOpt, PipelineArg, QuietOpt, RunsOpt, SetOpt, WaitLockOpt
from dlcli.cli.train_cmds import PANEL

TuneDirOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--output",
        "-o",
        help="Tune directory (default: RUNS/NAME-tune); an existing one resumes its search.",
    ),
]


def tune(
    pipeline: PipelineArg,
    set_: SetOpt = None,
    max_trials: Annotated[
        Optional[int],
        typer.Option(help="Trials at most (tune.max_trials); raise it to extend a search.", min=1),
    ] = None,
    output: TuneDirOpt = None,
    runs_dir: RunsOpt = Path("runs"),
    wait_lock: WaitLockOpt = False,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Search hyperparameters: each trial is a run; the best pipeline is written as YAML.

    Run it again to resume a stopped search: finished trials are kept.
    """
    from dlcli import console
    from dlcli import tune as tuning
    from dlcli.cli.logs import setup_logging

    shortcut = [f"tune.max_trials={max_trials}"] if max_trials is not None else []
    plan = tuning.plan_tune(
        pipeline,
        [*(set_ or []), *shortcut],
        output=output,
        runs_dir=runs_dir,
        wait_lock=wait_lock,
    )
    setup_logging(quiet)
    result = tuning.run_tune(plan, show_progress=not quiet)
    _print_trials(result)
    best = result.best
    console.err().print(
        f"[green]best[/] trial {best.trial}: {result.config.objective} {best.score:.4g} "
        f"({result.direction} is better); "
        f"wrote {result.best_pipeline}\n  next: dlcli run {result.best_pipeline}",
        soft_wrap=True,
    )
    if json_:
        sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")


def _print_trials(result: Any) -> None:
    from rich.table import Table

    from dlcli import console

    keys = list(dict.fromkeys(k for t in result.trials for k in t.values))
    objective = result.config.objective
    table = Table("trial", *short_names(keys), objective, "epoch", "status", box=None)
    for t in result.trials:
        cells = [_cell(t.values.get(k)) for k in keys]
        score = "" if t.score is None else f"{t.score:.4f}"
        style = "bold green" if t is result.best else None
        table.add_row(str(t.trial), *cells, score, str(t.best_epoch or ""), t.status, style=style)
    console.err().print(table)


def short_names(keys: list[str]) -> list[str]:
    """Column headers: the shortest dotted suffix that tells each key apart (`learning_rate`
    for train.optimizer.learning_rate), so the table fits a terminal."""
    depth = dict.fromkeys(keys, 1)
    while True:
        names = {k: ".".join(k.split(".")[-depth[k] :]) for k in keys}
        clashes = [k for k in keys if list(names.values()).count(names[k]) > 1 and names[k] != k]
        if not clashes:
            return [names[k] for k in keys]
        for k in clashes:
            depth[k] += 1


def _cell(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:.4g}" if isinstance(value, float) else json.dumps(value)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(tune)
