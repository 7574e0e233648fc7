"""Generative models on the bundled digits: how close to real are a VAE's and a GAN's images?

In one run: `dlcli train` of pipelines/quickstart.yaml (the judge), pipelines/digits_vae.yaml
and pipelines/digits_gan.yaml (class-conditional), then `dlcli evaluate` of both generative runs
with `task.scores.classifier` set to the quickstart run. Every Frechet distance is between a set
of images and the 359 real test images, in the quickstart classifier's `embedding` features
(128 dims; not Inception, not comparable with published FID), with the same number of images:

- real training images: the floor a perfect generator comes near;
- per-pixel Gaussian noise with the training images' per-pixel mean and variance: the ceiling
  of a model that learnt only first and second moments per pixel;
- the VAE's samples (decoded N(0, I)) and the conditional GAN's samples (classes as in the
  test split).

Goal (issue 10): the GAN's requested digit is recognised by the quickstart classifier >= 90% of
the time, and the GAN's Frechet distance is below the VAE's.

    python benchmarks/generative.py [--work DIR] [--reuse QUICKSTART VAE GAN]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _shared import REPO, dlcli_json

GOAL_ACCURACY = 0.90


def train(pipeline: str, work: Path) -> tuple[Path, float, dict]:
    out = work / Path(pipeline).stem
    document, seconds = dlcli_json(
        ["train", str(REPO / "pipelines" / pipeline), "--quiet", "--output", str(out)], work
    )
    return out, seconds, document


def evaluate(run: Path, judge: Path, work: Path) -> dict:
    document, _ = dlcli_json(
        ["evaluate", str(run), "--set", f"task.scores.classifier={judge}"], work
    )
    return document


def noise_distance(judge: Path) -> tuple[float, int]:
    """Frechet distance of per-pixel Gaussian noise (the training images' mean and variance)
    to the real test images, in the judge's features, with as many images as the test split."""
    from dlcli.config.loader import load_pipeline
    from dlcli.data import create_dataset
    from dlcli.report.frechet import frechet_distance
    from dlcli.tasks.generation import FeatureNetwork

    cfg = load_pipeline(REPO / "pipelines" / "digits_gan.yaml").config
    data = create_dataset(cfg.data, seed=cfg.seed)
    train = np.concatenate([x for x, _ in data.split("train").batch(512).as_numpy_iterator()])
    test = np.concatenate([x for x, _ in data.split("test").batch(512).as_numpy_iterator()])
    rng = np.random.default_rng(0)
    noise = rng.normal(train.mean(0), train.std(0), size=test.shape).clip(0, 255)
    features = FeatureNetwork(str(judge), {})
    return frechet_distance(features(noise.astype(np.float32)), features(test)), len(test)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="where the runs go (default: a temp dir)")
    parser.add_argument("--reuse", nargs=3, type=Path, metavar=("QUICKSTART", "VAE", "GAN"))
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="dlcli-generative-"))
    work.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}
    if args.reuse:
        judge, vae, gan = (p.resolve() for p in args.reuse)
    else:
        judge, seconds["quickstart"], summary = train("quickstart.yaml", work)
        accuracy = summary["validation"]["accuracy"]
        print(f"judge: the quickstart classifier, validation accuracy {accuracy:.4f}")
        vae, seconds["vae"], _ = train("digits_vae.yaml", work)
        gan, seconds["gan"], _ = train("digits_gan.yaml", work)
    started = time.perf_counter()
    vae_report = evaluate(vae, judge, work)
    gan_report = evaluate(gan, judge, work)
    noise, count = noise_distance(judge)
    scored = time.perf_counter() - started

    rows = [
        ("real training images (floor)", gan_report["frechet_train_vs_split"], "", ""),
        ("per-pixel Gaussian noise (data mean, variance)", noise, "", ""),
        ("VAE (pipelines/digits_vae.yaml)", vae_report["frechet_distance"], "", "vae"),
        (
            "conditional GAN (pipelines/digits_gan.yaml)",
            gan_report["frechet_distance"],
            f"{100 * gan_report['class_accuracy']:.1f}%",
            "gan",
        ),
    ]
    print(
        f"\nFrechet distance to the {count} real test digits in the quickstart classifier's "
        "features (lower is closer; not comparable with published FID)\n"
    )
    print("| images | Frechet distance | requested digit recognised | training time |")
    print("| --- | ---: | ---: | ---: |")
    for name, distance, accuracy, key in rows:
        took = f"{seconds[key]:.0f} s" if key in seconds else ""
        print(f"| {name} | {distance:.2f} | {accuracy} | {took} |")
    per_class = gan_report["class_accuracy_per_class"]
    print("\nGAN, per requested digit: " + ", ".join(f"{k} {v:.0%}" for k, v in per_class.items()))
    accuracy_ok = gan_report["class_accuracy"] >= GOAL_ACCURACY
    order_ok = gan_report["frechet_distance"] < vae_report["frechet_distance"]
    print(
        f"\ngoal: recognised >= {GOAL_ACCURACY:.0%}: {'met' if accuracy_ok else 'MISSED'}; "
        f"GAN below VAE: {'met' if order_ok else 'MISSED'}  (scoring took {scored:.0f} s; "
        f"runs in {work})"
    )


if __name__ == "__main__":
    main()
