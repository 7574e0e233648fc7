"""Spoken digits (FSDD): the audio front end's throughput and what the input pipeline costs a
training step; with --accuracy, test accuracy of each builder on the official split; with --loso,
leave-one-speaker-out accuracy over the six speakers.

- front end: clips/s of dlcli's log-mel layer (on-graph, batched, inside the model) against
  librosa computing the same features file by file, as a hand-written script would;
- step time of the CRNN fed by dlcli's real audio pipeline against the same batch held in
  memory (goal: ratio at most 1.1, as for images);
- --accuracy: `dlcli run` of pipelines/fsdd_crnn.yaml with each audio builder (goal: >= 99.5%);
- --loso: `dlcli run` of pipelines/fsdd_loso.yaml with each speaker held out (goal: mean >= 90%).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _shared import REPO, dlcli_json, real_vs_memory_step_times

FSDD = REPO.parent / "shared" / "data" / "fsdd" / "recordings"
WEIGHTS = REPO.parent / "shared" / "weights" / "keras" / "mobilenet_2_5_224_tf_no_top.h5"
SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
BUILDERS = {
    "crnn": [],
    "rnn (bidirectional LSTM)": ["model={type: rnn}"],
    "ds_cnn": ["model={type: ds_cnn}"],
    "spectrogram_transfer (MobileNet 0.25 on ImageNet; fine-tuned)": [
        "model={type: spectrogram_transfer, backbone: MobileNet, backbone_args: {alpha: 0.25}, "
        f"weights: {WEIGHTS}, image_size: [96, 96]}}",
        "train.epochs=10",
        "train.fine_tune={epochs: 20, learning_rate: 0.0002}",
    ],
}
GOAL_RATIO = 1.1


def front_end_throughput(files: list[Path]) -> tuple[float, float]:
    """Clips/s: dlcli's log-mel layer on batches of 1 s clips, and librosa per file."""
    import keras
    import librosa
    import soundfile as sf

    from dlcli.models.frontend import FrontEndConfig

    waves = [sf.read(f, dtype="float32")[0] for f in files]
    clips = np.stack([np.pad(w[:8000], (0, max(0, 8000 - len(w)))) for w in waves])
    inputs = keras.Input((8000,))
    layer = keras.Model(inputs, FrontEndConfig(normalize="none").build(inputs, 8000))
    layer.predict(clips[:64], verbose=0)  # trace once
    start = time.perf_counter()
    layer.predict(clips, batch_size=256, verbose=0)
    on_graph = len(clips) / (time.perf_counter() - start)
    start = time.perf_counter()
    for f in files:
        wave, rate = librosa.load(f, sr=8000)
        mel = librosa.feature.melspectrogram(
            y=wave, sr=rate, n_fft=256, hop_length=80, win_length=200, n_mels=40
        )
        librosa.power_to_db(mel)
    per_file = len(files) / (time.perf_counter() - start)
    return on_graph, per_file


def step_times(batch: int, steps: int) -> tuple[float, float]:
    """Median step time of the CRNN fed by dlcli's pipeline and by one batch in memory."""

    from dlcli.config.loader import load_pipeline
    from dlcli.train.run import Trainer

    cfg = load_pipeline(REPO / "pipelines" / "fsdd_crnn.yaml", [f"train.batch_size={batch}"]).config
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, Path(run_dir), show_progress=False)
        return real_vs_memory_step_times(trainer, batch, steps)


def accuracy_table(work: Path, builders: dict[str, list[str]], seeds: list[int]) -> None:
    """Each builder at each seed: the spread across seeds is part of the answer."""
    print("\n| builder | seed | parameters | test accuracy (official split, 300 clips) | seconds |")
    print("| --- | ---: | ---: | ---: | ---: |")
    pipeline = REPO / "pipelines" / "fsdd_crnn.yaml"
    for label, sets in builders.items():
        scores = []
        for seed in seeds:
            extra = [*sets, f"seed={seed}"]
            command = ["run", str(pipeline), "--quiet", *(a for s in extra for a in ("--set", s))]
            document, seconds = dlcli_json(command, work)
            scores.append(document["evaluation"]["accuracy"])
            params = document["train"].get("parameters", "")
            print(f"| {label} | {seed} | {params} | {scores[-1]:.4f} | {seconds:.0f} |", flush=True)
        if len(seeds) > 1:
            print(f"| {label} | **mean** | | **{np.mean(scores):.4f}** (min {min(scores):.4f}) | |")


