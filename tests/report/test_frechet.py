"""The Frechet distance on sets whose answer is known in closed form."""

from __future__ import annotations

import numpy as np
import pytest

from dlcli.report.frechet import frechet_distance


def test_a_set_is_at_distance_zero_from_itself():
    x = np.random.default_rng(0).normal(size=(500, 16))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-8)


def test_a_shift_of_the_mean_adds_its_squared_length():
    x = np.random.default_rng(1).normal(size=(400, 8))
    shift = np.arange(8) / 4.0
    assert frechet_distance(x, x + shift) == pytest.approx(np.sum(shift**2), rel=1e-6)


def test_independent_dimensions_match_the_one_dimensional_formula():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(20000, 3)) * [1.0, 2.0, 0.5]
    b = rng.normal(size=(20000, 3)) * [3.0, 2.0, 0.5] + [1.0, 0.0, 0.0]
    # sum over dimensions of (mu_a - mu_b)^2 + (sigma_a - sigma_b)^2 = 1 + 4
    assert frechet_distance(a, b) == pytest.approx(5.0, rel=0.03)


def test_more_features_than_examples_stay_finite_and_symmetric():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(10, 64)), rng.normal(size=(12, 64)) + 0.1
    forward, backward = frechet_distance(a, b), frechet_distance(b, a)
    assert np.isfinite(forward) and forward == pytest.approx(backward, rel=1e-6)


def test_mismatched_or_too_small_sets_are_refused():
    with pytest.raises(ValueError, match="Feature sizes differ"):
        frechet_distance(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="n >= 2"):
        frechet_distance(np.zeros((1, 3)), np.zeros((4, 3)))
