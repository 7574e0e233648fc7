"""Run directories: `runs/<name>/<n>/`, never overwritten, every artifact written atomically."""

from __future__ import annotations

import csv
import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dlcli import __version__
from dlcli.errors import ConfigError
from dlcli.run_lock import LOCK_FILE, RunLock

PIPELINE_FILE = "pipeline.yaml"
MODEL_FILE = "model.keras"
HISTORY_FILE = "history.csv"
METRICS_FILE = "metrics.json"
META_FILE = "run.json"
LOG_FILE = "train.log"
# run.json `status`: `running` from the header on; how training ended once it has.
RUNNING, FINISHED, FAILED, INTERRUPTED = "running", "finished", "failed", "interrupted"


def new_run_dir(name: str, root: Path = Path("runs"), output: Path | None = None) -> Path:
    """`output` if given (must be new or empty), else the next free `root/name/<n>`."""
    if output is not None:
        if output.exists() and any(output.iterdir()):
            raise ConfigError(
                f"Output directory is not empty: {output}",
                hint="choose a new --output, or resume that run with --resume",
            )
        output.mkdir(parents=True, exist_ok=True)
        return output
    parent = root / name
    parent.mkdir(parents=True, exist_ok=True)
    while True:
        taken = [int(p.name) for p in parent.iterdir() if p.name.isdigit()]
        candidate = parent / str(max(taken, default=0) + 1)
        try:
            candidate.mkdir()  # atomic: two runs started together never share a directory
            return candidate
        except FileExistsError:
            continue


def claim_run_dir(
    name: str, root: Path = Path("runs"), output: Path | None = None, *, wait: bool = False
) -> tuple[Path, RunLock]:
    """A new run directory (as `new_run_dir`), locked for this process. A fixed `output` is
    checked for emptiness only once the lock is held, so two processes given the same
    `--output` never both write it: the second meets the lock (exit 3) or a full directory."""
    if output is None:
        run_dir = new_run_dir(name, root)
        return run_dir, RunLock.acquire(run_dir, wait=wait)

    def refuse_if_full() -> None:
        if output.is_dir() and any(p.name != LOCK_FILE for p in output.iterdir()):
            raise ConfigError(
                f"Output directory is not empty: {output}",
                hint="choose a new --output, or resume that run with --resume",
            )

    if not (output / LOCK_FILE).exists():
        refuse_if_full()  # before locking: no lock file is left in someone else's folder
    lock = RunLock.acquire(output, wait=wait, create=True)
    try:
        refuse_if_full()  # again, now that no other process can be filling it
    except ConfigError:
        lock.release()
        raise
    return output, lock


