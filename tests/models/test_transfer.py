"""Transfer learning builders with every kind of pretrained weights, all from local files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dlcli.config.loader import load_pipeline_text
from dlcli.data.base import DataSpec
from dlcli.errors import ConfigError
from dlcli.models import create_model
from dlcli.models.heads import ClassesHead
from tests.conftest import SHARED

WEIGHTS = SHARED / "weights" / "keras" / "mobilenet_2_5_224_tf_no_top.h5"
MLPERF = SHARED / "models" / "mlperf_tiny"
needs_shared = pytest.mark.skipif(not WEIGHTS.is_file(), reason="needs ../shared weights")


def model_config(section: str, tmp_path: Path | None = None, size: str = ""):  # type: ignore[no-untyped-def]
    data = f"{{type: image_folder, path: .{', image_size: ' + size if size else ''}}}"
    text = f"name: t\ndata: {data}\nmodel:\n{section}"
    return load_pipeline_text(text, source=(tmp_path or Path.cwd()) / "p.yaml").config


@needs_shared
def test_imagenet_weights_from_a_path_are_the_real_ones():
    import keras

    cfg = model_config(
        f"  type: transfer\n  backbone: MobileNet\n  backbone_args: {{alpha: 0.25}}\n"
        f"  weights: {WEIGHTS}\n"
    )
    model = create_model(cfg.model, DataSpec((64, 64, 3)), head=ClassesHead(10))
    reference = keras.applications.MobileNet(
        alpha=0.25, include_top=False, weights=str(WEIGHTS), input_shape=(64, 64, 3)
    )
    backbone = model.get_layer("backbone")
    for ours, theirs in zip(backbone.weights[:6], reference.weights[:6], strict=True):
        np.testing.assert_array_equal(ours.numpy(), theirs.numpy())
    assert backbone.trainable is False  # phase 1: head only
    assert len(model.trainable_weights) == 2  # the new Dense layer
    assert cfg.data.image_size == (224, 224)  # from the backbone, since data left it out


def test_unknown_backbone_suggests_the_name():
    with pytest.raises(ConfigError, match="did you mean `MobileNetV2`"):
        model_config("  type: transfer\n  backbone: MobilenetV2\n")


def test_missing_weights_file_is_a_config_error(tmp_path: Path):
    cfg = model_config("  type: transfer\n  backbone: MobileNet\n  weights: nope.h5\n", tmp_path)
    with pytest.raises(ConfigError, match="file not found"):
        create_model(cfg.model, DataSpec((32, 32, 3)), head=ClassesHead(2))


@needs_shared
@pytest.mark.parametrize("name", ["vww_96.h5", "pretrainedResnet.h5"])
def test_legacy_keras2_models_cut_into_backbones(name: str, caplog):
    cfg = model_config(f"  type: transfer\n  backbone: {MLPERF / name}\n", size="[40, 40]")
    with caplog.at_level("INFO", logger="dlcli"):
        model = create_model(cfg.model, DataSpec((40, 40, 3)), head=ClassesHead(3))
    assert model.get_layer("backbone").output.shape[-1] > 3  # features, not the old classes
    if name == "vww_96.h5":
        assert "dropping the legacy `groups` argument" in caplog.text
    x = np.random.default_rng(0).uniform(0, 255, (2, 40, 40, 3)).astype("float32")
    assert model.predict(x, verbose=0).shape == (2, 3)


@needs_shared
def test_cut_at_names_a_layer_and_typos_are_caught():
    cfg = model_config(
        f"  type: transfer\n  backbone: {MLPERF / 'vww_96.h5'}\n  cut_at: nope\n", size="[96, 96]"
    )
    with pytest.raises(ConfigError, match="no layer `nope`"):
        create_model(cfg.model, DataSpec((96, 96, 3)), head=ClassesHead(2))
