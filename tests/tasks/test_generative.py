"""VAE and GAN pieces on known inputs: builders, the KL warm-up, the losses' settings and the
scores (Frechet distance in a saved network's features, class recognition by a classifier)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlcli.data.base import DataSpec
from dlcli.models import create_model
from dlcli.models.generative import DCGANConfig, VAEConfig
from dlcli.models.heads import GenerativeHead
from dlcli.tasks import create_task
from dlcli.tasks.gan import GANTaskConfig
from dlcli.tasks.generation import FeatureNetwork, class_recognition, tile
from dlcli.tasks.vae import VAETaskConfig
from tests.conftest import DIGITS

CLASSES = [str(d) for d in range(10)]


def _digits(per_class: int) -> tuple[np.ndarray, np.ndarray]:
    from PIL import Image

    images, labels = [], []
    for label in range(10):
        for path in sorted((DIGITS / str(label)).glob("*.png"))[:per_class]:
            images.append(np.asarray(Image.open(path).convert("L"), np.float32)[..., None])
            labels.append(label)
    return np.stack(images), np.array(labels, np.int32)


def test_builders_fit_odd_sizes_and_take_labels_only_when_conditional():
    spec = DataSpec(input_shape=(10, 14, 3), class_names=CLASSES)
    gan = create_model(
        DCGANConfig(latent=8, filters=[16, 8]),
        spec,
        head=GenerativeHead("gan", (10, 14, 3), 10, True),
    )
    generator = gan.get_layer("generator")
    images = generator.predict([np.zeros((2, 8), "float32"), np.array([1, 2], "int32")], verbose=0)
    assert images.shape == (2, 10, 14, 3) and images.min() >= 0 and images.max() <= 255
    vae = create_model(
        VAEConfig(filters=[8], hidden=None, latent=3), spec, head=GenerativeHead("vae", (10, 14, 3))
    )
    assert len(vae.inputs) == 1 and vae.output_shape == (None, 10, 14, 3)
    assert vae.get_layer("encoder").get_layer("embedding").output.shape[-1] == 3


def test_kl_weight_warms_up_over_epochs_and_wgan_takes_five_critic_steps():
    spec = DataSpec(input_shape=(8, 8, 1), class_names=CLASSES)
    task = create_task(VAETaskConfig(kl_weight=2.0, kl_warmup_epochs=2), spec)
    task.on_train_begin(steps_per_epoch=10)
    assert float(task._weight(0)) == pytest.approx(0.1)  # 2.0 x 1/20
    assert float(task._weight(9)) == pytest.approx(1.0)
    assert float(task._weight(500)) == pytest.approx(2.0)
    assert GANTaskConfig(loss="wgan_gp").steps_per_generator_step == 5
    assert GANTaskConfig(loss="standard").steps_per_generator_step == 1
    assert GANTaskConfig(loss="wgan_gp", critic_steps=2).steps_per_generator_step == 2


def test_conditional_generation_needs_labelled_data():
    from dlcli.errors import ConfigError

    with pytest.raises(ConfigError, match="at least two classes"):
        create_task(GANTaskConfig(conditional=True), DataSpec(input_shape=(8, 8, 1)))


@pytest.fixture(scope="module")
def classifier(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small CNN trained on the real digits, saved as a run directory would hold it."""
    import keras

    from dlcli.models.heads import ClassesHead
    from dlcli.models.small_cnn import SmallCNNConfig

    x, y = _digits(40)
    spec = DataSpec(input_shape=(8, 8, 1), class_names=CLASSES)
    keras.utils.set_random_seed(0)
    model = create_model(SmallCNNConfig(filters=[16], dense=[32]), spec, head=ClassesHead(10))
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x, y, epochs=30, batch_size=32, verbose=0)
    run = tmp_path_factory.mktemp("judge")
    model.save(run / "model.keras")
    spec.save(run)
    return run


