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
