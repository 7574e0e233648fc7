"""Test accuracy of transfer learning against training from scratch, sign-language digits.

Runs `dlcli run` on pipelines/sign_digits_transfer.yaml (MobileNet 0.25, ImageNet weights,
head then full fine-tune) and pipelines/sign_digits_scratch.yaml (small CNN, same data,
augmentation and epochs), as a user would, and prints a table. Goal: transfer >= 99%.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from _shared import REPO, dlcli_json

GOAL = 0.99
PIPELINES = {
    "transfer: MobileNet 0.25, ImageNet weights": "sign_digits_transfer.yaml",
    "from scratch: small CNN": "sign_digits_scratch.yaml",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--set", action="append", default=[], help="passed to both runs")
    args = parser.parse_args()
    extra = [x for s in args.set for x in ("--set", s)]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for label, name in PIPELINES.items():
            pipeline = REPO / "pipelines" / name
            result, seconds = dlcli_json(["run", str(pipeline), *extra], Path(work))
            ev = result["evaluation"]
            rows.append(
                (
                    label,
                    ev["accuracy"],
                    ev["macro_avg"]["f1"],
                    ev["examples"],
                    result["train"]["epochs_run"],
                    seconds,
                )
            )
            print(f"{label}: {ev['accuracy']:.4f} in {seconds:.0f}s", file=sys.stderr)
    print("\n| pipeline | test accuracy | macro F1 | test images | epochs | wall time (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for label, acc, f1, n, epochs, seconds in rows:
        print(f"| {label} | {acc:.4f} | {f1:.4f} | {n} | {epochs} | {seconds:.0f} |")
    verdict = "met" if rows[0][1] >= GOAL else "MISSED"
    print(f"\nGoal: transfer test accuracy >= {GOAL:.0%}: {verdict}")


if __name__ == "__main__":
    main()
