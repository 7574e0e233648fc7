"""The one error family of dlcli.

Library code raises these with Keras-style messages ("Received ... Expected ...");
only the CLI turns them into output and exit codes.
"""

from __future__ import annotations


class DlcliError(Exception):
    """A failure dlcli can explain to its user. Exit code 1: something failed at run time."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class ConfigError(DlcliError):
    """The pipeline or a command-line option is wrong. Exit code 2."""

    exit_code = 2


class DataError(ConfigError):
    """The data a pipeline points at is missing or unusable. Exit code 2."""


class TrainingError(DlcliError):
    """Training could not go on (for example the loss became NaN). Exit code 1."""


class RunLockedError(DlcliError):
    """Another process is training into the same run directory. Exit code 3."""

    exit_code = 3


def as_interrupt(error: BaseException) -> BaseException:
    """`error`, or a KeyboardInterrupt when it is one that TensorFlow's C++ layer caught and
    re-raised as a RuntimeError (pybind11: "... REPLACED BY KeyboardInterrupt"): Ctrl-C or
    SIGTERM while a graph was being traced is still an interruption, exit code 130."""
    if not isinstance(error, KeyboardInterrupt) and "REPLACED BY KeyboardInterrupt" in str(error):
        interrupt = KeyboardInterrupt()
        interrupt.__cause__ = error
        return interrupt
    return error
