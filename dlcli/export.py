"""Export a trained run for serving: Keras, TF SavedModel and TFLite."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from dlcli import runs


def export_run(target: Path, formats: list[str], output: Path | None = None) -> dict[str, str]:
    """Write each format under `output` (default: RUN/export/) atomically; return their paths."""
    from dlcli.models.loading import load_keras_model

    handle = runs.open_run(target)
    model_path, directory = handle.model_path, handle.directory
    output = output or directory / "export"
    output.mkdir(parents=True, exist_ok=True)
    model = load_keras_model(model_path)
    if handle.config is not None:  # what serves: a GAN's generator, say
        from dlcli.tasks import create_task

        model = create_task(handle.config.task, handle.spec).serving_model(model)
    written: dict[str, str] = {}
    for fmt in formats:
        if fmt == "keras":
            final = output / "model.keras"
            tmp = output / ".model.tmp.keras"
            shutil.copyfile(model_path, tmp)
            os.replace(tmp, final)
        elif fmt == "saved_model":
            final = output / "saved_model"
            staging = Path(tempfile.mkdtemp(prefix=".saved_model.", dir=output))
            model.export(str(staging / "model"), format="tf_saved_model", verbose=False)
            _replace_dir(staging / "model", final)
            shutil.rmtree(staging, ignore_errors=True)
        elif fmt == "tflite":
            final = output / "model.tflite"
            staging = Path(tempfile.mkdtemp(prefix=".tflite.", dir=output))
            model.export(str(staging / "sm"), format="tf_saved_model", verbose=False)
            (staging / "model.tflite").write_bytes(_tflite_bytes(staging / "sm"))
            os.replace(staging / "model.tflite", final)
            shutil.rmtree(staging, ignore_errors=True)
        else:  # the schema only lets known formats through
            raise ValueError(fmt)
        written[fmt] = str(final.resolve())
    if output != directory:  # what predicting with the export needs besides the model
        from dlcli.data.base import SPEC_FILE
        from dlcli.registry import TASKS

        names = [SPEC_FILE, runs.PIPELINE_FILE]
        if handle.config is not None:
            names += getattr(TASKS.get(handle.config.task.type).fn, "artifact_files", ())
        for name in names:
            if (directory / name).is_file():
                shutil.copyfile(directory / name, output / name)
    return written


def _tflite_bytes(saved_model: Path) -> bytes:
    """TFLite builtin ops where they suffice; recurrent layers (LSTM/GRU loops) also need
    TensorFlow's own ops (Flex), which the full LiteRT runtime provides."""
    import logging

    import tensorflow as tf

    try:
        return bytes(tf.lite.TFLiteConverter.from_saved_model(str(saved_model)).convert())
    except Exception as exc:  # the converter's error types vary by version
        logging.getLogger("dlcli").info(
            "TFLite builtins are not enough (%s); adding TensorFlow ops (Flex)",
            str(exc).strip().splitlines()[0][:200],
        )
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS,
        tf.lite.OpsSet.SELECT_TF_OPS,
    ]
    converter._experimental_lower_tensor_list_ops = False
    return bytes(converter.convert())


def _replace_dir(source: Path, final: Path) -> None:
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(source, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, final)
