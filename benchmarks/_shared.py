"""What the benchmark scripts share: the repository on sys.path and the real data in ../shared."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SIGNS = REPO.parent / "shared" / "data" / "sign_language_digits" / "Dataset"


def signs_data_section(size: int) -> str:
    """The `data:` YAML of the sign-language digits at size x size RGB, 70/10/20 split."""
    if not SIGNS.is_dir():
        sys.exit(f"needs the sign-language digits in {SIGNS} (see ../shared/README.md)")
    return (
        f"data: {{type: image_folder, path: {SIGNS}, image_size: [{size}, {size}], channels: 3,\n"
        "       split: {validation: 0.1, test: 0.2}}\n"
    )


def dlcli_json(command: list[str], cwd: Path) -> tuple[dict[str, Any], float]:
    """Run `dlcli COMMAND --json` as a user would; its JSON document and the wall time."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "dlcli", *command, "--json"],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    if proc.returncode:
        sys.exit(f"dlcli {' '.join(command[:2])} failed with exit code {proc.returncode}")
    seconds = time.perf_counter() - start
    lines = proc.stdout.strip().splitlines()
    if len(lines) > 1 and lines[0].startswith("{") and lines[-1].startswith('{"summary"'):
        return json.loads(lines[-1])["summary"], seconds  # JSON Lines (predict): the summary
    return json.loads(proc.stdout), seconds


def real_vs_memory_step_times(trainer: Any, batch: int, steps: int) -> tuple[float, float]:
    """Median train-step time of `trainer` fed by its real data pipeline and by one batch held
    in memory, alternating three times so both see the same machine."""
    import statistics

    import tensorflow as tf

    real, _ = trainer.epoch_dataset(0)
    for _ in iter(real):  # decode and cache, as the first epoch does
        pass
    x, y = next(iter(trainer.train_data.batch(batch)))
    memory = trainer.choice.strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensors((x, y)).repeat()
    )

    def timed(dataset: Any) -> float:
        iterator = iter(dataset)
        trainer.runner.train(iterator, 3)  # warm up (tracing)
        start = time.perf_counter()
        trainer.runner.train(iterator, steps)
        return (time.perf_counter() - start) / steps

    reals, memories = [], []
    for epoch in range(3):
        real, n = trainer.epoch_dataset(epoch + 1)
        if n < steps + 3:
            raise SystemExit(f"need {steps + 3} steps per epoch, have {n}")
        reals.append(timed(real))
        memories.append(timed(memory))
    return statistics.median(reals), statistics.median(memories)
