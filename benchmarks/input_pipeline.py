"""Does dlcli's image loader keep up? Measurements on the real sign-language digits.

1. First-pass decode throughput (images/s), side by side in one process, rounds interleaved
   (median of `--rounds`): `keras.utils.image_dataset_from_directory` (what a Keras user writes)
   against dlcli's loader on the same files at the same size. dlcli also scans every header
   first (EXIF orientation, bad files, which decoder), which Keras does not do: its rate is shown
   alone and with the scan. Goal: dlcli's decode at least as fast as Keras's (ratio >= 1.0).
   The loader's later epochs come from its uint8 cache.
2. Step time: the same model and train step fed by dlcli's real-data pipeline against the
   same batches already in memory. Goal: real / in-memory <= 1.1 (the loader never starves
   the model).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _shared import SIGNS, real_vs_memory_step_times, signs_data_section

GOAL = 1.1

PIPELINE = """
name: input_bench
seed: 0
{data}model: {{type: transfer, backbone: MobileNet, backbone_args: {{alpha: 0.25}}, weights: null,
         freeze_backbone: false}}
train: {{epochs: 100, batch_size: {batch}, steps_per_execution: 1}}
"""


def rate_of(batches: Any) -> float:
    start, count = time.perf_counter(), 0
    for images, _ in batches:
        count += int(images.shape[0])
    return count / (time.perf_counter() - start)


def decode_throughput(size: int, rounds: int) -> tuple[list[tuple[str, float]], float]:
    import keras
    import tensorflow as tf

    from dlcli.data.images import image_batch, image_dataset, scan_images

    files = sorted(str(p) for p in SIGNS.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    rates: dict[str, list[float]] = {
        "keras": [],
        "keras_cache": [],
        "scan": [],
        "decode": [],
        "cached": [],
    }
    for _ in range(rounds):
        ds = keras.utils.image_dataset_from_directory(
            str(SIGNS), image_size=(size, size), batch_size=32, shuffle=False, verbose=False
        )
        rates["keras"].append(rate_of(ds.prefetch(tf.data.AUTOTUNE)))
        rates["keras_cache"].append(rate_of(ds.cache().prefetch(tf.data.AUTOTUNE)))
        start = time.perf_counter()
        scan = scan_images(files, [0] * len(files), "fail", (size, size))
        rates["scan"].append(len(files) / (time.perf_counter() - start))
        cached = image_dataset(scan, (size, size), 3).cache()
        batches = image_batch(cached, 32, False).prefetch(tf.data.AUTOTUNE)
        rates["decode"].append(rate_of(batches))
        rates["cached"].append(rate_of(batches))
    median = {k: statistics.median(v) for k, v in rates.items()}
    both = 1 / (1 / median["scan"] + 1 / median["decode"])
    rows = [
        ("keras.utils.image_dataset_from_directory (no EXIF, no bad-file check)", median["keras"]),
        ("the same, filling a `.cache()` as it goes (float32)", median["keras_cache"]),
        ("dlcli: header scan (EXIF, bad files, decoder), once per run", median["scan"]),
        ("dlcli: first-pass decode (filling its uint8 cache)", median["decode"]),
        ("dlcli: scan + first-pass decode", both),
        ("dlcli: later epochs (from its uint8 cache)", median["cached"]),
    ]
    return rows, median["decode"] / median["keras"]


def step_times(size: int, batch: int, steps: int) -> tuple[float, float]:

    from dlcli.config.loader import load_pipeline_text
    from dlcli.train.run import Trainer

    cfg = load_pipeline_text(PIPELINE.format(data=signs_data_section(size), batch=batch)).config
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = Trainer(cfg, Path(run_dir), show_progress=False)
        return real_vs_memory_step_times(trainer, batch, steps)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--decode-only", action="store_true", help="skip the step-time part")
    args = parser.parse_args()
    rows, ratio = decode_throughput(args.size, args.rounds)
    print(f"\nsign-language digits, 2,062 JPEGs (three 3024x3024) to {args.size}x{args.size} RGB")
    print(f"median of {args.rounds} interleaved rounds\n")
    print("| loader | images/s |")
    print("| --- | ---: |")
    for name, rate in rows:
        print(f"| {name} | {rate:.0f} |")
    verdict = "met" if ratio >= 1.0 else "MISSED"
    print(f"| **ratio dlcli decode / Keras** | **{ratio:.2f}** (goal >= 1.0: {verdict}) |")
    if args.decode_only:
        return
    real, memory = step_times(args.size, args.batch, args.steps)
    ratio = real / memory
    print(
        f"\nMobileNet 0.25 train step, batch {args.batch}, {args.size}px, median of 3x"
        f"{args.steps} steps\n"
    )
    print("| fed by | step time (ms) |")
    print("| --- | ---: |")
    print(f"| batches already in memory | {memory * 1000:.1f} |")
    print(f"| dlcli's real-data pipeline | {real * 1000:.1f} |")
    verdict = "met" if ratio <= GOAL else "MISSED"
    print(f"| **ratio real / memory** | **{ratio:.3f}** (goal <= {GOAL}: {verdict}) |")


if __name__ == "__main__":
    main()