def test_frechet_distance_is_zero_for_identical_sets_in_a_run_features(classifier: Path):
    from dlcli.report.frechet import frechet_distance

    x, _ = _digits(20)
    features = FeatureNetwork(str(classifier), {})
    same = frechet_distance(features(x), features(x.copy()))
    noise = np.random.default_rng(0).uniform(0, 255, x.shape).astype("float32")
    assert same == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(features(noise), features(x)) > 1.0
    # Other sizes and channels are fitted to the network's input (16 px RGB -> 8 px gray).
    assert features(np.repeat(x.repeat(2, 1).repeat(2, 2), 3, -1)).shape == features(x).shape


def test_class_recognition_on_known_generators(classifier: Path):
    """A 'generator' that returns a real training image of the requested digit is recognised;
    one that returns the next digit's image is not."""
    import keras
    from keras import layers

    x, _ = _digits(1)  # one real image per digit, in class order
    spec = DataSpec(input_shape=(8, 8, 1), class_names=CLASSES)

    def lookup(shift: int) -> keras.Model:
        table = np.roll(x.reshape(10, 64), -shift, axis=0)
        z = keras.Input((4,), name="latent")
        label = keras.Input((), dtype="int32", name="label")
        pixels = layers.Embedding(
            10, 64, embeddings_initializer=keras.initializers.Constant(table)
        )(label)
        ignored = layers.Dense(64, kernel_initializer="zeros", use_bias=False)(z)
        image = layers.Reshape((8, 8, 1))(layers.Add()([pixels, ignored]))
        generator = keras.Model([z, label], image, name="generator")
        return keras.Model([z, label], generator([z, label]))

    task = create_task(GANTaskConfig(conditional=True), spec)
    right = class_recognition(task, lookup(0), str(classifier), count=50)
    wrong = class_recognition(task, lookup(1), str(classifier), count=50)
    assert right["class_accuracy"] >= 0.9
    assert wrong["class_accuracy"] <= 0.2
    assert set(right["class_accuracy_per_class"]) == set(CLASSES)


def test_tile_lays_out_rows_and_scales_small_images():
    images = np.arange(6, dtype=np.float32)[:, None, None, None] * np.ones((6, 8, 8, 1)) * 40
    grid = tile(images, 2, 3)
    assert grid.shape == (2 * 66 + 2, 3 * 66 + 2, 1) and grid.dtype == np.uint8
    assert grid[2 + 66 + 10, 2 + 2 * 66 + 10, 0] == 200  # row 1, column 2: the sixth image


def _train_one_step(task, model_config):  # type: ignore[no-untyped-def]
    """Build the task's model and run one train step on 8 real digits; return model, optimizers."""
    import keras
    import tensorflow as tf

    from dlcli.train.loop import StepRunner, distribute

    model = task.build_model(model_config)
    optimizers = {}
    for name, variables in task.optimizer_variables(model).items():
        optimizers[name] = keras.optimizers.Adam(1e-4)
        optimizers[name].build(variables)
    task.on_train_begin(1)
    x, y = _digits(1)
    strategy = tf.distribute.get_strategy()
    dataset = tf.data.Dataset.from_tensor_slices((x[:8], y[:8]))
    dist, _ = distribute(strategy, dataset, 8, training=True)
    sums = StepRunner(strategy, model, optimizers, task).train(iter(dist), 1)
    return model, optimizers, task.metrics(sums)


def test_wgan_gp_takes_critic_steps_and_logs_its_penalty():
    spec = DataSpec(input_shape=(8, 8, 1), class_names=CLASSES)
    task = create_task(GANTaskConfig(loss="wgan_gp", conditional=True), spec)
    _, optimizers, metrics = _train_one_step(task, DCGANConfig(latent=4, filters=[8, 4]))
    assert int(optimizers["discriminator"].iterations) == 5
    assert int(optimizers["generator"].iterations) == 1
    assert task.updates_per_step("discriminator") == 5 and task.updates_per_step("generator") == 1
    assert metrics["gp"] > 0.0 and np.isfinite(metrics["d_loss"])


