"""Export a trained run for serving: Keras, TF SavedModel, TFLite (float32 and int8) and ONNX.

Every file is built in a staging folder inside the output folder and renamed into place, so a
reader never sees half a model. TFLite and ONNX are made from a float32 copy of the model (a
model trained under mixed_float16 is rebuilt in float32 with its weights): their runtimes then
need no TensorFlow (Flex) ops. Every format takes what the Keras model takes, raw pixels or a
raw waveform: rescaling, a backbone's `preprocess_input` and the audio front end are layers of
dlcli models, so they are in every export.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from dlcli import runs
from dlcli.errors import ConfigError, DlcliError

log = logging.getLogger("dlcli")

# What each format writes in the output folder.
FILES = {
    "keras": "model.keras",
    "saved_model": "saved_model",
    "tflite": "model.tflite",
    "tflite_int8": "model_int8.tflite",
    "onnx": "model.onnx",
}
ONNX_OPSET = 17  # onnxruntime >= 1.17 runs it


@dataclass
class ExportJob:
    """One run being exported: the network that serves, and the float32 forms TFLite and ONNX
    are made from, built once however many formats need them."""

    handle: runs.RunHandle
    model: Any
    staging: Path
    calibration_examples: int = 200
    _saved: dict[str, Path] = field(default_factory=dict)

    @cached_property
    def float32_model(self) -> Any:
        return float32_copy(self.model)

    @cached_property
    def float32_saved_model(self) -> Path:
        path = self.staging / "float32_saved_model"
        self.float32_model.export(str(path), format="tf_saved_model", verbose=False)
        return path

    @cached_property
    def float_tflite(self) -> bytes:
        from dlcli.export_tflite import tflite_bytes

        return tflite_bytes(self.float32_saved_model)


def export_run(target: Path, formats: list[str], output: Path | None = None) -> dict[str, str]:
    """Write each format under `output` (default: RUN/export/) atomically; return their paths."""
    from dlcli.models.loading import load_keras_model

    unknown = [f for f in formats if f not in FILES]
    if unknown:
        raise ConfigError(
            f"Invalid export format. Received: {unknown[0]}. Expected one of: {', '.join(FILES)}."
        )
    handle = runs.open_run(target)
    output = output or handle.directory / "export"
    output.mkdir(parents=True, exist_ok=True)
    model = load_keras_model(handle.model_path)
    if handle.config is not None:  # what serves: a GAN's generator, say
        from dlcli.tasks import create_task

        model = create_task(handle.config.task, handle.spec).serving_model(model)
    staging = Path(tempfile.mkdtemp(prefix=".export.", dir=output))
    try:
        job = ExportJob(handle, model, staging, handle.config.export.calibration_examples)
        written = {}
        for fmt in formats:
            final = output / FILES[fmt]
            WRITERS[fmt](job, final)
            written[fmt] = str(final.resolve())
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if output != handle.directory:
        _copy_side_files(handle, output)
    return written


def _write_keras(job: ExportJob, final: Path) -> None:
    tmp = job.staging / final.name
    shutil.copyfile(job.handle.model_path, tmp)
    os.replace(tmp, final)


def _write_saved_model(job: ExportJob, final: Path) -> None:
    staged = job.staging / "saved_model"
    job.model.export(str(staged), format="tf_saved_model", verbose=False)
    replace_dir(staged, final)


def _write_tflite(job: ExportJob, final: Path) -> None:
    write_bytes_atomic(final, job.float_tflite, job.staging)


def _write_tflite_int8(job: ExportJob, final: Path) -> None:
    from dlcli.export_tflite import calibration_examples, tflite_int8_bytes

    examples = calibration_examples(job.handle, job.float32_model, job.calibration_examples)
    data = tflite_int8_bytes(job.float32_saved_model, examples, job.float32_model, job.float_tflite)
    write_bytes_atomic(final, data, job.staging)


def _write_onnx(job: ExportJob, final: Path) -> None:
    write_bytes_atomic(final, onnx_bytes(job.float32_model), job.staging)


WRITERS: dict[str, Callable[[ExportJob, Path], None]] = {
    "keras": _write_keras,
    "saved_model": _write_saved_model,
    "tflite": _write_tflite,
    "tflite_int8": _write_tflite_int8,
    "onnx": _write_onnx,
}


def _copy_side_files(handle: runs.RunHandle, output: Path) -> None:
    """What predicting with the export needs besides the model: the data spec, the pipeline and
    the task's own files (labels, a vocabulary, a threshold)."""
    from dlcli.data.base import SPEC_FILE
    from dlcli.registry import TASKS

    names = [SPEC_FILE, runs.PIPELINE_FILE]
    if handle.config is not None:
        names += getattr(TASKS.get(handle.config.task.type).fn, "artifact_files", ())
    for name in names:
        if (handle.directory / name).is_file():
            tmp = output / f".{name}.tmp"
            shutil.copyfile(handle.directory / name, tmp)
            os.replace(tmp, output / name)


