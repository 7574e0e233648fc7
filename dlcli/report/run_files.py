"""What a run directory holds, read back for the run report: each file is optional, and one
that is missing or does not parse is None, so the report can say so instead of failing."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcli import runs
from dlcli.report.samples import SAMPLES_FILE

SKIPPED_DIRS = ("checkpoints", "tensorboard", "export")
EPOCH_GRIDS_SHOWN = 4  # generative runs draw a grid per epoch: the last few tell the story
MAX_PICTURE_BYTES = 8 * 2**20


@dataclass
class RunFiles:
    """What a run directory holds; each piece is None (or empty) when missing or unreadable."""

    directory: Path
    pipeline_text: str | None = None
    pipeline: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] | None = None
    summary: dict[str, Any] | None = None
    spec: dict[str, Any] | None = None
    history: list[dict[str, str]] | None = None
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, directory: Path) -> RunFiles:
        files = cls(directory)
        pipeline_file = directory / runs.PIPELINE_FILE
        if pipeline_file.is_file():
            files.pipeline_text = pipeline_file.read_text(encoding="utf-8", errors="replace")
            files.pipeline = runs.parse_run_pipeline(files.pipeline_text) or {}
        files.meta = runs.read_run_json(directory / runs.META_FILE)
        files.summary = runs.read_run_json(directory / runs.METRICS_FILE)
        files.spec = runs.read_run_json(directory / "spec.json")
        files.history = runs.read_history(directory / runs.HISTORY_FILE)
        for path in sorted(directory.glob("evaluation/*/metrics.json")):
            report = runs.read_run_json(path)
            if report is not None:
                files.evaluations[path.parent.name] = report
        return files


def run_pictures(directory: Path) -> tuple[list[Path], list[str]]:
    """Every PNG the run wrote, but the sample grid of the data section, the temporary files of
    writes under way and, of per-epoch grids, all but the last few."""
    found = [
        p
        for p in sorted(directory.rglob("*.png"))
        if not p.name.startswith(".")
        and p.relative_to(directory).parts[0] not in SKIPPED_DIRS
        and p != directory / SAMPLES_FILE
    ]
    kept, notes = [], []
    for folder in dict.fromkeys(p.parent for p in found):
        epochs = [p for p in found if p.parent == folder and p.name.startswith("epoch_")]
        dropped = set(epochs[:-EPOCH_GRIDS_SHOWN])
        kept += [p for p in found if p.parent == folder and p not in dropped]
        if dropped:
            where = folder.relative_to(directory).as_posix()
            notes.append(f"{len(dropped)} earlier per-epoch pictures are in {where}/.")
    big = [p for p in kept if p.stat().st_size > MAX_PICTURE_BYTES]
    notes += [f"{p.relative_to(directory)} is too large to inline." for p in big]
    return [p for p in kept if p not in big], notes
