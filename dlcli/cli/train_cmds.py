"""Commands that train and use models: train, run, evaluate, predict, export."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dlcli.cli.options import JsonOpt, PipelineArg, QuietOpt, RunArg, SetOpt

PANEL = "Training and inference"

OutputOpt = Annotated[
    Optional[Path],
    typer.Option("--output", "-o", help="Run directory to create (default: RUNS/NAME/N)."),
]
RunsOpt = Annotated[
    Path, typer.Option("--runs-dir", help="Folder that holds the runs of every pipeline.")
]


def _emit_json(enabled: bool, document: Any) -> None:
    if enabled:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")


def _train(
    pipeline: Path | None,
    set_: list[str] | None,
    output: Path | None,
    runs_dir: Path,
    quiet: bool,
    resume: Path | None = None,
) -> tuple[Path, dict[str, Any]]:
    import shutil
    import tempfile

    from dlcli import runs
    from dlcli.cli.logs import log_to_file, setup_logging
    from dlcli.train.strategy import is_chief_process

    log = setup_logging(quiet)
    chief = is_chief_process()
    if resume is not None:
        loaded, run_dir = _prepare_resume(resume, pipeline, set_, write=chief)
    else:
        loaded = _load(pipeline, set_)
        if chief:
            run_dir = runs.new_run_dir(loaded.config.name, runs_dir, output)
            runs.write_run_header(run_dir, loaded.config, loaded.path)
    if not chief:
        # Only the chief writes artifacts; other workers keep theirs in a scratch directory.
        run_dir = Path(tempfile.mkdtemp(prefix="dlcli-worker-"))
    handler: Any = log_to_file(run_dir / runs.LOG_FILE)
    try:
        log.info("run directory %s", run_dir)
        from dlcli.train.run import train_pipeline

        summary = train_pipeline(
            loaded.config, run_dir, resume=resume is not None, show_progress=not quiet
        )
    except BaseException as exc:
        # The run log keeps the full story; the terminal gets the short message.
        import traceback

        handler.stream.write("".join(traceback.format_exception(exc)))
        raise
    finally:
        log.removeHandler(handler)
        handler.close()
        if not chief:
            shutil.rmtree(run_dir, ignore_errors=True)
    return run_dir, summary


def _load(pipeline: Path | None, set_: list[str] | None) -> Any:
    from dlcli.config.loader import load_pipeline
    from dlcli.errors import ConfigError

    if pipeline is None:
        raise ConfigError("Missing argument PIPELINE.", hint="dlcli train PIPELINE.yaml")
    return load_pipeline(pipeline, set_)


def _prepare_resume(
    run_dir: Path, pipeline: Path | None, set_: list[str] | None, *, write: bool
) -> tuple[Any, Path]:
    """The run's own pipeline (or PIPELINE) with --set applied, checked against the original."""
    import yaml

    from dlcli import runs
    from dlcli.config.loader import load_pipeline
    from dlcli.errors import ConfigError
    from dlcli.train.resume import check_resume_changes

    saved = run_dir / runs.PIPELINE_FILE
    if not saved.is_file() or not (run_dir / "checkpoints").is_dir():
        raise ConfigError(
            f"Cannot resume {run_dir}: expected a run directory with {runs.PIPELINE_FILE} and "
            "checkpoints/.",
            hint="pass a directory written by `dlcli train`, e.g. runs/NAME/N",
        )
    loaded = load_pipeline(pipeline or saved, set_)
    before = yaml.safe_load(saved.read_text())
    changes = check_resume_changes(before, loaded.config.model_dump(mode="json"))
    if write:
        runs.record_resume(run_dir, loaded.config, changes)
    return loaded, run_dir


