"""Information measures on numpyro distributions: entropy, KL and Jensen-Shannon divergences,
exact where a closed form exists and Monte-Carlo estimates (with standard errors) otherwise.

KL divergences go through numpyro's registry ``numpyro.distributions.kl.kl_divergence``.
Importing this module registers the closed forms that numpyro 0.22 lacks (see
:data:`REGISTERED_PAIRS`): Bernoulli-Bernoulli (probs/logits), Categorical with logits,
Poisson-Poisson, Exponential-Exponential and Wishart-Wishart. A pair that numpyro already
registers is never overridden.

References:
    Bishop, PRML (2006), §1.6 (entropy, KL divergence).
    Cover & Thomas, "Elements of Information Theory" (2006), ch. 2 and 8.
    Lin, "Divergence measures based on the Shannon entropy", IEEE Trans. Inf. Theory 37(1),
    1991 (Jensen-Shannon divergence, bounded by log 2).
    Penny, "KL-divergences of Normal, Gamma, Dirichlet and Wishart densities" (2001)
    (Wishart-Wishart KL).
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
from jax.scipy.special import digamma, gammaln, multigammaln, xlogy
from jax.typing import ArrayLike
from numpyro.distributions import kl as _numpyro_kl
from numpyro.distributions.continuous import Exponential, MultivariateStudentT, Wishart
from numpyro.distributions.discrete import (
    BernoulliLogits,
    BernoulliProbs,
    CategoricalLogits,
    CategoricalProbs,
    Poisson,
)

from espresso_jax.interop import standard_promotion
from espresso_jax.validation import check_distribution, check_int, check_key

__all__ = [
    "REGISTERED_PAIRS",
    "entropy",
    "kl_divergence",
    "normal_kl",
    "js_divergence",
    "kl_mc",
    "entropy_mc",
    "js_divergence_mc",
]

_BERNOULLI = (BernoulliProbs, BernoulliLogits)
_CATEGORICAL = (CategoricalProbs, CategoricalLogits)


# ------------------------------------------------------------------ closed-form KL divergences


def _bernoulli_parts(d: Any) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(p(1), log p(1), log p(0)) of a Bernoulli given by probs or logits."""
    if isinstance(d, BernoulliLogits):
        logits = jnp.asarray(d.logits)
        return jax.nn.sigmoid(logits), jax.nn.log_sigmoid(logits), jax.nn.log_sigmoid(-logits)
    probs = jnp.asarray(d.probs)
    return probs, jnp.log(probs), jnp.log1p(-probs)


def _kl_bernoulli(p: Any, q: Any) -> jax.Array:
    p1, lp1, lp0 = _bernoulli_parts(p)
    _, lq1, lq0 = _bernoulli_parts(q)
    # 0 log 0 = 0: an outcome p never produces contributes nothing, even where q gives it 0.
    t1 = jnp.where(p1 > 0, p1 * (lp1 - lq1), 0.0)
    t0 = jnp.where(p1 < 1, (1.0 - p1) * (lp0 - lq0), 0.0)
    return t1 + t0


def _categorical_parts(d: Any) -> tuple[jax.Array, jax.Array]:
    """(probs, log probs) of a Categorical given by probs or logits."""
    if isinstance(d, CategoricalLogits):
        logp = jax.nn.log_softmax(jnp.asarray(d.logits), axis=-1)
        return jnp.exp(logp), logp
    probs = jnp.asarray(d.probs)
    return probs, jnp.log(probs)


def _kl_categorical(p: Any, q: Any) -> jax.Array:
    pp, lp = _categorical_parts(p)
    _, lq = _categorical_parts(q)
    return jnp.sum(jnp.where(pp > 0, pp * (lp - lq), 0.0), axis=-1)


def _kl_poisson(p: Poisson, q: Poisson) -> jax.Array:
    lp, lq = jnp.asarray(p.rate), jnp.asarray(q.rate)
    return xlogy(lp, lp) - xlogy(lp, lq) - lp + lq


def _kl_exponential(p: Exponential, q: Exponential) -> jax.Array:
    ratio = jnp.asarray(q.rate) / jnp.asarray(p.rate)
    return ratio - jnp.log(ratio) - 1.0


