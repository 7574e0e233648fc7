"""What `precision: auto` picks and why (as `dlcli info` says), for any GPU, on any machine."""

from __future__ import annotations

import pytest

from dlcli.train import strategy


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        ([], ("float32", "no GPU")),
        (["9.0", "9.0"], ("mixed_float16", "GPU compute capability 9.0 >= 7.0")),
        (["7.5"], ("mixed_float16", "GPU compute capability 7.5 >= 7.0")),
        (["6.1"], ("float32", "GPU compute capability 6.1 < 7.0: no float16 tensor cores")),
        ([""], ("float32", "the GPU reports no compute capability")),
    ],
    ids=["cpu", "h100s", "t4", "pascal", "unknown"],
)
def test_auto_precision_follows_the_first_gpus_compute_capability(
    monkeypatch: pytest.MonkeyPatch, gpus: list[str], expected: tuple[str, str]
):
    details = [{"name": "GPU", "compute_capability": c} for c in gpus]
    monkeypatch.setattr(strategy, "gpu_details", lambda: details)
    assert strategy.auto_precision("gpu") == expected
    assert strategy.resolve_precision("auto", "gpu") == expected[0]
    assert strategy.resolve_precision("mixed_bfloat16", "gpu") == "mixed_bfloat16"


def test_auto_precision_on_tpu_is_bfloat16():
    assert strategy.auto_precision("tpu") == ("mixed_bfloat16", "TPU")


def test_strategy_cpu_keeps_float32_even_beside_a_gpu(monkeypatch: pytest.MonkeyPatch):
    details = [{"name": "GPU", "compute_capability": "9.0"}]
    monkeypatch.setattr(strategy, "gpu_details", lambda: details)
    assert strategy.auto_precision("cpu") == ("float32", "strategy cpu: the GPU is not used")
