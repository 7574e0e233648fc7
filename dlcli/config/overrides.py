"""`--set key.path=value` overrides from the shell, typed like YAML values."""

from __future__ import annotations

import os
import re
from typing import Any, NamedTuple

import yaml

from dlcli.errors import ConfigError
from dlcli.models.backbones import BACKBONES

Override = tuple[tuple[str, ...], Any, str]

PATH_KEY_SUFFIXES = ("path", "dir", "file")  # data.path, data.data_dir, ...
MODEL_FILE_KEYS = {("model", "backbone"), ("model", "weights")}  # a file, or a name
MODEL_FILE_SUFFIXES = (".keras", ".h5", ".hdf5")
# A run directory or model file, unless it names a keras.applications backbone.
RUN_KEYS = {("task", "scores", "network"), ("task", "scores", "classifier")}
URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")  # gs://, s3://, https://, ...


def parse_override(text: str) -> Override:
    """Split `train.epochs=3` into (("train", "epochs"), 3, text). Values are parsed as YAML;
    relative paths are made absolute against the shell's directory."""
    key, sep, raw = text.partition("=")
    keys = tuple(key.strip().split("."))
    if not sep or not all(k.strip() for k in keys):
        raise ConfigError(
            f"Invalid value for option `--set`. Received: {text!r}. "
            "Expected KEY.PATH=VALUE, for example `--set train.epochs=3`."
        )
    try:
        recursive = find_recursive_alias(raw)
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        recursive, value = None, raw
    if recursive is not None:
        anchor = recursive.anchor
        raise ConfigError(
            f"Invalid value for option `--set`. Received: {text!r}. Recursive YAML alias: "
            f"`*{anchor}` refers to the node `&{anchor}` that contains it, so the value would "
            "contain itself. Recursive anchors/aliases are not supported.",
            hint="write the value out in full",
        )
    return keys, shell_paths(keys, value), text


def shell_paths(keys: tuple[str, ...], value: Any) -> Any:
    """Paths typed in a shell are relative to the shell's directory, whereas paths inside a
    pipeline file are relative to that file: make them absolute here, before the schema sees
    them, whether or not they exist yet (an output folder, data still to come)."""
    if isinstance(value, dict):
        return {k: shell_paths((*keys, str(k)), v) for k, v in value.items()}
    if not isinstance(value, str) or not value or URL.match(value):
        return value
    is_path = (
        keys[-1].endswith(PATH_KEY_SUFFIXES)
        or (keys in MODEL_FILE_KEYS and value.lower().endswith(MODEL_FILE_SUFFIXES))
        or (keys in RUN_KEYS and value not in BACKBONES)
    )
    if not is_path:
        return value
    path = os.path.expanduser(value)
    return path if os.path.isabs(path) else os.path.abspath(path)


class RecursiveAlias(NamedTuple):
    """An alias inside the node its own anchor names; lines and columns are 1-based."""

    anchor: str
    anchor_line: int
    line: int
    column: int


def find_recursive_alias(text: str) -> RecursiveAlias | None:
    """The first alias inside the very node its anchor names (`a: &x [*x]`), or None. Such a
    value contains itself: no pipeline key can hold it, and validating or printing it would
    recurse forever."""
    open_nodes: list[int] = []  # the collections being read, by event number
    anchors: dict[str, tuple[int, int]] = {}  # each anchor's latest node: (event number, line)
    for number, event in enumerate(yaml.parse(text, Loader=yaml.SafeLoader)):
        mark = event.start_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        if isinstance(event, yaml.AliasEvent):
            target = anchors.get(event.anchor or "")
            if target is not None and target[0] in open_nodes:
                return RecursiveAlias(event.anchor or "", target[1], line, column)
            continue
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            anchors[anchor] = (number, line)
        if isinstance(event, yaml.CollectionStartEvent):
            open_nodes.append(number)
        elif isinstance(event, yaml.CollectionEndEvent):
            open_nodes.pop()
    return None


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
