"""Every registered component, from the registries themselves: a new data source, model or task
is one new file, and these tests pick it up.

- every data source loads its own `example` config (placeholders filled with real digits);
- every model with every compatible task builds, trains a batch through dlcli's own loop, and
  survives a save and reload with identical outputs; each model gets data of its own modality
  (images, or half a second of 8 kHz waveforms).
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dlcli.data import create_dataset
from dlcli.data.base import DataSpec
from dlcli.errors import ConfigError
from dlcli.registry import DATA_SOURCES, MODELS, TASKS
from dlcli.tasks import create_task
from tests.conftest import DIGITS, SHARED

CLASSES = {"class_names": ["a", "b", "c", "d"], "class_counts": [4, 4, 4, 4]}
SPECS = {
    "image": DataSpec(input_shape=(32, 32, 3), **CLASSES),
    "audio": DataSpec(input_shape=(4000,), modality="audio", sample_rate=8000, **CLASSES),
}


# Whole utterances of any length, each with a transcript (speech recognition).
UTTERANCES = DataSpec(input_shape=(None,), modality="audio", sample_rate=8000)
TRANSCRIPTS = ["ab", "ba c", "cab", "a", "bb a", "c c", "abc", "ca"]


def _spec(model_name: str, task_name: str = "classification") -> DataSpec:
    modality = MODELS.get(model_name).config.modality
    if TASKS.get(task_name).config.targets == "transcript":
        return UTTERANCES if modality == "audio" else SPECS[modality]
    return SPECS[modality]


def _task_and_data(model_name: str, task_name: str) -> tuple[Any, DataSpec, Any]:
    """The task, the spec its model is built for, and 8 examples as the task trains on them:
    `(input, label)`, or for transcripts waveforms of 0.25-0.5 s paired with token ids."""
    import tensorflow as tf

    from dlcli.data.base import DataBundle, padded_batch

    spec = _spec(model_name, task_name)
    task = create_task(_config(TASKS, task_name), spec)
    if spec.input_shape[0] is not None:
        x = _inputs(spec, 8)
        y = (np.arange(8) % spec.num_classes).astype("int32")
        return task, spec, tf.data.Dataset.from_tensor_slices((x, y))
    rng = np.random.default_rng(0)
    waves = [rng.uniform(-1, 1, 2000 + 250 * i).astype("float32") for i in range(8)]
    dataset = tf.data.Dataset.from_generator(
        lambda: zip(waves, TRANSCRIPTS, strict=True),
        output_signature=(tf.TensorSpec([None], tf.float32), tf.TensorSpec([], tf.string)),
    ).apply(tf.data.experimental.assert_cardinality(8))
    bundle = DataBundle(
        class_names=[],
        input_shape=spec.input_shape,
        splits={"train": dataset},
        sizes={"train": 8},
        modality="audio",
        batch=padded_batch,
        sample_rate=8000,
        transcripts={"train": TRANSCRIPTS},
    )
    return task, spec, task.adapt_data(bundle).splits["train"]


def _inputs(spec: DataSpec, count: int) -> np.ndarray:
    """Random inputs of the spec's kind: 0-255 pixels, or waveforms in [-1, 1]."""
    rng = np.random.default_rng(0)
    if spec.modality == "audio":
        return rng.uniform(-1, 1, (count, *spec.input_shape)).astype("float32")
    return rng.uniform(0, 255, (count, *spec.input_shape)).astype("float32")


def _config(registry: Any, name: str, **fill: str) -> Any:
    example = registry.get(name).config.example
    assert example or name == "classification", f"give the `{name}` config an `example`"

    def filled(value: Any) -> Any:
        if isinstance(value, str):
            return value.format(**fill) if "{" in value else value
        if isinstance(value, dict):
            return {k: filled(v) for k, v in value.items()}
        return value

    return registry.get(name).config(**filled(example))


