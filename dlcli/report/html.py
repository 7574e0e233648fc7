"""The run report: one self-contained `report.html` in every run directory.

Everything on the page is read back from the run directory (pipeline.yaml, run.json, spec.json,
history.csv, metrics.json, evaluation/<split>/ and the PNGs the run wrote), so `dlcli report RUN`
can rebuild it at any time, and a missing or broken file only empties its own section. The page
loads nothing: styles are inline, curves are inline SVG, pictures are base64 data URIs, there
is no script, and its Content-Security-Policy forbids anything else.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import shlex
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from dlcli import runs
from dlcli.errors import ConfigError
from dlcli.report.curves import history_charts
from dlcli.report.run_files import RunFiles, run_pictures
from dlcli.report.samples import SAMPLES_FILE, draw_data_samples

log = logging.getLogger("dlcli")

REPORT_FILE = "report.html"
MAX_TABLE_ROWS = 100
CAPTIONS = {
    "confusion_matrix.png": "Confusion matrix: rows are true classes, columns predicted ones",
    "misclassified.png": "The most confidently wrong predictions",
    "score_histogram.png": "Anomaly scores of normal and anomalous images, and the threshold",
    "reconstructions.png": "Inputs and the model's outputs",
    "samples.png": "Generated samples",
    "interpolation.png": "Walks between points of the latent space",
}
CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#1d2330;margin:0;
background:#f4f6f9}
header{background:#1d2b45;color:#fff;padding:18px 32px}header h1{margin:0;font-size:22px}
header p{margin:4px 0 0;color:#c4cde0;font-size:13px}
nav{padding:8px 32px;background:#fff;border-bottom:1px solid #dde2ea;position:sticky;top:0}
nav a{margin-right:16px;color:#1f6fb4;text-decoration:none;font-size:14px}
main{max-width:1180px;margin:0 auto;padding:8px 32px 40px}
section{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:4px 22px 16px;
margin:18px 0}
h2{font-size:18px;border-bottom:1px solid #e6e9ef;padding-bottom:6px}h3{font-size:15px}
table{border-collapse:collapse;margin:6px 0 12px;font-size:14px}
th,td{padding:3px 12px;border-bottom:1px solid #eceff4;text-align:left;vertical-align:top}
th{background:#f0f3f7;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:12px 0}
.card{border:1px solid #dde2ea;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:20px}.card span{color:#5b6475;font-size:12px}
.missing{color:#8a5a00;background:#fff7e0;border-left:3px solid #e0a800;padding:6px 10px}
.charts,.row{display:flex;flex-wrap:wrap;gap:12px 28px;align-items:flex-start}
.kv td.n{text-align:left}
figure{margin:8px 0 16px}figure img{max-width:100%;border:1px solid #e6e9ef}
figcaption{color:#5b6475;font-size:13px}.samples img{max-width:760px}
.bar{background:#1f6fb4;height:10px}
pre{background:#f6f8fa;border:1px solid #e6e9ef;padding:10px;overflow:auto;max-height:40em;
font-size:13px}code{font-size:13px}
"""


def write_run_report(run_dir: Path, *, samples: bool = True) -> Path | None:
    """`build_run_report` for training and evaluation: a report must never fail a run, so a
    problem is logged as a warning and None returned."""
    try:
        return build_run_report(run_dir, samples=samples)
    except Exception as exc:  # whatever broke, the run itself succeeded
        log.warning("could not write %s: %s", run_dir / REPORT_FILE, exc)
        return None


def build_run_report(run_dir: Path, *, samples: bool = True) -> Path:
    """Write `RUN/report.html` (atomically); with `samples`, first draw the grid of training
    examples when the run has none yet."""
    if not (run_dir / runs.PIPELINE_FILE).is_file():
        raise ConfigError(
            f"Expected a run directory written by `dlcli train`. Received: {run_dir} (it has "
            f"no {runs.PIPELINE_FILE}).",
            hint="for example `dlcli report runs/quickstart/1`",
        )
    if samples and not (run_dir / SAMPLES_FILE).is_file():
        try:
            draw_data_samples(run_dir)
        except Exception as exc:  # the data may be gone: the report goes on
            log.warning("report: no grid of training examples (%s)", exc)
    path = run_dir / REPORT_FILE
    runs.atomic_write_text(path, render_report(run_dir))
    return path