def test_gradient_penalty_is_measured_where_the_critic_works():
    """A linear critic on [-1, 1]-scaled pixels with a weight vector of norm 3 has gradient
    norm 3 everywhere there: the penalty is (3 - 1)^2 = 4, whatever the pixels."""
    import keras
    import tensorflow as tf
    from keras import layers

    w = np.random.default_rng(0).normal(size=(64, 1)).astype("float32")
    w *= 3.0 / np.linalg.norm(w)
    image = keras.Input((8, 8, 1))
    x = layers.Flatten()(layers.Rescaling(1 / 127.5, offset=-1.0)(image))
    critic = keras.Model(image, layers.Dense(1, use_bias=False, kernel_initializer="zeros")(x))
    critic.layers[-1].kernel.assign(w)
    task = create_task(GANTaskConfig(loss="wgan_gp"), DataSpec(input_shape=(8, 8, 1)))
    task.noise = tf.random.Generator.from_seed(0)
    real, _ = _digits(1)
    fake = np.random.default_rng(1).uniform(0, 255, real.shape).astype("float32")
    penalty = task._penalty(critic, tf.constant(real), tf.constant(fake), None)
    np.testing.assert_allclose(penalty.numpy(), 4.0, rtol=1e-4)


def test_conditional_vae_trains_saves_and_reloads(tmp_path: Path):
    from dlcli.models.loading import load_keras_model

    spec = DataSpec(input_shape=(8, 8, 1), class_names=CLASSES)
    task = create_task(VAETaskConfig(conditional=True), spec)
    model, _, metrics = _train_one_step(task, VAEConfig(filters=[8], hidden=16, latent=3))
    assert metrics["nelbo"] == pytest.approx(metrics["reconstruction"] + metrics["kl"])
    x, y = _digits(1)
    before = model.predict(task.model_inputs(x, y), verbose=0)
    model.save(tmp_path / "vae.keras")
    again = load_keras_model(tmp_path / "vae.keras")
    np.testing.assert_allclose(again.predict([x, y], verbose=0), before, rtol=1e-5, atol=1e-4)
    images = task.generate(again, 4, labels=np.array([1, 2, 3, 4]), seed=3)
    assert images.shape == (4, 8, 8, 1)


def test_vae_loss_terms_match_their_closed_forms():
    """With zero noise and an encoder whose mean and log-variance are known, the KL is
    0.5 * sum(mean^2 + var - log var - 1) and the Bernoulli term is the pixels' cross-entropy."""
    import tensorflow as tf

    spec = DataSpec(input_shape=(8, 8, 1))
    task = create_task(VAETaskConfig(), spec)
    model = task.build_model(VAEConfig(filters=[8], hidden=None, latent=2))
    x, y = _digits(1)
    encoder, decoder = model.get_layer("encoder"), model.get_layer("decoder")
    mean, log_var = (np.asarray(t) for t in encoder(x, training=False))
    eps = tf.zeros_like(mean)
    reconstruction, kl = task._terms(model, tf.constant(x), tf.constant(y), eps, False)
    expected_kl = 0.5 * np.sum(mean**2 + np.exp(log_var) - log_var - 1.0, axis=1)
    np.testing.assert_allclose(kl.numpy(), expected_kl, rtol=1e-4, atol=1e-5)
    p = np.clip(np.asarray(decoder(mean, training=False)) / 255.0, 1e-6, 1 - 1e-6)
    t = x / 255.0
    expected = -np.sum(t * np.log(p) + (1 - t) * np.log(1 - p), axis=(1, 2, 3))
    np.testing.assert_allclose(reconstruction.numpy(), expected, rtol=1e-4)


def test_generative_tasks_refuse_label_mixing_augmentation():
    from dlcli.config.loader import load_pipeline_text
    from dlcli.errors import ConfigError

    text = (
        f"name: g\ndata: {{type: image_folder, path: {DIGITS}, image_size: [8, 8], channels: 1,"
        " augment: {mixup: 0.2}}\nmodel: {type: dcgan}\ntask: {type: gan}\n"
    )
    with pytest.raises(ConfigError, match="mixup/cutmix"):
        load_pipeline_text(text)
