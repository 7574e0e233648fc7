"""Do the exported models predict what the Keras model predicts? File size, top-1 agreement with
Keras on the run's test split, test accuracy and milliseconds per example of each export.

Takes a run directory; without one, trains pipelines/quickstart.yaml first (`dlcli train`, about
a minute on 2 cores). Exports it with `dlcli export RUN -f tflite -f tflite_int8 -f onnx` as a
user would (a model ONNX cannot take, an audio model, is exported without it and its row says
why), then runs each file in the runtime a user would load it with: Keras, the LiteRT
interpreter (`ai_edge_litert`), onnxruntime. Every example of the test split goes through each
one at batch size 1, after a few warm-up calls; ms/example is the mean over the split (runtime
defaults for threads). Goal: tflite and onnx agree with Keras on every example (max |Δp| below
1e-4); tflite_int8 agrees on at least 98%.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _shared import REPO, dlcli_json

GOAL_INT8 = 0.98
FORMATS = ("tflite", "tflite_int8", "onnx")
HEADER = (
    "| format | file KB | top-1 agreement with Keras | test accuracy | max abs Δp | ms/example |"
)


def export(run: Path, out: Path) -> dict[str, str]:
    """`dlcli export` of every format; without onnx when it cannot convert (the reason kept)."""
    skipped: dict[str, str] = {}
    for formats in (FORMATS, FORMATS[:2]):
        command = [sys.executable, "-m", "dlcli", "export", str(run), "-o", str(out)]
        for fmt in formats:
            command += ["-f", fmt]
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if proc.returncode == 0:
            return skipped
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        skipped["onnx"] = (errors or ["?"])[0].removeprefix("error: ").split(". ")[0]
        print(f"dlcli export failed: {skipped['onnx']}", file=sys.stderr)
    sys.exit("dlcli export failed without onnx too")


def test_split(run: Path) -> tuple[list[np.ndarray], np.ndarray]:
    """The run's test split as the model's inputs (batches of one) and their labels."""
    from dlcli import runs
    from dlcli.data import create_dataset
    from dlcli.tasks import create_task

    handle = runs.open_run(run)
    cfg = handle.config
    source = create_dataset(cfg.data, seed=cfg.seed)
    data = create_task(cfg.task, source.spec, run_dir=run).adapt_data(source)
    inputs, labels = [], []
    for features, label in data.split("test").as_numpy_iterator():
        inputs.append(np.asarray(features, np.float32)[None])
        labels.append(int(label))
    return inputs, np.array(labels)


def litert(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()

    def call(x: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        return np.asarray(interpreter.get_tensor(out["index"]))

    return call


def onnx_session(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: np.asarray(session.run(None, {name: x})[0])


def keras_model(run: Path) -> Callable[[np.ndarray], np.ndarray]:
    import tensorflow as tf

    from dlcli.models.loading import load_keras_model

    model = load_keras_model(run / "model.keras")
    serve = tf.function(lambda x: model(x, training=False))
    return lambda x: serve(x).numpy()


def measure(call: Callable[[np.ndarray], np.ndarray], inputs: list[np.ndarray]) -> Any:
    """(outputs, ms per example) over `inputs`, one at a time."""
    for x in inputs[:5]:
        call(x)
    start = time.perf_counter()
    outputs = np.concatenate([call(x) for x in inputs])
    return outputs, 1000 * (time.perf_counter() - start) / len(inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", nargs="?", type=Path, help="run directory (default: train one)")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = parser.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="export_agreement_"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        run = args.run
        if run is None:
            pipeline = REPO / "pipelines" / "quickstart.yaml"
            summary, _ = dlcli_json(
                ["train", str(pipeline), "--runs-dir", str(work / "runs")], work
            )
            run = Path(summary["run_dir"])
        out = work / "export"
        skipped = export(run, out)
        inputs, labels = test_split(run)
        reference, keras_ms = measure(keras_model(run), inputs)
        rows = [("keras", (run / "model.keras").stat().st_size, reference, keras_ms)]
        for fmt, name, opener in (
            ("tflite", "model.tflite", litert),
            ("tflite_int8", "model_int8.tflite", litert),
            ("onnx", "model.onnx", onnx_session),
        ):
            if fmt not in skipped:
                rows.append(
                    (fmt, (out / name).stat().st_size, *measure(opener(out / name), inputs))
                )
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    top1 = reference.argmax(axis=1)
    print(f"\nExports of {run} against its Keras model, {len(inputs)} test examples\n")
    print(HEADER)
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    agreement = {}
    for fmt, size, outputs, ms in rows:
        agreement[fmt] = float(np.mean(outputs.argmax(axis=1) == top1))
        accuracy = float(np.mean(outputs.argmax(axis=1) == labels))
        delta = float(np.abs(outputs - reference).max())
        print(
            f"| {fmt} | {size / 1024:.1f} | {agreement[fmt]:.2%} | {accuracy:.2%} | "
            f"{delta:.1e} | {ms:.3f} |"
        )
    for fmt, reason in skipped.items():
        print(f"| {fmt} | not exported: {reason} | | | | |")
    if "tflite_int8" in agreement:
        verdict = "met" if agreement["tflite_int8"] >= GOAL_INT8 else "missed"
        share = agreement["tflite_int8"]
        print(f"\n**int8 agreement {share:.2%}** (goal >= {GOAL_INT8:.0%}: {verdict})")


if __name__ == "__main__":
    main()
