"""prob.fast_draws: the unrolled Threefry hash against JAX's, dropout keep-masks as independent
Bernoulli variables with the right rate and mean, uniform permutations."""

import itertools
import math

import jax
import jax.extend.random as jex_random
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from espresso_jax.prob import fast_draws


def test_threefry_matches_jax_bit_for_bit():
    # jax.extend.random.threefry_2x32 hashes the two halves of its count as (x1, x2) pairs
    rng = np.random.default_rng(0)
    for _ in range(3):
        key = jnp.asarray(rng.integers(0, 2**32, 2, dtype=np.uint64), jnp.uint32)
        count = jnp.asarray(rng.integers(0, 2**32, 64, dtype=np.uint64), jnp.uint32)
        ref = np.asarray(jex_random.threefry_2x32(key, count))
        w1, w2 = fast_draws.threefry2x32(key[0], key[1], count[:32], count[32:])
        np.testing.assert_array_equal(np.concatenate([w1, w2]), ref)


@pytest.fixture(scope="module")
def masks():
    # 64 keys x (500, 58) entries at three rates, drawn under vmap as the protocol does
    keys = jax.random.split(jax.random.key(3), 64)
    rates = jnp.asarray([0.005, 0.1, 0.5])
    draw = jax.jit(jax.vmap(jax.vmap(lambda k, r: fast_draws.keep_masks(k, (500, 58), r),
                                     in_axes=(0, None)), in_axes=(None, 0)))
    return rates, np.asarray(draw(keys, rates))  # (3, 64, 500, 58)


def test_keep_masks_are_bernoulli_with_the_rate_and_mean_one(masks):
    rates, m = masks
    n = m[0].size   # 1,856,000 entries per rate
    for rate, mk in zip(np.asarray(rates, np.float64), m, strict=True):
        keep = float(fast_draws.keep_probability(rate))
        assert abs(keep - (1 - rate)) < 1e-7           # the rate to float32 precision
        values = np.unique(mk)
        np.testing.assert_allclose(values, [0.0, 1.0 / (1 - rate)], rtol=1e-6)
        dropped = np.mean(mk == 0)
        se = math.sqrt(rate * (1 - rate) / n)
        assert abs(dropped - rate) < 6 * se, (rate, dropped)
        # inverted dropout: mean 1; sd of one mask entry sqrt(rate / (1 - rate))
        assert abs(mk.mean() - 1.0) < 6 * math.sqrt(rate / (1 - rate) / n)


def test_keep_masks_are_independent(masks):
    # pairs along each axis (neighbouring units, neighbouring rows, neighbouring keys) and
    # far apart: P(both dropped) = rate^2 within 6 standard errors
    _, m = masks
    d = m[1] == 0                       # rate 0.1, (64, 500, 58)
    p = 0.1
    pairs = {"next unit": (d[..., :-1], d[..., 1:]), "next row": (d[:, :-1], d[:, 1:]),
             "next key": (d[:-1], d[1:]), "unit j and j + 29": (d[..., :29], d[..., 29:58]),
             "row i and i + 250": (d[:, :250], d[:, 250:])}
    for name, (a, b) in pairs.items():
        both = np.mean(a & b)
        se = math.sqrt(p * p * (1 - p * p) / a.size)
        assert abs(both - p * p) < 6 * se, (name, both)


def test_keep_masks_rate_zero_keeps_everything_and_keys_differ():
    draw = jax.jit(lambda k, r: fast_draws.keep_masks(k, (7, 40), r))
    np.testing.assert_array_equal(draw(jax.random.key(0), 0.0), np.ones((7, 40), np.float32))
    a, b = draw(jax.random.key(1), 0.5), draw(jax.random.key(2), 0.5)
    assert 0 < np.sum(a != b) < a.size


# 2**17 + 3 rows: 18 index bits, 14 random bits per sort key, 4 rounds
@pytest.mark.parametrize("n", [1, 2, 7, 5898, 2**17 + 3])
def test_permutation_is_a_permutation(n):
    perm = np.asarray(jax.jit(fast_draws.permutation, static_argnums=1)(jax.random.key(n), n))
    assert perm.dtype == np.int32
    np.testing.assert_array_equal(np.sort(perm), np.arange(n))


def test_permutations_are_uniform():
    # n = 4: all 24 orders equally likely (chi-square over 24,000 draws); n = 37: every
    # element at every position with probability 1/37 (chi-square per element over 37,000
    # draws). A uniform sampler gives p-values ~U(0, 1); 1e-4 is far out in the tail.
    for n, draws in ((4, 24_000), (37, 37_000)):
        keys = jax.random.split(jax.random.key(7), draws)
        perms = np.asarray(jax.jit(jax.vmap(lambda k, n=n: fast_draws.permutation(k, n)))(keys))
        if n == 4:
            index = {p: i for i, p in enumerate(itertools.permutations(range(4)))}
            counts = np.bincount([index[tuple(p)] for p in perms], minlength=24)
            assert stats.chisquare(counts).pvalue > 1e-4
        else:
            for element in (0, 18, 36):
                positions = np.argmax(perms == element, axis=1)
                counts = np.bincount(positions, minlength=n)
                assert stats.chisquare(counts).pvalue > 1e-4, element
    with pytest.raises(ValueError, match="n must"):
        fast_draws.permutation(jax.random.key(0), 0)