def lock_run(run_dir: Path, *, wait: bool = False) -> RunLock | None:
    """Lock an existing run to resume it; None when `run_dir` is no run (resume says why)."""
    if not (run_dir / PIPELINE_FILE).is_file():
        return None
    return RunLock.acquire(run_dir, wait=wait)


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def atomic_write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    import io

    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def save_model_atomic(model: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
    model.save(tmp)
    os.replace(tmp, path)


def git_commit(directory: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def run_metadata(pipeline_path: Path | None) -> dict[str, Any]:
    source_dir = pipeline_path.parent if pipeline_path else Path.cwd()
    return {
        "dlcli_version": __version__,
        "git_commit": git_commit(source_dir),
        "dlcli_git_commit": git_commit(Path(__file__).parent),
        "started_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": sys.argv,
        "python": platform.python_version(),
        "host": platform.node(),
        "pipeline_file": str(pipeline_path) if pipeline_path else None,
        "pid": os.getpid(),
        "status": RUNNING,
    }


def write_run_header(run_dir: Path, config: Any, pipeline_path: Path | None) -> None:
    """Before training starts: the resolved pipeline and where this run came from."""
    atomic_write_text(run_dir / PIPELINE_FILE, dump_pipeline(config))
    atomic_write_json(run_dir / META_FILE, run_metadata(pipeline_path))


def dump_pipeline(config: Any) -> str:
    """The resolved pipeline as YAML: environment variables already substituted, and any
    literal `${` written `$${`, so that loading it again gives the same values."""
    import yaml

    return yaml.safe_dump(_escape_env_refs(config.model_dump(mode="json")), sort_keys=False)


def read_saved_pipeline(text: str) -> Any:
    """A `dump_pipeline` text back as plain data, its `$${` read as the `${` they stand for:
    what resume and tune compare with, and what `runs compare` and the report show."""
    import yaml

    return _escape_env_refs(yaml.safe_load(text), ("$${", "${"))


def _escape_env_refs(value: Any, swap: tuple[str, str] = ("${", "$${")) -> Any:
    if isinstance(value, dict):
        return {k: _escape_env_refs(v, swap) for k, v in value.items()}
    if isinstance(value, list):
        return [_escape_env_refs(v, swap) for v in value]
    return value.replace(*swap) if isinstance(value, str) else value


def read_run_json(path: Path) -> dict[str, Any] | None:
    """A run's JSON file (run.json, metrics.json, an evaluation report), or None when it is
    missing, unreadable or not an object: whoever reads runs back shows what is there."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_run_pipeline(path: Path) -> dict[str, Any] | None:
    """A run's saved pipeline.yaml as plain data (see `read_saved_pipeline`), or None when it
    is missing or does not parse."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    return parse_run_pipeline(text)


def parse_run_pipeline(text: str) -> dict[str, Any] | None:
    """`read_run_pipeline` of a pipeline.yaml text already read."""
    import yaml

    try:
        data = read_saved_pipeline(text)
    except yaml.YAMLError:
        return None
    return data if isinstance(data, dict) else None


def read_history(path: Path) -> list[dict[str, str]] | None:
    """The rows of a run's history.csv as written (strings), or None when there is none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    try:
        return list(csv.DictReader(text.splitlines()))
    except csv.Error:
        return None


def record_resume(run_dir: Path, config: Any, changes: list[str]) -> None:
    """A resume keeps the run's number and files; the pipeline and run.json note what changed."""
    atomic_write_text(run_dir / PIPELINE_FILE, dump_pipeline(config))
    meta_file = run_dir / META_FILE
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    meta.setdefault("resumes", []).append(
        {
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": sys.argv,
            "changed": changes,
        }
    )
    meta.update(status=RUNNING, pid=os.getpid())
    for key in ("finished_at", "error"):
        meta.pop(key, None)
    atomic_write_json(meta_file, meta)


def record_outcome(run_dir: Path, error: BaseException | None) -> None:
    """run.json says how training ended: finished, failed (with the message) or interrupted.
    A run whose status stays `running` while nobody holds its lock was killed."""
    meta_file = run_dir / META_FILE
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    meta["finished_at"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
    if error is None:
        meta["status"] = FINISHED
    elif isinstance(error, KeyboardInterrupt):
        meta["status"] = INTERRUPTED
    else:
        meta["status"] = FAILED
        message = getattr(error, "message", None) or f"{type(error).__name__}: {error}"
        meta["error"] = (str(message).strip().splitlines() or [""])[0][:500]
    atomic_write_json(meta_file, meta)


def find_model(target: Path) -> tuple[Path, Path]:
    """Accept a run directory or a `.keras` file; return (model file, directory holding it)."""
    if target.is_dir():
        model = target / MODEL_FILE
        if not model.is_file():
            raise ConfigError(
                f"No {MODEL_FILE} in {target}.",
                hint="pass a run directory written by `dlcli train` (did training finish?)",
            )
        return model, target
    if target.suffix == ".keras" and target.is_file():
        return target, target.parent
    raise ConfigError(
        f"Expected a run directory or a .keras model file. Received: {target}",
        hint="for example `runs/quickstart/1`",
    )


@dataclass
class RunHandle:
    """A trained model and what it was trained with, read back from its run directory."""

    model_path: Path
    directory: Path
    config: Any  # the validated pipeline, or None for a bare model file
    spec: Any  # DataSpec


def open_run(
    target: Path,
    pipeline: Path | None = None,
    overrides: list[str] | None = None,
    *,
    require_pipeline: bool = False,
) -> RunHandle:
    """The run's model, its pipeline (with `--set` overrides) and its data spec.

    A bare `.keras` file without a pipeline beside it is taken as an image classifier: its
    input shape comes from the model, its class names from a `labels.json` beside it.
    """
    from dlcli.config.loader import load_pipeline
    from dlcli.data.base import DataSpec

    model_path, directory = find_model(target)
    pipeline = pipeline or directory / PIPELINE_FILE
    config = None
    if pipeline.is_file():
        config = load_pipeline(pipeline, overrides).config
    elif require_pipeline:
        raise ConfigError(
            f"No pipeline found for {model_path}: expected {pipeline}.",
            hint="pass --pipeline PIPELINE.yaml to say which data to use",
        )
    spec = DataSpec.load(directory)
    if spec is None or config is None:
        config, spec = _bare_model(model_path, directory, config)
    return RunHandle(model_path, directory, config, spec)


def _bare_model(model_path: Path, directory: Path, config: Any) -> tuple[Any, Any]:
    """A model file without the run's spec: read the input shape from the model itself."""
    from dlcli.config.loader import load_pipeline_text
    from dlcli.data.base import DataSpec
    from dlcli.models.loading import load_keras_model

    model = load_keras_model(model_path)
    inputs, outputs = tuple(model.input_shape), tuple(model.output_shape)
    if len(outputs) != 2 or len(inputs) != 4 or None in inputs[1:]:
        raise ConfigError(
            f"{model_path} has no run directory beside it ({PIPELINE_FILE}, spec.json), and it "
            f"is not an image classifier dlcli can use on its own (input {inputs}, output "
            f"{outputs}).",
            hint="pass the run directory it came from, or --pipeline PIPELINE.yaml",
        )
    labels_file = directory / "labels.json"
    labels = json.loads(labels_file.read_text()) if labels_file.is_file() else None
    classes = int(model.output_shape[-1])
    if not labels or len(labels) != classes:
        labels = [str(i) for i in range(classes)]
    spec = DataSpec(input_shape=tuple(model.input_shape[1:]), class_names=[str(x) for x in labels])
    if config is None:
        height, width, channels = spec.input_shape
        text = (
            f"name: bare\ndata: {{type: image_folder, path: ., image_size: [{height}, {width}], "
            f"channels: {channels}}}\nmodel: {{type: small_cnn}}\n"
        )
        config = load_pipeline_text(text, source=directory / PIPELINE_FILE).config
    return config, spec
