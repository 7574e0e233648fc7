"""Which pipeline changes a resumed run can take, without loading TensorFlow."""

from __future__ import annotations

from typing import Any

from dlcli.errors import ConfigError

# Changing these keeps every tensor in the checkpoint meaningful: they decide how long and
# how fast training goes on, not what is trained or in which order the data comes.
SAFE_PREFIXES = (
    "name",
    "train.epochs",
    "train.fine_tune.epochs",
    "train.early_stopping",
    "train.lr_schedule",
    "train.checkpoint",
    "train.steps_per_execution",
    "train.strategy",
    "train.jit_compile",
    "evaluate",
    "export",
)


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out or {prefix: {}}
    return {prefix: data}


def changed_keys(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    old, new = flatten(before), flatten(after)
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def check_resume_changes(
    before: dict[str, Any], after: dict[str, Any], extra_safe: tuple[str, ...] = ()
) -> list[str]:
    """Return the safe changes; raise naming the unsafe ones. `extra_safe`: the task's own
    keys that only change evaluation (`task.top_k`, a threshold)."""
    changes = changed_keys(before, after)
    unsafe = [k for k in changes if not k.startswith((*SAFE_PREFIXES, *extra_safe))]
    if unsafe:
        old, new = flatten(before), flatten(after)
        detail = "; ".join(f"`{k}`: {old.get(k)!r} -> {new.get(k)!r}" for k in unsafe)
        raise ConfigError(
            f"Cannot resume: the pipeline changed in ways the checkpoint cannot follow: {detail}.",
            hint="only epochs, early_stopping, lr_schedule, checkpoint, strategy, "
            "steps_per_execution, evaluate and export may change on resume; "
            "start a new run for anything else",
        )
    return changes
