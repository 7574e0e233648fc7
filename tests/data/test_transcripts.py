"""Manifests of recordings with transcripts: dlcli's CSV and NeMo's JSONL, whole utterances of
their own length, and clear errors for what does not fit."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from dlcli.config.loader import load_pipeline
from dlcli.data import create_dataset
from dlcli.errors import ConfigError, DataError


def write(path: Path, seconds: float, rate: int = 8000) -> None:
    import soundfile as sf

    t = np.arange(round(seconds * rate)) / rate
    sf.write(path, (0.3 * np.sin(2 * np.pi * 300 * t)).astype("float32"), rate)


@pytest.fixture
def clips(tmp_path: Path) -> Path:
    (tmp_path / "wavs").mkdir()
    for i, seconds in enumerate([0.5, 1.0, 1.5, 2.0, 0.7, 1.2]):
        write(tmp_path / "wavs" / f"{i}.wav", seconds)
    return tmp_path


def pipeline(tmp_path: Path, data: str, task: str = "{type: transcription}") -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(f"name: t\ndata: {data}\nmodel: {{type: crnn}}\ntask: {task}\n")
    return path


def test_csv_transcripts_give_whole_utterances_with_their_text(clips: Path):
    rows = ["path,transcript,split"] + [
        f"wavs/{i}.wav,Word {i}!,{'test' if i == 5 else 'train'}" for i in range(6)
    ]
    (clips / "m.csv").write_text("\n".join(rows) + "\n")
    cfg = load_pipeline(
        pipeline(clips, "{type: audio_manifest, path: m.csv, sample_rate: 8000}")
    ).config
    assert cfg.data.targets == "transcript"  # set by the task
    bundle = create_dataset(cfg.data, seed=0)
    assert bundle.sizes == {"train": 5, "validation": 0, "test": 1}
    assert bundle.spec.input_shape == (None,)
    lengths = [int(w.shape[0]) for w, _ in bundle.splits["train"]]
    assert lengths == [4000, 8000, 12000, 16000, 5600]  # not cropped, not padded
    assert bundle.transcripts["test"] == ["Word 5!"]  # normalised later, by the task


def test_nemo_jsonl_manifests_are_read_with_their_own_keys(clips: Path):
    with (clips / "m.jsonl").open("w") as handle:
        for i in range(6):
            handle.write(json.dumps({"audio_filepath": f"wavs/{i}.wav", "text": f"w{i}"}) + "\n")
    cfg = load_pipeline(
        pipeline(
            clips,
            "{type: audio_manifest, path: m.jsonl, sample_rate: 8000, "
            "split: {validation: 0.0, test: 0.34}}",
        )
    ).config
    bundle = create_dataset(cfg.data, seed=0)
    assert bundle.sizes["train"] == 4 and bundle.sizes["test"] == 2
    assert sorted(bundle.transcripts["train"] + bundle.transcripts["test"]) == [
        f"w{i}" for i in range(6)
    ]


def test_a_manifest_without_transcripts_names_the_line(clips: Path):
    (clips / "m.csv").write_text("path,label\nwavs/0.wav,yes\n")
    cfg = load_pipeline(
        pipeline(clips, "{type: audio_manifest, path: m.csv, sample_rate: 8000}")
    ).config
    with pytest.raises(DataError, match=r"m\.csv:2: missing transcript"):
        create_dataset(cfg.data, seed=0)


@pytest.mark.parametrize(
    ("data", "task", "message"),
    [
        (
            "{type: audio_manifest, path: m.csv, augment: {shift: 0.1}}",
            "{type: transcription}",
            "for fixed-length clips",
        ),
        (
            "{type: audio_manifest, path: m.csv, targets: transcript}",
            "{type: classification}",
            "needs `label`",
        ),
        ("{type: audio_folder, path: clips}", "{type: transcription}", "audio_manifest"),
    ],
)
def test_what_cannot_hold_transcripts_is_refused_at_validation(
    tmp_path: Path, data: str, task: str, message: str
):
    with pytest.raises(ConfigError, match=message):
        load_pipeline(pipeline(tmp_path, data, task))


def test_transcripts_take_generated_noise(tmp_path: Path):
    """Noise stays within each utterance (its padding stays silent), so transcripts take it."""
    data = "{type: audio_manifest, path: m.csv, augment: {noise: {snr_db: [10, 30]}}}"
    cfg = load_pipeline(pipeline(tmp_path, data, "{type: transcription}")).config
    noise = cfg.data.augment.noise
    assert noise.path is None and noise.colors == ["white", "pink"]
