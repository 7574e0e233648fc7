"""How much memory does one training epoch on a large image folder take? Peak RSS of one epoch at
224x224 on 5,000 and 20,000 images, dlcli's three caches side by side with what a Keras user
writes instead.

A folder of N JPEGs in ten class folders is made of hard links to the real sign-language digits
(../shared): every photo in turn, the three 3024x3024 ones first, names made unique. The same
tiny model (a small CNN: two conv blocks of 4 and 8 filters without batch norm, which would
triple the step time on 2 cores) trains one epoch on 95% of it (5% validation, evaluated at the
end of the epoch), batch 32, each way in a process of its own:

- `dlcli train` with `data.cache: auto` (memory when the decoded uint8 images fit 25% of RAM,
  else disk), `disk` (a cache folder in the work folder, built in the same run) and `none`
  (decoded again every epoch); the shuffle buffer is `train.shuffle_buffer`, 10,000 by default.
  On the large folder `cache: none` runs once more with a shuffle buffer of `--small-buffer`
  (1,000), which shows what the buffer itself holds. The cache dlcli chose is read from the
  run's `train.log`.
- a hand-written Keras script: `keras.utils.image_dataset_from_directory(..., image_size=(224,
  224), validation_split=0.05)`, `.cache()` on both, `model.fit` for one epoch. Its cache holds
  float32 batches in memory: 602 kB an image at 224 px, 12 GB for 20,000 images. When that
  would not fit in the memory now available the row is skipped, not run.

Peak RSS is the kernel's high-water mark of resident memory for that process alone: `ru_maxrss`
from `os.wait4` on its pid (not RUSAGE_CHILDREN, which keeps the maximum over every child so far).
Wall time is the whole process, TensorFlow's import (about 6 s on 2 cores) included; images/s is
the folder's images over it.

Goal: dlcli's peak RSS bounded whatever the folder's size: it may grow with the set only up to
its in-memory cache (25% of RAM by construction), and with `cache: disk` or `none` by at most
the shuffle buffer.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _shared import REPO, SIGNS

SIZE = 224
BATCH = 32
VALIDATION = 0.05

PIPELINE = """
name: cache_memory
seed: 0
data:
  type: image_folder
  path: {folder}
  image_size: [{size}, {size}]
  channels: 3
  split: {{validation: {validation}, test: 0.0}}
  cache: {cache}
  cache_dir: {cache_dir}
model:
  type: small_cnn
  filters: [4, 8]
  convs_per_block: 1
  batch_norm: false
  dense: [8]
  dropout: 0.1
train: {{epochs: 1, batch_size: {batch}{buffer}}}
export: {{formats: [keras]}}
"""

KERAS_SCRIPT = """
import sys

import keras
from keras import layers

folder, size, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
validation = float(sys.argv[4])
train, val = keras.utils.image_dataset_from_directory(
    folder, image_size=(size, size), batch_size=batch, validation_split=validation,
    subset="both", seed=0, verbose=False,
)
classes = len(train.class_names)
train, val = train.cache(), val.cache()

inputs = keras.Input((size, size, 3))
x = layers.Rescaling(1 / 255)(inputs)
for filters in (4, 8):
    x = layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
    x = layers.MaxPooling2D()(x)
x = layers.GlobalAveragePooling2D()(x)
x = layers.Dropout(0.1)(x)
x = layers.Dense(8, activation="relu")(x)
x = layers.Dropout(0.1)(x)
outputs = layers.Dense(classes, activation="softmax")(x)
model = keras.Model(inputs, outputs)
model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
model.fit(train, validation_data=val, epochs=1, verbose=2)
"""

CHOICE = re.compile(r"cache (memory|disk|none): ([\d.]+ [kMG]B)[^\n]*")


def build_folder(folder: Path, count: int) -> None:
    """`count` JPEGs linked from the real photos into their class folders, the largest first,
    then a fixed shuffle; names made unique."""
    photos = sorted(SIGNS.glob("*/*.JPG"))
    if not photos:
        sys.exit(f"needs the sign-language digits in {SIGNS} (see ../shared/README.md)")
    large = [p for p in photos if p.stat().st_size > 1_000_000]
    rest = [p for p in photos if p not in large]
    random.Random(0).shuffle(rest)
    order = large + rest
    for i in range(count):
        source = order[i % len(order)]
        target = folder / source.parent.name / f"{i:05d}_{source.stem}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:  # another filesystem: copy instead
            shutil.copy(source, target)


def available_bytes() -> int:
    """MemAvailable from /proc/meminfo."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 0


