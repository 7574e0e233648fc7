"""The typed schema of a pipeline file, assembled from the component registries."""

from __future__ import annotations

from functools import lru_cache
from typing import Annotated, Any, Literal, Union, get_args

from pydantic import Field, PositiveInt, create_model, model_validator

from dlcli.config.base import StrictModel
from dlcli.config.tune import TuneConfig
from dlcli.registry import DATA_SOURCES, MODELS, TASKS, Registry, load_components
from dlcli.train.config import TrainConfig


class EvaluateConfig(StrictModel):
    """`evaluate:` which split `dlcli evaluate` scores by default. What is measured belongs to
    the task (`task.top_k` for classification, say)."""

    split: Literal["test", "validation", "train"] = "test"
    batch_size: PositiveInt | None = Field(None, description="defaults to train.batch_size")


ExportFormat = Literal["keras", "saved_model", "tflite", "tflite_int8", "onnx"]
EXPORT_FORMATS: tuple[str, ...] = get_args(ExportFormat)


def _default_formats() -> list[ExportFormat]:
    return ["keras", "saved_model"]


class ExportConfig(StrictModel):
    """`export:` which formats `dlcli export` and `dlcli run` write."""

    formats: list[ExportFormat] = Field(
        default_factory=_default_formats,
        min_length=1,
        description="keras, saved_model, tflite (float32), tflite_int8 (int8, calibrated on "
        "the training split), onnx",
    )
    calibration_examples: PositiveInt = Field(
        200,
        le=1000,
        description="tflite_int8: training examples its int8 ranges are measured on, evenly "
        "spaced through the training split",
    )


def _union(registry: Registry[Any]) -> Any:
    configs = tuple(entry.config for entry in registry.entries())
    if len(configs) == 1:
        return Annotated[configs[0], Field(discriminator="type")]
    return Annotated[Union[configs], Field(discriminator="type")]


def _image_size_from_model(pipeline: Any) -> Any:
    """`data.image_size` left out: take the model's own input size (a backbone's, say)."""
    data, model = pipeline.data, pipeline.model
    if "image_size" in type(data).model_fields and data.image_size is None:
        default = getattr(model, "default_image_size", lambda: None)()
        if default is None and data.type != "npz":
            raise ValueError(
                f"data.image_size is required: model `{model.type}` has no default input size"
            )
        data.image_size = default
    return pipeline


_IMAGE_SIZE_FROM_MODEL: Any = model_validator(mode="after")(_image_size_from_model)


def _targets_from_task(pipeline: Any) -> Any:
    """The task says what the data gives per example: a label, or a transcript."""
    data, task = pipeline.data, pipeline.task
    wanted = type(task).targets
    mixes = getattr(getattr(data, "augment", None), "mixes_labels", None)
    if mixes is not None and mixes() and not type(task).mixes_labels:
        raise ValueError(
            f"data.augment.mixup/cutmix blend two images and their labels; task `{task.type}` "
            "learns what single images look like: set them to 0"
        )
    if "targets" in type(data).model_fields:
        if data.targets != wanted and "targets" in data.model_fields_set:
            raise ValueError(
                f"data.targets is `{data.targets}`, and task `{task.type}` needs `{wanted}`"
            )
        data.targets = wanted
        data.check_targets()
    elif wanted != "label":
        raise ValueError(
            f"task `{task.type}` needs {wanted}s, which data.type `{data.type}` does not give: "
            "use `audio_manifest` with a transcript column"
        )
    return pipeline


_TARGETS_FROM_TASK: Any = model_validator(mode="after")(_targets_from_task)


def unreported_monitor(pipeline: Any) -> tuple[str, str | None] | None:
    """`train.early_stopping.monitor` must be a metric the task reports (its direction, min or
    max, comes from the task too). Returns (message, hint) when it is not."""
    from dlcli.registry import did_you_mean
    from dlcli.tasks.base import metric_direction

    es = pipeline.train.early_stopping
    if es is None or metric_direction(pipeline.task, es.monitor) is not None:
        return None
    names = list(pipeline.task.metrics)
    reported = [*names, *(f"val_{m}" for m in names)]
    return (
        f"`train.early_stopping.monitor` is `{es.monitor}`, which task `{pipeline.task.type}` "
        f"does not report. Expected one of: {', '.join(reported)}.",
        did_you_mean(es.monitor, reported),
    )


@lru_cache(maxsize=1)
def pipeline_model() -> type[StrictModel]:
    """Build the Pipeline model from whatever components are registered."""
    load_components()
    task_default = TASKS.get("classification").config()
    return create_model(
        "Pipeline",
        __base__=StrictModel,
        __doc__="A dlcli pipeline: data -> model -> train -> evaluate -> export.",
        name=(str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="run name")),
        seed=(int, Field(42, description="fixes splits, data order and initialisation")),
        task=(_union(TASKS), task_default),
        data=(_union(DATA_SOURCES), ...),
        model=(_union(MODELS), ...),
        train=(TrainConfig, Field(default_factory=TrainConfig)),
        evaluate=(EvaluateConfig, Field(default_factory=EvaluateConfig)),
        export=(ExportConfig, Field(default_factory=ExportConfig)),
        tune=(
            TuneConfig | None,
            # Left out of dumps when absent: a run's pipeline.yaml stays a plain pipeline.
            Field(None, exclude_if=lambda v: v is None, description="`dlcli tune`'s search"),
        ),
        __validators__={
            "image_size_from_model": _IMAGE_SIZE_FROM_MODEL,
            "targets_from_task": _TARGETS_FROM_TASK,
        },
    )


def modality_mismatch(pipeline: Any) -> str | None:
    """The model must read the kind of data the source gives (images, audio)."""
    data = getattr(type(pipeline.data), "modality", "image")
    model = getattr(type(pipeline.model), "modality", "image")
    if data == model:
        return None
    return (
        f"`model.type` is `{pipeline.model.type}`, a model for {model} data, and `data.type` "
        f"`{pipeline.data.type}` gives {data}."
    )
