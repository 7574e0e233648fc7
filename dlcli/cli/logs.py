"""Route the `dlcli` logger to stderr (and to the run's log file while training)."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

from dlcli import console

USER_LOG = "dlcli-log-file"  # the handler of --log-file


class _ConsoleHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        style = "red" if record.levelno >= logging.WARNING else None
        console.err().print(self.format(record), style=style, markup=False, soft_wrap=True)


def setup_logging(
    quiet: bool = False, log_file: Path | None = None, *, tensorflow: bool = True
) -> logging.Logger:
    """Every command that loads TensorFlow starts here. `log_file`: also append everything
    (INFO and up, with timestamps, whatever `quiet` says) to that file. `tensorflow=False`:
    the caller imports it later (`dlcli.tfenv.import_tensorflow`), after checks that need none."""
    from dlcli.tfenv import import_tensorflow

    if tensorflow:
        import_tensorflow()
    # tf.data says this whenever a distributed dataset reads its options; nothing to act on.
    warnings.filterwarnings("ignore", message="To make it possible to preserve tf.data options")
    logger = logging.getLogger("dlcli")
    logger.setLevel(logging.INFO)
    logger.propagate = False
    if not any(isinstance(h, _ConsoleHandler) for h in logger.handlers):
        handler = _ConsoleHandler()
        handler.setLevel(logging.WARNING if quiet else logging.INFO)
        logger.addHandler(handler)
    if log_file is not None:
        from dlcli.workflow import log_to_file

        log_file.parent.mkdir(parents=True, exist_ok=True)
        log_to_file(log_file).set_name(USER_LOG)
    return logger


def log_error(message: str) -> None:
    """An error the CLI reports: into `--log-file` too, for whoever reads it the next day."""
    logger = logging.getLogger("dlcli")
    for handler in logger.handlers:
        if handler.get_name() == USER_LOG:
            handler.handle(logger.makeRecord("dlcli", logging.ERROR, "", 0, message, (), None))