def _multidigamma(a: jax.Array, d: int) -> jax.Array:
    """sum_{i=0}^{d-1} digamma(a - i/2)."""
    offsets = (jnp.arange(d, dtype=a.dtype) * 0.5).reshape((1,) * a.ndim + (d,))
    return jnp.sum(digamma(a[..., None] - offsets), axis=-1)


def _kl_wishart(p: Wishart, q: Wishart) -> jax.Array:
    # KL = (nu_p - nu_q)/2 psi_d(nu_p/2) + nu_q/2 (log|V_q| - log|V_p|)
    #      + nu_p/2 (tr(V_q^-1 V_p) - d) + log Gamma_d(nu_q/2) - log Gamma_d(nu_p/2)
    d = p.event_shape[-1]
    nu_p, nu_q = jnp.asarray(p.concentration), jnp.asarray(q.concentration)
    lp, lq = p.scale_tril, q.scale_tril
    lp, lq = jnp.broadcast_arrays(lp, lq)
    logdet_p = 2.0 * jnp.sum(jnp.log(jnp.diagonal(lp, axis1=-2, axis2=-1)), axis=-1)
    logdet_q = 2.0 * jnp.sum(jnp.log(jnp.diagonal(lq, axis1=-2, axis2=-1)), axis=-1)
    m = jax.scipy.linalg.solve_triangular(lq, lp, lower=True)
    trace = jnp.sum(m * m, axis=(-2, -1))
    return (0.5 * (nu_p - nu_q) * _multidigamma(0.5 * nu_p, d)
            + 0.5 * nu_q * (logdet_q - logdet_p) + 0.5 * nu_p * (trace - d)
            + multigammaln(0.5 * nu_q, d) - multigammaln(0.5 * nu_p, d))


_CLOSED_FORMS = (
    [((a, b), _kl_bernoulli) for a in _BERNOULLI for b in _BERNOULLI]
    + [((a, b), _kl_categorical) for a in _CATEGORICAL for b in _CATEGORICAL]
    + [((Poisson, Poisson), _kl_poisson), ((Exponential, Exponential), _kl_exponential),
       ((Wishart, Wishart), _kl_wishart)]
)

#: The (type_p, type_q) pairs this module added to numpyro's KL registry on import.
REGISTERED_PAIRS: list[tuple[type, type]] = []


def _register_closed_forms() -> None:
    registry = _numpyro_kl.kl_divergence
    for types, fn in _CLOSED_FORMS:
        if types not in registry.funcs:
            registry.register(*types)(fn)
            REGISTERED_PAIRS.append(types)


_register_closed_forms()


# -------------------------------------------------------------------------- closed forms


def _mvt_entropy(d: MultivariateStudentT) -> jax.Array:
    k = d.event_shape[-1]
    df = jnp.asarray(d.df)
    half = 0.5 * (df + k)
    log_det = jnp.sum(jnp.log(jnp.diagonal(d.scale_tril, axis1=-2, axis2=-1)), axis=-1)
    return (gammaln(0.5 * df) - gammaln(half) + 0.5 * k * jnp.log(df * math.pi) + log_det
            + half * (digamma(half) - digamma(0.5 * df)))


def _enumerated_entropy(d: dist.Distribution) -> jax.Array:
    support = d.enumerate_support(expand=False)
    logp = d.log_prob(support)
    return -jnp.sum(jnp.where(logp > -jnp.inf, jnp.exp(logp) * logp, 0.0), axis=0)


@jax.jit
def _entropy_impl(d: dist.Distribution) -> jax.Array:
    if isinstance(d, MultivariateStudentT):
        return _mvt_entropy(d)
    with standard_promotion():
        return d.entropy()


def entropy(d: dist.Distribution) -> jax.Array:
    """Exact (differential) entropy in nats, shape ``d.batch_shape``.

    Uses numpyro's ``.entropy()``; adds the multivariate Student-t closed form and, for
    discrete distributions with a finite enumerable support (e.g. Binomial), the exact sum
    ``-sum_x p(x) log p(x)``.

    Raises:
        NotImplementedError: no closed form; use :func:`entropy_mc`.
    """
    check_distribution(d, "d")
    try:
        return _entropy_impl(d)
    except NotImplementedError:
        pass
    if d.has_enumerate_support:
        with standard_promotion():
            return _enumerated_entropy(d)
    raise NotImplementedError(f"no closed-form entropy for {type(d).__name__}; "
                              "use entropy_mc(key, d, num_samples)")