def render_report(run_dir: Path) -> str:
    """The whole page as one string."""
    run = RunFiles.read(run_dir)
    sections: list[tuple[str, str, Callable[[RunFiles], str]]] = [
        ("overview", "Overview", _overview),
        ("evaluation", "Evaluation", _evaluation),
        ("training", "Training", _training),
        ("data", "Data", _data),
        ("pictures", "Pictures", _pictures),
        ("environment", "Environment", _environment),
        ("timings", "Timings", _timings),
        ("pipeline", "Pipeline", _pipeline),
    ]
    nav = "".join(f'<a href="#{anchor}">{title}</a>' for anchor, title, _ in sections)
    body = "".join(
        f'<section id="{anchor}"><h2>{title}</h2>{_safely(build, run)}</section>'
        for anchor, title, build in sections
    )
    name = _esc(run.pipeline.get("name") or run_dir.name)
    written = datetime.now(timezone.utc).isoformat(timespec="seconds")
    policy = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{policy}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{name}: dlcli run report</title>'
        f"<style>{CSS}</style></head><body><header><h1>{name}</h1>"
        f"<p>{_esc(run_dir.resolve())} &middot; report written {written}</p></header>"
        f"<nav>{nav}</nav><main>{body}</main></body></html>\n"
    )


def _safely(build: Callable[[RunFiles], str], run: RunFiles) -> str:
    try:
        return build(run)
    except Exception as exc:  # one broken artifact must not cost the page
        return _missing(f"This section could not be made: {type(exc).__name__}: {exc}")


def _overview(run: RunFiles) -> str:
    summary, model = run.summary or {}, run.pipeline.get("model") or {}
    cards = [
        ("task", summary.get("task") or (run.pipeline.get("task") or {}).get("type")),
        ("model", model.get("type")),
        ("parameters", summary.get("parameters")),
        ("epochs run", summary.get("epochs_run") or None),  # 0: fitted, not trained
        ("best epoch", summary.get("best_epoch") or None),
    ]
    for split, report in run.evaluations.items():
        metric = next((k for k, v in report.items() if isinstance(v, float)), None)
        if metric:
            cards.append((f"{split} {metric}", report[metric]))
    shown = "".join(
        f'<div class="card"><b>{_value(v)}</b><span>{_esc(k)}</span></div>'
        for k, v in cards
        if v is not None
    )
    note = "" if run.summary else _missing(f"No {runs.METRICS_FILE}: training did not finish.")
    return f'<div class="cards">{shown}</div>{note}'


def _evaluation(run: RunFiles) -> str:
    if not run.evaluations:
        return _missing(
            "Not evaluated yet: `dlcli evaluate RUN` writes evaluation/SPLIT/metrics.json "
            "and refreshes this page."
        )
    parts = []
    for split, report in run.evaluations.items():
        overrides = report.get("overrides")
        title = f"{report.get('split', split)} split"
        if isinstance(overrides, list) and overrides:
            title += ", " + " ".join(f"--set {o}" for o in map(str, overrides))
        parts.append(f'<h3>{_esc(title)}</h3><div class="row">')
        parts.append(_table(["metric", "value"], _flat_metrics(report)))
        per_class = report.get("per_class")
        if isinstance(per_class, dict) and per_class:
            columns = list(next(iter(per_class.values())))
            rows = [[name, *(row.get(c) for c in columns)] for name, row in per_class.items()]
            parts.append(_table(["class", *columns], rows))
        parts.append("</div>")
    return "".join(parts)


def _flat_metrics(report: dict[str, Any]) -> list[list[Any]]:
    """Scalars, and dicts of scalars one level down (`macro_avg.f1`); per-class tables and the
    confusion matrix have their own table and picture."""
    rows: list[list[Any]] = []
    for key, value in report.items():
        if key in ("task", "split", "output_dir", "per_class", "overrides"):
            continue
        if isinstance(value, dict) and all(_is_scalar(v) for v in value.values()):
            rows += [[f"{key}.{k}", v] for k, v in value.items()]
        elif _is_scalar(value):
            rows.append([key, value])
    return rows


