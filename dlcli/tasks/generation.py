"""What the generative tasks (`vae`, `gan`) share: class conditioning, a fixed-latent sample
grid each epoch (PNG and TensorBoard), `dlcli generate`, and the scores of `evaluate`.

Scores (`task.scores`):
- a Frechet distance between generated images and the split's real images in the feature
  space of a network the user names: a dlcli run (its `embedding` layer; a classifier of the
  same data is a good choice) or a keras.applications backbone with ImageNet weights. It is
  stated as such: it is not FID (Inception v3 on 50,000 samples) and not comparable with
  published FIDs. The distance between the training images and the split's real images is
  reported beside it: the floor a perfect generator would come near;
- for conditional models and a classifier run: how often the classifier recognises the
  requested class in generated images (per class and overall).
"""

from __future__ import annotations

import logging
from abc import abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from pydantic import Field, ValidationInfo, field_validator

from dlcli.config.base import StrictModel
from dlcli.errors import ConfigError
from dlcli.tasks.base import EvalContext, Task, TaskConfig

log = logging.getLogger("dlcli")

GRID_SEED = 20261123  # the fixed latent vectors of every epoch's sample grid
EVAL_SEED = 7  # generated images that `evaluate` scores
SAMPLES_DIR = "samples"
GRID_COLUMNS = 8
GRID_ROWS_MAX = 10  # classes shown per grid (conditional), or rows (unconditional: 8)


class ScoresConfig(StrictModel):
    """`task.scores`: which networks judge generated images in `evaluate`."""

    network: str | None = Field(
        None,
        description="feature space of the Frechet distance: a dlcli run directory or .keras "
        "file (its `embedding` layer), or a keras.applications backbone name with ImageNet "
        "weights (e.g. MobileNetV2); default: the classifier",
    )
    network_args: dict[str, Any] = Field(
        default_factory=dict, description="backbone constructor arguments, e.g. {alpha: 0.25}"
    )
    classifier: str | None = Field(
        None,
        description="a dlcli classification run of the same classes: conditional models are "
        "scored by how often it recognises the requested class",
    )
    samples: int | None = Field(
        None, ge=2, description="generated images to score (default: as many as the split has)"
    )

    @field_validator("network", "classifier")
    @classmethod
    def _resolve(cls, value: str | None, info: ValidationInfo) -> str | None:
        from dlcli.models.backbones import BACKBONES

        if value is None or value in BACKBONES:
            return value
        path = Path(value).expanduser()
        base = (info.context or {}).get("base_dir")
        if not path.is_absolute() and base is not None:
            path = Path(base) / path
        return str(path.resolve())


class GenerativeConfig(TaskConfig):
    """What both generative tasks take."""

    conditional: bool = Field(
        False, description="generate a requested class: needs labelled data (folders)"
    )
    scores: ScoresConfig = Field(default_factory=ScoresConfig)
    targets: ClassVar[str] = "label"
    mixes_labels: ClassVar[bool] = False

    def resumable_keys(self) -> tuple[str, ...]:
        return ("task.scores",)


