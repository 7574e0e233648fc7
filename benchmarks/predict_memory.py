"""Does `dlcli predict` keep its memory flat however many files it reads? Peak RSS at 1,000 and
10,000 files, side by side with what a user would write instead.

A folder of N JPEGs is made of hard links to the real sign-language digits (../shared): every
photo in turn, the three 3024x3024 ones first so that both sizes decode them, names made unique.
One tiny run is trained with `dlcli train` (small CNN, 64x64 RGB, 1 epoch; accuracy does not
matter here). Then each way of predicting runs as a process of its own over the N files:

- `dlcli predict RUN FOLDER -o predictions.csv`
- `dlcli predict RUN FOLDER --json`: rows streamed to stdout as JSON Lines (into a file here)
- a hand-written Keras script: `keras.utils.image_dataset_from_directory` + `model.predict` on
  the same files with the same saved model, the top label of each file written to a CSV.

Peak RSS is the kernel's high-water mark of resident memory for that process alone: `ru_maxrss`
from `os.wait4` on its pid (not RUSAGE_CHILDREN, which keeps the maximum over every child so far).
images/s is files / the process's wall time, with TensorFlow's import (about 6 s on 2 cores) and
model loading, as a user waits for it. Each measurement runs `--repeats` times: the highest peak
and the shortest wall time are shown.

Goal: dlcli's peak RSS grows by less than 20% from 1,000 to 10,000 files.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _shared import REPO, SIGNS, dlcli_json, signs_data_section

GOAL = 0.20
SIZE = 64

PIPELINE = """
name: predict_memory
seed: 0
{data}model: {{type: small_cnn, filters: [8, 16], dense: [16]}}
train: {{epochs: 1, batch_size: 64}}
export: {{formats: [keras]}}
"""

KERAS_SCRIPT = """
import csv, json, sys
from pathlib import Path

import dlcli.layers  # noqa: F401  (registers dlcli's layers, so the .keras file loads)
import keras

run, folder, out = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
model = keras.saving.load_model(run / "model.keras")
labels = json.loads((run / "labels.json").read_text())
images = keras.utils.image_dataset_from_directory(
    folder, labels=None, image_size=model.input_shape[1:3], batch_size=64, shuffle=False,
    verbose=False,
)
probabilities = model.predict(images, verbose=0)
with open(out, "w", newline="") as handle:
    writer = csv.writer(handle)
    writer.writerow(["path", "label", "probability"])
    for path, row in zip(images.file_paths, probabilities):
        writer.writerow([path, labels[int(row.argmax())], float(row.max())])
"""


def build_folder(folder: Path, count: int) -> None:
    """`count` JPEGs linked from the real photos, the largest first, then a fixed shuffle."""
    photos = sorted(SIGNS.glob("*/*.JPG"))
    large = [p for p in photos if p.stat().st_size > 1_000_000]
    rest = [p for p in photos if p not in large]
    random.Random(0).shuffle(rest)
    order = large + rest
    folder.mkdir(parents=True)
    for i in range(count):
        source = order[i % len(order)]
        target = folder / f"{i:05d}_{source.parent.name}_{source.stem}.jpg"
        try:
            os.link(source, target)
        except OSError:  # another filesystem: copy instead
            shutil.copy(source, target)


def peak_rss(command: list[str], stdout: Path) -> tuple[float, float]:
    """Run `command`; its peak resident memory in MB and its wall time in seconds."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    with stdout.open("w") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        errors = proc.stderr.read()  # drained as it comes, so a chatty child never blocks
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"{' '.join(command[:4])} failed ({proc.returncode}):\n{errors[-2000:]}")
    return usage.ru_maxrss / 1024, seconds  # Linux: kilobytes


def count_rows(path: Path) -> int:
    with path.open() as handle:
        return sum(1 for _ in handle)


def loaders(
    run: str, script: Path, folder: Path, out: Path
) -> list[tuple[str, list[str], Path | None]]:
    """(name, command, the CSV it writes or None for rows on stdout) of each way to predict."""
    dlcli = [sys.executable, "-m", "dlcli", "predict", run, str(folder)]
    return [
        ("dlcli predict -o predictions.csv", [*dlcli, "-o", str(out)], out),
        ("dlcli predict --json (JSON Lines on stdout)", [*dlcli, "--json"], None),
        (
            "Keras script: image_dataset_from_directory + model.predict",
            [sys.executable, str(script), run, str(folder), str(out)],
            out,
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1_000, help="files in the first folder")
    parser.add_argument("--large", type=int, default=10_000, help="files in the second folder")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each measurement")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="predict_memory_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        pipeline = work / "pipeline.yaml"
        pipeline.write_text(PIPELINE.format(data=signs_data_section(SIZE)))
        summary, _ = dlcli_json(["train", str(pipeline), "--runs-dir", str(work / "runs")], work)
        run = summary["run_dir"]
        script = work / "keras_predict.py"
        script.write_text(KERAS_SCRIPT)
        results: dict[str, dict[int, tuple[float, float]]] = {}
        for count in (args.small, args.large):
            folder = work / f"images_{count}"
            if not folder.is_dir():
                build_folder(folder, count)
            for name, command, written in loaders(run, script, folder, work / "out.csv"):
                stdout = work / "stdout.txt"
                (work / "out.csv").unlink(missing_ok=True)
                runs = [peak_rss(command, stdout) for _ in range(args.repeats)]
                # The highest peak (memory barely varies), the fastest run (time does, when
                # the machine is shared).
                results.setdefault(name, {})[count] = (
                    max(mb for mb, _ in runs),
                    min(seconds for _, seconds in runs),
                )
                # Either a CSV with a header, or JSON Lines that end with a summary line.
                rows = count_rows(written or stdout) - 1
                if rows != count:
                    sys.exit(f"{name}: {rows} rows for {count} files")
                print(f"{name}, {count} files: {results[name][count][0]:.0f} MB", file=sys.stderr)
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"\n`dlcli predict` peak RSS, sign-language JPEGs (hard links) to {SIZE}x{SIZE} RGB, "
        "small CNN\n"
    )
    growth_header = f"growth {args.small:,}→{args.large:,}"
    print(f"| loader | files | peak RSS MB | {growth_header} | wall s | images/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    growths = {}
    for name, by_count in results.items():
        small, large = by_count[args.small][0], by_count[args.large][0]
        growths[name] = large / small - 1
        for count, (mb, seconds) in by_count.items():
            growth = f"{growths[name]:+.1%}" if count == args.large else ""
            rate = count / seconds
            print(f"| {name} | {count:,} | {mb:.0f} | {growth} | {seconds:.1f} | {rate:.0f} |")
    worst = max(g for name, g in growths.items() if name.startswith("dlcli"))
    verdict = "met" if worst < GOAL else "missed"
    print(f"\n**dlcli growth {worst:+.1%}** (goal < {GOAL:.0%}: {verdict})")


if __name__ == "__main__":
    main()