def _n_categories(d: Any) -> int:
    return int(np.shape(d.logits if isinstance(d, CategoricalLogits) else d.probs)[-1])


def _check_pair(p: Any, q: Any) -> None:
    """Both valid numpyro distributions on the same space: equal event shapes, batch shapes
    that broadcast, and (two Categoricals) the same number of categories."""
    check_distribution(p, "p")
    check_distribution(q, "q")
    if p.event_shape != q.event_shape:
        raise ValueError(f"p and q must have the same event shape, got {p.event_shape} and "
                         f"{q.event_shape}")
    try:
        np.broadcast_shapes(p.batch_shape, q.batch_shape)
    except ValueError:
        raise ValueError(f"p and q must have broadcastable batch shapes, got p with batch "
                         f"shape {p.batch_shape} and q with {q.batch_shape}") from None
    if isinstance(p, _CATEGORICAL) and isinstance(q, _CATEGORICAL):
        kp, kq = _n_categories(p), _n_categories(q)
        if kp != kq:
            raise ValueError(f"p and q must have the same number of categories, got p with "
                             f"{kp} and q with {kq}")


@jax.jit
def _kl_impl(p: dist.Distribution, q: dist.Distribution) -> jax.Array:
    return _numpyro_kl.kl_divergence(p, q)


def kl_divergence(p: dist.Distribution, q: dist.Distribution) -> jax.Array:
    """Closed-form ``KL(p || q)`` in nats from numpyro's KL registry (extended on import).

    Returns:
        Array of the broadcast batch shape of ``p`` and ``q``.

    Raises:
        NotImplementedError: the pair has no closed form; use :func:`kl_mc`.
    """
    _check_pair(p, q)
    try:
        return _kl_impl(p, q)
    except NotImplementedError:
        raise NotImplementedError(
            f"no closed-form KL({type(p).__name__} || {type(q).__name__}); "
            "use kl_mc(key, p, q, num_samples)") from None


def normal_kl(mean: ArrayLike, var: ArrayLike, log_var: ArrayLike, prior_var: ArrayLike = 1.0,
              prior_log_var: ArrayLike = 0.0) -> jax.Array:
    """Elementwise ``KL(N(mean, var) || N(0, prior_var))`` from variances and log-variances.

    The kernel of the diagonal-Gaussian KL terms of SGVB (VAE against ``N(0, I)``, Bayes by
    Backprop against ``N(0, s²)``): numpyro's ``Normal``-``Normal`` rule computes the same value
    from scales, but the models already hold ``log var`` (and keep it finite where ``var``
    underflows), so they pass it here instead of taking ``log`` of a ``var`` that may be 0.

    Args:
        mean: ``(...)`` means of ``q``.
        var: ``(...)`` variances of ``q``.
        log_var: ``(...)`` their logarithms.
        prior_var: variance of the zero-mean prior, broadcastable.
        prior_log_var: its logarithm.

    Returns:
        ``½ ((var + mean²)/prior_var − 1 + prior_log_var − log_var)``, broadcast shape; sum
        it over the dimensions of a diagonal Gaussian.
    """
    return jnp.asarray(0.5 * ((var + jnp.square(mean)) / prior_var - 1.0 + prior_log_var
                              - log_var))


def _probability_vector(d: Any) -> jax.Array:
    if isinstance(d, _BERNOULLI):
        p1 = _bernoulli_parts(d)[0]
        return jnp.stack([1.0 - p1, p1], axis=-1)
    return _categorical_parts(d)[0]


@jax.jit
def _js_impl(p: Any, q: Any) -> jax.Array:
    pv, qv = _probability_vector(p), _probability_vector(q)
    pv, qv = jnp.broadcast_arrays(pv, qv)
    m = 0.5 * (pv + qv)
    kl_pm = jnp.sum(xlogy(pv, pv) - xlogy(pv, m), axis=-1)
    kl_qm = jnp.sum(xlogy(qv, qv) - xlogy(qv, m), axis=-1)
    return jnp.maximum(0.5 * (kl_pm + kl_qm), 0.0)  # clip -1 ulp rounding only


