"""What every model config shares: the heads its body can carry, a tiny example, fine-tuning."""

from __future__ import annotations

from typing import Any, ClassVar

from dlcli.config.base import StrictModel
from dlcli.errors import ConfigError


class ModelConfig(StrictModel):
    """Base of every `model:` config. `heads` lists the head kinds the builder accepts
    (`classes`, `reconstruction`, `features`); `modality` the data it reads (`image`: `[height,
    width, channels]` pixels; `audio`: `[samples]` waveforms); `example` is its smallest useful
    config, which the registry-parametrized tests build and train."""

    type: str
    heads: ClassVar[tuple[str, ...]] = ("classes",)
    modality: ClassVar[str] = "image"
    example: ClassVar[dict[str, Any]] = {}

    def default_image_size(self) -> tuple[int, int] | None:
        return None

    def fine_tune(self, model: Any, config: Any) -> None:
        """Make the pretrained part of `model` trainable for `train.fine_tune`."""
        raise ConfigError(
            f"train.fine_tune needs a model with a pretrained backbone; `{self.type}` has none.",
            hint="use `model.type: transfer`, or remove train.fine_tune",
        )
