"""Does dlcli's image loader keep up? Two measurements on the real sign-language digits.

1. Decode throughput (images/s): dlcli's tf.data loader (parallel Pillow decode, EXIF,
   resize) against a naive per-file Python loop doing the same work, and the loader's
   second pass from its in-memory cache.
2. Step time: the same model and train step fed by dlcli's real-data pipeline against the
   same batches already in memory. Goal: real / in-memory <= 1.1 (the loader never starves
   the model).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from _shared import SIGNS, real_vs_memory_step_times, signs_data_section

GOAL = 1.1

PIPELINE = """
name: input_bench
seed: 0
{data}model: {{type: transfer, backbone: MobileNet, backbone_args: {{alpha: 0.25}}, weights: null,
         freeze_backbone: false}}
train: {{epochs: 100, batch_size: {batch}, steps_per_execution: 1}}
"""


def decode_throughput(size: int) -> list[tuple[str, float]]:
    import tensorflow as tf

    from dlcli.data.images import image_dataset, read_image

    files = sorted(str(p) for p in SIGNS.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    start = time.perf_counter()
    for path in files:
        read_image(path, (size, size), 3)
    naive = len(files) / (time.perf_counter() - start)

    ds = image_dataset(files, [0] * len(files), (size, size), 3).cache()
    batched = ds.batch(64).prefetch(tf.data.AUTOTUNE)
    start = time.perf_counter()
    for _ in batched:
        pass
    first = len(files) / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in batched:
        pass
    cached = len(files) / (time.perf_counter() - start)
    return [
        ("naive Python loop (Pillow, one file at a time)", naive),
        ("dlcli loader, first pass (parallel decode)", first),
        ("dlcli loader, later epochs (from its cache)", cached),
    ]


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
    args = parser.parse_args()
    rows = decode_throughput(args.size)
    print(f"\nsign-language digits, 2,062 JPEGs (three 3024x3024) to {args.size}x{args.size} RGB\n")
    print("| loader | images/s |")
    print("| --- | ---: |")
    for name, rate in rows:
        print(f"| {name} | {rate:.0f} |")
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
