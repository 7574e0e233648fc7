"""VAE and GAN through the real CLI: training with sample grids, generate, evaluate with scores
from a real classifier run, embed, resume of a GAN mid-epoch, two logical CPUs."""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import (
    CPU_ONLY,
    SHARED,
    assert_no_traceback,
    run_cli,
    run_on_two_logical_cpus,
    run_workers,
    write_pipeline,
)

pytestmark = pytest.mark.e2e

DATA = (
    "data:\n  type: image_folder\n  path: {path}\n  image_size: [8, 8]\n  channels: 1\n"
    "  split: {{validation: 0.2, test: 0.2}}\n"
)
GAN = (
    "model:\n  type: dcgan\n  latent: 16\n  filters: [32, 16]\n"
    "task:\n  type: gan\n  conditional: true\n"
    "train:\n  epochs: 2\n  batch_size: 16\n  deterministic: true\n"
    "  optimizer: {type: adam, learning_rate: 0.0005, beta_1: 0.5}\n"
    "  checkpoint: {every_n_steps: 4, keep: 20}\n"
)
VAE = (
    "model:\n  type: vae\n  filters: [16]\n  hidden: 32\n  latent: 4\n"
    "task:\n  type: vae\n  kl_warmup_epochs: 1\n"
    "train:\n  epochs: 2\n  batch_size: 16\n  optimizer: {type: adam, learning_rate: 0.003}\n"
)


def history(run: Path) -> list[dict[str, str]]:
    rows = list(csv.DictReader((run / "history.csv").open()))
    for row in rows:
        row.pop("seconds")
    return rows


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, small_digits: Path) -> dict[str, Path]:
    """A digit classifier (the judge), a conditional GAN and a VAE, each trained briefly; the
    GAN (deterministic, resumed bit-exactly below) on the CPU, where that is promised."""
    work = tmp_path_factory.mktemp("generative")
    data = DATA.format(path=small_digits)
    made = {"work": work}
    for name, sections in (
        ("classifier", {"train": "train:\n  epochs: 6\n  batch_size: 16\n"}),
        ("gan", {"model": GAN, "train": "", "task": ""}),
        ("vae", {"model": VAE, "train": "", "task": ""}),
    ):
        pipeline = write_pipeline(work / f"{name}.yaml", small_digits, data=data, **sections)
        env = CPU_ONLY if name == "gan" else None
        result = run_cli("train", pipeline, "--output", work / name, cwd=work, env=env)
        assert result.code == 0, result.stderr
        made[name] = work / name
    return made


def test_gan_training_draws_a_fixed_latent_grid_per_epoch(runs: dict[str, Path]):
    run = runs["gan"]
    rows = history(run)
    assert [r["epoch"] for r in rows] == ["1", "2"]
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "val_d_real", "val_d_fake"):
        assert np.isfinite(float(rows[-1][key])), key
    grids = sorted((run / "samples").glob("epoch_*.png"))
    assert [g.name for g in grids] == ["epoch_001.png", "epoch_002.png"]
    # A row per class (10 digits), 8 columns; 8-px images are drawn at 64 px.
    width, height = Image.open(grids[-1]).size
    assert (width, height) == (8 * 66 + 2, 10 * 66 + 2)
    assert Image.open(grids[0]).tobytes() != Image.open(grids[1]).tobytes()  # it trains
    events = list((run / "tensorboard").glob("events.out.tfevents.*"))
    assert events and b"samples" in events[0].read_bytes()


def test_generate_writes_the_requested_class_reproducibly(runs: dict[str, Path]):
    work = runs["work"]
    first = run_cli(
        "generate", runs["gan"], "-n", "12", "--class", "3", "-o", work / "g1", "--json"
    )
    assert first.code == 0, first.stderr
    files = [Path(f) for f in first.json()["files"]]
    assert len(files) == 12 and all(f.name.endswith("_3.png") for f in files)
    assert first.json()["classes"] == ["3"] * 12
    image = np.asarray(Image.open(files[0]))
    assert image.shape == (8, 8) and image.dtype == np.uint8
    assert (work / "g1" / "grid.png").is_file()
    again = run_cli("generate", runs["gan"], "-n", "12", "--class", "3", "-o", work / "g2")
    other = run_cli(
        "generate", runs["gan"], "-n", "12", "--class", "3", "-o", work / "g3", "--seed", "1"
    )
    assert again.code == 0 and other.code == 0
    name = files[0].name
    assert (work / "g2" / name).read_bytes() == files[0].read_bytes()
    assert (work / "g3" / name).read_bytes() != files[0].read_bytes()
    mixed = run_cli("generate", runs["gan"], "-n", "20", "-o", work / "g4", "--json")
    assert mixed.code == 0 and sorted(set(mixed.json()["classes"])) == [str(d) for d in range(10)]


