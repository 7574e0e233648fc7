"""Recordings in class subfolders (`root/<class>/*.wav`), already split (`root/{train,val,test}/`),
or in one folder with the label in each file name (`label_regex`, as FSDD's `7_theo_12.wav`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from dlcli.config.base import ResolvedPath
from dlcli.data.audio import AUDIO_EXTENSIONS, audio_bundle
from dlcli.data.audio_manifest import AudioSourceOptions, Row, split_rows
from dlcli.data.base import DataBundle
from dlcli.data.image_folder import given_split_folders
from dlcli.errors import DataError
from dlcli.registry import DATA_SOURCES

FSDD_REGEX = r"^(?P<label>\d+)_(?P<speaker>[a-z]+)_(?P<take>\d+)"


class AudioFolderConfig(AudioSourceOptions):
    """`data:` for `type: audio_folder`."""

    type: Literal["audio_folder"] = "audio_folder"
    path: ResolvedPath = Field(
        description="folder of class subfolders, of train/val/test subfolders, or of recordings "
        "named by `label_regex`"
    )

    example: ClassVar[dict[str, Any]] = {
        "path": "{fsdd_small}",
        "label_regex": FSDD_REGEX,
        "sample_rate": 8000,
        "duration": 0.5,
        "split_rule": {"column": "take", "test": "0-4"},
    }

    @model_validator(mode="after")
    def _columns_come_from_the_regex(self) -> AudioFolderConfig:
        groups = set(re.compile(self.label_regex).groupindex) if self.label_regex else set()
        wanted = {"group_column": self.group_column}
        if self.split_rule is not None:
            wanted["split_rule.column"] = self.split_rule.column
        for key, column in wanted.items():
            if column is not None and column not in groups:
                raise ValueError(
                    f"{key} is `{column}`, which is not a named group of label_regex "
                    f"(a folder's only columns). Received groups: {sorted(groups) or 'none'}"
                )
        return self


def audio_files(folder: Path) -> list[Path]:
    return sorted(
        f for f in folder.rglob("*") if f.suffix.lower() in AUDIO_EXTENSIONS and f.is_file()
    )


def folder_rows(folder: Path, config: AudioFolderConfig, split: str | None) -> list[Row]:
    """Rows for one folder: labels from the file names (`label_regex`) or class subfolders."""
    if not folder.is_dir():
        raise DataError(
            f"Audio folder not found: {folder}",
            hint="set `data.path` to a folder of class subfolders of recordings",
        )
    rows = []
    if config.label_regex:
        for file in audio_files(folder):
            columns = config.regex_columns(file.name, str(file))
            rows.append(Row(str(file), columns["label"], str(file), columns, split))
        return rows
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")):
        rows += [Row(str(f), sub.name, str(f), {}, split) for f in audio_files(sub)]
    if len({row.label for row in rows}) < 2:
        raise DataError(
            f"Expected at least 2 class subfolders with recordings in {folder}. "
            f"Received: {len({row.label for row in rows})}.",
            hint=f"put recordings ({', '.join(AUDIO_EXTENSIONS)}) in {folder}/<class name>/, "
            "or set `data.label_regex` to read labels from file names",
        )
    return rows


@DATA_SOURCES.register("audio_folder", config=AudioFolderConfig)
def audio_folder(config: AudioFolderConfig, *, seed: int) -> DataBundle:
    """Recordings in class subfolders or named by a regex; given, rule, grouped or seeded splits."""
    given = given_split_folders(config.path)
    if given:
        rows = [row for split, f in given.items() for row in folder_rows(f, config, split)]
        train_labels = {row.label for row in rows if row.split == "train"}
        unknown = sorted({row.label for row in rows} - train_labels)
        if unknown:
            raise DataError(f"{config.path}: labels that train/ lacks: {', '.join(unknown)}.")
    else:
        rows = folder_rows(config.path, config, None)
    if not rows:
        raise DataError(
            f"No recordings ({', '.join(AUDIO_EXTENSIONS)}) found in {config.path}.",
            hint="set `data.path` to the folder that holds them",
        )
    parts, classes = split_rows(rows, config, seed)
    return audio_bundle(parts, classes, config, seed)
