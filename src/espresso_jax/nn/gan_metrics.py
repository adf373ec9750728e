"""The mode-collapse benchmark of GANs: a ring of Gaussians and its mode-coverage metrics.

Data (:func:`ring_of_gaussians`) and the summary of 2-D samples against the ring's centres
(:func:`mode_coverage`, :class:`ModeCoverage`); all three are re-exported by
:mod:`espresso_jax.nn.gan`.

References:
    Metz et al. (2017), Unrolled generative adversarial networks, ICLR, and Srivastava et al.
    (2017), VEEGAN, NeurIPS (the ring of 8 Gaussians and its mode-coverage metrics).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from espresso_jax.validation import (
    as_float_array,
    check_int,
    check_key,
    check_positive,
    float_dtype,
)

__all__ = ["ring_of_gaussians", "ModeCoverage", "mode_coverage"]


def ring_of_gaussians(key: jax.Array, n: int, *, n_modes: int = 8, radius: float = 2.0,
                      std: float = 0.02) -> tuple[jax.Array, jax.Array]:
    """Equal-weight mixture of isotropic Gaussians with centres evenly spaced on a circle.

    The default (8 modes, radius 2, std 0.02) is the mode-collapse benchmark of Metz et al.
    (2017) and Srivastava et al. (2017).

    Args:
        key: PRNG key.
        n: number of points.
        n_modes, radius, std: mixture geometry.

    Returns:
        ``(x (n, 2), centres (n_modes, 2))``.
    """
    key = check_key(key)
    n = check_int(n, "n", min_value=1)
    n_modes = check_int(n_modes, "n_modes", min_value=1)
    radius = check_positive(radius, "radius")
    std = check_positive(std, "std")
    dtype = float_dtype()
    angles = 2.0 * jnp.pi * jnp.arange(n_modes, dtype=dtype) / n_modes
    centres = radius * jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1)
    k_mode, k_noise = jax.random.split(key)
    modes = jax.random.randint(k_mode, (n,), 0, n_modes)
    x = centres[modes] + std * jax.random.normal(k_noise, (n, 2), dtype=dtype)
    return x, centres


class ModeCoverage(NamedTuple):
    """Mode-coverage summary of 2-D samples (see :func:`mode_coverage`).

    Attributes:
        modes_hit: number of modes holding at least ``min_count`` samples.
        high_quality: fraction of samples within ``n_std`` standard deviations of some centre.
        counts: ``(n_modes,)`` high-quality samples assigned to each (nearest) centre.
        mean_distance: mean distance from a sample to its nearest centre.
    """

    modes_hit: int
    high_quality: float
    counts: np.ndarray
    mean_distance: float


def mode_coverage(samples: Any, centres: Any, std: float, *, n_std: float = 3.0,
                  min_count: int = 20) -> ModeCoverage:
    """Modes hit and high-quality fraction (Srivastava et al. 2017, Sec. 5.1).

    A sample is *high quality* when it lies within ``n_std * std`` of its nearest centre; a
    mode is *hit* when at least ``min_count`` high-quality samples are nearest to it (20 of
    2,500 samples is 6 % of the 312 a perfect sampler puts on each of 8 modes).

    Args:
        samples: ``(n, d)`` generated points.
        centres: ``(n_modes, d)`` mode centres.
        std: the modes' standard deviation.
        n_std: radius of a mode in standard deviations.
        min_count: high-quality samples needed to count a mode as hit.
    """
    samples = np.asarray(as_float_array(samples, "samples", ndim=2, shape_hint="(n, d)"))
    centres = np.asarray(as_float_array(centres, "centres", ndim=2, shape_hint="(n_modes, d)",
                                        n_columns=samples.shape[1]))
    std = check_positive(std, "std")
    n_std = check_positive(n_std, "n_std")
    min_count = check_int(min_count, "min_count", min_value=1)
    dist = np.linalg.norm(samples[:, None, :] - centres[None, :, :], axis=-1)
    nearest, d_min = dist.argmin(axis=1), dist.min(axis=1)
    good = d_min <= n_std * std
    counts = np.bincount(nearest[good], minlength=centres.shape[0])
    return ModeCoverage(int((counts >= min_count).sum()), float(good.mean()), counts,
                        float(d_min.mean()))
