"""Building blocks shared by every config model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo must never be silently ignored."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


def _resolve_path(value: Path, info: ValidationInfo) -> Path:
    """Relative paths in a pipeline file are relative to that file, so pipelines can move."""
    value = value.expanduser()
    base = (info.context or {}).get("base_dir")
    if not value.is_absolute() and base is not None:
        value = Path(base) / value
    return Path(value).resolve() if not value.is_absolute() or ".." in value.parts else value


ResolvedPath = Annotated[Path, AfterValidator(_resolve_path)]
