"""Model builders, one file per family, each registered under its YAML `type:` name."""

from __future__ import annotations

from typing import Any

from dlcli.errors import ConfigError
from dlcli.registry import MODELS


def create_model(config: Any, spec: Any, *, head: Any) -> Any:
    """The one public way to build a model: a builder's body for `spec` under `head`."""
    entry = MODELS.get(config.type)
    heads: tuple[str, ...] = getattr(entry.config, "heads", ())
    if head.kind not in heads:
        raise ConfigError(
            f"model `{config.type}` cannot carry a `{head.kind}` head. "
            f"Expected a task that needs one of: {', '.join(heads)}.",
            hint="pick a model that fits the task: `dlcli list models` shows each one's heads",
        )
    modality = getattr(entry.config, "modality", "image")
    if modality != spec.modality:
        raise ConfigError(
            f"model `{config.type}` reads {modality} data, and the data is {spec.modality}.",
            hint="pick a model for that data: `dlcli list models` shows each one's modality",
        )
    return entry.fn(config, spec=spec, head=head)
