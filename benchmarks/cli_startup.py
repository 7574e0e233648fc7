"""How long `dlcli --help` and `dlcli validate` take, against a bare TensorFlow import.

Goal: `dlcli --help` under 0.5 s. Prints a Markdown table (median of N runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GOAL_SECONDS = 0.5


def wall_time(args: list[str], runs: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(args, env=env, cwd=REPO, capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    py = sys.executable
    cases = [
        ("dlcli --help", [py, "-m", "dlcli", "--help"], args.runs),
        (
            "dlcli validate quickstart",
            [py, "-m", "dlcli", "validate", "pipelines/quickstart.yaml"],
            args.runs,
        ),
        ("python -c 'import tensorflow' (reference)", [py, "-c", "import tensorflow"], 3),
    ]
    print("| command | median wall time (s) | goal |")
    print("| --- | ---: | --- |")
    failed = False
    for name, command, runs in cases:
        seconds = wall_time(command, runs)
        goal = ""
        if name == "dlcli --help":
            ok = seconds < GOAL_SECONDS
            failed |= not ok
            goal = f"< {GOAL_SECONDS} s: {'met' if ok else 'MISSED'}"
        print(f"| `{name}` | {seconds:.3f} | {goal} |")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
