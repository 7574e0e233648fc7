"""Choose the tf.distribute strategy and the precision policy for this machine."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from dlcli.errors import ConfigError


@dataclass
class StrategyChoice:
    strategy: Any
    name: str
    replicas: int
    is_chief: bool
    reason: str


def _cluster_from_tf_config() -> dict[str, Any] | None:
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        return None
    try:
        conf = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"TF_CONFIG is not valid JSON: {exc}") from None
    cluster = conf.get("cluster", {})
    tasks = sum(len(v) for k, v in cluster.items() if k in ("chief", "worker"))
    return conf if tasks > 1 else None


def _under_slurm() -> bool:
    return int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_JOB_ID" in os.environ


def _tpu_present() -> bool:
    # Only ask for a TPU where one can exist: probing elsewhere waits on a metadata server.
    return bool(os.environ.get("TPU_NAME") or os.environ.get("COLAB_TPU_ADDR")) or os.path.exists(
        "/dev/accel0"
    )


def is_chief_process() -> bool:
    """Whether this process writes artifacts: TF_CONFIG's chief (or worker 0 when there is no
    chief), Slurm's task 0, or any single process. Read from the environment, without TF."""
    conf = _cluster_from_tf_config()
    if conf is not None:
        task = conf.get("task", {})
        kind, index = task.get("type"), int(task.get("index", 0))
        return kind == "chief" or (
            kind == "worker" and index == 0 and "chief" not in conf["cluster"]
        )
    if _under_slurm():
        return os.environ.get("SLURM_PROCID", "0") == "0"
    return True


def auto_strategy_name() -> tuple[str, str]:
    """What `strategy: auto` picks here, and why. Cheap: creates no strategy."""
    if _tpu_present():
        return "tpu", "a TPU is attached (TPU_NAME or /dev/accel0)"
    if _cluster_from_tf_config():
        return "multi_worker", "TF_CONFIG names a cluster of several tasks"
    if _under_slurm():
        return "multi_worker", "running as a Slurm job with several tasks"
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if len(gpus) > 1:
        return "mirrored", f"{len(gpus)} local GPUs"
    if gpus:
        return "gpu", "one local GPU"
    return "cpu", "no accelerator found"


def select_strategy(name: str) -> StrategyChoice:
    import tensorflow as tf

    reason = f"train.strategy: {name}"
    if name == "auto":
        name, reason = auto_strategy_name()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        strategy: Any = tf.distribute.TPUStrategy(resolver)
    elif name == "multi_worker":
        resolver = (
            tf.distribute.cluster_resolver.SlurmClusterResolver()
            if _under_slurm() and not os.environ.get("TF_CONFIG")
            else None
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
    elif name == "mirrored":
        strategy = tf.distribute.MirroredStrategy()
    elif name == "cpu" and tf.config.list_physical_devices("GPU"):
        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")  # asked for the CPU: keep off GPUs
    elif name == "gpu":
        if not tf.config.list_physical_devices("GPU"):
            raise ConfigError(
                "train.strategy is `gpu` but TensorFlow sees no GPU.",
                hint="use `strategy: auto`, or install the `gpu` extra: pip install 'dlcli[gpu]'",
            )
        strategy = tf.distribute.OneDeviceStrategy("/gpu:0")
    else:
        strategy = tf.distribute.get_strategy()
    resolver = getattr(strategy, "cluster_resolver", None)
    is_chief = True
    if name == "multi_worker" and resolver is not None:
        task_type, task_id = resolver.task_type, resolver.task_id
        is_chief = task_type == "chief" or (
            task_type == "worker"
            and task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict()
        )
    return StrategyChoice(strategy, name, strategy.num_replicas_in_sync, is_chief, reason)


def gpu_details() -> list[dict[str, str]]:
    """Each GPU TensorFlow sees: its name and compute capability ("9.0"; "" when unknown)."""
    import tensorflow as tf

    gpus = []
    for gpu in tf.config.list_physical_devices("GPU"):
        details = tf.config.experimental.get_device_details(gpu)
        capability = details.get("compute_capability")
        gpus.append(
            {
                "name": details.get("device_name", gpu.name),
                "compute_capability": ".".join(map(str, capability)) if capability else "",
            }
        )
    return gpus


def auto_precision(strategy_name: str) -> tuple[str, str]:
    """What `precision: auto` picks under `strategy_name` here, and why: float16 where tensor
    cores make it fast (compute capability 7.0+), bfloat16 on TPU, float32 elsewhere."""
    if strategy_name == "tpu":
        return "mixed_bfloat16", "TPU"
    gpus = gpu_details()
    if not gpus:
        return "float32", "no GPU"
    if strategy_name == "cpu":
        return "float32", "strategy cpu: the GPU is not used"
    capability = gpus[0]["compute_capability"]
    if not capability:
        return "float32", "the GPU reports no compute capability"
    if int(capability.split(".")[0]) >= 7:
        return "mixed_float16", f"GPU compute capability {capability} >= 7.0"
    return "float32", f"GPU compute capability {capability} < 7.0: no float16 tensor cores"


def resolve_precision(precision: str, strategy_name: str) -> str:
    """The Keras policy for `train.precision`; `auto` as `auto_precision` decides."""
    return auto_precision(strategy_name)[0] if precision == "auto" else precision


def xla_jit_status() -> tuple[bool, str]:
    """Whether XLA compiles and runs a small function on the default device (the first GPU when
    there is one), and why not: a cloud image can lack the CUDA compiler tools XLA calls."""
    import tensorflow as tf

    device = "GPU" if tf.config.list_physical_devices("GPU") else "CPU"
    try:
        affine = tf.function(lambda x: 2.0 * x + 1.0, jit_compile=True)
        result = float(affine(tf.constant(1.0)))
    except Exception as exc:  # the error type depends on what is missing
        lines = str(exc).strip().splitlines() or [type(exc).__name__]
        return False, f"compiling on the {device} failed: {lines[0][:200]}"
    if result != 3.0:
        return False, f"a compiled test function on the {device} returned {result}, not 3.0"
    return True, f"compiled and ran a test function on the {device}"
