"""The one place Rich is used. Human output goes to stderr; stdout is kept for --json and data."""

from __future__ import annotations

import sys
from functools import lru_cache
from typing import Any


@lru_cache(maxsize=1)
def err() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


@lru_cache(maxsize=1)
def out() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def interactive() -> bool:
    """Live progress bars only on a terminal; logs, cron and CI get plain lines."""
    return sys.stderr.isatty() and err().is_terminal