def test_generate_refuses_what_a_run_cannot_do(runs: dict[str, Path], small_digits: Path):
    from dlcli.errors import ConfigError
    from dlcli.generate import generate_images

    unknown = run_cli("generate", runs["gan"], "--class", "33", "-o", runs["work"] / "x")
    assert unknown.code == 2 and "Expected one of: 0, 1, 2" in unknown.stderr
    predicted = run_cli("predict", runs["gan"], str(small_digits / "3"))
    assert predicted.code == 2 and "dlcli generate" in predicted.stderr
    for result in (unknown, predicted):
        assert_no_traceback(result)
    with pytest.raises(ConfigError, match="not class-conditional"):
        generate_images(runs["vae"], 2, runs["work"] / "x", class_name="3")
    with pytest.raises(ConfigError, match="needs a generative one"):
        generate_images(runs["classifier"], 2, runs["work"] / "x")
    assert not (runs["work"] / "x").exists()  # nothing written


def test_evaluate_scores_a_gan_with_a_classifier_run(runs: dict[str, Path]):
    result = run_cli(
        "evaluate", runs["gan"], "--set", f"task.scores.classifier={runs['classifier']}", "--json"
    )
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["frechet_distance"] > report["frechet_train_vs_split"] >= 0.0
    assert 0.0 <= report["class_accuracy"] <= 1.0
    assert set(report["class_accuracy_per_class"]) == {str(d) for d in range(10)}
    assert "not comparable with published FID" in result.stderr
    assert (Path(report["output_dir"]) / "samples.png").is_file()
    judged_by_a_vae = run_cli(
        "evaluate", runs["gan"], "--set", f"task.scores.classifier={runs['vae']}"
    )
    assert judged_by_a_vae.code == 2 and "must be a classification run" in judged_by_a_vae.stderr
    assert_no_traceback(judged_by_a_vae)


def test_vae_evaluates_embeds_and_generates(runs: dict[str, Path], small_digits: Path):
    run, work = runs["vae"], runs["work"]
    rows = history(run)
    assert float(rows[-1]["nelbo"]) < float(rows[0]["nelbo"])
    evaluated = run_cli("evaluate", run, "--json")
    assert evaluated.code == 0, evaluated.stderr
    report = evaluated.json()
    assert report["nelbo"] == pytest.approx(report["reconstruction"] + report["kl"])
    out = run / "evaluation" / "test"
    for picture in ("reconstructions.png", "interpolation.png", "samples.png"):
        assert (out / picture).is_file(), picture
    digits = sorted((small_digits / "7").glob("*.png"))[:3]
    embedded = run_cli("embed", run, *map(str, digits), "-o", work / "emb.npy", "--json")
    assert embedded.code == 0, embedded.stderr
    assert np.load(work / "emb.npy").shape == (3, 4)  # the latent means
    made = run_cli("generate", run, "-n", "5", "-o", work / "vae_out", "--json")
    assert made.code == 0 and len(made.json()["files"]) == 5