def peak_rss(command: list[str], stdout: Path) -> tuple[float, float]:
    """Run `command` (stdout to `stdout`, stderr next to it); its peak resident memory in GB and
    its wall time in seconds."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    stderr = stdout.with_suffix(".err")
    start = time.perf_counter()
    with stdout.open("w") as out, stderr.open("w") as err:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        tail = stderr.read_text()[-3000:]
        sys.exit(f"{' '.join(command[:5])} failed ({proc.returncode}):\n{tail}")
    return usage.ru_maxrss * 1024 / 1e9, seconds  # Linux: kilobytes


def dlcli_row(
    work: Path, folder: Path, count: int, cache: str, buffer: int | None = None
) -> tuple[str, float, float]:
    """Train one epoch with `dlcli train` (`train.shuffle_buffer: buffer` if given, else the
    default); (the cache it used, peak RSS GB, wall s)."""
    pipeline = work / f"pipeline_{count}_{cache}_{buffer}.yaml"
    pipeline.write_text(
        PIPELINE.format(
            folder=folder,
            size=SIZE,
            validation=VALIDATION,
            cache=cache,
            cache_dir=work / f"cache_{count}",
            batch=BATCH,
            buffer=f", shuffle_buffer: {buffer}" if buffer else "",
        )
    )
    out = work / "dlcli.json"
    command = [sys.executable, "-m", "dlcli", "train", str(pipeline), "--runs-dir"]
    command += [str(work / "runs"), "--json"]
    gb, seconds = peak_rss(command, out)
    summary = json.loads(out.read_text())
    text = (Path(summary["run_dir"]) / "train.log").read_text()
    found = CHOICE.search(text)
    chosen = f"{found.group(1)} ({found.group(2)} decoded)" if found else "?"
    if cache == "auto" and found:
        chosen = f"auto → {chosen}"
    if buffer:
        chosen += f", shuffle_buffer {buffer:,}"
    shutil.rmtree(summary["run_dir"], ignore_errors=True)
    return chosen, gb, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=20_000, help="images in the large folder")
    parser.add_argument(
        "--small", type=int, default=5_000, help="images in the small folder (0: none)"
    )
    parser.add_argument(
        "--caches", default="auto,disk,none", help="dlcli caches to measure, comma-separated"
    )
    parser.add_argument(
        "--small-buffer",
        type=int,
        default=1_000,
        help="also `cache: none` with this train.shuffle_buffer on the large folder (0: not)",
    )
    parser.add_argument("--no-keras", action="store_true", help="skip the Keras script")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="cache_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    script = work / "keras_fit.py"
    script.write_text(KERAS_SCRIPT)
    rows: list[tuple[str, str, int, float, float]] = []
    try:
        for count in [n for n in (args.small, args.images) if n]:
            folder = work / f"images_{count}"
            if not folder.is_dir():
                build_folder(folder, count)
            runs: list[tuple[str, int | None]] = [(c, None) for c in args.caches.split(",") if c]
            if count == args.images and args.small_buffer:
                runs.append(("none", args.small_buffer))
            for cache, buffer in runs:
                chosen, gb, seconds = dlcli_row(work, folder, count, cache, buffer)
                rows.append(("dlcli train", chosen, count, gb, seconds))
                print(
                    f"dlcli {chosen}, {count} images: {gb:.2f} GB, {seconds:.0f} s", file=sys.stderr
                )
            shutil.rmtree(work / f"cache_{count}", ignore_errors=True)
            if args.no_keras:
                continue
            name = "Keras: image_dataset_from_directory(...).cache() + model.fit"
            need = count * SIZE * SIZE * 3 * 4 + 2e9  # float32 cache, TensorFlow itself
            if need > available_bytes() - 2e9:
                print(
                    f"{name}, {count} images: skipped, needs ~{need / 1e9:.1f} GB", file=sys.stderr
                )
                rows.append((name, "skipped: would not fit", count, float("nan"), float("nan")))
                continue
            command = [sys.executable, str(script), str(folder), str(SIZE), str(BATCH)]
            gb, seconds = peak_rss([*command, str(VALIDATION)], work / "keras.txt")
            rows.append((name, "memory (float32 batches)", count, gb, seconds))
            print(f"Keras, {count} images: {gb:.2f} GB, {seconds:.0f} s", file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    print(
        f"\nOne training epoch, sign-language JPEGs (hard links) to {SIZE}x{SIZE} RGB, small CNN "
        f"[4, 8] without batch norm, batch {BATCH}, {1 - VALIDATION:.0%} train; "
        f"{os.cpu_count()} cores, {ram:.0f} GB RAM\n"
    )
    print("| loader | cache | images | peak RSS (GB) | wall (s) | images/s |")
    print("| --- | --- | ---: | ---: | ---: | ---: |")
    for name, chosen, count, gb, seconds in rows:
        if gb != gb:  # NaN: skipped
            print(f"| {name} | {chosen} | {count:,} | | | |")
            continue
        rate = count / seconds
        print(f"| {name} | {chosen} | {count:,} | {gb:.2f} | {seconds:.0f} | {rate:.0f} |")


if __name__ == "__main__":
    main()
