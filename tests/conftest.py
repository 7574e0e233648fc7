"""Shared fixtures: small real data cut from the bundled digits, and the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "data" / "digits"
SHARED = REPO.parent / "shared"

# On a GPU machine. Memory growth: this process and the CLI processes it starts share the GPU
# (TensorFlow otherwise takes nearly all of its memory at once). TF32 off: Ampere and later
# round float32 matmuls and convolutions to 10-bit mantissas by default, and tests compare
# float32 results with NumPy at 1e-4 or tighter. Neither changes anything without a GPU.
os.environ.setdefault("TF_FORCE_GPU_ALLOW_GROWTH", "true")
os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")
# For a CLI process that must not see a GPU: one whose strategy is meant to run over logical
# CPUs, several workers on one machine (they would share one GPU), and promises made for the
# CPU (`train.deterministic`: bit-identical runs on CPU).
CPU_ONLY = {"CUDA_VISIBLE_DEVICES": "-1"}


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str

    def json(self) -> dict:
        return json.loads(self.stdout)

    def json_lines(self) -> list[dict]:
        """stdout as JSON Lines (`predict --json`): one object per line."""
        return [json.loads(line) for line in self.stdout.splitlines()]

    def predictions(self) -> list[dict]:
        """The rows of `predict --json`, after checking its last line is the summary of them."""
        *rows, last = self.json_lines()
        assert set(last) == {"summary"} and last["summary"]["rows"] == len(rows), last
        return rows


def run_cli(
    *args: str | Path,
    cwd: Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 600,
) -> CliResult:
    """Run `dlcli ARGS` in a fresh process, exactly as a user's shell would."""
    full_env = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    full_env.pop("DLCLI_DEBUG", None)
    proc = subprocess.run(
        [sys.executable, "-m", "dlcli", *map(str, args)],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


# `dlcli` in a process whose CPU is split into two logical devices (MirroredStrategy tests),
# with `CPU_ONLY`: MirroredStrategy takes every GPU when there is one.
MIRRORED = """
import sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from dlcli.cli.main import main
sys.argv = ["dlcli", *sys.argv[1:]]
main()
"""


def run_on_two_logical_cpus(*args: str | Path, cwd: Path) -> CliResult:
    """`dlcli ARGS` with two logical CPU devices, so `train.strategy=mirrored` has 2 replicas."""
    proc = subprocess.run(
        [sys.executable, "-c", MIRRORED, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO), **CPU_ONLY},
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def free_ports(n: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def run_workers(*args: str | Path, cwd: Path, workers: int = 2) -> list[CliResult]:
    """`dlcli ARGS` on `workers` processes of one TF_CONFIG cluster on 127.0.0.1 (chief first),
    on the CPU: on one GPU, NCCL refuses two ranks of one device."""
    cluster = {"worker": [f"127.0.0.1:{p}" for p in free_ports(workers)]}
    procs = []
    for index in range(workers):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CONFIG": tf_config, **CPU_ONLY}
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "dlcli", *map(str, args)],
                cwd=cwd,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=300) for p in procs]
    return [CliResult(p.returncode, out, err) for p, (out, err) in zip(procs, outputs, strict=True)]


HEAVY_MODULES = ("tensorflow", "keras", "matplotlib", "keras_tuner")


def run_light(
    *commands: list[str], env: dict[str, str] | None = None, exit_code: int = 0
) -> subprocess.CompletedProcess[str]:
    """Run each dlcli command line in one fresh interpreter, as `dlcli` would, and fail (the
    process exits non-zero) when a command exits other than `exit_code` or any of
    HEAVY_MODULES got imported: what keeps `--help`, `validate`, the run listings and a refusal
    of a busy run instant."""
    code = (
        "import sys, runpy\n"
        f"for args in {[list(map(str, c)) for c in commands]!r}:\n"
        "    sys.argv = ['dlcli', *args]\n"
        "    try:\n        runpy.run_module('dlcli', run_name='__main__')\n"
        "        code = 0\n"
        "    except SystemExit as e:\n        code = e.code or 0\n"
        f"    assert code == {exit_code}, (args, code)\n"
        f"loaded = [m for m in {HEAVY_MODULES!r} if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, env=env
    )


def assert_no_traceback(result: CliResult) -> None:
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout


@pytest.fixture(scope="session")
def small_digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """30 real images per class of the bundled digits: enough to learn, quick to train."""
    root = tmp_path_factory.mktemp("digits")
    for class_dir in sorted(p for p in DIGITS.iterdir() if p.is_dir()):
        (root / class_dir.name).mkdir()
        for image in sorted(class_dir.glob("*.png"))[:30]:
            shutil.copy(image, root / class_dir.name / image.name)
    return root


def write_pipeline(path: Path, data_path: Path, **sections: str) -> Path:
    """A tiny image pipeline; `sections` replace whole YAML blocks by name."""
    blocks = {
        "head": "name: tiny\nseed: 7\n",
        "data": (
            f"data:\n  type: image_folder\n  path: {data_path}\n  image_size: [8, 8]\n"
            "  channels: 1\n  split: {validation: 0.2, test: 0.2}\n"
        ),
        "model": "model:\n  type: small_cnn\n  filters: [16]\n  dense: [32]\n  dropout: 0.1\n",
        # float32 on any machine (`auto` is mixed_float16 on a GPU): tests of precision say so.
        "train": (
            "train:\n  epochs: 2\n  batch_size: 16\n  precision: float32\n"
            "  optimizer: {type: adam, learning_rate: 0.01}\n"
        ),
        "export": "export:\n  formats: [keras]\n",
    }
    blocks.update(sections)
    path.write_text("".join(blocks.values()))
    return path


def knn_anomaly_pipeline(path: Path, data_path: Path) -> Path:
    """Anomaly detection with digit 0 as normal: kNN on an untrained MobileNet 0.25's features
    (nothing to train by gradient descent, so it runs in seconds)."""
    return write_pipeline(
        path,
        data_path,
        data=(
            f"data:\n  type: image_folder\n  path: {data_path}\n  image_size: [32, 32]\n"
            "  split: {validation: 0.2, test: 0.3}\n"
        ),
        model=(
            "model: {type: transfer, backbone: MobileNet, weights: none, "
            "backbone_args: {alpha: 0.25}}\n"
            "task: {type: anomaly, normal_classes: ['0'], score: knn}\n"
        ),
    )


@pytest.fixture(scope="session")
def local_tfds_builder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A real TFDS builder over local PNGs: download_and_prepare reads files, fetches nothing."""
    import tensorflow_datasets as tfds

    class DlcliLocalDigits(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self) -> tfds.core.DatasetInfo:
            return self.dataset_info_from_configs(
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(8, 8, 1)),
                        "label": tfds.features.ClassLabel(names=[f"d{i}" for i in range(10)]),
                    }
                ),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):  # type: ignore[no-untyped-def]
            return {
                "train": self._generate_examples(range(0, 12)),
                "test": self._generate_examples(range(12, 15)),
            }

        def _generate_examples(self, take: range):  # type: ignore[no-untyped-def]
            for label in range(10):
                for f in sorted((DIGITS / str(label)).glob("*.png"))[take.start : take.stop]:
                    yield f.name, {"image": str(f), "label": label}

    return "dlcli_local_digits"
