"""Commands that train and use models: train, run, evaluate, predict, export."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from dlcli.cli.options import (
    JsonOpt,
    LogFileOpt,
    PipelineArg,
    PrecisionOpt,
    QuietOpt,
    RunArg,
    RunsOpt,
    SetOpt,
    StrategyOpt,
    WaitLockOpt,
    train_overrides,
)

PANEL = "Training and inference"

OutputOpt = Annotated[
    Optional[Path],
    typer.Option("--output", "-o", help="Run directory to create (default: RUNS/NAME/N)."),
]


def _emit_json(enabled: bool, document: Any) -> None:
    if enabled:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")


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
    strategy: StrategyOpt = None,
    precision: PrecisionOpt = None,
    wait_lock: WaitLockOpt = False,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Train a pipeline into a new run directory, or resume a run."""
    from dlcli import console, workflow

    overrides = train_overrides(set_, strategy, precision)
    _start(quiet, log_file, None if resume else pipeline, overrides, resume or output, wait_lock)
    result = workflow.train(
        pipeline,
        overrides,
        output=output,
        runs_dir=runs_dir,
        resume=resume,
        show_progress=not quiet,
        wait_lock=wait_lock,
    )
    _print_summary(result.summary)
    if result.chief:
        console.err().print(f"[green]saved[/] {result.run_dir}")
    _emit_json(json_, {"run_dir": str(result.run_dir.resolve()), **result.summary})


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
    top_k: Annotated[
        Optional[int], typer.Option(help="Classification: also report top-k accuracy.", min=1)
    ] = None,
    tta: Annotated[
        Optional[str],
        typer.Option(help="Classification: test-time augmentation, none or flip."),
    ] = None,
    set_: SetOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Evaluate a run with its task's metrics and pictures (`--set data.path=...`: other data)."""
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
    # Task options are pipeline keys: the schema checks them like any other override.
    shortcuts = [f"task.top_k={top_k}"] * (top_k is not None) + [f"task.tta={tta}"] * bool(tta)
    result = evaluate_run(
        run, pipeline=pipeline, split=split, overrides=[*(set_ or []), *shortcuts]
    )
    _print_lines(result.lines())
    if result.report.get("overrides"):
        from rich.markup import escape

        _print_lines(
            [
                f"report in {escape(result.report['output_dir'])} (scored with --set; the run's "
                f"own {result.report['split']} score is unchanged)"
            ]
        )
    _emit_json(json_, result.report)


def report(
    run: Annotated[Path, typer.Argument(help="Run directory (runs/NAME/N).", metavar="RUN")],
) -> None:
    """Write (or refresh) RUN/report.html: one self-contained page about the run."""
    from dlcli import console
    from dlcli.cli.logs import setup_logging
    from dlcli.report.html import build_run_report

    setup_logging()
    console.err().print(f"[green]wrote[/] {build_run_report(run)}")


PredictJsonOpt = Annotated[
    bool,
    typer.Option(
        "--json",
        help="Stream JSON Lines to stdout: one object per row as it comes (unless --output), "
        'then a last line {"summary": ...}; humans read stderr.',
    ),
]
SHOWN_ROWS = 50  # rows printed without --output or --json: a first look, not the results


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
    batch_size: Annotated[int, typer.Option(help="Inputs per batch.", min=1)] = 64,
    window: Annotated[
        Optional[float],
        typer.Option(help="Audio: classify long files in windows of this many seconds.", min=0),
    ] = None,
    hop: Annotated[
        Optional[float],
        typer.Option(help="Audio: seconds between window starts (default: --window).", min=0),
    ] = None,
    json_: PredictJsonOpt = False,
) -> None:
    """Predict with a trained run: one row per input file (or per window), written as it comes.

    Rows are not kept: --output writes them to a file, --json streams them, else 50 are shown.
    """
    from dlcli import console
    from dlcli.cli.logs import setup_logging
    from dlcli.predict import predict_files, write_predictions

    setup_logging()
    if inputs == ["-"]:
        inputs = [line.strip() for line in sys.stdin if line.strip()]
    prediction = predict_files(
        run, inputs, top_k=top_k, batch_size=batch_size, window=window, hop=hop
    )
    rows = write_predictions(prediction, output) if output else prediction.rows()
    if output is None:
        rows = _json_lines(rows) if json_ else _show_first(rows, prediction.task, SHOWN_ROWS)
    total = sum(1 for _ in rows)
    if output is not None:
        console.err().print(f"[green]wrote[/] {total:,} rows to {output}")
    elif not json_ and total > SHOWN_ROWS:
        console.err().print(
            f"showing {SHOWN_ROWS} of {total:,} rows; --output FILE.csv (or .jsonl) writes "
            "them all, --json streams them"
        )
    unit = {"image": "images", "audio": "clips"}.get(prediction.handle.spec.modality, "inputs")
    console.err().print(
        f"{prediction.count} {unit} in {prediction.seconds:.2f}s "
        f"({prediction.per_second:.1f} {unit}/s)"
        + (f", {len(prediction.skipped)} unreadable skipped" if prediction.skipped else "")
    )
    if json_:
        summary = {
            "rows": total,
            "inputs": prediction.count,
            "seconds": prediction.seconds,
            "per_second": prediction.per_second,
            "skipped": prediction.skipped,
            "output": str(output) if output else None,
        }
        _write_json_line({"summary": summary})


