"""Reconstruction: an autoencoder learns to give its input back, or with `noise` a denoiser
learns the clean image from a corrupted copy. Loss and metrics are in the [0, 1] pixel scale;
evaluation adds SSIM, the noisy input's scores, the PSNR gain and a picture of examples."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field

from dlcli.config.base import StrictModel
from dlcli.registry import TASKS
from dlcli.tasks.base import Direction, EvalContext, Task, TaskConfig

NoiseType = Literal["none", "gaussian", "salt_and_pepper", "masking"]

# Evaluation noise is drawn by stateless ops from this seed: every evaluation (validation each
# epoch, `dlcli evaluate`) corrupts the same image the same way, so scores compare across runs.
EVAL_NOISE_SEED = 20240917
# PSNR of a perfect reconstruction would be infinite: errors below this MSE count as it (100 dB).
MSE_FLOOR = 1e-10
EXAMPLES_SHOWN = 8
PICTURE_FILE = "reconstructions.png"


class NoiseConfig(StrictModel):
    """How inputs are corrupted before the model sees them; the target stays the clean image."""

    type: NoiseType = Field(
        "none",
        description="gaussian: std level*255; salt_and_pepper: a fraction `level` of pixels "
        "set to 0 or 255; masking: a fraction `level` of pixels set to 0",
    )
    level: float = Field(0.1, ge=0.0, le=1.0)

    def describe(self) -> str:
        return "none" if self.type == "none" else f"{self.type} {self.level:g}"


class ReconstructionConfig(TaskConfig):
    """`task:` for `type: reconstruction` (autoencoders, denoisers)."""

    type: Literal["reconstruction"] = "reconstruction"
    noise: NoiseConfig = Field(default_factory=NoiseConfig)
    loss: Literal["mse", "mae"] = "mse"

    metrics: ClassVar[dict[str, Direction]] = {
        "loss": "min",
        "mse": "min",
        "mae": "min",
        "psnr": "max",
    }
    example: ClassVar[dict[str, Any]] = {"noise": {"type": "gaussian", "level": 0.1}}


# ---- the one noise function and the error measures (TensorFlow; eager or in a graph) --------
def add_noise(images: Any, noise: NoiseConfig, *, seed: int | None = None) -> Any:
    """A corrupted copy of a batch of raw 0-255 images [N, H, W, C], still in 0-255.

    With `seed`, stateless ops: the same batch always gets the same noise. Salt-and-pepper and
    masking pick whole pixels (all channels alike)."""
    import tensorflow as tf

    images = tf.cast(images, tf.float32)
    if noise.type == "none" or noise.level <= 0.0:
        return images

    def uniform(shape: Any, stream: int) -> Any:
        if seed is None:
            return tf.random.uniform(shape)
        return tf.random.stateless_uniform(shape, seed=(seed, stream))

    if noise.type == "gaussian":
        shape = tf.shape(images)
        if seed is None:
            gauss = tf.random.normal(shape)
        else:
            gauss = tf.random.stateless_normal(shape, seed=(seed, 0))
        return tf.clip_by_value(images + gauss * (noise.level * 255.0), 0.0, 255.0)
    pixels = tf.concat([tf.shape(images)[:-1], [1]], axis=0)
    hit = uniform(pixels, 1) < noise.level
    if noise.type == "masking":
        return tf.where(hit, tf.zeros_like(images), images)
    value = tf.where(uniform(pixels, 2) < 0.5, 0.0, 255.0)
    return tf.where(hit, tf.broadcast_to(value, tf.shape(images)), images)


def per_example_errors(clean: Any, other: Any) -> tuple[Any, Any]:
    """(MSE, MAE) per example, in the [0, 1] pixel scale, of two batches of 0-255 images."""
    import tensorflow as tf

    diff = (tf.cast(other, tf.float32) - tf.cast(clean, tf.float32)) / 255.0
    axes = tf.range(1, tf.rank(diff))
    return tf.reduce_mean(tf.square(diff), axes), tf.reduce_mean(tf.abs(diff), axes)


def psnr_from_mse(mse: Any) -> Any:
    """PSNR in dB for data range 1, capped at 100 dB (MSE_FLOOR) for identical images."""
    import tensorflow as tf

    return -10.0 * tf.math.log(tf.maximum(mse, MSE_FLOOR)) / tf.math.log(10.0)


def psnr(clean: Any, other: Any) -> Any:
    """Per-example PSNR (dB) of two batches of 0-255 images."""
    return psnr_from_mse(per_example_errors(clean, other)[0])


def ssim(clean: Any, other: Any) -> Any:
    """Per-example SSIM of two batches of 0-255 images; the window shrinks for small images."""
    import tensorflow as tf

    clean, other = tf.cast(clean, tf.float32), tf.cast(other, tf.float32)
    window = int(min(11, clean.shape[1], clean.shape[2]))
    return tf.image.ssim(clean, other, max_val=255.0, filter_size=window)


@TASKS.register("reconstruction", config=ReconstructionConfig)
class ReconstructionTask(Task):
    """Give the input back (autoencoder), or the clean image from a noisy one (denoiser)."""

    config: ReconstructionConfig

    def head(self) -> Any:
        from dlcli.models.heads import ReconstructionHead

        return ReconstructionHead(tuple(self.spec.input_shape))

    def prepare(self, batch: Any, *, training: bool) -> tuple[Any, Any]:
        """(noisy copy, clean image); labels, if any, are not used."""
        images = batch[0] if isinstance(batch, tuple | list) else batch
        seed = None if training else EVAL_NOISE_SEED
        return add_noise(images, self.config.noise, seed=seed), images

    # ---- loss and metrics -----------------------------------------------------------------
    def per_example_loss(self, targets: Any, outputs: Any) -> Any:
        mse, mae = per_example_errors(targets, outputs)
        return mse if self.config.loss == "mse" else mae

    def batch_sums(self, targets: Any, outputs: Any, per_example_loss: Any) -> dict[str, Any]:
        import tensorflow as tf

        mse, mae = per_example_errors(targets, outputs)
        return {
            "loss": tf.reduce_sum(per_example_loss),
            "squared_error": tf.reduce_sum(mse),
            "absolute_error": tf.reduce_sum(mae),
            "psnr": tf.reduce_sum(psnr_from_mse(mse)),
            "count": tf.cast(tf.shape(mse)[0], tf.float32),
        }

    def metrics(self, sums: dict[str, float]) -> dict[str, float]:
        count = max(sums.get("count", 0.0), 1.0)
        return {
            "loss": sums["loss"] / count,
            "mse": sums["squared_error"] / count,
            "mae": sums["absolute_error"] / count,
            "psnr": sums["psnr"] / count,
        }

    # ---- evaluation -----------------------------------------------------------------------
    def evaluate(self, ctx: EvalContext) -> dict[str, Any]:
        from dlcli.report.images import plot_image_rows

        dataset = ctx.data.batch(ctx.data.split(ctx.split), ctx.batch_size, False)
        size = int(ctx.data.sizes.get(ctx.split, 0)) or EXAMPLES_SHOWN
        # Examples spread over the split (its files are often in class order).
        picked = set(np.linspace(0, size - 1, min(EXAMPLES_SHOWN, size)).round().astype(int))
        scores: dict[str, list[np.ndarray]] = {}
        shown: dict[str, list[np.ndarray]] = {"input": [], "noisy": [], "output": []}
        captions: list[str] = []
        offset = 0
        for batch in dataset:
            noisy, clean = self.prepare(batch, training=False)
            output = np.asarray(ctx.model.predict_on_batch(noisy), dtype=np.float32)
            measured = self._scores(clean, noisy, output)
            for key, value in measured.items():
                scores.setdefault(key, []).append(value)
            for i in sorted(k - offset for k in picked if 0 <= k - offset < len(output)):
                for name, images in (("input", clean), ("noisy", noisy), ("output", output)):
                    shown[name].append(np.asarray(images[i]))
                captions.append(f"{measured['psnr'][i]:.1f} dB")
            offset += len(output)
        means = {k: float(np.concatenate(v).mean()) for k, v in scores.items()}
        report: dict[str, Any] = {
            "examples": offset,
            "noise": self.config.noise.describe(),
            **{k: means[k] for k in ("mse", "mae", "psnr", "ssim")},
        }
        if self.config.noise.type != "none":
            report["noisy_psnr"] = means["noisy_psnr"]
            report["noisy_ssim"] = means["noisy_ssim"]
            report["psnr_gain"] = means["psnr"] - means["noisy_psnr"]
        else:
            del shown["noisy"]
        plot_image_rows(list(shown.items()), ctx.out_dir / PICTURE_FILE, captions=captions)
        return report

    @staticmethod
    def _scores(clean: Any, noisy: Any, output: Any) -> dict[str, np.ndarray]:
        """Per-example scores of one batch: the output's, and the noisy input's."""
        mse, mae = per_example_errors(clean, output)
        measured = {
            "mse": mse,
            "mae": mae,
            "psnr": psnr_from_mse(mse),
            "ssim": ssim(clean, output),
            "noisy_psnr": psnr(clean, noisy),
            "noisy_ssim": ssim(clean, noisy),
        }
        return {k: np.asarray(v, dtype=np.float64) for k, v in measured.items()}

    def report_lines(self, report: dict[str, Any]) -> Iterator[Any]:
        from rich.markup import escape

        line = (
            f"{report.get('split', 'evaluation')} split: {report['examples']} examples, "
            f"noise {report['noise']}  [bold]psnr {report['psnr']:.2f} dB[/]  "
            f"ssim {report['ssim']:.4f}  mse {report['mse']:.5f}  mae {report['mae']:.4f}"
        )
        if "psnr_gain" in report:
            line += (
                f"  (noisy input {report['noisy_psnr']:.2f} dB: gain {report['psnr_gain']:+.2f} dB)"
            )
        if "output_dir" in report:
            line += f"  (report in {escape(str(report['output_dir']))})"
        yield line

    # ---- prediction -----------------------------------------------------------------------
    def predict_outputs(self, model: Any, inputs: Any) -> Any:
        """How well each input, as given, is reconstructed: a structured array of mse and psnr."""
        outputs = model.predict_on_batch(inputs)
        mse, _ = per_example_errors(inputs, outputs)
        rows = np.zeros(len(mse), dtype=[("mse", np.float64), ("psnr", np.float64)])
        rows["mse"] = np.asarray(mse)
        rows["psnr"] = np.asarray(psnr_from_mse(mse))
        return rows

    def predict_rows(
        self, outputs: Any, paths: list[str], *, top_k: int
    ) -> Iterator[dict[str, Any]]:
        for path, row in zip(paths, outputs, strict=True):
            yield {"path": path, "mse": float(row["mse"]), "psnr": float(row["psnr"])}
