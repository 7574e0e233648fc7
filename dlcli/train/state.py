"""What a checkpoint holds beyond the weights, so a killed run resumes exactly where it was."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dlcli.errors import ConfigError


@dataclass
class TrainerState:
    """Plain data, stored as JSON inside each checkpoint (so it can never disagree with it)."""

    epoch: int = 0  # epochs fully done
    step: int = 0  # steps done inside epoch `epoch + 1` (mid-epoch checkpoints)
    totals: dict[str, float] = field(default_factory=dict)  # that epoch's partial sums
    history: list[dict[str, Any]] = field(default_factory=list)
    best: float = math.inf  # of `sign * monitor`: lower is better
    best_epoch: int = 0
    waited: int = 0  # epochs without improvement (early stopping)
    plateau_waited: int = 0  # epochs without improvement (reduce_on_plateau)
    stopped_early: bool = False
    planned: int = 0  # epochs the run was set to do, at the last save
    phase: int = 1  # 2 once train.fine_tune has unfrozen the backbone
    phase_start: int = 0  # epochs done when the current phase began
    global_step: int = 0  # train steps over all phases: numbers the checkpoints
    lr_scale: float = 1.0  # product of reduce_on_plateau's factors in this phase

    def to_json(self) -> str:
        data = asdict(self)
        data["best"] = None if math.isinf(self.best) else self.best
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> TrainerState:
        data = json.loads(text)
        data["best"] = math.inf if data.get("best") is None else data["best"]
        return cls(**data)


class Checkpoints:
    """The last K checkpoints plus the best one; each holds the model, every optimizer, the
    task's own objects, the dropout RNG state and the TrainerState."""

    def __init__(
        self,
        directory: Path,
        model: Any,
        optimizers: dict[str, Any],
        keep: int,
        extra: dict[str, Any] | None = None,
    ) -> None:
        import tensorflow as tf

        self._state = tf.Variable("", dtype=tf.string, trainable=False)
        # Keras keeps dropout's RNG in seed-generator variables that tf.train.Checkpoint does
        # not reach through the model, so they are listed explicitly.
        rng = [v for v in model.non_trainable_variables if "seed_generator" in v.path]
        named = {
            "optimizer" if name == "model" else f"optimizer_{name}": optimizer
            for name, optimizer in optimizers.items()
        }
        self.checkpoint = tf.train.Checkpoint(
            model=model, rng=rng, trainer_state=self._state, **named, **(extra or {})
        )
        self.last = tf.train.CheckpointManager(self.checkpoint, str(directory), max_to_keep=keep)
        self.best = tf.train.CheckpointManager(
            self.checkpoint, str(directory / "best"), max_to_keep=1, checkpoint_name="best"
        )

    def save(self, state: TrainerState, *, number: int, best: bool = False) -> None:
        self._state.assign(state.to_json())
        self.last.save(checkpoint_number=number)
        if best:
            self.best.save(checkpoint_number=number)

    def restore_latest(self, source: Path | None = None) -> TrainerState:
        """Restore the newest checkpoint here, or in `source` (a non-chief worker resumes from
        the chief's run directory while it writes to a scratch one)."""
        import tensorflow as tf

        path = tf.train.latest_checkpoint(str(source)) if source else self.last.latest_checkpoint
        if path is None:
            raise ConfigError(
                f"No checkpoint to resume from in {self.last.directory}.",
                hint="the run was stopped before its first checkpoint; start it again",
            )
        self.checkpoint.restore(path).expect_partial()
        return TrainerState.from_json(self._state.numpy().decode())

    def peek_latest(self, source: Path | None = None) -> TrainerState | None:
        """The TrainerState of the latest checkpoint, without restoring anything."""
        import tensorflow as tf

        path = tf.train.latest_checkpoint(str(source)) if source else self.last.latest_checkpoint
        if path is None:
            return None
        reader = tf.train.load_checkpoint(path)
        raw = reader.get_tensor("trainer_state/.ATTRIBUTES/VARIABLE_VALUE")
        return TrainerState.from_json(raw.decode() if isinstance(raw, bytes) else str(raw))

    def restore_best_weights(self) -> bool:
        path = self.best.latest_checkpoint
        if path is None:
            return False
        saved = self._state.numpy()
        self.checkpoint.restore(path).expect_partial()
        self._state.assign(saved)
        return True
