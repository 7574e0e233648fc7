"""Model builders, one file per family, each registered under its YAML `type:` name."""

from __future__ import annotations

from typing import Any

from dlcli.registry import MODELS


def create_model(config: Any, *, input_shape: tuple[int, ...], num_classes: int) -> Any:
    """The one public way to build a model from its validated config."""
    return MODELS.get(config.type).fn(config, input_shape=input_shape, num_classes=num_classes)
