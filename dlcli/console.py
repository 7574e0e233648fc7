"""The one place Rich is used. Human output goes to stderr; stdout is kept for --json and data.

Colour and live progress only where the stream is a terminal: cron, CI, pipes and files get
plain text. NO_COLOR=1 (https://no-color.org) turns styling off on a terminal too: no
colour, no bold; FORCE_COLOR=1 styles a pipe too (NO_COLOR wins); TERM=dumb keeps colour
but not live bars.
"""

from __future__ import annotations

import os
import sys
from functools import lru_cache
from typing import Any, Literal


@lru_cache(maxsize=1)
def err() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, color_system=_color_system())


@lru_cache(maxsize=1)
def out() -> Any:
    from rich.console import Console

    return Console(highlight=False, color_system=_color_system())


def _color_system() -> Literal["auto"] | None:
    return None if os.environ.get("NO_COLOR") else "auto"


def interactive() -> bool:
    """Live progress bars only on a terminal; logs, cron and CI get plain lines."""
    return sys.stderr.isatty() and err().is_terminal and not err().is_dumb_terminal


def print_table(table: Any, *, stderr: bool = False) -> None:
    """As wide as the terminal; in a pipe or a file (cron's log), one line per row, for grep
    and awk, instead of rows wrapped at 80 columns."""
    console = err() if stderr else out()
    if not console.is_terminal:
        from rich.console import Console

        console = Console(stderr=stderr, highlight=False, width=10_000, color_system=None)
    console.print(table)
