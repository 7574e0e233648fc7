"""A spoken-digit classifier through the real CLI, on real FSDD recordings: train, evaluate
(with a spectrogram grid of the worst errors), predict on a long file in windows, embed."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED, assert_no_traceback, run_cli

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not (SHARED / "data" / "fsdd").is_dir(), reason="needs ../shared/data/fsdd"),
]
RECORDINGS = SHARED / "data" / "fsdd" / "recordings"


@pytest.fixture(scope="module")
def audio_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    work = tmp_path_factory.mktemp("audio")
    clips = work / "clips"
    clips.mkdir()
    for speaker in ("george", "jackson", "theo"):
        for digit in range(3):
            for take in range(12):
                name = f"{digit}_{speaker}_{take}.wav"
                shutil.copy(RECORDINGS / name, clips / name)
    pipeline = work / "p.yaml"
    pipeline.write_text(
        "name: digits_audio\nseed: 3\n"
        "data:\n  type: audio_folder\n  path: clips\n"
        "  label_regex: '^(?P<label>\\d+)_(?P<speaker>[a-z]+)_(?P<take>\\d+)'\n"
        "  sample_rate: 8000\n  duration: 0.8\n  normalize: peak\n"
        "  split_rule: {column: take, test: '0-2'}\n  split: {validation: 0.15}\n"
        "model:\n  type: ds_cnn\n  filters: 16\n  blocks: 2\n"
        "train:\n  epochs: 6\n  batch_size: 16\n  optimizer: {type: adam, learning_rate: 0.003}\n"
        "export: {formats: [keras]}\n"
    )
    result = run_cli("run", pipeline, "--json", cwd=work)
    assert result.code == 0, result.stderr
    return {"work": work, "result": result, "run": Path(result.json()["run_dir"])}


def test_audio_run_trains_evaluates_and_draws_spectrograms(audio_run: dict):
    assert_no_traceback(audio_run["result"])
    document = audio_run["result"].json()
    report = document["evaluation"]
    assert report["examples"] == 27  # takes 0-2 of 3 digits x 3 speakers
    assert report["accuracy"] > 1 / 3  # better than chance after six short epochs
    spec = json.loads((audio_run["run"] / "spec.json").read_text())
    assert spec["modality"] == "audio" and spec["sample_rate"] == 8000
    assert spec["input_shape"] == [6400]
    grid = audio_run["run"] / "evaluation" / "test" / "misclassified.png"
    assert report["accuracy"] == 1.0 or grid.stat().st_size > 5000


def test_predict_classifies_a_long_recording_in_windows(audio_run: dict, tmp_path: Path):
    import soundfile as sf

    parts = [sf.read(RECORDINGS / f"{d}_theo_40.wav", dtype="float32")[0] for d in (0, 1, 2)]
    silence = np.zeros(4000, np.float32)
    long = np.concatenate([parts[0], silence, parts[1], silence, parts[2]])
    # Another rate and two channels: predict resamples and mixes down as training did.
    stereo = np.stack([long, long], axis=1)
    path = tmp_path / "long.flac"
    import soxr

    sf.write(path, soxr.resample(stereo, 8000, 22050), 22050)
    out = tmp_path / "windows.csv"
    result = run_cli(
        "predict", audio_run["run"], path, "--window", "0.8", "--hop", "0.4", "-o", out
    )
    assert result.code == 0, result.stderr
    rows = list(csv.DictReader(out.open()))
    seconds = len(long) / 8000
    assert len(rows) == 1 + int(np.ceil((seconds - 0.8) / 0.4))
    assert [float(r["start"]) for r in rows][:3] == [0.0, 0.4, 0.8]
    assert all(float(r["end"]) - float(r["start"]) == pytest.approx(0.8) for r in rows)
    assert {r["label_1"] for r in rows} <= {"0", "1", "2"}

    plain = run_cli("predict", audio_run["run"], RECORDINGS / "2_theo_45.wav", "--json")
    assert plain.code == 0, plain.stderr
    assert plain.predictions()[0]["label"] in {"0", "1", "2"}
    refused = run_cli("predict", audio_run["run"], path, "--hop", "0.4")
    assert refused.code == 2 and "--window" in refused.stderr


def test_embed_audio(audio_run: dict, tmp_path: Path):
    clips = audio_run["work"] / "clips"
    result = run_cli("embed", audio_run["run"], clips, "-o", tmp_path / "emb.npy")
    assert result.code == 0, result.stderr
    assert np.load(tmp_path / "emb.npy").shape[0] == 108
