"""Synthetic clustered vectors (labelled synthetic everywhere they are used) for tests and benchmarks.

Points are drawn around random cluster centres with isotropic noise, so neighbours are mostly in the
same cluster but not trivially so: the shape of real embedding sets, at any size, without a download.
"""

from __future__ import annotations

import numpy as np


def clustered(n: int, dim: int, *, clusters: int = 100, spread: float = 0.6, seed: int = 0) -> np.ndarray:
    """``n`` float32 vectors of ``dim`` around ``clusters`` Gaussian centres (synthetic data)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    which = rng.integers(0, clusters, size=n)
    noise = rng.standard_normal((n, dim)).astype(np.float32) * np.float32(spread)
    return centres[which] + noise


def base_and_queries(
    n: int, nq: int, dim: int, *, clusters: int = 100, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """A base set and held-out queries drawn from the same clusters (synthetic data)."""
    x = clustered(n + nq, dim, clusters=clusters, seed=seed)
    return x[:n], x[n:]
