"""`--set key.path=value` overrides from the shell, typed like YAML values."""

from __future__ import annotations

import os
from typing import Any

import yaml

from dlcli.errors import ConfigError

Override = tuple[tuple[str, ...], Any, str]


def parse_override(text: str) -> Override:
    """Split `train.epochs=3` into (("train", "epochs"), 3, text). Values are parsed as YAML."""
    key, sep, raw = text.partition("=")
    keys = tuple(key.strip().split("."))
    if not sep or not all(k.strip() for k in keys):
        raise ConfigError(
            f"Invalid value for option `--set`. Received: {text!r}. "
            "Expected KEY.PATH=VALUE, for example `--set train.epochs=3`."
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    if isinstance(value, str) and keys[-1].endswith(("path", "dir")) and os.path.exists(value):
        # Paths typed in a shell are relative to the shell's directory, not to the pipeline file.
        value = os.path.abspath(value)
    return keys, value, text


def apply_overrides(data: dict[str, Any], overrides: list[Override]) -> dict[str, Any]:
    for keys, value, text in overrides:
        node = data
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise ConfigError(
                    f"Cannot apply `--set {text}`: `{where}` is a {type(child).__name__}, "
                    "not a section."
                )
            node = child
        node[keys[-1]] = value
    return data
