"""Images listed in a CSV or JSONL manifest: `path,label[,split]`, paths relative to the file."""

from __future__ import annotations

import csv
import json
from typing import Any, ClassVar, Literal

from pydantic import Field

from dlcli.config.base import ResolvedPath
from dlcli.data.base import (
    DataBundle,
    ImageOptions,
    SplitConfig,
    grouped_split,
    image_bundle,
    stratified_split,
)
from dlcli.errors import DataError
from dlcli.registry import DATA_SOURCES

SPLIT_NAMES = {
    "train": "train",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
}


class ManifestConfig(ImageOptions):
    """`data:` for `type: manifest`."""

    type: Literal["manifest"] = "manifest"
    path: ResolvedPath = Field(description="a .csv (with a header) or .jsonl file")
    path_column: str = "path"
    label_column: str = "label"
    split_column: str = Field("split", description="optional: train/val/test per row")
    group_column: str | None = Field(
        None,
        description="split by this column (a speaker, a patient): no group is in two splits",
    )
    split: SplitConfig = Field(
        default_factory=SplitConfig, description="used when rows carry no split"
    )

    example: ClassVar[dict[str, Any]] = {
        "path": "{digits_manifest}",
        "image_size": [8, 8],
        "channels": 1,
    }


def read_manifest(config: ManifestConfig) -> list[dict[str, str]]:
    path = config.path
    if not path.is_file():
        raise DataError(f"Manifest not found: {path}", hint="set `data.path` to a .csv or .jsonl")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".jsonl":
        rows = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append({k: str(v) for k, v in json.loads(line).items()})
                except (json.JSONDecodeError, AttributeError) as exc:
                    raise DataError(f"{path}:{number}: not a JSON object: {exc}") from None
        return rows
    if path.suffix.lower() != ".csv":
        raise DataError(f"Expected a .csv or .jsonl manifest. Received: {path}")
    return list(csv.DictReader(text.splitlines()))


@DATA_SOURCES.register("manifest", config=ManifestConfig)
def manifest(config: ManifestConfig, *, seed: int) -> DataBundle:
    """Images listed in a CSV/JSONL manifest (path, label, optional split)."""
    rows = read_manifest(config)
    base = config.path.parent
    for number, row in enumerate(rows, start=2 if config.path.suffix == ".csv" else 1):
        missing = [c for c in (config.path_column, config.label_column) if not row.get(c)]
        if missing:
            raise DataError(
                f"{config.path}:{number}: missing {', '.join(missing)}. "
                f"Expected columns `{config.path_column}` and `{config.label_column}`."
            )
    class_names = sorted({row[config.label_column] for row in rows})
    if len(class_names) < 2:
        raise DataError(f"{config.path} names fewer than 2 labels: {class_names}")
    items = [
        (str(base / row[config.path_column]), class_names.index(row[config.label_column]))
        for row in rows
    ]
    if any(row.get(config.split_column) for row in rows):
        parts: dict[str, tuple[list[str], list[int]]] = {
            s: ([], []) for s in ("train", "validation", "test")
        }
        for (file, label), row in zip(items, rows, strict=True):
            value = row.get(config.split_column, "").strip().lower()
            if value not in SPLIT_NAMES:
                raise DataError(
                    f"{config.path}: split `{value}` for {row[config.path_column]}. "
                    "Expected train, val/validation or test."
                )
            parts[SPLIT_NAMES[value]][0].append(file)
            parts[SPLIT_NAMES[value]][1].append(label)
    elif config.group_column:
        missing_group = [n for n, row in enumerate(rows) if not row.get(config.group_column)]
        if missing_group:
            raise DataError(
                f"{config.path}: row {missing_group[0] + 1} has no `{config.group_column}` "
                "(data.group_column).",
                hint="give every row a group, or remove data.group_column",
            )
        groups = [row[config.group_column] for row in rows]
        parts = grouped_split(items, groups, config.split.validation, config.split.test, seed)
    else:
        parts = stratified_split(items, config.split.validation, config.split.test, seed)
    return image_bundle(parts, class_names, config)
