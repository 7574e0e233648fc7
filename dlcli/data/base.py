"""What every data source hands to the trainer, and the tf.data batching they share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DataBundle:
    """Labelled splits of unbatched `(features, label)` elements, plus what models need to know."""

    class_names: list[str]
    input_shape: tuple[int, ...]
    splits: dict[str, Any]  # split name -> tf.data.Dataset of single examples
    sizes: dict[str, int]
    notes: list[str] = field(default_factory=list)

    def split(self, name: str) -> Any:
        from dlcli.errors import DataError

        if self.sizes.get(name, 0) == 0:
            raise DataError(
                f"The `{name}` split is empty. Received split sizes: {self.sizes}.",
                hint="raise the fraction for that split in `data.split`, or add data",
            )
        return self.splits[name]
