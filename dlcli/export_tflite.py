"""TFLite exports: float32 (`tflite`) and int8 post-training quantisation (`tflite_int8`).

`tflite_int8` quantises weights and activations to int8, calibrated on a few hundred examples
of the run's own training split (`export.calibration_examples`, evenly spaced through it, so
every class is seen). What it keeps in float32, and why:

- The input and the output. The model takes raw data, as the Keras model does: pixels 0-255,
  a waveform in [-1, 1]. An int8 input would make every caller quantise with the input's scale
  and zero point first (and pixels 0-255 do not fit int8 as they are); with a float32 input the
  model's first op does it, the last one dequantises the output, and the code that feeds
  `model.tflite` feeds `model_int8.tflite` unchanged.
- Ops that have no int8 kernel: the converter leaves them float (integer quantisation with
  float fallback); the log lists them.
- The audio front end (spectrogram, log-mel, MFCC, utterance normalisation). A power spectrum
  spans eight or more decades, which 256 int8 levels cannot hold: quantised, it left a small
  spoken-digit model at 8 of 120 test clips agreeing with Keras; kept float, 119 of 120. Its
  ops are excluded from quantisation by name (TFLite's selective quantisation); the network
  after it is int8.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from dlcli import runs
from dlcli.errors import ConfigError

log = logging.getLogger("dlcli")


def tflite_bytes(saved_model: Path) -> bytes:
    """Float32 TFLite of a SavedModel."""
    return _with_flex_fallback(lambda flex: _converter(saved_model, flex).convert())


def tflite_int8_bytes(
    saved_model: Path, examples: list[list[Any]], model: Any, float_tflite: bytes
) -> bytes:
    """Int8 TFLite of a SavedModel of `model`, calibrated on `examples`; `float_tflite` (the
    float32 conversion) names the tensors the audio front end computes."""
    import tensorflow as tf

    keep_float = front_end_tensors(model, float_tflite)

    def quantize(flex: bool) -> Any:
        converter = _converter(saved_model, flex)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: iter(examples)
        if not keep_float:
            return converter.convert()
        options = tf.lite.experimental.QuantizationDebugOptions(denylisted_nodes=keep_float)
        with warnings.catch_warnings():  # the debugger opens the deprecated tf.lite.Interpreter
            warnings.simplefilter("ignore")
            debugger = tf.lite.experimental.QuantizationDebugger(
                converter=converter, debug_dataset=lambda: iter(examples), debug_options=options
            )
        return debugger.get_nondebug_quantized_model()

    data = _with_flex_fallback(quantize)
    _log_precision(data, set(keep_float))
    return data


def _converter(saved_model: Path, flex: bool) -> Any:
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    if flex:
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS,
            tf.lite.OpsSet.SELECT_TF_OPS,
        ]
        converter._experimental_lower_tensor_list_ops = False
    return converter


def _with_flex_fallback(convert: Callable[[bool], Any]) -> bytes:
    """TFLite builtin ops where they suffice; recurrent layers (LSTM/GRU loops) also need
    TensorFlow's own ops (Flex), which the full LiteRT runtime provides."""
    try:
        return bytes(convert(False))
    except Exception as exc:  # the converter's error types vary by version
        log.info(
            "TFLite builtins are not enough (%s); adding TensorFlow ops (Flex)",
            str(exc).strip().splitlines()[0][:200],
        )
    return bytes(convert(True))


