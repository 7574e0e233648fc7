"""One registry per kind of component, filled by `@register("name")` decorators.

A YAML `type:` value is a registry key; each entry carries its typed config model, so the
schema, the `dlcli list` command and the factories all read one source of truth.
"""

from __future__ import annotations

import difflib
import fnmatch
import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from dlcli.errors import ConfigError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Entry(Generic[F]):
    name: str
    fn: F
    config: type
    summary: str


class Registry(Generic[F]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[F]] = {}

    def register(self, name: str, *, config: type) -> Callable[[F], F]:
        """Store the decorated function under `name`, with the config model of its YAML."""

        def decorator(fn: F) -> F:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            doc = (fn.__doc__ or "").strip().splitlines()
            self._entries[name] = Entry(name, fn, config, doc[0] if doc else "")
            return fn

        return decorator

    def get(self, name: str) -> Entry[F]:
        load_components()
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"Unknown {self.kind} `{name}`. Expected one of: {', '.join(self.names())}.",
                hint=did_you_mean(name, self.names()),
            ) from None

    def names(self, pattern: str = "*") -> list[str]:
        load_components()
        return sorted(n for n in self._entries if fnmatch.fnmatch(n, pattern))

    def entries(self) -> list[Entry[F]]:
        return [self._entries[n] for n in self.names()]


def did_you_mean(word: str, choices: list[str]) -> str | None:
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


DATA_SOURCES: Registry[Callable[..., Any]] = Registry("data source")
MODELS: Registry[Callable[..., Any]] = Registry("model")
TASKS: Registry[Callable[..., Any]] = Registry("task")

# Every module of these packages is imported to fill the registries: a new component is one new
# file, with no list to keep by hand. Component modules import TensorFlow only inside
# functions, so loading them keeps `dlcli validate` and `dlcli list` instant.
COMPONENT_PACKAGES = ("dlcli.data", "dlcli.models", "dlcli.tasks")
_loaded = False


def load_components() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import pkgutil

    for package_name in COMPONENT_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{package_name}.{info.name}")
