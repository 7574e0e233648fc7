"""Speech recognition through the real CLI on real FSDD speech: continuous digit utterances
built by scripts/fsdd_sentences.py, a CTC model trained and evaluated (CER, WER, worst
utterances, CER by length), scored on another manifest (NeMo's JSONL layout), transcribing
files of another sample rate and format, and the same training under MirroredStrategy."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import REPO, SHARED, assert_no_traceback, run_cli, run_on_two_logical_cpus

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (SHARED / "data" / "fsdd").is_dir(), reason="needs ../shared/data/fsdd"),
]

PIPELINE = """name: digits_ctc
seed: 1
data:
  type: audio_manifest
  path: sentences/manifest.csv
  sample_rate: 8000
  normalize: peak
  buckets: 2
model:
  type: crnn
  filters: [8, 16]
  pool: [[2, 2], [1, 2]]
  units: [32]
  dropout: 0.0
task:
  type: transcription
  decoder: {type: beam, beam_width: 4}
train:
  epochs: 5
  batch_size: 8
  optimizer: {type: adam, learning_rate: 0.003}
export: {formats: [keras]}
"""


def history(run: Path) -> list[dict[str, str]]:
    with (run / "history.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def ctc_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("ctc")
    made = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "fsdd_sentences.py"),
            "--out",
            str(work / "sentences"),
            "--limit",
            "8",
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    (work / "p.yaml").write_text(PIPELINE)
    result = run_cli("run", work / "p.yaml", "--json", cwd=work)
    assert result.code == 0, result.stderr
    return {"work": work, "result": result, "run": Path(result.json()["run_dir"])}


def test_the_script_writes_speaker_held_out_continuous_speech(ctc_run: dict):
    with (ctc_run["work"] / "sentences" / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["speaker"] for r in rows if r["split"] == "test"} == {"theo"}
    assert "theo" not in {r["speaker"] for r in rows if r["split"] != "test"}
    words = [len(r["transcript"].split()) for r in rows]
    assert min(words) >= 2 and max(words) <= 7
    import soundfile as sf

    info = sf.info(ctc_run["work"] / "sentences" / rows[0]["path"])
    assert info.samplerate == 8000 and info.duration > 0.5


def test_ctc_run_learns_and_reports_cer_wer_and_worst_utterances(ctc_run: dict):
    assert_no_traceback(ctc_run["result"])
    run, report = ctc_run["run"], ctc_run["result"].json()["evaluation"]
    rows = history(run)
    assert "val_cer" in rows[0] and float(rows[-1]["loss"]) < float(rows[0]["loss"])
    assert report["utterances"] == 8 and report["decoder"] == "beam"
    for key in ("cer", "wer", "greedy_cer", "greedy_wer"):
        assert 0.0 <= report[key] <= 5.0
    assert report["cer_by_length"] and sum(r["utterances"] for r in report["cer_by_length"]) == 8
    vocabulary = json.loads((run / "vocabulary.json").read_text())
    assert vocabulary["tokens"][0] == "<blank>" and " " in vocabulary["tokens"]
    assert set("zeroneightfivesx") <= set(vocabulary["tokens"])
    with (run / "evaluation" / "test" / "transcripts.csv").open() as handle:
        transcripts = list(csv.DictReader(handle))
    assert len(transcripts) == 8 and all(r["reference"] for r in transcripts)
    assert (run / "export" / "vocabulary.json").is_file()
    assert json.loads((run / "spec.json").read_text())["input_shape"] == [None]


def test_evaluate_scores_another_manifest_in_nemo_layout(ctc_run: dict):
    work = ctc_run["work"]
    with (work / "sentences" / "manifest.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] == "validation"][:6]
    nemo = work / "sentences" / "other.jsonl"
    with nemo.open("w") as handle:
        for r in rows:  # NeMo's keys; no split column: all of it is carved by data.split
            handle.write(
                json.dumps(
                    {"audio_filepath": r["path"], "text": r["transcript"].upper(), "duration": 1.0}
                )
                + "\n"
            )
    run = ctc_run["run"]
    own = (run / "evaluation" / "test" / "metrics.json").read_bytes()
    result = run_cli(
        "evaluate",
        run,
        "--json",
        "--set",
        f"data.path={nemo}",
        "--set",
        "data.split={validation: 0.0, test: 0.5}",
        cwd=work,
    )
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["utterances"] == 3 and report["task"] == "transcription"
    assert report["overrides"][0] == f"data.path={nemo}"
    # The other manifest's score sits beside the run's own, which stays the run's test score.
    out_dir = Path(report["output_dir"])
    assert out_dir.parent == run / "evaluation" and out_dir.name.startswith("test-")
    assert (run / "evaluation" / "test" / "metrics.json").read_bytes() == own
    listed = run_cli("runs", "list", "--json", cwd=work)
    assert listed.code == 0, listed.stderr
    entries = json.loads(listed.stdout)
    (entry,) = [r for r in entries if (work / r["run_dir"]).resolve() == run.resolve()]
    assert list(entry["evaluation"]) == ["test"]
    assert entry["evaluation"]["test"]["cer"] == json.loads(own)["cer"]
    assert f"test split, --set data.path={nemo}" in (run / "report.html").read_text()
    out = out_dir / "transcripts.csv"
    with out.open() as handle:
        references = [r["reference"] for r in csv.DictReader(handle)]
    assert all(ref == ref.lower() for ref in references)  # the run's text normalisation


def test_predict_transcribes_files_of_another_rate_and_format(ctc_run: dict, tmp_path: Path):
    import soundfile as sf
    import soxr

    source = next((ctc_run["work"] / "sentences" / "wavs" / "test").glob("*.wav"))
    wave, rate = sf.read(source, dtype="float32")
    stereo = np.stack([soxr.resample(wave, rate, 44100)] * 2, axis=1)
    sf.write(tmp_path / "a.flac", stereo, 44100)
    sf.write(tmp_path / "b.ogg", soxr.resample(wave, rate, 16000), 16000)
    result = run_cli(
        "predict", ctc_run["run"], tmp_path / "a.flac", tmp_path / "b.ogg", source, "--json"
    )
    assert result.code == 0, result.stderr
    rows = {Path(r["path"]).name: r for r in result.predictions()}
    assert set(rows) == {"a.flac", "b.ogg", source.name}
    assert all(isinstance(r["transcript"], str) for r in rows.values())
    out = tmp_path / "out.csv"
    assert run_cli("predict", ctc_run["run"], source, "-o", out).code == 0
    with out.open() as handle:
        assert next(iter(csv.DictReader(handle))).keys() == {"path", "transcript"}


def test_transcription_on_a_source_without_transcripts_is_a_usage_error(tmp_path: Path):
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "name: x\ndata: {type: audio_folder, path: clips, sample_rate: 8000}\n"
        "model: {type: crnn}\ntask: {type: transcription}\n"
    )
    result = run_cli("validate", pipeline)
    assert result.code == 2
    assert "audio_manifest" in result.stderr and "transcript" in result.stderr
    assert_no_traceback(result)


def test_ctc_trains_under_mirrored_strategy_on_two_logical_cpus(ctc_run: dict):
    result = run_on_two_logical_cpus(
        "train",
        ctc_run["work"] / "p.yaml",
        "--json",
        "--set",
        "train.strategy=mirrored",
        "--set",
        "train.epochs=2",
        cwd=ctc_run["work"],
    )
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["strategy"] == "mirrored" and summary["replicas"] == 2
    assert np.isfinite(summary["validation"]["cer"]) and np.isfinite(summary["train"]["loss"])
