"""Predict with a trained run: files are decoded by the run's own data source (exactly as in
training), the model runs batch by batch, and the task turns outputs into rows as they come."""

from __future__ import annotations

import csv
import glob
import json
import logging
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlcli import runs
from dlcli.errors import ConfigError

log = logging.getLogger("dlcli")


@dataclass
class Prediction:
    """Rows are produced lazily by `rows()`; `seconds` and `count` are final once it is done."""

    handle: Any
    task: Any
    inputs: Any  # ReadInputs
    top_k: int
    batch_size: int
    window: tuple[float, float] | None = None  # audio: (window, hop) seconds over long files
    seconds: float = 0.0
    count: int = 0
    skipped: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    def rows(self) -> Iterator[dict[str, Any]]:
        from dlcli.models.loading import load_keras_model

        model = load_keras_model(self.handle.model_path)
        if self.window is not None:
            yield from self._window_rows(model)
            return
        started = time.perf_counter()
        for batch in self.inputs.batch(self.inputs.dataset, self.batch_size, False):
            outputs = self.task.predict_outputs(model, batch)
            paths = self.inputs.paths[self.count : self.count + len(outputs)]
            self.count += len(paths)
            yield from self.task.predict_rows(outputs, paths, top_k=self.top_k)
            self.seconds = time.perf_counter() - started

    def _window_rows(self, model: Any) -> Iterator[dict[str, Any]]:
        """A row per window of each file, with its start and end in seconds."""
        from dlcli.errors import DataError

        assert self.window is not None
        window, hop = self.window
        started = time.perf_counter()
        for path in self.inputs.paths:
            try:
                windows, starts = self.handle.config.data.read_windows(
                    path, self.handle.spec, window, hop
                )
            except DataError as exc:
                self.skipped.append(path)
                log.warning("skipped %s: %s", path, exc.message)
                continue
            for first in range(0, len(windows), self.batch_size):
                chunk = windows[first : first + self.batch_size]
                outputs = self.task.predict_outputs(model, chunk)
                rows = self.task.predict_rows(outputs, [path] * len(chunk), top_k=self.top_k)
                for row, start in zip(rows, starts[first : first + len(chunk)], strict=True):
                    row_start = float(start)
                    yield {
                        "path": path,
                        "start": round(row_start, 3),
                        "end": round(row_start + window, 3),
                        **{k: v for k, v in row.items() if k != "path"},
                    }
            self.count += 1
            self.seconds = time.perf_counter() - started


def expand_inputs(inputs: list[str], extensions: tuple[str, ...]) -> list[str]:
    """Files as given, folders searched recursively, globs expanded; order kept."""
    found: list[str] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += sorted(str(p) for p in path.rglob("*") if p.suffix.lower() in extensions)
        elif path.is_file():
            found.append(str(path))
        elif any(ch in item for ch in "*?["):
            matches = sorted(glob.glob(item, recursive=True))
            found += [m for m in matches if Path(m).suffix.lower() in extensions]
        else:
            raise ConfigError(f"Input not found: {item}", hint="give files, folders or globs")
    if not found:
        raise ConfigError(
            f"No inputs found in: {', '.join(inputs)}",
            hint=f"supported extensions: {', '.join(extensions)}",
        )
    return found


def predict_files(
    target: Path,
    inputs: list[str],
    *,
    top_k: int = 3,
    batch_size: int = 64,
    window: float | None = None,
    hop: float | None = None,
) -> Prediction:
    """Prepare a prediction over `inputs` with the run `target`; iterate `.rows()` to run it.
    With `window` (and `hop`, default = window) seconds, long audio files get a row per window."""
    from dlcli.tasks import create_task

    if top_k < 1:
        raise ConfigError(f"Invalid value for option `--top-k`. Received: {top_k}. Expected >= 1.")
    if hop is not None and window is None:
        raise ConfigError("Option `--hop` needs `--window`.", hint="e.g. --window 1 --hop 0.5")
    handle = runs.open_run(target)
    if window is not None and not hasattr(handle.config.data, "read_windows"):
        raise ConfigError(
            f"Option `--window` is for audio runs; this run reads {handle.spec.modality} data.",
        )
    if window is not None and handle.spec.input_shape[0] is None:
        raise ConfigError(
            "Option `--window` is for models of fixed-length clips; this model reads whole "
            "recordings of any length.",
            hint="drop --window: each file gets one row",
        )
    task = create_task(handle.config.task, handle.spec, run_dir=handle.directory)
    files = expand_inputs(inputs, handle.config.data.input_extensions)
    if window is not None:  # files are read window by window, as the rows are written
        from dlcli.data.base import ReadInputs

        windows = (window, hop or window)
        return Prediction(handle, task, ReadInputs(None, files, []), top_k, batch_size, windows)
    read = handle.config.data.read_inputs(files, handle.spec)
    if not read.paths:
        raise ConfigError(f"None of the {len(files)} input files could be read.")
    return Prediction(handle, task, read, top_k, batch_size, skipped=[p for p, _ in read.skipped])


def write_predictions(prediction: Prediction, path: Path) -> Iterator[dict[str, Any]]:
    """Stream rows to CSV (flat columns) or JSONL, chosen by the file's extension, through a
    temporary file renamed at the end; yield each row as it is written."""
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".jsonl"):
        raise ConfigError(
            f"Invalid value for option `--output`. Received: {path}. "
            "Expected a file ending in .csv or .jsonl."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            writer: Any = None
            for row in prediction.rows():
                if suffix == ".jsonl":
                    handle.write(json.dumps(row) + "\n")
                else:
                    flat = prediction.task.flat_row(row)
                    if writer is None:
                        writer = csv.DictWriter(handle, fieldnames=list(flat), lineterminator="\n")
                        writer.writeheader()
                    writer.writerow(flat)
                yield row
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
