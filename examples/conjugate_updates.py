"""Conjugate updates and information measures on numpyro distributions.

    python examples/conjugate_updates.py
"""

import jax
import jax.numpy as jnp
from numpyro import distributions as dist

import espresso_jax as ej


def main() -> None:
    key_flips, key_x = jax.random.split(jax.random.key(0))
    flips = jax.random.bernoulli(key_flips, 0.7, (50,)).astype(jnp.float32)
    prior = dist.Beta(2.0, 2.0)
    post = ej.prob.conjugate.beta_bernoulli(prior, flips)
    print(f"Beta posterior after {int(flips.sum())}/50 heads: mean {float(post.mean):.3f}")
    print(f"KL(posterior || prior) = {float(ej.prob.info.kl_divergence(post, prior)):.3f} nats")

    x = 1.5 + 0.5 * jax.random.normal(key_x, (200,))
    ng = ej.prob.conjugate.normal_gamma(ej.prob.conjugate.NormalGamma(0.0, 1.0, 1.0, 1.0), x)
    mean_marginal = ej.prob.conjugate.normal_gamma_mean(ng)
    print(f"Normal-Gamma: E[mean] = {float(mean_marginal.loc):.3f}, "
          f"E[precision] = {float(ej.prob.conjugate.normal_gamma_precision(ng).mean):.2f} "
          f"(true 4.0)")

    p, q = dist.Bernoulli(probs=0.1), dist.Bernoulli(probs=0.5)
    print(f"KL(p||q) = {float(ej.prob.info.kl_divergence(p, q)):.3f}, "
          f"KL(q||p) = {float(ej.prob.info.kl_divergence(q, p)):.3f}, "
          f"JS = {float(ej.prob.info.js_divergence(p, q)):.3f}")


if __name__ == "__main__":
    main()