def calibration_examples(handle: runs.RunHandle, model: Any, count: int) -> list[list[Any]]:
    """`count` examples of the run's training split as the model's input (batches of one),
    evenly spaced through the split: the split lists its files class by class."""
    import numpy as np

    from dlcli.data import create_dataset
    from dlcli.tasks import create_task

    if not (handle.directory / runs.PIPELINE_FILE).is_file():
        raise ConfigError(
            f"tflite_int8 calibrates on the run's training data, and {handle.model_path} has "
            f"no {runs.PIPELINE_FILE} beside it.",
            hint="export the run directory the model came from, or use --format tflite",
        )
    cfg = handle.config
    source = create_dataset(cfg.data, seed=cfg.seed)
    data = create_task(cfg.task, source.spec, run_dir=handle.directory).adapt_data(source)
    split, size = data.split("train"), data.sizes["train"]
    # Evenly spaced through the whole split (it is stored class by class): every class is seen.
    wanted = set(np.linspace(0, max(size - 1, 0), min(count, size)).round().astype(int).tolist())
    step = max(1, round(size / max(len(wanted), 1)))
    examples: list[list[Any]] = []
    for index, element in enumerate(split.as_numpy_iterator()):
        if index in wanted:
            features = element[0] if isinstance(element, tuple) else element
            examples.append([np.asarray(features, model.inputs[0].dtype)[None]])
        if len(examples) == len(wanted):
            break
    _check_takes(model, examples[0][0])
    log.info(
        "tflite_int8: calibrating on %d of the %d training examples (one in %d)",
        len(examples),
        size,
        step,
    )
    return examples


def _check_takes(model: Any, example: Any) -> None:
    """The model that serves must take one training example (a GAN's generator takes noise)."""
    wanted = [tuple(t.shape[1:]) for t in model.inputs]
    fits = len(wanted) == 1 and len(wanted[0]) == example.ndim - 1
    fits = fits and all(
        w is None or w == s for w, s in zip(wanted[0], example.shape[1:], strict=True)
    )
    if not fits:
        raise ConfigError(
            "tflite_int8 calibrates on the run's training data, and the model that serves does "
            f"not take it. Received: inputs {wanted} for examples of shape "
            f"{tuple(example.shape[1:])}. Expected one input of that shape.",
            hint="use --format tflite (float32 needs no calibration)",
        )


def front_end_tensors(model: Any, tflite: bytes) -> list[str]:
    """Names of the TFLite tensors the model's audio front-end layers compute (matched by the
    layer's name scope, `frontend/` or `frontend_1/`)."""
    from dlcli.export import all_layers
    from dlcli.layers.audio import (
        LogMelSpectrogram,
        SpectrogramImage,
        STFTMagnitude,
        UtteranceNormalization,
    )

    kinds = (STFTMagnitude, LogMelSpectrogram, UtteranceNormalization, SpectrogramImage)
    names = sorted({layer.name for layer in all_layers(model) if isinstance(layer, kinds)})
    if not names:
        return []
    scope = re.compile(rf"(?:{'|'.join(map(re.escape, names))})(?:_\d+)?")
    found = []
    for _, _, outputs in _ops(tflite):
        for name in outputs:
            parts = (part for piece in name.split(";") for part in piece.split("/"))
            if any(scope.fullmatch(part) for part in parts):
                found.append(name)
    return found


def _ops(tflite: bytes) -> list[tuple[str, set[int], list[str]]]:
    """(op name, output tensor types, output tensor names) of every op of a TFLite model."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(tflite))
    builtin = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    ops = []
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            name = builtin.get(max(code.builtinCode, code.deprecatedBuiltinCode), "CUSTOM")
            if code.customCode:
                name = code.customCode.decode()
            tensors = [graph.tensors[i] for i in op.outputs]
            ops.append((name, {t.type for t in tensors}, [t.name.decode() for t in tensors]))
    return ops


def _log_precision(tflite: bytes, front_end: set[str]) -> None:
    from tensorflow.lite.python.schema_py_generated import TensorType

    int8, kept, fallback = 0, Counter[str](), Counter[str]()
    for name, types, outputs in _ops(tflite):
        if name in ("QUANTIZE", "DEQUANTIZE"):
            continue
        if TensorType.FLOAT32 in types:
            (kept if front_end.intersection(outputs) else fallback)[name] += 1
        elif TensorType.INT8 in types:
            int8 += 1
    line = f"tflite_int8: {int8} ops in int8"
    if kept:
        line += f"; the audio front end in float32 ({sum(kept.values())} ops)"
    if fallback:
        ops = ", ".join(f"{name} x{n}" if n > 1 else name for name, n in fallback.most_common())
        line += f"; no int8 kernel, left in float32: {ops}"
    log.info("%s; input and output float32", line)
