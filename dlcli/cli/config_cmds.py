"""Commands about pipeline files: init, validate, schema."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer

from dlcli.cli.options import PipelineArg, SetOpt
from dlcli.errors import ConfigError

PANEL = "Pipelines"


def templates() -> dict[str, str]:
    folder = resources.files("dlcli") / "templates"
    return {
        p.name.removesuffix(".yaml"): p.read_text(encoding="utf-8")
        for p in folder.iterdir()
        if p.name.endswith(".yaml")
    }


def _complete_template(incomplete: str) -> list[str]:
    """Shell completion of `dlcli init <TAB>`: the template names."""
    return [name for name in sorted(templates()) if name.startswith(incomplete)]


def init(
    template: Annotated[
        str,
        typer.Argument(help="Template name; see --list.", autocompletion=_complete_template),
    ] = "image_classification",
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write.")] = Path(
        "pipeline.yaml"
    ),
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the templates and exit.")] = False,
) -> None:
    """Write a commented example pipeline to start from."""
    from dlcli import console
    from dlcli.registry import did_you_mean
    from dlcli.runs import atomic_write_text

    available = templates()
    if list_:
        for name in sorted(available):
            console.out().print(name)
        return
    if template not in available:
        raise ConfigError(
            f"Unknown template `{template}`. Expected one of: {', '.join(sorted(available))}.",
            hint=did_you_mean(template, list(available)),
        )
    if output.exists() and not force:
        raise ConfigError(f"{output} already exists.", hint="pass --force to overwrite it")
    atomic_write_text(output, available[template])
    console.err().print(f"wrote {output}; next: dlcli validate {output} && dlcli run {output}")


def validate(
    pipeline: PipelineArg,
    set_: SetOpt = None,
    print_: Annotated[
        bool, typer.Option("--print", help="Print the pipeline with every default filled in.")
    ] = False,
) -> None:
    """Check a pipeline file against the schema, without loading TensorFlow."""
    import yaml

    from dlcli import console
    from dlcli.config.loader import load_pipeline

    loaded = load_pipeline(pipeline, set_)
    cfg = loaded.config
    if print_:
        text = yaml.safe_dump(cfg.model_dump(mode="json"), sort_keys=False)
        console.out().print(text, markup=False, highlight=False, end="", soft_wrap=True)
    console.err().print(
        f"[green]ok[/] {pipeline}: `{cfg.name}`, data {cfg.data.type}, model {cfg.model.type}, "
        f"task {cfg.task.type}, {cfg.train.epochs} epochs"
    )


def schema() -> None:
    """Print the JSON Schema of pipeline files (for editor autocompletion)."""
    from dlcli.config.schema import pipeline_model

    print(json.dumps(pipeline_model().model_json_schema(), indent=2))


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(init)
    app.command(rich_help_panel=PANEL)(validate)
    app.command(rich_help_panel=PANEL)(schema)
