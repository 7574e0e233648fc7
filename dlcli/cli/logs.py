"""Route the `dlcli` logger to stderr (and to the run's log file while training)."""

from __future__ import annotations

import logging
import warnings

from dlcli import console


class _ConsoleHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        style = "red" if record.levelno >= logging.WARNING else None
        console.err().print(self.format(record), style=style, markup=False, soft_wrap=True)


def setup_logging(quiet: bool = False) -> logging.Logger:
    """Every command that loads TensorFlow starts here."""
    from dlcli.tfenv import import_tensorflow

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
    return logger