class GenerativeTask(Task):
    """Base of the VAE and GAN tasks; subclasses name their sampling network and steps."""

    config: GenerativeConfig
    kind: ClassVar[str]  # the head kind: "vae" or "gan"
    sampler_name: ClassVar[str]  # the sub-model that maps latents to images

    def __init__(self, config: GenerativeConfig, spec: Any) -> None:
        super().__init__(config, spec)
        if spec.modality != "image":
            raise ConfigError(
                f"task `{config.type}` generates images. Received data of modality "
                f"`{spec.modality}`."
            )
        if config.conditional and spec.num_classes < 2:
            raise ConfigError(
                f"task.conditional needs labelled images of at least two classes; the data "
                f"has {spec.num_classes}.",
                hint="use a folder per class (image_folder), or set task.conditional: false",
            )
        self.noise: Any = None  # a tf.random.Generator, made in the strategy's scope

    def head(self) -> Any:
        from dlcli.models.heads import GenerativeHead

        return GenerativeHead(
            self.kind,
            tuple(int(d) for d in self.spec.input_shape),
            num_classes=self.spec.num_classes,
            conditional=self.config.conditional,
        )

    def build_model(self, model_config: Any) -> Any:
        """The model, and the noise generator the train steps draw from: built here, inside the
        strategy's scope, so each replica gets its own stream; checkpointed for resume."""
        import tensorflow as tf

        model = super().build_model(model_config)
        self.noise = tf.random.Generator.from_seed(int(np.random.randint(2**31 - 1)))
        return model

    def checkpoint_objects(self) -> dict[str, Any]:
        return {"noise": self.noise} if self.noise is not None else {}

    def prepare(self, batch: Any, *, training: bool) -> tuple[Any, Any]:
        images, labels = batch
        return images, labels

    # ---- latents and images ---------------------------------------------------------------
    def sampler(self, model: Any) -> Any:
        return model.get_layer(self.sampler_name)

    def latent_size(self, model: Any) -> int:
        return int(self.sampler(model).inputs[0].shape[-1])

    def sampler_inputs(self, z: Any, labels: Any) -> Any:
        return [z, labels] if self.config.conditional else z

    @abstractmethod
    def model_inputs(self, images: Any, labels: Any) -> Any:
        """What the whole saved model takes, for a batch of real images and their labels."""

    @abstractmethod
    def train_step(self, model: Any, optimizers: dict[str, Any], batch: Any) -> dict[str, Any]:
        """One update of the task's networks; per-replica sums (see `Task`)."""

    @abstractmethod
    def eval_step(self, model: Any, batch: Any) -> dict[str, Any]:
        """The same sums on held-out images, without updates."""

    def generate(
        self, model: Any, count: int, *, labels: Any = None, seed: int = 0, batch_size: int = 256
    ) -> np.ndarray:
        """`count` images (raw 0-255, float32) from latent vectors drawn with `seed`; for a
        conditional model, one per entry of `labels` (class indices)."""
        rng = np.random.default_rng(seed)
        z = rng.standard_normal((count, self.latent_size(model))).astype(np.float32)
        if self.config.conditional:
            if labels is None:
                labels = np.arange(count) % self.spec.num_classes
            labels = np.asarray(labels, np.int32)
        sampler, parts = self.sampler(model), []
        for start in range(0, count, batch_size):
            part = slice(start, start + batch_size)
            chunk = self.sampler_inputs(z[part], None if labels is None else labels[part])
            parts.append(np.asarray(sampler(chunk, training=False), np.float32))
        if not parts:
            return np.zeros((0, *self.spec.input_shape), np.float32)
        return np.clip(np.concatenate(parts), 0.0, 255.0)

    def grid(self, model: Any) -> np.ndarray:
        """The fixed-latent grid: a row per class (conditional; the same latent vectors in
        every row) or 8 rows of 8, as one uint8 image."""
        if self.config.conditional:
            classes = min(self.spec.num_classes, GRID_ROWS_MAX)
            rng = np.random.default_rng(GRID_SEED)
            z = rng.standard_normal((GRID_COLUMNS, self.latent_size(model))).astype(np.float32)
            z = np.tile(z, (classes, 1))
            labels = np.repeat(np.arange(classes, dtype=np.int32), GRID_COLUMNS)
            images = self.sampler(model)(self.sampler_inputs(z, labels), training=False)
            return tile(np.asarray(images), classes, GRID_COLUMNS)
        images = self.generate(model, GRID_COLUMNS * GRID_COLUMNS, seed=GRID_SEED)
        return tile(images, GRID_COLUMNS, GRID_COLUMNS)

    # ---- hooks ----------------------------------------------------------------------------
    def on_epoch_end(self, model: Any, epoch: int, run_dir: Path) -> dict[str, float]:
        """Draw the fixed-latent grid: `samples/epoch_NNN.png` and a TensorBoard image (the
        trainer calls this inside its summary writer)."""
        import tensorflow as tf

        grid = self.grid(model)
        write_png(grid, run_dir / SAMPLES_DIR / f"epoch_{epoch:03d}.png")
        tf.summary.image("samples", grid[None] if grid.ndim == 3 else grid[None, ..., None])
        return {}

    # ---- evaluation -----------------------------------------------------------------------
    def split_sums(
        self, model: Any, real: np.ndarray, labels: np.ndarray, batch_size: int
    ) -> dict[str, float]:
        """The eval step's sums over a whole split held in memory."""
        import tensorflow as tf

        sums: dict[str, float] = {}
        for start in range(0, len(real), batch_size):
            x = tf.constant(real[start : start + batch_size])
            y = tf.constant(labels[start : start + batch_size])
            more = self.eval_step(model, (x, y))
            sums = {k: sums.get(k, 0.0) + float(v) for k, v in more.items()}
        return sums

    def real_images(self, data: Any, split: str, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        images, labels = [], []
        for x, y in data.batch(data.split(split), batch_size, False):
            images.append(np.asarray(x, np.float32))
            labels.append(np.asarray(y, np.int32))
        return np.concatenate(images), np.concatenate(labels)

    def scores(self, ctx: EvalContext, real: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
        """Samples picture, Frechet distance and class recognition: what every generative
        run's evaluation reports."""
        count = self.config.scores.samples or len(real)
        rng = np.random.default_rng(EVAL_SEED)
        wanted = rng.choice(labels, count) if self.config.conditional else None
        fake = self.generate(ctx.model, count, labels=wanted, seed=EVAL_SEED)
        write_png(self.grid(ctx.model), ctx.out_dir / "samples.png")
        report: dict[str, Any] = {"generated": count}
        cfg = self.config.scores
        network = cfg.network or cfg.classifier
        if network is None:
            log.info(
                "no task.scores.network or task.scores.classifier: no Frechet distance "
                "(name a classifier run of this data, or an ImageNet backbone)"
            )
        else:
            features = FeatureNetwork(network, cfg.network_args)
            real_f = features(real)
            report["frechet_network"] = features.name
            report["frechet_distance"] = _fd(features(fake), real_f)
            if ctx.data.sizes.get("train", 0) >= 2:
                # As many training images as generated ones: the distance's bias depends on
                # the sample size, so the floor must be measured like the model.
                train, _ = self.real_images(ctx.data, "train", ctx.batch_size)
                picked = rng.choice(len(train), min(count, len(train)), replace=False)
                report["frechet_train_vs_split"] = _fd(features(train[picked]), real_f)
        if self.config.conditional and cfg.classifier is not None:
            report.update(class_recognition(self, ctx.model, cfg.classifier, count))
        return report

    def report_lines(self, report: dict[str, Any]) -> Any:
        from rich.markup import escape

        line = f"{report.get('split', 'evaluation')} split: {report.get('examples', 0)} images"
        for key in self.report_keys:
            if key in report:
                line += f"  {key} {report[key]:.4g}"
        yield line
        if "frechet_distance" in report:
            yield (
                f"  [bold]Frechet distance {report['frechet_distance']:.3f}[/] in the features "
                f"of {escape(str(report['frechet_network']))} ({report['generated']} generated "
                f"images; as many training images score "
                f"{report.get('frechet_train_vs_split', float('nan')):.3f}); "
                "not comparable with published FID"
            )
        if "class_accuracy" in report:
            yield (
                f"  [bold]requested class recognised {100 * report['class_accuracy']:.1f}%[/] "
                f"by {escape(str(report['classifier']))}"
            )
        if "output_dir" in report:
            yield f"  (samples and report in {escape(str(report['output_dir']))})"

    report_keys: ClassVar[tuple[str, ...]] = ()

    # ---- prediction -----------------------------------------------------------------------
    def predict_outputs(self, model: Any, inputs: Any) -> Any:
        raise ConfigError(
            f"A `{self.config.type}` run makes images rather than predicting from them.",
            hint="use `dlcli generate RUN --count N -o DIR`"
            + (", or `dlcli embed RUN FILES` for latent vectors" if self.kind == "vae" else ""),
        )

    def predict_rows(self, outputs: Any, paths: list[str], *, top_k: int) -> Any:
        return iter(())

    def serving_model(self, model: Any) -> Any:
        """What `export` writes as SavedModel/TFLite: the network that makes images."""
        return self.sampler(model)


def _fd(a: np.ndarray, b: np.ndarray) -> float:
    from dlcli.report.frechet import frechet_distance

    return frechet_distance(a, b)


# ---- feature networks and the classifier ---------------------------------------------------
class FeatureNetwork:
    """Images (raw 0-255, any size and channels) to feature vectors: the `embedding` layer of
    a dlcli run, or a keras.applications backbone's pooled ImageNet features."""

    def __init__(self, network: str, args: dict[str, Any]) -> None:
        from dlcli.models.backbones import BACKBONES

        self.name = network
        if network in BACKBONES:
            self.model, self.preprocess = _backbone(network, args)
        else:
            self.model = embedding_model(Path(network))
            self.preprocess = None
        self.shape = tuple(int(d) for d in self.model.inputs[0].shape[1:])

    def __call__(self, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
        parts = []
        for start in range(0, len(images), batch_size):
            x = fit_images(images[start : start + batch_size], self.shape)
            if self.preprocess is not None:
                x = self.preprocess(x)
            out = np.asarray(self.model.predict_on_batch(x), np.float64)
            parts.append(out.reshape(len(out), -1, out.shape[-1]).mean(axis=1))
        return np.concatenate(parts)


def _backbone(name: str, args: dict[str, Any]) -> tuple[Any, Any]:
    import importlib

    import keras

    from dlcli.models.backbones import BACKBONES

    entry = BACKBONES[name]
    size = max(entry.size if entry.size <= 224 else 224, 32)
    try:
        model = getattr(keras.applications, entry.name)(
            include_top=False,
            weights="imagenet",
            input_shape=(size, size, 3),
            pooling="avg",
            **args,
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"task.scores.network_args for {entry.name}: {exc}") from None
    except Exception as exc:  # the ImageNet download, usually: offline machines land here
        raise ConfigError(
            f"Could not get the ImageNet weights of {entry.name}: {str(exc).splitlines()[0]}",
            hint="offline? copy the weights file Keras wants (its name is in the message) into "
            "$KERAS_HOME/models/ (default ~/.keras/models/), or name a dlcli run instead",
        ) from None
    module = importlib.import_module(f"keras.applications.{entry.module}")
    return model, module.preprocess_input


def embedding_model(path: Path) -> Any:
    """A dlcli model cut at its `embedding` layer (found in nested models too)."""
    from dlcli import runs
    from dlcli.models.loading import embedding_submodel, load_keras_model

    model_path, _ = runs.find_model(path)
    return embedding_submodel(load_keras_model(model_path), model_path)


def fit_images(images: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resize 0-255 images to `shape[:2]` and convert channels (gray <-> RGB) for a network."""
    import tensorflow as tf

    x = np.asarray(images, np.float32)
    height, width, channels = shape
    if x.shape[1:3] != (height, width):
        x = tf.image.resize(x, (height, width), method="bilinear").numpy()
    if x.shape[-1] == channels:
        return x
    if channels == 3 and x.shape[-1] == 1:
        return np.repeat(x, 3, axis=-1)
    if channels == 1 and x.shape[-1] == 3:
        return (x @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    raise ConfigError(f"Cannot feed {x.shape[-1]}-channel images to a {channels}-channel network.")


def class_recognition(
    task: GenerativeTask, model: Any, classifier: str, count: int
) -> dict[str, Any]:
    """Generate about `count` images spread evenly over the classes and report how often the
    classifier's top class is the requested one."""
    from dlcli import runs
    from dlcli.data.base import DataSpec
    from dlcli.models.loading import load_keras_model

    handle = runs.open_run(Path(classifier))
    model_path, directory = handle.model_path, handle.directory
    if handle.config is not None and handle.config.task.type != "classification":
        raise ConfigError(
            f"task.scores.classifier {classifier} is a `{handle.config.task.type}` run; it must "
            "be a classification run of the same classes.",
            hint="train one with `dlcli train` on the same folders (pipelines/quickstart.yaml "
            "for the digits)",
        )
    their = DataSpec.load(directory)
    names = task.spec.class_names or []
    their_names = (their.class_names if their else None) or []
    missing = [n for n in names if n not in their_names]
    if missing:
        raise ConfigError(
            f"task.scores.classifier {classifier} does not know the classes "
            f"{', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
            f"(it knows: {', '.join(their_names[:10]) or 'none'}).",
            hint="name a classification run trained on the same classes",
        )
    judge = load_keras_model(model_path)
    per_class = max(1, count // len(names))
    wanted = np.repeat(np.arange(len(names), dtype=np.int32), per_class)
    images = task.generate(model, len(wanted), labels=wanted, seed=EVAL_SEED + 1)
    shape = tuple(int(d) for d in judge.inputs[0].shape[1:])
    probs = np.concatenate(
        [
            np.asarray(judge.predict_on_batch(fit_images(images[i : i + 256], shape)))
            for i in range(0, len(images), 256)
        ]
    )
    mapped = np.array([their_names.index(names[c]) for c in wanted])
    hit = probs.argmax(axis=1) == mapped
    return {
        "classifier": str(classifier),
        "class_accuracy": float(hit.mean()),
        "class_accuracy_per_class": {
            name: float(hit[wanted == c].mean()) for c, name in enumerate(names)
        },
    }


# ---- pictures -------------------------------------------------------------------------------
def tile(images: np.ndarray, rows: int, columns: int, border: int = 2) -> np.ndarray:
    """`rows * columns` images (0-255, HxWxC) as one uint8 grid with a white border, scaled up
    by a whole factor so small images (16 px) are visible."""
    x = np.clip(np.asarray(images, np.float32), 0, 255).astype(np.uint8)
    scale = max(1, 64 // max(x.shape[1], 1))
    if scale > 1:
        x = x.repeat(scale, axis=1).repeat(scale, axis=2)
    n, h, w, c = x.shape
    canvas = np.full(
        (rows * (h + border) + border, columns * (w + border) + border, c), 255, np.uint8
    )
    for i in range(min(n, rows * columns)):
        r, col = divmod(i, columns)
        top, left = border + r * (h + border), border + col * (w + border)
        canvas[top : top + h, left : left + w] = x[i]
    return canvas


def write_png(image: np.ndarray, path: Path) -> None:
    """One uint8 image (HxWxC, C 1 or 3) as a PNG, through a temporary name."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(np.asarray(image), 0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    picture.save(tmp, format="PNG")
    tmp.replace(path)
