"""`dlcli init` templates: one for every task, each commented, and each a working pipeline:
`dlcli run` trains, evaluates and exports every one on tiny real data, with nothing changed
but its data path, its sizes and its length (and, for ImageNet backbones, the weights file).

(That every template validates as written is in tests/test_cli_light.py.)"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dlcli.cli.config_cmds import templates
from dlcli.config.loader import load_pipeline_text
from dlcli.registry import TASKS
from tests.conftest import DIGITS, REPO, SHARED

FSDD = SHARED / "data" / "fsdd" / "recordings"
WEIGHTS = SHARED / "weights" / "keras" / "mobilenet_2_5_224_tf_no_top.h5"
WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]

# Per template: what it needs, and the `--set` overrides that make it tiny. `{digits}`,
# `{audio}`, `{transcripts}` and `{weights}` are filled in by the fixture. Every training set
# below fits one batch of 64, so an epoch is one step.
MOBILENET = [
    "model.backbone=MobileNet",
    "model.backbone_args={alpha: 0.25}",
    "model.weights={weights}",
    "data.image_size=[32, 32]",
]
TINY: dict[str, tuple[set[str], list[str]]] = {
    "image_classification": (
        {"digits"},
        ["data.path={digits}", "data.image_size=[16, 16]", "model.filters=[8]", "model.dense=[16]"],
    ),
    "transfer": (
        {"digits", "weights"},
        ["data.path={digits}", *MOBILENET, "train.fine_tune.epochs=1"],
    ),
    "anomaly": (
        {"digits", "weights"},
        ["data.path={digits}", *MOBILENET, "task.normal_classes=['0']"],
    ),
    "denoise": (
        {"digits"},
        ["data.path={digits}", "data.image_size=[16, 16]", "model.filters=[8, 16]"],
    ),
    "vae": (
        {"digits"},
        [
            "data.path={digits}",
            "data.image_size=[16, 16]",
            "model.filters=[8, 16]",
            "model.hidden=16",
            "model.latent=4",
        ],
    ),
    "gan": (
        {"digits"},
        [
            "data.path={digits}",
            "data.image_size=[16, 16]",
            "model.filters=[16, 8]",
            "model.latent=8",
        ],
    ),
    "audio_classification": (
        {"fsdd"},
        ["data.path={audio}", "model.filters=[8]", "model.units=[8]"],
    ),
    "transcription": (
        {"fsdd"},
        [
            "data.path={transcripts}",
            "data.buckets=1",
            "model.filters=[8, 8, 8]",
            "model.units=[16]",
            "task.decoder.beam_width=4",
        ],
    ),
}
COMMON = ["train.epochs=1", "train.batch_size=64", "export.formats=[keras]"]

# The CLI, run once per template inside one process: TensorFlow is imported once, not eight times.
RUNNER = """
import json, sys, time, traceback
from dlcli.cli.main import app
jobs, results = json.loads(sys.argv[1]), {}
for name, args in jobs.items():
    start, error = time.perf_counter(), None
    try:
        app(args, prog_name="dlcli", standalone_mode=False)
    except BaseException as exc:
        error = "".join(traceback.format_exception(exc))[-4000:]
    results[name] = {"error": error, "seconds": round(time.perf_counter() - start, 1)}
with open(sys.argv[2], "w") as handle:
    json.dump(results, handle)
"""


def task_of(text: str) -> str:
    return load_pipeline_text(text, source=Path("/t/pipeline.yaml")).config.task.type


def test_every_task_has_a_template():
    covered = {task_of(text) for text in templates().values()}
    assert set(TASKS.names()) <= covered, f"no template for {set(TASKS.names()) - covered}"


@pytest.mark.parametrize("template", sorted(templates()))
def test_template_explains_itself(template: str):
    text = templates()[template]
    header = text.split("\nname:", 1)[0]
    assert header.startswith("# ") and len(header.splitlines()) >= 2, "a header says what it is"
    assert "dlcli validate" in header and "dlcli run" in header, "and how to check and run it"
    config = yaml.safe_load(text)
    assert config["name"].startswith("my_") and {"data", "model", "task"} <= set(config)


def test_every_template_has_tiny_settings_for_the_run_test():
    assert set(TINY) == set(templates()), "give a new template its tiny settings in TINY"


def tiny_digits(root: Path) -> Path:
    """8 of each bundled digit: 60 to train, 10 to validate, 10 to test."""
    for class_dir in sorted(p for p in DIGITS.iterdir() if p.is_dir()):
        (root / class_dir.name).mkdir(parents=True)
        for image in sorted(class_dir.glob("*.png"))[:8]:
            shutil.copy(image, root / class_dir.name / image.name)
    return root


def fsdd_manifests(work: Path) -> tuple[Path, Path]:
    """Manifests of FSDD recordings (where they lie): 3 spoken digits by 6 speakers, labelled,
    and every digit by 3 speakers, transcribed."""
    speakers = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    audio, transcripts = work / "audio.csv", work / "transcripts.csv"
    with audio.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        for digit in range(3):
            writer.writerows([FSDD / f"{digit}_{s}_0.wav", WORDS[digit]] for s in speakers)
    with transcripts.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "transcript"])
        for digit in range(10):
            writer.writerows([FSDD / f"{digit}_{s}_1.wav", WORDS[digit]] for s in speakers[:3])
    return audio, transcripts


@pytest.fixture(scope="module")
def template_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict:
    # Only the templates whose tests were selected (`-k gan` runs one).
    selected = {
        item.callspec.params["template"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_template_trains_evaluates_and_exports"
    }
    work = tmp_path_factory.mktemp("templates")
    have = {"digits": True, "fsdd": FSDD.is_dir(), "weights": WEIGHTS.is_file()}
    fill = {"digits": tiny_digits(work / "digits"), "weights": WEIGHTS}
    if have["fsdd"]:
        fill["audio"], fill["transcripts"] = fsdd_manifests(work)
    jobs, skipped = {}, {}
    for name, text in sorted(templates().items()):
        if name not in selected:
            continue
        needs, overrides = TINY[name]
        missing = sorted(n for n in needs if not have[n])
        if missing:
            skipped[name] = f"needs ../shared ({', '.join(missing)})"
            continue
        (work / f"{name}.yaml").write_text(text)
        args = ["run", f"{name}.yaml", "--output", f"runs/{name}", "--quiet"]
        for override in [*COMMON, *overrides]:
            for key, value in fill.items():
                override = override.replace(f"{{{key}}}", str(value))
            args += ["--set", override]
        jobs[name] = args
    results = work / "results.json"
    proc = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps(jobs), str(results)],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert results.exists(), proc.stderr[-4000:]
    return {"work": work, "results": json.loads(results.read_text()), "skipped": skipped}


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.parametrize("template", sorted(TINY))
def test_template_trains_evaluates_and_exports(template: str, template_runs: dict):
    if template in template_runs["skipped"]:
        pytest.skip(template_runs["skipped"][template])
    result = template_runs["results"][template]
    assert result["error"] is None, result["error"]
    run = template_runs["work"] / "runs" / template
    summary = json.loads((run / "metrics.json").read_text())
    # kNN anomaly detection trains nothing; transfer runs a head epoch and a fine-tuning one.
    assert summary["epochs_run"] == {"anomaly": 0, "transfer": 2}.get(template, 1), summary
    assert all(math.isfinite(value) for value in summary["train"].values()), summary["train"]
    assert (run / "model.keras").is_file() and (run / "export" / "model.keras").is_file()
    evaluation = json.loads((run / "evaluation" / "test" / "metrics.json").read_text())
    assert evaluation, "the task's report on the test split"