def _write_json_line(document: Any) -> None:
    # Flushed line by line: a consumer (`jq`, `head`) sees each row as soon as it is made.
    sys.stdout.write(json.dumps(document) + "\n")
    sys.stdout.flush()


def _json_lines(rows: Iterator[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for row in rows:
        _write_json_line(row)
        yield row


def _show_first(rows: Iterator[dict[str, Any]], task: Any, limit: int) -> Iterator[dict[str, Any]]:
    """Pass rows through; print the first `limit` as a table as soon as they are in, so a long
    run shows something early and keeps no more than `limit` rows."""
    first: list[dict[str, Any]] = []
    for row in rows:
        if len(first) < limit:
            first.append(row)
            if len(first) == limit:
                _print_rows(task, first)
        yield row
    if 0 < len(first) < limit:
        _print_rows(task, first)


def _print_rows(task: Any, rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from dlcli import console

    flat = [task.flat_row(row) for row in rows]
    columns = [
        c for c in flat[0] if not c.startswith(("label_", "probability_")) or c.endswith("_1")
    ]
    table = Table(*columns, box=None)
    for row in flat:
        table.add_row(
            *(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns)
        )
    console.err().print(table)


def embed(
    run: RunArg,
    inputs: Annotated[
        list[str],
        typer.Argument(help="Files, folders or globs ('-' reads paths from stdin)."),
    ],
    output: Annotated[
        Path,
        typer.Option("--output", "-o", help="Embeddings .npy (a .csv of paths and a .png beside)."),
    ] = Path("embeddings.npy"),
    batch_size: Annotated[int, typer.Option(help="Inputs per batch.", min=1)] = 64,
    json_: JsonOpt = False,
) -> None:
    """Write the embeddings of inputs (the model's `embedding` layer) and a 2-D projection."""
    from dlcli import console
    from dlcli.cli.logs import setup_logging
    from dlcli.embed import embed_files, write_embeddings

    setup_logging()
    if inputs == ["-"]:
        inputs = [line.strip() for line in sys.stdin if line.strip()]
    result = embed_files(run, inputs, batch_size=batch_size)
    written = write_embeddings(result, output)
    rows, dims = result.vectors.shape
    console.err().print(
        f"[green]wrote[/] {rows} embeddings of {dims} dims: {written['embeddings']}"
    )
    _emit_json(json_, {**written, "count": rows, "dims": dims, "skipped": result.skipped})


def generate(
    run: RunArg,
    output: Annotated[
        Path, typer.Option("--output", "-o", help="Folder for the PNGs and grid.png.")
    ],
    count: Annotated[int, typer.Option("--count", "-n", help="Images to make.", min=1)] = 16,
    class_name: Annotated[
        Optional[str],
        typer.Option("--class", help="Class-conditional runs: make this class only."),
    ] = None,
    seed: Annotated[int, typer.Option(help="The same seed makes the same images.", min=0)] = 0,
    json_: JsonOpt = False,
) -> None:
    """Make images with a generative run (VAE or GAN): one PNG each and a grid."""
    from dlcli import console
    from dlcli.cli.logs import setup_logging
    from dlcli.generate import generate_images

    setup_logging()
    result = generate_images(run, count, output, class_name=class_name, seed=seed)
    console.err().print(
        f"[green]wrote[/] {len(result.files)} images to {output} (grid: {result.grid})"
    )
    _emit_json(json_, {"files": result.files, "grid": result.grid, "classes": result.classes})


def export(
    run: RunArg,
    formats: Annotated[
        Optional[list[str]],
        typer.Option(
            "--format",
            "-f",
            help="keras, saved_model, tflite, tflite_int8 or onnx; repeat it for several "
            "(default: export.formats)",
        ),
    ] = None,
    output: Annotated[
        Optional[Path], typer.Option("--output", "-o", help="Folder (default: RUN/export).")
    ] = None,
) -> None:
    """Export a run's model for serving: Keras, SavedModel, TFLite (float32, int8) or ONNX."""
    from dlcli import console
    from dlcli.config.schema import EXPORT_FORMATS

    bad = [f for f in formats or [] if f not in EXPORT_FORMATS]
    if bad:
        from dlcli.errors import ConfigError
        from dlcli.registry import did_you_mean

        raise ConfigError(
            f"Invalid value for option `--format`. Received: {bad[0]}. "
            f"Expected one of: {', '.join(EXPORT_FORMATS)}.",
            hint=did_you_mean(bad[0], list(EXPORT_FORMATS)),
        )
    from dlcli.cli.logs import setup_logging
    from dlcli.export import export_run

    setup_logging()
    formats = formats or _pipeline_of(run).export.formats
    for fmt, path in export_run(run, formats, output).items():
        console.err().print(f"[green]exported[/] {fmt}: {path}")


def run(
    pipeline: PipelineArg,
    set_: SetOpt = None,
    output: OutputOpt = None,
    runs_dir: RunsOpt = Path("runs"),
    strategy: StrategyOpt = None,
    precision: PrecisionOpt = None,
    wait_lock: WaitLockOpt = False,
    json_: JsonOpt = False,
    quiet: QuietOpt = False,
    log_file: LogFileOpt = None,
) -> None:
    """Train, evaluate on the test split and export, in one go."""
    from dlcli import console, workflow

    overrides = train_overrides(set_, strategy, precision)
    _start(quiet, log_file, pipeline, overrides, output, wait_lock)
    result = workflow.run(
        pipeline,
        overrides,
        output=output,
        runs_dir=runs_dir,
        show_progress=not quiet,
        wait_lock=wait_lock,
    )
    _print_summary(result.train.summary)
    for note in result.notes:
        console.err().print(f"[yellow]note:[/] {note}")
    if result.evaluation is not None:
        _print_lines(result.evaluation.lines())
    for fmt, path in result.exported.items():
        console.err().print(f"[green]exported[/] {fmt}: {path}")
    if result.train.chief:
        console.err().print(f"[green]saved[/] {result.train.run_dir}")
    _emit_json(
        json_,
        {
            "run_dir": str(result.train.run_dir.resolve()),
            "train": result.train.summary,
            "evaluation": result.evaluation.report if result.evaluation else None,
            "export": result.exported,
            "notes": result.notes,
        },
    )


def _start(
    quiet: bool,
    log_file: Path | None,
    pipeline: Path | None,
    overrides: list[str],
    run_dir: Path | None,
    wait_lock: bool,
) -> None:
    """Logging, then the pipeline checked (a mistyped path or key is reported in a second,
    not after TensorFlow's import) and `run_dir` found free (unless --wait-lock), then
    TensorFlow."""
    from dlcli.cli.logs import setup_logging
    from dlcli.config.loader import load_pipeline
    from dlcli.run_lock import refuse_if_held
    from dlcli.tfenv import import_tensorflow

    setup_logging(quiet, log_file, tensorflow=False)
    if pipeline is not None:
        load_pipeline(pipeline, overrides)
    if not wait_lock:
        refuse_if_held(run_dir)
    import_tensorflow()


def _pipeline_of(run_dir: Path) -> Any:
    from dlcli import runs

    return runs.open_run(run_dir).config


def _print_summary(summary: dict[str, Any]) -> None:
    from dlcli import console

    val = summary.get("validation") or {}
    if summary["epochs_run"]:
        line = f"trained {summary['epochs_run']} epochs (best {summary['best_epoch']})"
    else:
        line = "nothing to train by gradient descent: fitted from features"
    if val:
        line += "  " + "  ".join(f"val_{k} {v:.4f}" for k, v in val.items())
    console.err().print(line)


def _print_lines(lines: list[Any]) -> None:
    from dlcli import console

    for line in lines:
        console.err().print(line)


def register(app: typer.Typer) -> None:
    for command in (train, evaluate, report, predict, embed, generate, run, export):
        app.command(rich_help_panel=PANEL)(command)
