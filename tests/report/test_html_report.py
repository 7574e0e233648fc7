"""The run report in a real browser: tiny runs trained through the CLI write report.html, and
headless Chromium (Debian's `chromium`, which scripts/test.sh installs) opens it from disk. It
must load with no console message at all (the page has no script, so any message is a blocked
load or an error), inline every picture, show the numbers metrics.json holds, and render."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import assert_no_traceback, knn_anomaly_pipeline, run_cli, write_pipeline

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="needs Debian's chromium (scripts/test.sh installs it as root)"
)
PNG = b"\x89PNG\r\n\x1a\n"


def open_in_chromium(page: Path, tmp_path: Path) -> tuple[str, str, Path]:
    """Load `page` headless: (the DOM after load, Chromium's log of both loads, a screenshot)."""
    assert CHROMIUM is not None
    shot = tmp_path / "report.png"
    base = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--enable-logging=stderr",
        "--v=0",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1280,4000",
    ]
    loads = [
        subprocess.run([*base, arg, page.as_uri()], capture_output=True, text=True, timeout=120)
        for arg in (f"--screenshot={shot}", "--dump-dom")
    ]
    for load in loads:
        assert load.returncode == 0, load.stderr
    return loads[1].stdout, loads[0].stderr + loads[1].stderr, shot


def assert_loads_cleanly(dom: str, log: str, shot: Path) -> list[bytes]:
    """No console message, nothing fetched, every <img> an inline PNG; returns the PNGs."""
    messages = [line for line in log.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert not messages, "\n".join(messages)
    assert "<script" not in dom
    sources = re.findall(r'<img[^>]*\bsrc="([^"]*)"', dom)
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources), sources
    links = re.findall(r'\b(?:href|src)="([^"]*)"', dom)
    assert all(link.startswith(("#", "data:")) for link in links), links
    pictures = [base64.b64decode(s.split(",", 1)[1]) for s in sources]
    assert all(p.startswith(PNG) for p in pictures)
    from PIL import Image

    assert shot.read_bytes().startswith(PNG) and shot.stat().st_size > 20_000
    with Image.open(shot) as image:
        assert image.size == (1280, 4000)
        assert len(image.convert("RGB").getcolors(2**20) or []) > 50  # not a blank page
    return pictures


def shown(value: float) -> str:
    return f"{value:.4f}"


@pytest.fixture(scope="module")
def classification_run(tmp_path_factory: pytest.TempPathFactory, small_digits: Path) -> Path:
    work = tmp_path_factory.mktemp("report")
    pipeline = write_pipeline(work / "tiny.yaml", small_digits)
    result = run_cli("run", pipeline, "--json", cwd=work)
    assert result.code == 0, result.stderr
    assert_no_traceback(result)
    return Path(result.json()["run_dir"])


@pytest.mark.e2e
@needs_chromium
def test_classification_report_loads_in_chromium_with_its_metrics(
    classification_run: Path, tmp_path: Path
):
    run = classification_run
    dom, log, shot = open_in_chromium(run / "report.html", tmp_path)
    pictures = assert_loads_cleanly(dom, log, shot)
    # The sample grid, the confusion matrix and (unless all is right) the worst errors.
    assert len(pictures) >= 2 and "Training examples, as the model reads them" in dom
    assert "Confusion matrix" in dom and "evaluation/test/confusion_matrix.png" in dom
    report = json.loads((run / "evaluation" / "test" / "metrics.json").read_text())
    for key in ("accuracy", "top_3_accuracy"):
        assert f"<td>{key}</td>" in dom and shown(report[key]) in dom
    assert shown(report["macro_avg"]["f1"]) in dom and shown(report["weighted_avg"]["f1"]) in dom
    for name, row in report["per_class"].items():
        assert f"<td>{name}</td>" in dom and shown(row["recall"]) in dom
    summary = json.loads((run / "metrics.json").read_text())
    assert shown(summary["validation"]["loss"]) in dom and shown(summary["train"]["loss"]) in dom
    assert dom.count("<svg") >= 3  # loss, accuracy and learning rate by epoch
    meta = json.loads((run / "run.json").read_text())
    assert meta["dlcli_version"] in dom and "mean epoch" in dom
    assert "type: small_cnn" in dom  # the resolved pipeline
    assert "model.keras" in dom and "export/" in dom  # the files, exports included


@pytest.mark.e2e
@needs_chromium
def test_anomaly_report_follows_evaluate_and_the_report_command(small_digits: Path, tmp_path: Path):
    pipeline = knn_anomaly_pipeline(tmp_path / "anomaly.yaml", small_digits)
    trained = run_cli("train", pipeline, "--json", cwd=tmp_path)
    assert trained.code == 0, trained.stderr
    run = Path(trained.json()["run_dir"])
    before = (run / "report.html").read_text()
    assert "Not evaluated yet" in before and "score_histogram" not in before
    evaluated = run_cli("evaluate", run, "--split", "validation", cwd=tmp_path)
    assert evaluated.code == 0, evaluated.stderr
    assert_no_traceback(evaluated)
    assert "validation split" in (run / "report.html").read_text()
    # `dlcli report` makes it again from the run directory, sample grid included.
    (run / "report.html").unlink()
    (run / "data_samples.png").unlink()
    remade = run_cli("report", run, cwd=tmp_path)
    assert remade.code == 0 and "wrote" in remade.stderr, remade.stderr
    assert (run / "data_samples.png").stat().st_size > 5000

    dom, log, shot = open_in_chromium(run / "report.html", tmp_path)
    assert_loads_cleanly(dom, log, shot)
    report = json.loads((run / "evaluation" / "validation" / "metrics.json").read_text())
    assert "validation split" in dom and "Not evaluated yet" not in dom
    assert "Training examples, as the model reads them" in dom
    for key in ("roc_auc", "pr_auc", "f1", "threshold"):
        assert f"<td>{key}</td>" in dom and shown(report[key]) in dom
    assert f'<td>confusion.tp</td><td class="n">{report["confusion"]["tp"]}</td>' in dom
    assert "Anomaly scores of normal and anomalous images" in dom


def test_report_says_what_is_missing_and_escapes_what_runs_hold(tmp_path: Path):
    from dlcli.report.html import build_run_report, write_run_report

    run = tmp_path / "run"
    run.mkdir()
    (run / "pipeline.yaml").write_text("name: '<script>alert(1)</script>'\nmodel: {type: x}\n")
    (run / "metrics.json").write_text("{not json")
    (run / "run.json").write_text(json.dumps({"command": ["dlcli", "train", "a&b.yaml"]}))
    page = build_run_report(run, samples=False).read_text()
    assert "<script" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "dlcli train &#x27;a&amp;b.yaml&#x27;" in page  # the command line, shell-quoted
    for missing in ("Not evaluated yet", "No history.csv", "No spec.json", "No data_samples"):
        assert missing in page
    assert write_run_report(tmp_path / "not-a-run") is None  # never raises: training goes on