@pytest.fixture(scope="module")
def materials(tmp_path_factory: pytest.TempPathFactory, local_tfds_builder: str) -> dict[str, str]:
    """The bundled digits in each form a data source example may name."""
    root = tmp_path_factory.mktemp("materials")
    digits, rows, xs, ys = root / "digits", [], [], []
    for label in range(10):
        (digits / str(label)).mkdir(parents=True)
        for image in sorted((DIGITS / str(label)).glob("*.png"))[:8]:
            shutil.copy(image, digits / str(label) / image.name)
            rows.append({"path": f"digits/{label}/{image.name}", "label": str(label)})
            from PIL import Image

            xs.append(np.asarray(Image.open(image).convert("L")))
            ys.append(label)
    with (root / "manifest.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label"])
        writer.writeheader()
        writer.writerows(rows)
    np.savez(root / "digits.npz", x=np.stack(xs), y=np.array(ys))
    fsdd = root / "fsdd"  # 36 real recordings: 3 speakers, digits 0-2, takes 0, 1 (test), 10, 20
    fsdd.mkdir()
    audio_rows = []
    for speaker in ("george", "lucas", "theo"):
        for digit in range(3):
            for take in (0, 1, 10, 20):
                name = f"{digit}_{speaker}_{take}.wav"
                shutil.copy(SHARED / "data" / "fsdd" / "recordings" / name, fsdd / name)
                audio_rows.append({"path": f"fsdd/{name}", "label": str(digit), "speaker": speaker})
    with (root / "fsdd.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["path", "label", "speaker"])
        writer.writeheader()
        writer.writerows(audio_rows)
    return {
        "digits": str(digits),
        "digits_manifest": str(root / "manifest.csv"),
        "digits_npz": str(root / "digits.npz"),
        "fsdd_small": str(fsdd),
        "fsdd_manifest": str(root / "fsdd.csv"),
        "tfds_name": local_tfds_builder,
        "workdir": str(root),
    }


@pytest.mark.parametrize("name", DATA_SOURCES.names())
def test_every_data_source_loads_its_example(name: str, materials: dict[str, str]):
    config = _config(DATA_SOURCES, name, **materials)
    bundle = create_dataset(config, seed=0)
    assert bundle.sizes["train"] > 0
    features, label = next(iter(bundle.split("train")))
    assert tuple(features.shape) == tuple(bundle.input_shape)
    assert 0 <= int(label) < len(bundle.class_names)
    spec = bundle.spec
    assert spec.input_shape == tuple(bundle.input_shape) and spec.num_classes >= 2


def _pairs() -> list[tuple[str, str]]:
    pairs = []
    for task_name in TASKS.names():
        for model_name in MODELS.names():
            try:
                head = _task_and_data(model_name, task_name)[0].head()
            except ConfigError:  # the task refuses this model's kind of data
                continue
            if head.kind in MODELS.get(model_name).config.heads:
                pairs.append((model_name, task_name))
    return pairs


def test_every_model_fits_some_task_and_every_task_some_model():
    pairs = _pairs()
    assert {m for m, _ in pairs} == set(MODELS.names())
    assert {t for _, t in pairs} == set(TASKS.names())


@pytest.mark.parametrize(("model_name", "task_name"), _pairs())
def test_model_and_task_train_a_batch_save_and_reload(
    model_name: str, task_name: str, tmp_path: Path
):
    import keras
    import tensorflow as tf

    from dlcli.data.base import padded_batch
    from dlcli.models.loading import load_keras_model
    from dlcli.train.loop import StepRunner, distribute

    task, spec, dataset = _task_and_data(model_name, task_name)
    model = task.build_model(_config(MODELS, model_name))
    batch = padded_batch if spec.input_shape[0] is None else None
    x = next(iter(dataset.map(lambda x, y: x).padded_batch(8)))
    strategy = tf.distribute.get_strategy()
    if task.trains_weights:
        optimizers = {}
        for name, variables in task.optimizer_variables(model).items():
            optimizers[name] = keras.optimizers.Adam(1e-3)
            optimizers[name].build(variables)
        before = [w.numpy().copy() for w in model.trainable_weights]
        runner = StepRunner(strategy, model, optimizers, task)
        dist, steps = distribute(strategy, dataset, 4, training=True, batch=batch)
        sums = runner.train(iter(dist), steps)
        assert np.isfinite(task.metrics(sums)["loss"])
        after = [w.numpy() for w in model.trainable_weights]
        assert any(not np.allclose(a, b) for a, b in zip(before, after, strict=True))
        evaluation, _ = distribute(strategy, dataset, 4, training=False, batch=batch)
        keys = task.eval_keys(list(sums))
        assert all(np.isfinite(v) for v in task.metrics(runner.evaluate(evaluation, keys)).values())
    if hasattr(task, "model_inputs"):  # a generative pair takes labels (and a GAN, noise)
        labels = np.arange(len(x)) % max(spec.num_classes, 1)
        x = task.model_inputs(np.asarray(x), labels)
    outputs = model.predict(x, verbose=0)
    model.save(tmp_path / "m.keras")
    again = load_keras_model(tmp_path / "m.keras")
    np.testing.assert_allclose(again.predict(x, verbose=0), outputs, rtol=1e-5, atol=1e-5)