def js_divergence(p: dist.Distribution, q: dist.Distribution) -> jax.Array:
    """Exact Jensen-Shannon divergence ``KL(p||m)/2 + KL(q||m)/2``, ``m = (p + q)/2``, in nats,
    for Bernoulli and Categorical distributions (probs or logits). ``0 <= JS <= log 2``.

    Raises:
        TypeError: ``p`` or ``q`` is not Bernoulli/Categorical; use :func:`js_divergence_mc`.
    """
    _check_pair(p, q)
    p_bern, q_bern = isinstance(p, _BERNOULLI), isinstance(q, _BERNOULLI)
    for d, name in ((p, "p"), (q, "q")):
        if not isinstance(d, _BERNOULLI + _CATEGORICAL):
            raise TypeError(f"{name} must be a Bernoulli or Categorical distribution for the "
                            f"exact JS divergence, got {type(d).__name__}; use "
                            "js_divergence_mc(key, p, q, num_samples)")
    if p_bern != q_bern:
        raise TypeError("p and q must both be Bernoulli or both be Categorical")
    return _js_impl(p, q)


# ------------------------------------------------------------------------ MC estimators


def _mean_and_stderr(values: jax.Array, num_samples: int) -> tuple[jax.Array, jax.Array]:
    return jnp.mean(values, axis=0), jnp.std(values, axis=0, ddof=1) / math.sqrt(num_samples)


@partial(jax.jit, static_argnames="num_samples")
def _kl_mc_impl(key: jax.Array, p: Any, q: Any, num_samples: int):
    with standard_promotion():
        x = p.sample(key, (num_samples,))
        log_ratio = p.log_prob(x) - q.log_prob(x)
    return _mean_and_stderr(log_ratio, num_samples)


@partial(jax.jit, static_argnames="num_samples")
def _entropy_mc_impl(key: jax.Array, d: Any, num_samples: int):
    with standard_promotion():
        neg_logp = -d.log_prob(d.sample(key, (num_samples,)))
    return _mean_and_stderr(neg_logp, num_samples)


@partial(jax.jit, static_argnames="num_samples")
def _js_mc_impl(key: jax.Array, p: Any, q: Any, num_samples: int):
    kp, kq = jax.random.split(key)
    with standard_promotion():
        x, y = p.sample(kp, (num_samples,)), q.sample(kq, (num_samples,))
        lpx, lqx, lpy, lqy = p.log_prob(x), q.log_prob(x), p.log_prob(y), q.log_prob(y)
    log2 = math.log(2.0)
    # log p - log m with m = (p + q)/2, and the same for q; each pair of draws is one term.
    terms = 0.5 * ((lpx - (jnp.logaddexp(lpx, lqx) - log2))
                   + (lqy - (jnp.logaddexp(lpy, lqy) - log2)))
    return _mean_and_stderr(terms, num_samples)


def _check_mc(key: Any, num_samples: Any) -> int:
    check_key(key)
    return check_int(num_samples, "num_samples", min_value=2)


def kl_mc(key: jax.Array, p: dist.Distribution, q: dist.Distribution,
          num_samples: int) -> tuple[jax.Array, jax.Array]:
    """Monte-Carlo ``KL(p || q) ~ mean log p(x)/q(x)``, ``x ~ p``.

    Args:
        key: PRNG key.
        p, q: numpyro distributions with the same event shape.
        num_samples: number of draws from ``p`` (>= 2).

    Returns:
        ``(estimate, standard_error)``, each of the broadcast batch shape.
    """
    num_samples = _check_mc(key, num_samples)
    _check_pair(p, q)
    return _kl_mc_impl(key, p, q, num_samples)


def entropy_mc(key: jax.Array, d: dist.Distribution,
               num_samples: int) -> tuple[jax.Array, jax.Array]:
    """Monte-Carlo entropy ``-mean log d(x)``, ``x ~ d``; returns ``(estimate, stderr)``."""
    num_samples = _check_mc(key, num_samples)
    check_distribution(d, "d")
    return _entropy_mc_impl(key, d, num_samples)


def js_divergence_mc(key: jax.Array, p: dist.Distribution, q: dist.Distribution,
                     num_samples: int) -> tuple[jax.Array, jax.Array]:
    """Monte-Carlo Jensen-Shannon divergence for any pair with ``sample`` and ``log_prob``:
    ``num_samples`` draws from each of ``p`` and ``q``; returns ``(estimate, stderr)``."""
    num_samples = _check_mc(key, num_samples)
    _check_pair(p, q)
    return _js_mc_impl(key, p, q, num_samples)
