"""Commands about this installation: info and list."""

from __future__ import annotations

import json
import platform
from typing import Annotated, Any

import typer

from dlcli.cli.options import JsonOpt

PANEL = "Environment"
KINDS = {"models": "MODELS", "data": "DATA_SOURCES", "tasks": "TASKS", "backbones": ""}


def info(json_: JsonOpt = False) -> None:
    """Versions, devices and GPUs, the strategy and precision `auto` picks here, CUDA and XLA."""
    from dlcli.cli.logs import setup_logging

    setup_logging()
    import keras
    import tensorflow as tf

    from dlcli import __version__, console
    from dlcli.train.strategy import auto_precision, auto_strategy_name, gpu_details, xla_jit_status

    for gpu in tf.config.list_physical_devices("GPU"):  # a look at the GPUs, not their memory
        tf.config.experimental.set_memory_growth(gpu, True)
    strategy, reason = auto_strategy_name()
    gpus = gpu_details()
    cuda = tf.test.is_built_with_cuda()
    precision, precision_reason = auto_precision(strategy)
    xla_jit, xla_jit_reason = xla_jit_status()
    devices = [
        f"{d.device_type}:{d.name.split(':')[-1]}" for d in tf.config.list_physical_devices()
    ]
    facts = {
        "dlcli": __version__,
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "devices": devices,
        "gpus": gpus,
        "built_with_cuda": cuda,
        "strategy": strategy,
        "strategy_reason": reason,
        "precision": precision,
        "precision_reason": precision_reason,
        "xla_jit": xla_jit,
        "xla_jit_reason": xla_jit_reason,
    }
    if json_:
        print(json.dumps(facts, indent=2))
        return
    from rich.markup import escape

    no_cuda = "no (to use a GPU: pip install 'dlcli[gpu]')"
    shown = {
        **{k: facts[k] for k in ("dlcli", "python", "tensorflow", "keras")},
        "devices": ", ".join(devices),
        "gpus": "; ".join(
            f"{g['name']} (compute capability {g['compute_capability'] or '?'})" for g in gpus
        )
        or "none",
        "built with CUDA": "yes" if cuda else no_cuda,
        "strategy": f"{strategy} ({reason})",
        "precision": f"{precision} ({precision_reason})",
        "XLA JIT": f"{'usable' if xla_jit else 'not usable'} ({xla_jit_reason})",
    }
    for key, value in shown.items():
        console.out().print(f"[bold]{key:>16}[/]  {escape(str(value))}")


def list_(
    kind: Annotated[
        str, typer.Argument(help="models, backbones, data or tasks; all when omitted.")
    ] = "all",
    pattern: Annotated[str, typer.Argument(help="Glob on names, e.g. 'mobile*'.")] = "*",
    params: Annotated[
        bool,
        typer.Option(
            "--params",
            help="Models: build each default config (10 classes; 64x64 RGB images or 1 s of "
            "16 kHz audio) and show its parameter count. Loads TensorFlow.",
        ),
    ] = False,
) -> None:
    """List the registered model builders, data sources and tasks."""
    from rich.table import Table

    from dlcli import console, registry
    from dlcli.errors import ConfigError

    if kind != "all" and kind not in KINDS:
        raise ConfigError(
            f"Unknown kind `{kind}`. Expected one of: all, {', '.join(KINDS)}.",
            hint=registry.did_you_mean(kind, list(KINDS)),
        )
    table = Table("kind", "name", "what", box=None)
    for name, attr in KINDS.items():
        if kind not in ("all", name):
            continue
        if name == "backbones":
            import fnmatch

            from dlcli.models.backbones import BACKBONES

            for entry in BACKBONES.values():
                if fnmatch.fnmatch(entry.name, pattern):
                    what = f"keras.applications, {entry.size}px, preprocess: {entry.module}"
                    table.add_row(name, entry.name, what)
            continue
        reg = getattr(registry, attr)
        for entry_name in reg.names(pattern):
            entry = reg.get(entry_name)
            what = entry.summary
            if name == "models":
                config = entry.config
                heads = ", ".join(getattr(config, "heads", ()))
                what += f" ({getattr(config, 'modality', 'image')}; heads: {heads})"
                if params:
                    what += f" {_parameter_count(entry_name):,} parameters"
            table.add_row(name, entry_name, what)
    console.out().print(table)


def _parameter_count(name: str) -> int:
    """Parameters of a model's default config (or its example, when a key is required)."""
    import pydantic

    from dlcli.cli.logs import setup_logging
    from dlcli.data.base import DataSpec
    from dlcli.models import create_model
    from dlcli.models.heads import ClassesHead, ReconstructionHead
    from dlcli.registry import MODELS

    setup_logging(quiet=True)
    config_class = MODELS.get(name).config
    try:
        config = config_class()
    except pydantic.ValidationError:
        config = config_class(**getattr(config_class, "example", {}))
    classes = [str(i) for i in range(10)]
    if getattr(config_class, "modality", "image") == "audio":
        spec = DataSpec((16000,), modality="audio", sample_rate=16000, class_names=classes)
    else:
        spec = DataSpec((64, 64, 3), class_names=classes)
    head: Any = ClassesHead(10)
    if "classes" not in getattr(config_class, "heads", ()):
        head = ReconstructionHead(spec.input_shape)
    return int(create_model(config, spec, head=head).count_params())


def register(app: typer.Typer) -> None:
    app.command(rich_help_panel=PANEL)(info)
    app.command("list", rich_help_panel=PANEL)(list_)