def loso_table(work: Path, sets: list[str], speakers: list[str]) -> None:
    """Each speaker held out in turn; `sets`: extra `--set` overrides (e.g. a front-end option
    to compare against the pipeline as it is)."""
    if sets:
        print(f"\nwith --set {' --set '.join(sets)}")
    print("\n| held-out speaker | test accuracy |")
    print("| --- | ---: |")
    pipeline = REPO / "pipelines" / "fsdd_loso.yaml"
    scores = []
    for speaker in speakers:
        extra = [f"data.split_rule.test={speaker}", *sets]
        command = ["run", str(pipeline), "--quiet", *(a for s in extra for a in ("--set", s))]
        document, _ = dlcli_json(command, work)
        scores.append(document["evaluation"]["accuracy"])
        print(f"| {speaker} | {scores[-1]:.4f} |", flush=True)
    print(f"| **mean** | **{np.mean(scores):.4f}** (goal >= 0.90) |")
    if len(speakers) < len(SPEAKERS):
        print(f"(mean of {len(speakers)} of the {len(SPEAKERS)} speakers)")


def timing_tables(files: list[Path], batch: int, steps: int) -> None:
    on_graph, per_file = front_end_throughput(files)
    print(f"\nlog-mel features of the {len(files)} FSDD recordings (8 kHz, 40 mels)\n")
    print("| front end | clips/s |")
    print("| --- | ---: |")
    print(f"| dlcli log-mel layer, on-graph, batches of 256 | {on_graph:.0f} |")
    print(f"| librosa, file by file (load + melspectrogram + power_to_db) | {per_file:.0f} |")
    real, memory = step_times(batch, steps)
    ratio = real / memory
    print(f"\nCRNN train step, batch {batch}, 1 s clips, median of 3x{steps} steps\n")
    print("| fed by | step time (ms) |")
    print("| --- | ---: |")
    print(f"| batches already in memory | {memory * 1000:.1f} |")
    print(f"| dlcli's real audio pipeline | {real * 1000:.1f} |")
    verdict = "met" if ratio <= GOAL_RATIO else "MISSED"
    print(f"| **ratio real / memory** | **{ratio:.3f}** (goal <= {GOAL_RATIO}: {verdict}) |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--accuracy", action="store_true", help="train each builder (slow)")
    parser.add_argument("--loso", action="store_true", help="six leave-one-out runs (slow)")
    parser.add_argument(
        "--set", dest="sets", action="append", default=[], help="--loso: an extra override"
    )
    parser.add_argument("--speakers", default=",".join(SPEAKERS), help="--loso: which to hold out")
    parser.add_argument("--seeds", default="42", help="--accuracy: comma-separated seeds")
    parser.add_argument("--builders", default=",".join(BUILDERS), help="--accuracy: which")
    parser.add_argument("--quick", action="store_true", help="skip the front-end and step timing")
    args = parser.parse_args()
    if not FSDD.is_dir():
        sys.exit(f"needs the Free Spoken Digit Dataset in {FSDD} (see ../shared/README.md)")
    if not args.quick:
        timing_tables(sorted(FSDD.glob("*.wav")), args.batch, args.steps)
    with tempfile.TemporaryDirectory() as work:
        if args.accuracy:
            chosen = {k: v for k, v in BUILDERS.items() if k in args.builders.split(",")}
            accuracy_table(Path(work), chosen, [int(s) for s in args.seeds.split(",")])
        if args.loso:
            loso_table(Path(work), args.sets, args.speakers.split(","))


if __name__ == "__main__":
    main()
