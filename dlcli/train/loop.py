"""The distributed training step: one code path for the default, mirrored, multi-worker and
TPU strategies.

Keras 3's `model.fit` cannot run under MultiWorkerMirroredStrategy (keras-team/keras#20585),
so dlcli owns the loop: a distributed dataset, `strategy.run` of a GradientTape step, and
several steps per `tf.function` call so small models are not bound by Python.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Sums = dict[str, float]


class StepRunner:
    """Compiled train and evaluation functions for one model, its optimizers and a task."""

    def __init__(
        self,
        strategy: Any,
        model: Any,
        optimizers: dict[str, Any],
        task: Any,
        *,
        jit_compile: bool = False,
    ) -> None:
        self.strategy, self.model, self.task = strategy, model, task
        self.optimizers = optimizers
        self.jit_compile = jit_compile
        self._train_chunk = self._build_train_chunk()
        self._evaluate_all = self._build_evaluate()

    # The per-replica computation. Tasks with their own step (GAN, VAE, CTC) provide
    # `train_step(model, optimizers, batch) -> sums`; everything else uses this one.
    def _default_train_step(self) -> Callable[[Any], Any]:
        import tensorflow as tf

        model, optimizer, task = self.model, self.optimizers["model"], self.task

        def gradients(x: Any, y: Any) -> Any:
            with tf.GradientTape() as tape:
                outputs = model(x, training=True)
                per_example = task.per_example_loss(y, outputs)
                loss = tf.nn.compute_average_loss(per_example)
                if model.losses:
                    loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
                scaled = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, model.trainable_variables)
            return grads, task.batch_sums(y, outputs, per_example)

        if self.jit_compile:
            gradients = tf.function(gradients, jit_compile=True)

        def step(batch: Any) -> Any:
            x, y = task.prepare(batch, training=True)
            grads, sums = gradients(x, y)
            optimizer.apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return sums

        return step

    def _reduce(self, per_replica: Any) -> Any:
        import tensorflow as tf

        return tf.nest.map_structure(
            lambda v: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None), per_replica
        )

    def _build_train_chunk(self) -> Any:
        import tensorflow as tf

        custom = getattr(self.task, "train_step", None)
        step = (
            (lambda batch: custom(self.model, self.optimizers, batch))
            if custom
            else self._default_train_step()
        )

        @tf.function
        def train_chunk(iterator: Any, num_steps: Any) -> Any:
            sums = self._reduce(self.strategy.run(step, args=(next(iterator),)))
            for _ in tf.range(num_steps - 1):
                more = self._reduce(self.strategy.run(step, args=(next(iterator),)))
                sums = tf.nest.map_structure(tf.add, sums, more)
            return sums

        return train_chunk

    def _build_evaluate(self) -> Any:
        import tensorflow as tf

        model, task = self.model, self.task

        def default_step(batch: Any) -> Any:
            x, y = task.prepare(batch, training=False)
            outputs = model(x, training=False)
            return task.batch_sums(y, outputs, task.per_example_loss(y, outputs))

        custom = getattr(task, "eval_step", None)
        step = (lambda batch: custom(model, batch)) if custom else default_step

        @tf.function
        def evaluate_all(dataset: Any, zeros: Any) -> Any:
            sums = zeros
            for batch in dataset:
                more = self._reduce(self.strategy.run(step, args=(batch,)))
                sums = tf.nest.map_structure(tf.add, sums, more)
            return sums

        return evaluate_all

    def train(self, iterator: Any, num_steps: int) -> Sums:
        import tensorflow as tf

        sums = self._train_chunk(iterator, tf.constant(num_steps, tf.int32))
        return {k: float(v) for k, v in sums.items()}

    def evaluate(self, dataset: Any, keys: list[str]) -> Sums:
        import tensorflow as tf

        zeros = {k: tf.constant(0.0) for k in keys}
        sums = self._evaluate_all(dataset, zeros)
        return {k: float(v) for k, v in sums.items()}


def distribute(
    strategy: Any,
    dataset: Any,
    global_batch_size: int,
    *,
    training: bool,
    skip_steps: int = 0,
    batch_map: Callable[[Any, Any], Any] | None = None,
    batch: Callable[[Any, int, bool], Any] | None = None,
) -> tuple[Any, int]:
    """Shard and batch `dataset` for `strategy`; return the distributed dataset and the number
    of global steps one pass takes (for training, every worker runs exactly that many).
    `skip_steps` resumes a training pass in the middle, at the same batch it stopped.
    `batch(dataset, size, drop_remainder)` is the data source's batching (padded, say)."""
    import tensorflow as tf

    batch = batch or (lambda ds, n, drop: ds.batch(n, drop_remainder=drop))

    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        from dlcli.errors import ConfigError

        raise ConfigError(
            f"train.batch_size must be a multiple of the {replicas} replicas in sync. "
            f"Received: {global_batch_size}."
        )
    size = int(dataset.cardinality())
    holder: dict[str, int] = {}

    def fn(context: Any) -> Any:
        per_replica = context.get_per_replica_batch_size(global_batch_size)
        ds = dataset
        if context.num_input_pipelines > 1:
            ds = ds.shard(context.num_input_pipelines, context.input_pipeline_id)
        shard = size // context.num_input_pipelines
        per_pipeline = global_batch_size // context.num_input_pipelines
        if training:
            # Drop the remainder so every replica of every worker runs the same steps.
            holder["steps"] = max(1, shard // per_pipeline)
            drop = shard >= per_pipeline
            ds = batch(ds, per_replica, drop)
            batches_per_step = per_pipeline // per_replica
            ds = ds.take(holder["steps"] * batches_per_step).skip(skip_steps * batches_per_step)
            if batch_map is not None:  # augmentation, on whole batches, training only
                ds = ds.map(batch_map, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            ds = batch(ds, per_replica, False)
        return ds.prefetch(tf.data.AUTOTUNE)

    options = tf.distribute.InputOptions(experimental_fetch_to_device=True)
    dist = strategy.distribute_datasets_from_function(fn, options)
    steps = holder.get("steps", -(-size // global_batch_size))
    return dist, steps
