"""The Frechet distance between two sets of feature vectors, each summarised by a Gaussian
(Heusel et al. 2017, the formula behind FID):

    d^2 = |mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2)

The matrix square root goes through symmetric eigendecompositions, which stay real and
stable for the rank-deficient covariances of small sets (no `scipy.linalg.sqrtm`, whose
complex round-off needs patching). The value depends on the feature network: a distance in
one network's space is not comparable with published FID, which uses Inception v3.
"""

from __future__ import annotations

import numpy as np


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of `[n, d]` features (float64)."""
    x = np.asarray(features, np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"Expected features of shape [n >= 2, d]. Received: {x.shape}.")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def _psd_sqrt(matrix: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between feature sets `a` and `b` (`[n, d]` each, same `d`)."""
    mu_a, cov_a = gaussian(a)
    mu_b, cov_b = gaussian(b)
    if mu_a.shape != mu_b.shape:
        raise ValueError(f"Feature sizes differ: {mu_a.shape[0]} and {mu_b.shape[0]}.")
    root = _psd_sqrt(cov_a)
    cross = np.linalg.eigvalsh((root @ cov_b @ root + (root @ cov_b @ root).T) / 2.0)
    trace = np.trace(cov_a) + np.trace(cov_b) - 2.0 * np.sqrt(np.clip(cross, 0.0, None)).sum()
    return float(max(np.sum((mu_a - mu_b) ** 2) + trace, 0.0))
