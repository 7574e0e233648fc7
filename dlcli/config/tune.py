"""The `tune:` section of a pipeline: which keys `dlcli tune` searches over, and how.

Checked without TensorFlow, so `dlcli validate` catches a mistyped key before any training: each
value a key may take is put into the pipeline through the loader that `--set` uses.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Literal, Union

from pydantic import Field, PositiveInt, StrictFloat, StrictInt, model_validator

from dlcli.config.base import StrictModel
from dlcli.errors import ConfigError

Number = Union[StrictInt, StrictFloat]
Loc = tuple[str, ...]


class SearchDimension(StrictModel):
    """One key's candidates: `{values: [...]}`, or a range `{min: 1.0e-4, max: 0.01, log: true}`
    (whole numbers when min and max are whole, and step too if given)."""

    values: list[Any] | None = Field(None, min_length=1, description="the choices, any YAML")
    min: Number | None = None
    max: Number | None = None
    log: bool = Field(False, description="range: sample evenly in log space (min > 0)")
    step: Number | None = Field(None, gt=0, description="range: only min + k * step")

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        from dlcli.registry import did_you_mean

        known = list(cls.model_fields)
        for key in data if isinstance(data, dict) else ():
            if key not in known:
                hint = did_you_mean(str(key), known)
                raise ValueError(
                    f"unknown key `{key}`: expected `values`, or `min`, `max`, `log`, `step`"
                    + (f" ({hint})" if hint else "")
                )
        return data

    @model_validator(mode="after")
    def _one_kind(self) -> SearchDimension:
        ranged = self.min is not None or self.max is not None
        if self.values is not None:
            if ranged or self.log or self.step is not None:
                raise ValueError("give either `values: [...]` or a range (`min`, `max`), not both")
            texts = [json.dumps(v, sort_keys=True) for v in self.values]
            if len(set(texts)) != len(texts):
                raise ValueError(f"`values` repeats a value: {self.values}")
            return self
        if self.min is None or self.max is None:
            raise ValueError("expected `values: [...]`, or a range with both `min` and `max`")
        if self.min >= self.max:
            raise ValueError(f"`min` ({self.min}) must be below `max` ({self.max})")
        if self.log and self.min <= 0:
            raise ValueError(f"a `log` range needs `min` > 0 (min is {self.min})")
        if self.log and self.step is not None:
            raise ValueError("`log` and `step` do not go together: choose one")
        return self

    @property
    def whole(self) -> bool:
        """A range of integers (KerasTuner `Int`), else of floats (`Float`)."""
        ends = (self.min, self.max, self.step if self.step is not None else 1)
        return all(isinstance(v, int) for v in ends)

    @property
    def as_text(self) -> bool:
        """KerasTuner's `Choice` holds values of one type among int, float, str and bool; other
        choices (lists, mappings, null, mixed types) go in as their JSON text."""
        if self.values is None:
            return False
        kinds = {type(v) for v in self.values}
        return not (len(kinds) == 1 and kinds <= {int, float, str, bool}) and kinds != {int, float}

    def choices(self) -> list[Any]:
        """The values as KerasTuner's `Choice` takes them; `decode` reads one back."""
        values = list(self.values or ())
        if self.as_text:
            return [json.dumps(v) for v in values]
        if {type(v) for v in values} == {int, float}:
            return [float(v) for v in values]
        return values

    def decode(self, value: Any) -> Any:
        return json.loads(value) if self.as_text else value

    def candidates(self) -> list[Any]:
        """The values checked against the pipeline: every choice, or both ends of a range."""
        return list(self.values) if self.values is not None else [self.min, self.max]


class TuneConfig(StrictModel):
    """`tune:` a hyperparameter search with KerasTuner; each trial is a dlcli run."""

    algorithm: Literal["random", "bayesian", "hyperband"] = "random"
    objective: str = Field("val_loss", description="a metric the task reports (val_accuracy)")
    direction: Literal["min", "max"] | None = Field(
        None, description="better is min or max; default: the task's own (loss: min)"
    )
    max_trials: PositiveInt | None = Field(
        None, description="random/bayesian: default 10; hyperband: caps what its brackets run"
    )
    max_epochs: PositiveInt | None = Field(
        None, description="hyperband: epochs of its longest trials (default train.epochs)"
    )
    factor: int = Field(3, ge=2, description="hyperband: keep 1/factor of trials each round")
    seed: int | None = Field(None, description="of the search (default: the pipeline's seed)")
    space: dict[str, SearchDimension] = Field(
        min_length=1, description="dotted pipeline keys (as for --set) and their candidates"
    )

    @model_validator(mode="after")
    def _check_keys(self) -> TuneConfig:
        for key in self.space:
            parts = key.split(".")
            if not all(p.strip() for p in parts):
                raise ValueError(f"tune.space key `{key}` is not a dotted pipeline key")
            if parts[0] == "tune":
                raise ValueError(f"tune.space cannot tune the search itself: `{key}`")
        if self.algorithm == "hyperband" and "train.epochs" in self.space:
            raise ValueError("hyperband sets train.epochs of each trial: remove it from the space")
        return self

    def trials_wanted(self) -> int | None:
        """How many trials at most; None: as many as Hyperband's brackets make."""
        if self.algorithm == "hyperband":
            return self.max_trials
        return self.max_trials or 10


def override_text(key: str, value: Any) -> str:
    """`--set` text for a value: JSON is YAML, so the loader reads back exactly `value`."""
    return f"{key}={json.dumps(value)}"


def check_tune(
    pipeline: Any,
    locate: Callable[[Loc], tuple[str, str]],
    load: Callable[[list[str]], Any],
) -> None:
    """The objective is a metric the task reports, and every candidate of every key makes a
    valid pipeline. `locate(loc)` gives (where, snippet) of a key in the file; `load(overrides)`
    loads the same pipeline with more `--set` overrides."""
    from dlcli.registry import did_you_mean
    from dlcli.tasks.base import metric_direction

    tune, task = pipeline.tune, pipeline.task
    if metric_direction(task, tune.objective) is None:
        names = list(task.metrics)
        reported = [*(f"val_{m}" for m in names), *names]
        where, snippet = locate(("tune", "objective"))
        raise ConfigError(
            f"{where}: `tune.objective` is `{tune.objective}`, which task `{task.type}` does "
            f"not report. Expected one of: {', '.join(reported)}." + snippet,
            hint=did_you_mean(tune.objective, reported),
        )
    for key, dimension in tune.space.items():
        for value in dimension.candidates():
            mine = ["tune=null", override_text(key, value)]
            try:
                load(mine)
            except ConfigError as exc:
                message = exc.message
                for text in mine:
                    message = message.replace(f"--set {text}: ", "")
                where, snippet = locate(("tune", "space", key))
                raise ConfigError(
                    f"{where}: tune.space `{key}` = {json.dumps(value)}: {message}" + snippet,
                    hint=exc.hint,
                ) from None


def objective_direction(pipeline: Any) -> Literal["min", "max"]:
    from dlcli.tasks.base import metric_direction

    tune = pipeline.tune
    direction = tune.direction or metric_direction(pipeline.task, tune.objective)
    assert direction is not None, "check_tune refuses an objective the task does not report"
    return direction