def test_gan_resumes_mid_epoch_with_both_optimizers(runs: dict[str, Path]):
    """Cut the finished run back to a checkpoint inside epoch 2 and resume it: the weights,
    both optimizers, the noise generator and the data position come back, so the run ends
    with the same numbers as never stopping."""
    import tensorflow as tf

    reference, run = runs["gan"], runs["work"] / "gan_cut"
    shutil.copytree(reference, run, ignore=shutil.ignore_patterns("evaluation"))
    index = run / "checkpoints" / "checkpoint"
    steps = sorted(int(m) for m in re.findall(r'"ckpt-(\d+)"', index.read_text()))
    state = json.loads(
        tf.train.load_checkpoint(str(run / "checkpoints" / f"ckpt-{steps[-1]}")).get_tensor(
            "trainer_state/.ATTRIBUTES/VARIABLE_VALUE"
        )
    )
    per_epoch = state["global_step"] // 2
    middle = next(s for s in steps if per_epoch < s < 2 * per_epoch)  # inside epoch 2
    index.write_text(
        f'model_checkpoint_path: "ckpt-{middle}"\nall_model_checkpoint_paths: "ckpt-{middle}"\n'
    )
    saved = tf.train.list_variables(str(run / "checkpoints" / f"ckpt-{middle}"))
    names = {name for name, _ in saved}
    assert any(n.startswith("optimizer_generator/") for n in names)
    assert any(n.startswith("optimizer_discriminator/") for n in names)
    assert any(n.startswith("noise/") for n in names)
    (run / "model.keras").unlink()
    resumed = run_cli("train", "--resume", run, "--json", env=CPU_ONLY)
    assert resumed.code == 0, resumed.stderr
    assert re.search(r"resuming after epoch 1, step [1-9]", resumed.stderr), resumed.stderr
    assert history(run) == history(reference)


def test_gan_trains_under_mirrored_strategy_on_two_logical_cpus(runs: dict[str, Path]):
    result = run_on_two_logical_cpus(
        "train",
        runs["work"] / "gan.yaml",
        "--json",
        "--set",
        "train.strategy=mirrored",
        "--set",
        "train.epochs=1",
        "--output",
        runs["work"] / "gan_mirrored",
        cwd=runs["work"],
    )
    assert result.code == 0, result.stderr
    summary = result.json()
    assert summary["strategy"] == "mirrored" and summary["replicas"] == 2
    assert all(np.isfinite(v) for v in summary["train"].values())
    assert (runs["work"] / "gan_mirrored" / "samples" / "epoch_001.png").is_file()


def test_export_serves_the_generator(runs: dict[str, Path]):
    """A GAN run exports the network that makes images: noise and a label in, pixels out."""
    import tensorflow as tf

    from dlcli.export import export_run

    written = export_run(runs["gan"], ["saved_model"], runs["work"] / "gan_export")
    loaded = tf.saved_model.load(written["saved_model"])
    z = tf.random.stateless_normal([3, 16], seed=[1, 2])
    images = loaded.serve([z, tf.constant([0, 5, 9], tf.int32)])
    assert tuple(images.shape) == (3, 8, 8, 1)
    assert float(tf.reduce_min(images)) >= 0.0 and float(tf.reduce_max(images)) <= 255.0


@pytest.mark.slow
def test_gan_trains_on_two_workers_in_sync(runs: dict[str, Path]):
    """The two-optimizer step under MultiWorkerMirroredStrategy: both workers end with the
    same numbers, and only the chief writes the run (with its sample grid)."""
    work = runs["work"] / "two_workers"
    work.mkdir()
    results = run_workers(
        "train", runs["work"] / "gan.yaml", "--json", "--set", "train.epochs=1", cwd=work
    )
    for result in results:
        assert result.code == 0, result.stderr
    chief, worker = (result.json() for result in results)
    assert chief["strategy"] == "multi_worker" and chief["replicas"] == 2
    assert chief["train"] == worker["train"]
    assert (Path(chief["run_dir"]) / "samples" / "epoch_001.png").is_file()


@pytest.mark.skipif(not (SHARED / "weights").is_dir(), reason="needs ../shared weights")
def test_evaluate_scores_in_an_imagenet_backbone_from_the_keras_cache(
    runs: dict[str, Path], tmp_path: Path
):
    """`task.scores.network: MobileNet` loads ImageNet weights as a user's Keras would: from
    $KERAS_HOME/models (seeded here with the real file; nothing is downloaded)."""
    weights = SHARED / "weights" / "keras" / "mobilenet_2_5_224_tf_no_top.h5"
    (tmp_path / "models").mkdir()
    shutil.copy(weights, tmp_path / "models" / weights.name)
    result = run_cli(
        "evaluate",
        runs["vae"],
        "--set",
        "task.scores.network=MobileNet",
        "--set",
        "task.scores.network_args={alpha: 0.25}",
        "--json",
        env={"KERAS_HOME": str(tmp_path)},
    )
    assert result.code == 0, result.stderr
    report = result.json()
    assert report["frechet_network"] == "MobileNet"
    assert report["frechet_distance"] > report["frechet_train_vs_split"] >= 0.0