def float32_copy(model: Any) -> Any:
    """`model` itself when it computes in float32; a model trained under a mixed policy rebuilt
    from its config with every layer in float32, its weights copied (mixed precision keeps
    float32 weights, so nothing is rounded). Float16 ops in a TFLite or ONNX graph would need
    TensorFlow's own (Flex) ops, and most CPUs gain nothing from them."""
    import keras

    from dlcli.layers import CUSTOM_OBJECTS

    mixed = [_policy_name(layer) for layer in all_layers(model)]
    mixed = [name for name in mixed if name.startswith("mixed")]
    if not mixed:
        return model
    config = _float32_config(keras.saving.serialize_keras_object(model))
    rebuilt = keras.saving.deserialize_keras_object(config, custom_objects=CUSTOM_OBJECTS)
    rebuilt.set_weights(model.get_weights())
    log.info(
        "%s was trained with mixed precision (%s): exporting a float32 copy to TFLite/ONNX",
        model.name,
        mixed[0],
    )
    return rebuilt


def _policy_name(layer: Any) -> str:
    return str(getattr(getattr(layer, "dtype_policy", None), "name", "float32"))


def all_layers(model: Any) -> list[Any]:
    """Every layer, nested models (a backbone, an encoder) searched too."""
    found = [model]
    for layer in getattr(model, "layers", []):
        found += all_layers(layer)
    return found


def _float32_config(value: Any) -> Any:
    """A serialized Keras config with every mixed dtype policy replaced by float32."""
    if isinstance(value, list):
        return [_float32_config(v) for v in value]
    if not isinstance(value, dict):
        return value
    if value.get("class_name") == "DTypePolicy":
        name = str(value.get("config", {}).get("name", ""))
        if name.startswith("mixed"):
            return {**value, "config": {**value["config"], "name": "float32"}}
    out = {k: _float32_config(v) for k, v in value.items()}
    if isinstance(out.get("dtype"), str) and out["dtype"].startswith("mixed"):
        out["dtype"] = "float32"
    return out


def onnx_bytes(model: Any) -> bytes:
    """The model as ONNX (opset `ONNX_OPSET`) through tf2onnx's `from_function` on the model's
    call, with the same input names as the Keras model and its output layers' names."""
    try:
        import onnx
        import tf2onnx
    except ImportError as exc:
        raise DlcliError(
            f"Exporting to ONNX needs tf2onnx and onnx, which are not installed ({exc}).",
            hint="pip install 'dlcli[export]' (tf2onnx, onnxruntime, ai-edge-litert)",
        ) from None
    import tensorflow as tf

    specs = [tf.TensorSpec(t.shape, t.dtype, name=t.name) for t in model.inputs]
    names = list(model.output_names)

    def serve(*inputs: Any) -> dict[str, Any]:
        outputs = model(list(inputs) if len(inputs) > 1 else inputs[0], training=False)
        outputs = outputs if isinstance(outputs, list | tuple) else [outputs]
        return dict(zip(names, outputs, strict=True))

    function = tf.function(serve, input_signature=specs, autograph=False)
    graph = function.get_concrete_function().graph
    # Constants a layer made outside the traced call (the mean and variance of a backbone's
    # Normalization layer, say) are captured, not frozen: tf2onnx leaves them as inputs.
    captured = {inner.name: outer for outer, inner in graph.captures if outer.dtype != tf.resource}
    quiet = logging.getLogger("tf2onnx")
    level, quiet.level = quiet.level, logging.CRITICAL
    try:
        proto, _ = tf2onnx.convert.from_function(function, input_signature=specs, opset=ONNX_OPSET)
    finally:
        quiet.setLevel(level)
    _freeze_inputs(proto, captured)
    missing = sorted(
        {
            node.op_type
            for node in proto.graph.node
            if node.domain in ("", "ai.onnx") and not onnx.defs.has(node.op_type)
        }
    )
    if missing:
        raise DlcliError(
            f"tf2onnx {tf2onnx.__version__} cannot convert this model to ONNX: it has no ONNX "
            f"op (opset {ONNX_OPSET}) for the TensorFlow ops {', '.join(missing)}. Audio models "
            "are such a case: their front end takes the real and imaginary parts of an FFT.",
            hint="export it with --format tflite (or tflite_int8, saved_model): LiteRT and "
            "TensorFlow run the whole model, front end included",
        )
    onnx.checker.check_model(proto)
    return bytes(proto.SerializeToString())


def _freeze_inputs(proto: Any, values: dict[str, Any]) -> None:
    """Turn the graph inputs named in `values` into constants (initializers), or drop them
    where TensorFlow's graph optimisation already folded them away."""
    import numpy as np
    from onnx import numpy_helper

    used = {name for node in proto.graph.node for name in node.input}
    kept = [i for i in proto.graph.input if i.name not in values]
    for graph_input in proto.graph.input:
        if graph_input.name in values and graph_input.name in used:
            array = np.asarray(values[graph_input.name])
            proto.graph.initializer.append(numpy_helper.from_array(array, graph_input.name))
    del proto.graph.input[:]
    proto.graph.input.extend(kept)


def write_bytes_atomic(final: Path, data: bytes, staging: Path) -> None:
    tmp = staging / final.name
    tmp.write_bytes(data)
    os.replace(tmp, final)


def replace_dir(source: Path, final: Path) -> None:
    if final.exists():
        old = final.with_name(f".{final.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(source, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(source, final)
