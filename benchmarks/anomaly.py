"""One-vs-rest anomaly detection on the sign-language digits: mean ROC AUC over the ten setups.

For each digit c, c is the only normal class: `dlcli run` trains on the normal training images
only and scores the whole test split (every other digit is an anomaly). Two dlcli methods:
- `knn`: pipelines/sign_digits_anomaly.yaml as shipped (ImageNet MobileNet 0.25 patch features,
  nearest-neighbour distance to the normal images' memory bank);
- `reconstruction`: the same data and splits, a convolutional autoencoder's reconstruction error.
Two baselines computed here on the very same splits (read through dlcli's own data source):
PCA (k=40, scikit-learn) reconstruction error on 64x64 grayscale pixels, and 1-NN distance on
ImageNet MobileNet 0.25 global-average features. Goal: the best dlcli method >= 0.90 mean ROC AUC
and ahead of both baselines.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _shared import REPO, dlcli_json

GOAL = 0.90
PIPELINE = REPO / "pipelines" / "sign_digits_anomaly.yaml"
WEIGHTS = REPO.parent / "shared" / "weights" / "keras" / "mobilenet_2_5_224_tf_no_top.h5"
AUTOENCODER = [
    "data.image_size=[64, 64]",
    "task.score=reconstruction",
    "model={type: conv_autoencoder, filters: [32, 64, 128], latent: 128}",
    "train.epochs=40",
    "train.optimizer={type: adam, learning_rate: 0.002}",
    "train.lr_schedule={type: cosine, warmup_epochs: 1}",
]


def dlcli_run(work: Path, normal: str, extra: list[str]) -> tuple[float, float]:
    """ROC AUC on the test split and wall time of one `dlcli run`."""
    sets = [f"task.normal_classes=['{normal}']", "export.formats=[keras]", *extra]
    command = ["run", str(PIPELINE), "--quiet", *(arg for s in sets for arg in ("--set", s))]
    document, seconds = dlcli_json(command, work)
    return document["evaluation"]["roc_auc"], seconds


def split_arrays() -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], list[str]]:
    """Images (128 px RGB, raw pixels) and class labels of the train and test splits, read by
    dlcli's own data source from the benchmark pipeline: the splits dlcli's runs use."""
    from dlcli.config.loader import load_pipeline
    from dlcli.data import create_dataset

    cfg = load_pipeline(PIPELINE).config
    data = create_dataset(cfg.data, seed=cfg.seed)
    images, labels = {}, {}
    for split in ("train", "test"):
        batches = list(data.split(split).batch(256).as_numpy_iterator())
        images[split] = np.concatenate([x for x, _ in batches])
        labels[split] = np.concatenate([y for _, y in batches])
    return images, labels, data.class_names


def baseline_scores(images: dict, labels: dict, names: list[str]) -> dict[str, list[float]]:
    import keras
    import tensorflow as tf
    from sklearn.decomposition import PCA
    from sklearn.metrics import roc_auc_score

    gray = {
        s: tf.image.resize(tf.image.rgb_to_grayscale(x), (64, 64)).numpy()
        for s, x in images.items()
    }
    pixels = {s: g.reshape(len(g), -1) / 255.0 for s, g in gray.items()}
    backbone = keras.applications.MobileNet(
        alpha=0.25,
        include_top=False,
        weights=str(WEIGHTS),
        input_shape=(128, 128, 3),
        pooling="avg",
    )
    prep = keras.applications.mobilenet.preprocess_input
    features = {
        s: backbone.predict(prep(x.copy()), verbose=0, batch_size=64) for s, x in images.items()
    }
    out: dict[str, list[float]] = {"pca": [], "nn": []}
    for c in range(len(names)):
        normal = labels["train"] == c
        truth = labels["test"] != c
        pca = PCA(n_components=40, random_state=0).fit(pixels["train"][normal])
        rebuilt = pca.inverse_transform(pca.transform(pixels["test"]))
        out["pca"].append(roc_auc_score(truth, ((rebuilt - pixels["test"]) ** 2).mean(axis=1)))
        bank = features["train"][normal]
        d2 = (
            (features["test"] ** 2).sum(1)[:, None]
            - 2 * features["test"] @ bank.T
            + (bank**2).sum(1)
        )
        out["nn"].append(roc_auc_score(truth, np.sqrt(np.maximum(d2, 0)).min(axis=1)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classes", type=int, default=10, help="digits to run (first N)")
    args = parser.parse_args()
    if not WEIGHTS.is_file():
        sys.exit(f"needs {WEIGHTS} and the sign-language digits (see ../shared/README.md)")
    images, labels, names = split_arrays()
    started = time.perf_counter()
    baselines = baseline_scores(images, labels, names)
    baseline_seconds = time.perf_counter() - started
    methods: dict[str, list[float]] = {"knn": [], "reconstruction": []}
    seconds = {"knn": 0.0, "reconstruction": 0.0}
    with tempfile.TemporaryDirectory() as work:
        for c in names[: args.classes]:
            for method, extra in (("knn", []), ("reconstruction", AUTOENCODER)):
                auc, took = dlcli_run(Path(work), c, extra)
                methods[method].append(auc)
                seconds[method] += took
                print(f"normal {c}: {method} roc_auc {auc:.4f} ({took:.0f}s)", file=sys.stderr)
    n = args.classes
    rows = [
        (
            "dlcli `knn`: MobileNet 0.25 patch features, 1-NN to the normal memory bank",
            methods["knn"],
            seconds["knn"],
        ),
        (
            "dlcli `reconstruction`: conv autoencoder (64 px), reconstruction MSE",
            methods["reconstruction"],
            seconds["reconstruction"],
        ),
        ("baseline: PCA (k=40) reconstruction error, 64 px grayscale", baselines["pca"][:n], None),
        (
            "baseline: 1-NN on MobileNet 0.25 global features, 128 px",
            baselines["nn"][:n],
            baseline_seconds,
        ),
    ]
    print(f"| method | mean ROC AUC ({n} one-vs-rest setups) | min | max | seconds |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, values, took in rows:
        shown = f"{took:.0f}" if took is not None else ""
        print(
            f"| {label} | {np.mean(values):.4f} | {np.min(values):.4f} "
            f"| {np.max(values):.4f} | {shown} |"
        )
    best = max(np.mean(methods["knn"]), np.mean(methods["reconstruction"]))
    ahead = best > max(np.mean(baselines["pca"][:n]), np.mean(baselines["nn"][:n]))
    met = "met" if best >= GOAL and ahead else "not met"
    print(f"\nbest dlcli method {best:.4f}; goal >= {GOAL} and ahead of both baselines: {met}")
    print(
        "per class (knn): "
        + ", ".join(f"{c} {v:.3f}" for c, v in zip(names, methods["knn"], strict=False))
    )


if __name__ == "__main__":
    main()
