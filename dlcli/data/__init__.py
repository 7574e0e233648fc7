"""Data sources: each turns a `data:` section into labelled tf.data splits."""

from __future__ import annotations

from typing import Any

from dlcli.data.base import DataBundle
from dlcli.registry import DATA_SOURCES


def create_dataset(config: Any, seed: int) -> DataBundle:
    """The one public way to build a data source from its validated config."""
    return DATA_SOURCES.get(config.type).fn(config, seed=seed)


__all__ = ["DataBundle", "create_dataset"]
