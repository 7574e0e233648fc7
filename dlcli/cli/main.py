"""`dlcli`: the entry point. Turns DlcliError into messages and exit codes, never tracebacks."""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import traceback

import typer

from dlcli import __version__
from dlcli.cli import batch_cmds, config_cmds, info_cmds, runs_cmds, train_cmds, tune_cmds
from dlcli.errors import DlcliError

EXIT_CODES = (
    "Exit codes: 0 success; 1 a failure at run time; 2 a usage, pipeline or data error; "
    "3 the run directory is locked by another process; 130 interrupted (Ctrl-C, SIGTERM). "
    "`batch` exits with the largest code of its pipelines."
)

app = typer.Typer(
    name="dlcli",
    help="Declarative deep learning for images and speech: YAML pipelines in, trained models out.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EXIT_CODES,
)
config_cmds.register(app)
train_cmds.register(app)
info_cmds.register(app)
batch_cmds.register(app)
runs_cmds.register(app)
tune_cmds.register(app)


def _version(value: bool) -> None:
    if value:
        print(f"dlcli {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
    trust_model: bool = typer.Option(
        False,
        "--trust-model",
        help="Load Lambda layers in model files. They run Python code stored in the file: "
        "use only for files you trust.",
    ),
) -> None:
    """Declarative deep learning for images and speech: YAML pipelines in, trained models out."""
    if trust_model:
        from dlcli.models.loading import TRUST_ENV

        os.environ[TRUST_ENV] = "1"


def report_error(exc: DlcliError) -> None:
    from rich.markup import escape

    from dlcli import console
    from dlcli.cli.logs import log_error

    log_error(exc.message + (f" (hint: {exc.hint})" if exc.hint else ""))

    err = console.err()
    # Messages quote the user's values ("[min, max]", "[[2, 2]]"): never read them as markup.
    message = escape(exc.message)
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False, soft_wrap=True)
    if exc.hint:
        err.print(f"  [bold]hint:[/] {escape(exc.hint)}", markup=True, soft_wrap=True)


def _terminate(signum: int, frame: object) -> None:
    # `docker stop`, `timeout`, a scheduler: unwind as Ctrl-C does, so the run records
    # `interrupted` and its lock is let go, rather than dying mid-write.
    raise KeyboardInterrupt


def main() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    signal.signal(signal.SIGTERM, _terminate)
    try:
        app(prog_name="dlcli")  # completion scripts name `dlcli`, even through `python -m`
    except DlcliError as exc:
        report_error(exc)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        from dlcli.cli.logs import log_error

        log_error("interrupted (Ctrl-C or SIGTERM): exit code 130")
        sys.exit(130)
    except Exception as exc:  # a runtime failure (TensorFlow, I/O): explain, keep the trace aside
        if os.environ.get("DLCLI_DEBUG"):
            raise
        fd, path = tempfile.mkstemp(prefix="dlcli-crash-", suffix=".log")
        with os.fdopen(fd, "w") as handle:
            traceback.print_exc(file=handle)
        first = (str(exc).strip().splitlines() or [""])[0][:500]
        report_error(
            DlcliError(
                f"{type(exc).__name__}: {first}",
                hint=f"full traceback in {path} (set DLCLI_DEBUG=1 to print it)",
            )
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