def _training(run: RunFiles) -> str:
    summary = run.summary or {}
    parts = []
    train, val = summary.get("train") or {}, summary.get("validation") or {}
    if train or val:
        names = list(dict.fromkeys([*train, *val]))
        rows = [[n, train.get(n), val.get(n)] for n in names]
        epoch = summary.get("best_epoch")
        parts.append(f"<p>Metrics of the kept model (epoch {_value(epoch)}):</p>")
        parts.append(_table(["metric", "train", "validation"], rows))
    if summary.get("epochs_run") == 0:
        return (
            "".join(parts) + "<p>Nothing was trained by gradient descent: fitted from features.</p>"
        )
    if not run.history:
        return "".join(parts) + _missing(f"No {runs.HISTORY_FILE}: no epoch finished.")
    charts = history_charts(run.history)
    return "".join(parts) + f'<div class="charts">{"".join(charts)}</div>'


def _data(run: RunFiles) -> str:
    summary, spec = run.summary or {}, run.spec or {}
    sizes, facts = summary.get("data") or {}, []
    if spec:
        facts = [["modality", spec.get("modality")], ["model input", spec.get("input_shape")]]
        rate, shape = spec.get("sample_rate"), spec.get("input_shape") or [None]
        if rate:
            length = f"{shape[0] / rate:g} s" if shape[0] else "any (whole recordings)"
            facts += [["sample rate", f"{rate} Hz"], ["clip length", length]]
    if summary.get("skipped_files"):
        facts.append(["unreadable files skipped", summary["skipped_files"]])
    splits = _table(["split", "examples"], [[k, v] for k, v in sizes.items()]) if sizes else ""
    note = "" if sizes else _missing(f"No split sizes: {runs.METRICS_FILE} is missing.")
    counts = _missing("No spec.json: the data never loaded.")
    if spec:
        counts = _class_counts(spec, sizes.get("train"))
    samples = run.directory / SAMPLES_FILE
    if samples.is_file():
        audio = spec.get("modality") == "audio"
        what = "Log spectrograms of training clips" if audio else "Training examples"
        grid = _figure(samples, f"{what}, as the model reads them", "samples")
    else:
        grid = _missing(f"No {SAMPLES_FILE}: the data could not be read for a sample grid.")
    first = f"<div>{splits}{_table(['', ''], facts)}</div>"
    return f'{note}<div class="row">{first}<div>{counts}</div></div>{grid}'


def _class_counts(spec: dict[str, Any], trained: int | None) -> str:
    """The training split of the data by class; the task may train on part of it (anomaly
    detection trains on the normal classes only)."""
    names, counts = spec.get("class_names"), spec.get("class_counts") or []
    if not names:
        return "<p>This data has no classes.</p>"
    if len(counts) != len(names):
        return f"<p>{len(names)} classes: {_esc(', '.join(map(str, names)))}</p>"
    most = max(counts) or 1
    rows = [
        [name, count, f'<div class="bar" style="width:{160 * count / most:.0f}px"></div>']
        for name, count in zip(names, counts, strict=True)
    ]
    part = trained is not None and trained != sum(counts)
    note = f"<p>The task trains on {trained:,} of these {sum(counts):,}.</p>" if part else ""
    return _table(["class", "in the training split", ""], rows, raw=2) + note


def _pictures(run: RunFiles) -> str:
    pictures, left_out = run_pictures(run.directory)
    if not pictures:
        return _missing("The run wrote no pictures yet (evaluation draws them).")
    parts, folder = [], None
    for path in pictures:
        relative = path.relative_to(run.directory)
        if relative.parent != folder:
            folder = relative.parent
            parts.append(f"<h3>{_esc(folder.as_posix() if str(folder) != '.' else 'run')}</h3>")
        caption = CAPTIONS.get(path.name, path.stem.replace("_", " "))
        parts.append(_figure(path, f"{caption} ({relative.as_posix()})"))
    parts += [f"<p>{_esc(note)}</p>" for note in left_out]
    return "".join(parts)


def _environment(run: RunFiles) -> str:
    meta, summary = run.meta or {}, run.summary or {}
    rows = [[key, value] for key, value in meta.items()]
    if isinstance(meta.get("command"), list):  # as a shell would take it
        rows[list(meta).index("command")][1] = shlex.join(map(str, meta["command"]))
    setup = ("strategy", "replicas", "precision_requested", "precision", "jit_compile")
    rows += [[key, summary[key]] for key in setup if key in summary]
    note = "" if meta else _missing(f"No {runs.META_FILE} in the run directory.")
    files = sorted(p for p in run.directory.iterdir() if not p.name.startswith("."))
    listing = [[p.name + "/" * p.is_dir(), _size(p)] for p in files]
    return note + _table(["", ""], rows) + "<h3>Files</h3>" + _table(["file", "size"], listing)