def train(
    pipeline: Annotated[
        Optional[Path],
        typer.Argument(help="Pipeline YAML file (optional with --resume).", show_default=False),
    ] = None,
    set_: SetOpt = None,
    output: OutputOpt = None,
    runs_dir: RunsOpt = Path("runs"),
    resume: Annotated[
        Optional[Path],
        typer.Option(
            help="Continue RUN from its last checkpoint (--set train.epochs=N extends it).",
            metavar="RUN",
        ),
    ] = None,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train a pipeline into a new run directory, or resume a run."""
    from dlcli import console
    from dlcli.train.strategy import is_chief_process

    run_dir, summary = _train(pipeline, set_, output, runs_dir, quiet, resume)
    _print_summary(summary)
    if is_chief_process():
        console.err().print(f"[green]saved[/] {run_dir}")
    _emit_json(json_, {"run_dir": str(run_dir.resolve()), **summary})


def evaluate(
    run: RunArg,
    split: Annotated[
        Optional[str],
        typer.Option(help="test, validation or train (default: evaluate.split)"),
    ] = None,
    pipeline: Annotated[
        Optional[Path],
        typer.Option(help="Pipeline giving the data, for a bare .keras file."),
    ] = None,
    top_k: Annotated[Optional[int], typer.Option(help="Also report top-k accuracy.")] = None,
    tta: Annotated[
        Optional[str],
        typer.Option(help="Test-time augmentation: none or flip (default: evaluate.tta)."),
    ] = None,
    set_: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Evaluate a run: accuracy, per-class precision/recall/F1, confusion matrix."""
    from dlcli.cli.logs import setup_logging
    from dlcli.evaluate import evaluate_run

    setup_logging()
    if split not in (None, "test", "validation", "train"):
        from dlcli.errors import ConfigError

        raise ConfigError(
            f"Invalid value for option `--split`. Received: {split}. "
            "Expected test, validation or train."
        )
    if tta not in (None, "none", "flip"):
        from dlcli.errors import ConfigError

        raise ConfigError(
            f"Invalid value for option `--tta`. Received: {tta}. Expected none or flip."
        )
    report = evaluate_run(run, pipeline=pipeline, split=split, top_k=top_k, tta=tta, overrides=set_)
    _print_report(report)
    _emit_json(json_, report)


def predict(
    run: RunArg,
    inputs: Annotated[
        list[str],
        typer.Argument(help="Image files, folders or globs ('-' reads paths from stdin)."),
    ],
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Write predictions to a .csv or .jsonl file."),
    ] = None,
    top_k: Annotated[int, typer.Option(help="How many labels per image.", min=1)] = 3,
    batch_size: Annotated[int, typer.Option(help="Images per batch.", min=1)] = 64,
    json_: JsonOpt = False,
) -> None:
    """Predict labels for images with a trained run."""
    from dlcli import console
    from dlcli.cli.logs import setup_logging
    from dlcli.predict import predict_files, write_predictions

    setup_logging()
    if inputs == ["-"]:
        inputs = [line.strip() for line in sys.stdin if line.strip()]
    result = predict_files(run, inputs, top_k=top_k, batch_size=batch_size)
    if output is not None:
        write_predictions(result, output)
        console.err().print(f"[green]wrote[/] {output}")
    elif not json_:
        from rich.table import Table

        table = Table("path", "label", "probability", box=None)
        for row in result.rows[:50]:
            table.add_row(row["path"], row["label"], f"{row['probability']:.3f}")
        console.err().print(table)
    console.err().print(
        f"{len(result.rows)} images in {result.seconds:.2f}s ({result.per_second:.1f} images/s)"
    )
    _emit_json(
        json_,
        {
            "predictions": result.rows,
            "images_per_second": result.per_second,
            "skipped": result.skipped,
        },
    )


def export(
    run: RunArg,
    formats: Annotated[
        Optional[list[str]],
        typer.Option(
            "--format", "-f", help="keras, saved_model or tflite (default: export.formats)"
        ),
    ] = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Folder (default: RUN/export).")
    ] = None,
) -> None:
    """Export a run's model for serving."""
    from dlcli import console
    from dlcli.export import export_run

    formats = formats or _pipeline_of(run).export.formats
    bad = [f for f in formats if f not in ("keras", "saved_model", "tflite")]
    if bad:
        from dlcli.errors import ConfigError

        raise ConfigError(
            f"Invalid value for option `--format`. Received: {bad[0]}. "
            "Expected keras, saved_model or tflite."
        )
    for fmt, path in export_run(run, formats, output).items():
        console.err().print(f"[green]exported[/] {fmt}: {path}")


def run(
    pipeline: PipelineArg,
    set_: SetOpt = None,
    output: OutputOpt = None,
    runs_dir: RunsOpt = Path("runs"),
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Train, evaluate on the test split and export, in one go."""
    from dlcli import console
    from dlcli.evaluate import evaluate_run
    from dlcli.export import export_run

    run_dir, summary = _train(pipeline, set_, output, runs_dir, quiet)
    _print_summary(summary)
    report = evaluate_run(run_dir)
    _print_report(report)
    cfg = _pipeline_of(run_dir)
    exported = export_run(run_dir, cfg.export.formats)
    console.err().print(f"[green]saved[/] {run_dir}")
    _emit_json(
        json_,
        {
            "run_dir": str(run_dir.resolve()),
            "train": summary,
            "evaluation": report,
            "export": exported,
        },
    )


def _pipeline_of(run_dir: Path) -> Any:
    from dlcli import runs
    from dlcli.config.loader import load_pipeline

    _, directory = runs.find_model(run_dir)
    return load_pipeline(directory / runs.PIPELINE_FILE).config


def _print_summary(summary: dict[str, Any]) -> None:
    from dlcli import console

    val = summary.get("validation") or {}
    line = f"trained {summary['epochs_run']} epochs (best {summary['best_epoch']})"
    if val:
        line += "  " + "  ".join(f"val_{k} {v:.4f}" for k, v in val.items())
    console.err().print(line)


def _print_report(report: dict[str, Any]) -> None:
    from rich.table import Table

    from dlcli import console

    table = Table(title=f"{report['split']} split: {report['examples']} examples", box=None)
    for column in ("class", "precision", "recall", "f1", "support"):
        table.add_column(column, justify="left" if column == "class" else "right")
    for name, row in report["per_class"].items():
        table.add_row(
            name,
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(row["support"]),
        )
    for avg in ("macro_avg", "weighted_avg"):
        row = report[avg]
        table.add_row(
            avg.replace("_", " "),
            f"{row['precision']:.3f}",
            f"{row['recall']:.3f}",
            f"{row['f1']:.3f}",
            str(report["examples"]),
            style="bold",
        )
    err = console.err()
    err.print(table)
    top = next(k for k in report if k.startswith("top_"))
    err.print(
        f"[bold]accuracy {report['accuracy']:.4f}[/]  {top} {report[top]:.4f}  "
        f"(report in {report['output_dir']})"
    )


def register(app: typer.Typer) -> None:
    for command in (train, evaluate, predict, run, export):
        app.command(rich_help_panel=PANEL)(command)
