"""The distributed step runner, on the default strategy: exact sums, skips, custom steps."""

from __future__ import annotations

import numpy as np
import pytest


def dataset(n: int = 20):  # type: ignore[no-untyped-def]
    import tensorflow as tf

    x = np.arange(n * 4, dtype="float32").reshape(n, 4) / (n * 4)
    return tf.data.Dataset.from_tensor_slices((x, np.arange(n) % 2))


def test_distribute_counts_steps_and_skips_exactly():
    import tensorflow as tf

    from dlcli.train.loop import distribute

    strategy = tf.distribute.get_strategy()
    dist, steps = distribute(strategy, dataset(20), 6, training=True)
    assert steps == 3  # the remainder is dropped so every replica runs the same steps
    assert sum(1 for _ in dist) == 3
    skipped, steps = distribute(strategy, dataset(20), 6, training=True, skip_steps=2)
    first = next(iter(skipped))[0].numpy()
    full = [b[0].numpy() for b in distribute(strategy, dataset(20), 6, training=True)[0]]
    np.testing.assert_array_equal(first, full[2])
    _, eval_steps = distribute(strategy, dataset(20), 6, training=False)
    assert eval_steps == 4  # evaluation keeps the partial batch


def test_custom_train_step_hook_and_exact_evaluation_sums():
    import keras
    import tensorflow as tf

    from dlcli.data.base import DataSpec
    from dlcli.tasks.classification import ClassificationConfig, ClassificationTask
    from dlcli.train.loop import StepRunner, distribute

    calls = []

    class CustomTask(ClassificationTask):
        """A task with its own step, as GAN, VAE and CTC tasks have."""

        def train_step(self, model, optimizers, batch):  # type: ignore[no-untyped-def]
            calls.append(1)  # traced once
            x, y = batch
            with tf.GradientTape() as tape:
                probabilities = model(x, training=True)
                per_example = self.per_example_loss(y, probabilities)
                loss = tf.nn.compute_average_loss(per_example)
            grads = tape.gradient(loss, model.trainable_variables)
            optimizers["model"].apply_gradients(zip(grads, model.trainable_variables, strict=True))
            return self.batch_sums(y, probabilities, per_example)

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
    optimizer = keras.optimizers.SGD(0.1)
    task = CustomTask(ClassificationConfig(), DataSpec((4,), class_names=["a", "b"]))
    strategy = tf.distribute.get_strategy()
    runner = StepRunner(strategy, model, {"model": optimizer}, task)
    dist, steps = distribute(strategy, dataset(20), 5, training=True)
    sums = runner.train(iter(dist), steps)
    assert sums["count"] == 20 and calls
    assert int(optimizer.iterations.numpy()) == 4
    evaluation, _ = distribute(strategy, dataset(7), 3, training=False)
    totals = runner.evaluate(evaluation, ["loss", "correct", "count"])
    assert totals["count"] == 7  # partial last batch included
    probabilities = model.predict(dataset(7).map(lambda x, y: x).batch(7), verbose=0)
    expected = -np.log(probabilities[np.arange(7), np.arange(7) % 2]).sum()
    assert totals["loss"] == pytest.approx(expected, rel=1e-4)
