"""`dlcli runs list` and `dlcli runs compare`: what the run directories hold, without
TensorFlow."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dlcli.cli.options import JsonOpt, RunsOpt
from dlcli.cli.train_cmds import PANEL

runs_app = typer.Typer(
    help="Look at past runs: list them, compare two. Reads files only: instant.",
    no_args_is_help=True,
)
MISSING = object()  # a key one of two pipelines does not have
RunRefArg = Annotated[
    str, typer.Argument(help="A run: its path, or NAME/N under --runs-dir.", show_default=False)
]


@runs_app.command("list")
def list_(
    name: Annotated[
        Optional[str], typer.Argument(help="Only runs of this pipeline name (a glob).")
    ] = None,
    runs_dir: RunsOpt = Path("runs"),
    json_: JsonOpt = False,
) -> None:
    """The runs under the runs folder, newest first: status, epochs, metrics, duration.

    Status: running (a process holds the run's lock), finished, failed, interrupted, or
    killed (it never got to say how it ended: SIGKILL, out of memory, power loss).
    """
    from dlcli.runs_index import list_runs

    found = list_runs(runs_dir, name or "*")
    if json_:
        print(json.dumps([info.to_json() for info in found], indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    from dlcli import console

    if not found:
        named = f" named {name}" if name else ""
        console.err().print(f"no runs{escape(named)} in {escape(str(runs_dir))}")
        return
    columns = ("run", "started", "status", "epochs", "key metric", "validation", "time")
    table = Table(*columns, box=None)
    colours = {"finished": "green", "running": "cyan", "interrupted": "yellow"}
    for info in found:
        validation = {k[4:]: v for k, v in info.metrics.items() if k.startswith("val_")}
        table.add_row(
            escape(info.name),
            _local_time(info.started_at),
            f"[{colours.get(info.status, 'red')}]{info.status}[/]",
            "" if info.epochs is None else str(info.epochs),
            escape(format_metric(info.key_metric)),
            escape("  ".join(f"{k} {v:.4g}" for k, v in list(validation.items())[:3])),
            _duration(info.seconds),
        )
    console.print_table(table)


@runs_app.command()
def compare(
    a: RunRefArg, b: RunRefArg, runs_dir: RunsOpt = Path("runs"), json_: JsonOpt = False
) -> None:
    """What differs between runs A and B: their resolved pipelines and their metrics (B-A)."""
    from dlcli.runs_index import compare_runs, resolve_run

    diff = compare_runs(resolve_run(a, runs_dir), resolve_run(b, runs_dir))
    if json_:
        print(json.dumps(diff, indent=2))
        return
    from rich.markup import escape
    from rich.table import Table

    from dlcli import console

    pipeline = diff["pipeline"]
    rows = [(k, v, MISSING) for k, v in pipeline["only_in_a"].items()]
    rows += [(k, MISSING, v) for k, v in pipeline["only_in_b"].items()]
    rows += [(k, va, vb) for k, (va, vb) in pipeline["changed"].items()]
    if rows:
        table = Table("pipeline key", f"A {escape(a)}", f"B {escape(b)}", box=None)
        for key, va, vb in sorted(rows, key=lambda r: r[0]):
            table.add_row(escape(key), escape(_value(va)), escape(_value(vb)))
        console.print_table(table)
    else:
        console.out().print("the resolved pipelines are the same")
    table = Table("metric", "A", "B", "B-A", box=None)
    for row in diff["metrics"]:
        delta = "" if row["delta"] is None else _number(row["delta"], "+")
        table.add_row(escape(row["metric"]), _number(row["a"]), _number(row["b"]), delta)
    console.print_table(table)


def _value(value: Any) -> str:
    if value is MISSING:
        return "—"
    return value if isinstance(value, str) else json.dumps(value)


def _number(value: float | None, sign: str = "") -> str:
    if value is None:
        return "—"
    return f"{value:{sign}d}" if isinstance(value, int) else f"{value:{sign}.4g}"


def format_metric(metric: dict[str, Any] | None) -> str:
    """A key metric (`runs_index.key_metric`) as `test accuracy 0.9749`."""
    return f"{metric['split']} {metric['name']} {metric['value']:.4g}" if metric else ""


def _local_time(stamp: str | None) -> str:
    try:
        return (
            datetime.fromisoformat(stamp).astimezone().strftime("%Y-%m-%d %H:%M") if stamp else ""
        )
    except ValueError:
        return stamp or ""


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{seconds:.1f}s"


def register(app: typer.Typer) -> None:
    app.add_typer(runs_app, name="runs", rich_help_panel=PANEL)
