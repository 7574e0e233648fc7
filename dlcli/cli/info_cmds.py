"""Commands about this installation: info and list."""

from __future__ import annotations

import json
import platform
from typing import Annotated

import typer

from dlcli.cli.options import JsonOpt

PANEL = "Environment"
KINDS = {"models": "MODELS", "data": "DATA_SOURCES", "tasks": "TASKS", "backbones": ""}


def info(json_: JsonOpt = False) -> None:
    """Versions, visible devices and the strategy `auto` would pick here."""
    from dlcli.cli.logs import setup_logging

    setup_logging()
    import keras
    import tensorflow as tf

    from dlcli import __version__, console
    from dlcli.train.strategy import auto_strategy_name, resolve_precision

    strategy, reason = auto_strategy_name()
    devices = [
        f"{d.device_type}:{d.name.split(':')[-1]}" for d in tf.config.list_physical_devices()
    ]
    facts = {
        "dlcli": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "devices": devices,
        "strategy": strategy,
        "strategy_reason": reason,
        "precision": resolve_precision("auto", strategy),
    }
    if json_:
        print(json.dumps(facts, indent=2))
        return
    for key, value in facts.items():
        shown = ", ".join(value) if isinstance(value, list) else value
        console.out().print(f"[bold]{key:>16}[/]  {shown}")


def list_(
    kind: Annotated[
        str, typer.Argument(help="models, backbones, data or tasks; all when omitted.")
    ] = "all",
    pattern: Annotated[str, typer.Argument(help="Glob on names, e.g. 'mobile*'.")] = "*",
) -> None:
    """List the registered model builders, data sources and tasks."""
    from rich.table import Table

    from dlcli import console, registry
    from dlcli.errors import ConfigError

    if kind != "all" and kind not in KINDS:
        raise ConfigError(
            f"Unknown kind `{kind}`. Expected one of: all, {', '.join(KINDS)}.",
            hint=registry.did_you_mean(kind, list(KINDS)),
        )
    table = Table("kind", "name", "what", box=None)
    for name, attr in KINDS.items():
        if kind not in ("all", name):
            continue
        if name == "backbones":
            import fnmatch

            from dlcli.models.backbones import BACKBONES

            for entry in BACKBONES.values():
                if fnmatch.fnmatch(entry.name, pattern):
                    what = f"keras.applications, {entry.size}px, preprocess: {entry.module}"
                    table.add_row(name, entry.name, what)
            continue
        reg = getattr(registry, attr)
        for entry_name in reg.names(pattern):
            table.add_row(name, entry_name, reg.get(entry_name).summary)
    console.out().print(table)


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(info)
    app.command("list", rich_help_panel=PANEL)(list_)
