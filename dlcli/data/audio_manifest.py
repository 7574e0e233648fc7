"""Recordings listed in a CSV or JSONL manifest, and the labelling and splitting that every audio
source shares: labels from a column, a folder or a regex over file names; splits given, by a rule
on a column (FSDD's official split: takes 0-4 are test), by group (no speaker in two splits) or
stratified by seed.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import Field, PositiveInt, model_validator

from dlcli.config.base import ResolvedPath, StrictModel
from dlcli.data.audio import AudioOptions, audio_bundle
from dlcli.data.base import SPLITS, DataBundle, SplitConfig, grouped_split, stratified_split
from dlcli.data.manifest import SPLIT_NAMES
from dlcli.errors import DataError
from dlcli.registry import DATA_SOURCES

Parts = dict[str, tuple[list[str], list[int]]]


@dataclass
class Row:
    """One recording: its file, label, the other columns (manifest or regex groups), its origin."""

    path: str
    label: str
    where: str  # "manifest.csv:12" or the file itself, for error messages
    columns: dict[str, str] = field(default_factory=dict)
    split: str | None = None  # given by a split folder or a split column


class SplitRule(StrictModel):
    """Which values of a column go to test and validation; splits it leaves out are cut from
    the remaining rows by `split` fractions (stratified, or by `group_column`)."""

    column: str = Field(description="a manifest column or a named group of `label_regex`")
    test: str | list[str] | None = Field(
        None, description='values for test: "0-4" (a range of integers), "0-4,9", "theo" or a list'
    )
    validation: str | list[str] | None = Field(None, description="values for validation, likewise")

    @model_validator(mode="after")
    def _names_a_split(self) -> SplitRule:
        if self.test is None and self.validation is None:
            raise ValueError("split_rule needs `test` or `validation` values (or both)")
        return self

    def matches(self, split: str, value: str) -> bool:
        spec = getattr(self, split)
        if spec is None:
            return False
        items = spec if isinstance(spec, list) else spec.split(",")
        for item in (str(i).strip() for i in items):
            low, dash, high = item.partition("-")
            if dash and _is_int(low) and _is_int(high) and _is_int(value):
                if int(low) <= int(value) <= int(high):
                    return True
            elif item == value or (_is_int(item) and _is_int(value) and int(item) == int(value)):
                return True
        return False


def _is_int(text: str) -> bool:
    return text.strip().lstrip("+-").isdigit()


class AudioSourceOptions(AudioOptions):
    """Labelling and splitting options shared by `audio_folder` and `audio_manifest`."""

    label_regex: str | None = Field(
        None,
        description="take the label from each file name (re.match) instead: a named group "
        "`label`; other named groups become columns for `group_column` or `split_rule`",
    )
    group_column: str | None = Field(
        None, description="split by this column (a speaker): no value is in two splits"
    )
    split_rule: SplitRule | None = Field(
        None, description="values of a column that go to test/validation, e.g. FSDD's takes 0-4"
    )
    split: SplitConfig = Field(
        default_factory=SplitConfig,
        description="fractions held out when splits are not given: of all rows, or of the rows "
        "`split_rule` leaves",
    )

    @model_validator(mode="after")
    def _label_group(self) -> AudioSourceOptions:
        if self.label_regex is not None:
            try:
                pattern = re.compile(self.label_regex)
            except re.error as exc:
                raise ValueError(f"label_regex is not a valid regular expression: {exc}") from None
            if "label" not in pattern.groupindex:
                raise ValueError(
                    f"label_regex needs a named group `label`, e.g. (?P<label>\\d+). "
                    f"Received: {self.label_regex}"
                )
        return self

    def regex_columns(self, file_name: str, where: str) -> dict[str, str]:
        """The named groups of `label_regex` in a file name (`label` among them)."""
        assert self.label_regex is not None
        found = re.match(self.label_regex, file_name)
        if found is None:
            raise DataError(
                f"{where}: the file name `{file_name}` does not match data.label_regex. "
                f"Expected a match of: {self.label_regex}",
                hint="fix the regex, or move files that are not recordings out of the data",
            )
        return {k: v for k, v in found.groupdict().items() if v is not None}


def natural_sorted(labels: set[str]) -> list[str]:
    """ "2" before "10": numeric labels in numeric order, then the rest alphabetically."""
    return sorted(labels, key=lambda s: (0, int(s), s) if _is_int(s) else (1, 0, s))


def column_value(row: Row, column: str, key: str) -> str:
    value = row.columns.get(column)
    if not value:
        raise DataError(
            f"{row.where}: no `{column}` (data.{key}). "
            f"Received columns: {', '.join(sorted(row.columns)) or 'none'}.",
            hint="give every row that column, or a `label_regex` with a named group of that name",
        )
    return value


def carve(
    rows: list[Row],
    classes: list[str],
    options: AudioSourceOptions,
    seed: int,
    validation: float,
    test: float,
) -> Parts:
    """Split rows by fractions: by `group_column` when set, else stratified by class."""
    items = [(row.path, classes.index(row.label)) for row in rows]
    if options.group_column:
        groups = [column_value(row, options.group_column, "group_column") for row in rows]
        return grouped_split(items, groups, validation, test, seed)
    return stratified_split(items, validation, test, seed)


def split_rows(
    rows: list[Row], options: AudioSourceOptions, seed: int, *, labelled: bool = True
) -> tuple[Parts, list[str]]:
    """Rows to (paths, label indices) per split, and the sorted class names."""
    classes = natural_sorted({row.label for row in rows})
    if labelled and len(classes) < 2:
        raise DataError(f"Expected at least 2 labels. Received: {classes or 'none'}.")
    parts: Parts = {s: ([], []) for s in SPLITS}
    given = [row for row in rows if row.split]
    if given:
        unsplit = next((row for row in rows if not row.split), None)
        if unsplit is not None:
            raise DataError(
                f"{unsplit.where}: no split, while other rows have one. "
                "Expected train, val/validation or test on every row, or on none."
            )
        for row in given:
            assert row.split is not None
            parts[row.split][0].append(row.path)
            parts[row.split][1].append(classes.index(row.label))
        return parts, classes
    rule = options.split_rule
    if rule is None:
        return carve(
            rows, classes, options, seed, options.split.validation, options.split.test
        ), classes
    rest = []
    for row in rows:
        value = column_value(row, rule.column, "split_rule.column")
        named = [s for s in ("test", "validation") if rule.matches(s, value)]
        if len(named) > 1:
            raise DataError(f"{row.where}: `{rule.column}` {value} is in both test and validation.")
        if named:
            parts[named[0]][0].append(row.path)
            parts[named[0]][1].append(classes.index(row.label))
        else:
            rest.append(row)
    for split in ("test", "validation"):
        if getattr(rule, split) is not None and not parts[split][0]:
            values = natural_sorted({row.columns.get(rule.column, "") for row in rows})
            raise DataError(
                f"data.split_rule puts no file in {split}: no `{rule.column}` is in "
                f"{getattr(rule, split)}. Received values: {', '.join(values[:20])}."
            )
    fractions = {
        s: 0.0 if getattr(rule, s) is not None else getattr(options.split, s)
        for s in ("validation", "test")
    }
    carved = carve(rest, classes, options, seed, fractions["validation"], fractions["test"])
    for split, (paths, labels) in carved.items():
        parts[split][0].extend(paths)
        parts[split][1].extend(labels)
    return parts, classes


PATH_COLUMNS = ("path", "audio_filepath")  # dlcli's, NeMo's
TRANSCRIPT_COLUMNS = ("transcript", "text")


class AudioManifestConfig(AudioSourceOptions):
    """`data:` for `type: audio_manifest`."""

    type: Literal["audio_manifest"] = "audio_manifest"
    path: ResolvedPath = Field(
        description="a .csv (with a header) or .jsonl file; paths in it are relative to it"
    )
    path_column: str | None = Field(
        None, description="default: `path`, or NeMo's `audio_filepath` when there is no `path`"
    )
    label_column: str = Field("label", description="unused when `label_regex` is set")
    split_column: str = Field("split", description="optional: train/val/test per row")
    targets: Literal["label", "transcript"] = Field(
        "label",
        description="label: a class per recording; transcript: its text, whole utterances "
        "(set for you by `task: {type: transcription}`)",
    )
    transcript_column: str | None = Field(
        None, description="targets transcript: default `transcript`, or NeMo's `text`"
    )
    buckets: PositiveInt = Field(
        8, description="targets transcript: training batches from this many duration buckets"
    )

    @model_validator(mode="after")
    def _transcripts_are_whole(self) -> AudioManifestConfig:
        self.check_targets()
        return self

    def check_targets(self) -> None:
        """Options that do not apply to whole utterances (also run once a task sets them)."""
        if self.targets == "transcript":
            if self.augment.shift:
                raise ValueError(
                    "data.augment.shift is for fixed-length clips; for transcripts use "
                    "gain_db, speed, noise and model.frontend.spec_augment"
                )
            if self.label_regex is not None:
                raise ValueError("label_regex is for labels; transcripts come from a column")

    example: ClassVar[dict[str, Any]] = {
        "path": "{fsdd_manifest}",
        "sample_rate": 8000,
        "duration": 0.5,
        "group_column": "speaker",
        "split": {"validation": 0.25, "test": 0.25},
    }


def read_rows(config: AudioManifestConfig) -> list[tuple[int, dict[str, str]]]:
    """(line number, row) for each record of the manifest."""
    path = config.path
    if not path.is_file():
        raise DataError(f"Manifest not found: {path}", hint="set `data.path` to a .csv or .jsonl")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise DataError(f"Expected a .csv or .jsonl manifest. Received: {path}")
    rows = []
    with path.open(encoding="utf-8", newline="") as handle:
        if suffix == ".csv":
            reader = csv.DictReader(handle)
            for row in reader:
                rows.append((reader.line_num, {k: (v or "").strip() for k, v in row.items() if k}))
            return rows
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append((number, {k: str(v) for k, v in json.loads(line).items()}))
                except (json.JSONDecodeError, AttributeError) as exc:
                    raise DataError(f"{path}:{number}: not a JSON object: {exc}") from None
    return rows


def pick_column(given: str | None, choices: tuple[str, ...], first: dict[str, str]) -> str:
    """The column the config names, else the first of `choices` the manifest has."""
    if given is not None:
        return given
    return next((c for c in choices if c in first), choices[0])


def manifest_row(
    config: AudioManifestConfig, number: int, record: dict[str, str], names: tuple[str, str]
) -> Row:
    """One record as a Row; `names`: the path column and the label (or transcript) column."""
    where = f"{config.path}:{number}"
    path_column, target_column = names
    transcripts = config.targets == "transcript"
    wanted = [path_column] + ([] if config.label_regex else [target_column])
    # A transcript may be empty (an utterance of silence); a path or a label may not.
    missing = [
        c
        for c in wanted
        if not record.get(c) and not (transcripts and c == target_column and c in record)
    ]
    if missing:
        raise DataError(
            f"{where}: missing {', '.join(missing)}. "
            f"Expected columns {', '.join(f'`{c}`' for c in wanted)}."
        )
    file = config.path.parent / record[path_column]
    columns = dict(record)
    if config.label_regex:
        columns.update(config.regex_columns(file.name, where))
    label = columns["label"] if config.label_regex else record[target_column]
    split = record.get(config.split_column, "").strip().lower() or None
    if split is not None and split not in SPLIT_NAMES:
        raise DataError(
            f"{where}: split `{split}`. Expected train, val/validation or test (or nothing)."
        )
    return Row(str(file), label, where, columns, SPLIT_NAMES[split] if split else None)


@DATA_SOURCES.register("audio_manifest", config=AudioManifestConfig)
def audio_manifest(config: AudioManifestConfig, *, seed: int) -> DataBundle:
    """Recordings listed in a CSV/JSONL manifest (path, label, optional split and group)."""
    records = read_rows(config)
    if not records:
        raise DataError(f"{config.path} lists no recordings.")
    first = records[0][1]
    path_column = pick_column(config.path_column, PATH_COLUMNS, first)
    if config.targets == "label":
        columns = (path_column, config.label_column)
        rows = [manifest_row(config, number, record, columns) for number, record in records]
        parts, classes = split_rows(rows, config, seed)
        return audio_bundle(parts, classes, config, seed)
    from dlcli.data.transcripts import transcript_bundle

    columns = (path_column, pick_column(config.transcript_column, TRANSCRIPT_COLUMNS, first))
    rows = [manifest_row(config, number, record, columns) for number, record in records]
    texts = {row.path: row.label for row in rows}
    for row in rows:  # every utterance is one "class" to the splitting below
        row.label = ""
    parts, _ = split_rows(rows, config, seed, labelled=False)
    return transcript_bundle(
        {s: (paths, [texts[p] for p in paths]) for s, (paths, _) in parts.items()},
        config,
        config.buckets,
    )