def _timings(run: RunFiles) -> str:
    meta = run.meta or {}
    rows: list[list[Any]] = [["started", meta.get("started_at")]]
    rows.append(["finished", meta.get("finished_at")])
    took = _seconds_between(meta.get("started_at"), meta.get("finished_at"))
    rows.append(["start to finish", _duration(took) if took is not None else None])
    seconds = [float(r["seconds"]) for r in run.history or [] if r.get("seconds")]
    if seconds:
        rows += [
            ["epochs", len(seconds)],
            ["training (sum of epochs)", _duration(sum(seconds))],
            ["mean epoch", _duration(sum(seconds) / len(seconds))],
            ["slowest epoch", _duration(max(seconds))],
        ]
    span = _log_span(run.directory / runs.LOG_FILE)
    rows.append(["first to last line of train.log", _duration(span) if span else None])
    rows += [["resumed", resume.get("at")] for resume in meta.get("resumes") or []]
    rows = [row for row in rows if row[1] is not None]
    return _table(["", ""], rows) if rows else _missing("No timings: the run has no history.")


def _seconds_between(start: Any, end: Any) -> float | None:
    try:
        delta = datetime.fromisoformat(str(end)) - datetime.fromisoformat(str(start))
    except ValueError:
        return None
    return delta.total_seconds()


def _log_span(path: Path) -> float | None:
    """Seconds between the first and the last timestamped line of the run's log."""
    stamps = []
    if path.is_file():
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                stamps.append(datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f"))
            except ValueError:
                continue
    return (stamps[-1] - stamps[0]).total_seconds() if len(stamps) > 1 else None


def _pipeline(run: RunFiles) -> str:
    if run.pipeline_text is None:
        return _missing(f"No {runs.PIPELINE_FILE} in the run directory.")
    note = "<p>The resolved pipeline: every default filled in, overrides applied.</p>"
    return f"{note}<pre>{_esc(run.pipeline_text)}</pre>"


def _figure(path: Path, caption: str, kind: str = "") -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure class="{kind}"><img src="data:image/png;base64,{data}" alt="{_esc(caption)}">'
        f"<figcaption>{_esc(caption)}</figcaption></figure>"
    )


def _table(headers: list[str], rows: list[list[Any]], raw: int | None = None) -> str:
    """Rows of values (numbers right-aligned and rounded); column `raw` is HTML made here."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers) if any(headers) else ""
    body = []
    for row in rows[:MAX_TABLE_ROWS]:
        cells = (f"<td>{v}</td>" if i == raw else _cell(v) for i, v in enumerate(row))
        body.append(f"<tr>{''.join(cells)}</tr>")
    more = len(rows) - MAX_TABLE_ROWS
    tail = f"<p>... and {more} more rows.</p>" if more > 0 else ""
    top = f"<table><tr>{head}</tr>" if head else '<table class="kv">'
    return f"{top}{''.join(body)}</table>{tail}"


def _cell(value: Any) -> str:
    number = isinstance(value, int | float) and not isinstance(value, bool)
    return f'<td class="n">{_value(value)}</td>' if number else f"<td>{_value(value)}</td>"


def _value(value: Any) -> str:
    """A value as escaped text: floats to 4 decimals (4 significant digits when far from 1)."""
    if value is None:
        return "&ndash;"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        fine = value == 0 or 1e-3 <= abs(value) < 1e6
        return f"{value:.4f}" if fine else f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, list | tuple) and all(_is_scalar(v) for v in value):
        return _esc(" x ".join(map(str, value)) if value else "[]")
    if isinstance(value, dict | list):
        return f"<code>{_esc(_clip(json.dumps(value), 300))}</code>"
    return _esc(value)


def _size(path: Path) -> str:
    total = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0
    size = float(total if path.is_dir() else path.stat().st_size)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return ""


def _duration(seconds: float) -> str:
    return f"{seconds:.1f} s" if seconds < 120 else f"{seconds / 60:.1f} min ({seconds:.0f} s)"


def _missing(text: str) -> str:
    return f'<p class="missing">{_esc(text)}</p>'


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _clip(text: str, limit: int = 28) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)
