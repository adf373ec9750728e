"""Information measures of espresso_jax.prob.info against scipy, numerical integration and
Monte-Carlo estimates."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
import scipy.stats as st
from numpyro.distributions.kl import kl_divergence as numpyro_kl
from scipy.integrate import quad
from scipy.special import digamma, multigammaln, rel_entr

import espresso_jax.prob  # noqa: F401  (import registers the closed forms)
from espresso_jax.prob import info as I

LOG2 = float(np.log(2.0))
N_MC = 20_000  # shared sample size: one compile per distribution-type pair
S1 = np.array([[1.0, 0.3], [0.3, 2.0]])
S2 = np.array([[2.0, -0.2], [-0.2, 1.0]])


def _pairs():
    """(id, p, q) for every pair we register plus a few numpyro built-ins (float64)."""
    a = jnp.asarray
    return [
        ("bern_pp", dist.Bernoulli(probs=a(0.3)), dist.Bernoulli(probs=a(0.6))),
        ("bern_pl", dist.Bernoulli(probs=a(0.3)), dist.Bernoulli(logits=a(-0.5))),
        ("bern_lp", dist.Bernoulli(logits=a(1.2)), dist.Bernoulli(probs=a(0.4))),
        ("bern_ll", dist.Bernoulli(logits=a([1.2, -0.3])), dist.Bernoulli(logits=a([0.1, 0.5]))),
        ("cat_pl", dist.Categorical(probs=a([0.2, 0.3, 0.5])),
         dist.Categorical(logits=a([0.1, -1.0, 2.0]))),
        ("cat_lp", dist.Categorical(logits=a([0.5, 0.0, -1.0])),
         dist.Categorical(probs=a([0.4, 0.4, 0.2]))),
        ("cat_ll", dist.Categorical(logits=a([0.5, 0.0, -1.0])),
         dist.Categorical(logits=a([0.1, -1.0, 2.0]))),
        ("poisson", dist.Poisson(a(3.0)), dist.Poisson(a(4.5))),
        ("exponential", dist.Exponential(a(2.0)), dist.Exponential(a(0.7))),
        ("wishart", dist.Wishart(a(5.0), scale_matrix=a(S1)),
         dist.Wishart(a(4.0), scale_matrix=a(S2))),
        # numpyro's own closed forms
        ("normal", dist.Normal(a(0.5), a(1.2)), dist.Normal(a(-0.3), a(0.8))),
        ("mvn", dist.MultivariateNormal(a([0.0, 1.0]), a(S1)),
         dist.MultivariateNormal(a([0.5, 0.0]), a(S2))),
        ("gamma", dist.Gamma(a(3.0), a(2.0)), dist.Gamma(a(2.0), a(1.0))),
    ]


def test_every_registered_pair_is_tested(x64):
    # Each pair we add to numpyro's registry appears in the MC test table and is dispatched
    # by numpyro's own kl_divergence after importing espresso_jax.prob.
    tested = {(type(p), type(q)) for _, p, q in _pairs()}
    assert set(I.REGISTERED_PAIRS) <= tested
    assert len(I.REGISTERED_PAIRS) == 10
    assert np.isfinite(float(numpyro_kl(dist.Bernoulli(probs=0.3), dist.Bernoulli(probs=0.5))))


PAIR_IDS = ["bern_pp", "bern_pl", "bern_lp", "bern_ll", "cat_pl", "cat_lp", "cat_ll", "poisson",
            "exponential", "wishart", "normal", "mvn", "gamma"]


@pytest.mark.parametrize("idx", range(len(PAIR_IDS)), ids=PAIR_IDS)
def test_closed_form_kl_matches_mc(x64, idx):
    # Closed form vs an MC estimate from 2e4 draws: within 6 standard errors.
    name, p, q = _pairs()[idx]
    assert name == PAIR_IDS[idx]
    exact = np.asarray(I.kl_divergence(p, q))
    est, se = (np.asarray(v) for v in I.kl_mc(jax.random.key(idx), p, q, N_MC))
    assert np.all(se > 0)
    assert np.all(np.abs(exact - est) < 6 * se), (name, exact, est, se)
    np.testing.assert_allclose(np.asarray(I.kl_divergence(p, p)), 0.0, atol=1e-10)
    assert np.all(exact > 0)


def test_closed_forms_match_exact_references(x64):
    # Independent exact references (scipy, quadrature, series): 1e-8 relative.

    def kl(p, q):
        return float(I.kl_divergence(p, q))

    p, q = 0.3, 0.8
    ref = rel_entr(p, q) + rel_entr(1 - p, 1 - q)
    kl_pq = kl(dist.Bernoulli(probs=p), dist.Bernoulli(logits=np.log(q / (1 - q))))
    np.testing.assert_allclose(kl_pq, ref, rtol=1e-8)
    pc, qc = np.array([0.2, 0.3, 0.5]), np.array([0.6, 0.1, 0.3])
    np.testing.assert_allclose(kl(dist.Categorical(logits=np.log(pc) + 1.0),
                                  dist.Categorical(logits=np.log(qc) - 2.0)),
                               st.entropy(pc, qc), rtol=1e-8)
    k = np.arange(200)
    ref = np.sum(st.poisson.pmf(k, 3.0) * (st.poisson.logpmf(k, 3.0) - st.poisson.logpmf(k, 4.5)))
    np.testing.assert_allclose(kl(dist.Poisson(3.0), dist.Poisson(4.5)), ref, rtol=1e-8)
    ref = quad(lambda x: st.expon.pdf(x, scale=0.5) * (st.expon.logpdf(x, scale=0.5)
                                                       - st.expon.logpdf(x, scale=1 / 0.7)),
               0, np.inf)[0]
    np.testing.assert_allclose(kl(dist.Exponential(2.0), dist.Exponential(0.7)), ref, rtol=1e-8)
    # 1x1 Wishart(nu, V) is Gamma(nu/2, rate 1/(2V)): compare to numpyro's Gamma-Gamma KL.
    wp, wq = dist.Wishart(5.0, scale_matrix=jnp.array([[1.5]])), dist.Wishart(
        3.0, scale_matrix=jnp.array([[0.4]]))
    gp, gq = dist.Gamma(2.5, 1 / 3.0), dist.Gamma(1.5, 1 / 0.8)
    np.testing.assert_allclose(kl(wp, wq), kl(gp, gq), rtol=1e-8)


def test_kl_edge_cases_and_asymmetry(x64):

    def kl(p, q):
        return float(I.kl_divergence(p, q))

    np.testing.assert_allclose(kl(dist.Bernoulli(probs=0.0), dist.Bernoulli(probs=0.5)), LOG2)
    assert kl(dist.Bernoulli(probs=0.5), dist.Bernoulli(probs=0.0)) == np.inf
    np.testing.assert_allclose(kl(dist.Poisson(0.0), dist.Poisson(2.5)), 2.5)
    # asymmetry: KL(B(0.1)||B(0.5)) = 0.368..., KL(B(0.5)||B(0.1)) = 0.511...
    fwd = kl(dist.Bernoulli(probs=0.1), dist.Bernoulli(probs=0.5))
    bwd = kl(dist.Bernoulli(probs=0.5), dist.Bernoulli(probs=0.1))
    np.testing.assert_allclose([fwd, bwd], [0.1 * np.log(0.2) + 0.9 * np.log(1.8),
                                            0.5 * np.log(5.0) + 0.5 * np.log(5.0 / 9.0)])
    assert abs(fwd - bwd) > 0.1


def test_kl_nonnegative_on_random_pairs(x64):
    rng = np.random.default_rng(0)
    n = 50

    def u(lo, hi, *shape):
        return jnp.asarray(rng.uniform(lo, hi, (n,) + shape))

    A = rng.normal(size=(2, n, 2, 2))
    spd = jnp.asarray(A @ np.swapaxes(A, -1, -2) + 0.1 * np.eye(2))
    pairs = [
        (dist.Bernoulli(probs=u(0, 1)), dist.Bernoulli(logits=u(-3, 3))),
        (dist.Categorical(logits=u(-2, 2, 4)), dist.Categorical(logits=u(-2, 2, 4))),
        (dist.Poisson(u(0.1, 10)), dist.Poisson(u(0.1, 10))),
        (dist.Exponential(u(0.1, 10)), dist.Exponential(u(0.1, 10))),
        (dist.Wishart(u(2, 8), scale_matrix=spd[0]), dist.Wishart(u(2, 8), scale_matrix=spd[1])),
    ]
    for p, q in pairs:
        kl = np.asarray(I.kl_divergence(p, q))
        assert kl.shape == (n,) and np.all(kl >= -1e-12), type(p).__name__


def _entropy_cases():
    a = jnp.asarray
    L = np.linalg.cholesky(S1)
    return [
        (dist.Normal(a(0.5), a(1.2)), st.norm(0.5, 1.2).entropy()),
        (dist.Beta(a(2.0), a(3.0)), st.beta(2.0, 3.0).entropy()),
        (dist.Gamma(a(3.0), a(2.0)), st.gamma(3.0, scale=0.5).entropy()),
        (dist.Exponential(a(2.0)), st.expon(scale=0.5).entropy()),
        (dist.Dirichlet(a([2.0, 3.0, 1.5])), st.dirichlet([2.0, 3.0, 1.5]).entropy()),
        (dist.MultivariateNormal(a([0.0, 1.0]), a(S1)),
         st.multivariate_normal([0, 1], S1).entropy()),
        (dist.StudentT(a(4.0), a(0.5), a(2.0)), st.t(4.0, 0.5, 2.0).entropy()),
        (dist.MultivariateStudentT(a(5.0), a([0.0, 1.0]), a(L)),
         st.multivariate_t([0.0, 1.0], S1, df=5.0).entropy()),
        (dist.Binomial(7, probs=a(0.3)), st.binom(7, 0.3).entropy()),
        (dist.Bernoulli(probs=a(0.3)), st.bernoulli(0.3).entropy()),
        (dist.Categorical(probs=a([0.2, 0.3, 0.5])), st.entropy([0.2, 0.3, 0.5])),
        (dist.Wishart(a(5.0), scale_matrix=a(S1)), st.wishart(5.0, S1).entropy()),
    ]


def test_entropy_matches_scipy(x64):
    # Exact formulas on both sides: 1e-6 relative.
    for d, ref in _entropy_cases():
        np.testing.assert_allclose(float(I.entropy(d)), ref, rtol=1e-6,
                                   err_msg=type(d).__name__)


@pytest.mark.parametrize("which", ["mvt", "wishart", "poisson"])
def test_entropy_mc_matches_exact(x64, which):
    # MC entropy within 6 standard errors of the exact value.
    cases = {
        "mvt": (dist.MultivariateStudentT(5.0, jnp.zeros(2), jnp.asarray(np.linalg.cholesky(S1))),
                st.multivariate_t([0.0, 0.0], S1, df=5.0).entropy()),
        "wishart": (dist.Wishart(5.0, scale_matrix=jnp.asarray(S1)), st.wishart(5.0, S1).entropy()),
        "poisson": (dist.Poisson(3.0), st.poisson(3.0).entropy()),
    }
    d, ref = cases[which]
    est, se = I.entropy_mc(jax.random.key(1), d, N_MC)
    assert abs(float(est) - ref) < 6 * float(se)


def _js_reference(p, q):
    m = 0.5 * (p + q)
    return 0.5 * rel_entr(p, m).sum(-1) + 0.5 * rel_entr(q, m).sum(-1)


def test_js_exact_discrete(x64):
    # Against a numpy/scipy reference (1e-10), symmetric, 0 <= JS <= log 2, = log 2 for
    # disjoint supports, = 0 for identical distributions.
    rng = np.random.default_rng(1)
    pc, qc = rng.dirichlet(np.ones(4), 30), rng.dirichlet(np.ones(4), 30)
    p, q = dist.Categorical(probs=jnp.asarray(pc)), dist.Categorical(logits=jnp.asarray(np.log(qc)))
    js = np.asarray(I.js_divergence(p, q))
    np.testing.assert_allclose(js, _js_reference(pc, qc), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(I.js_divergence(q, p)), js, rtol=1e-12)
    assert np.all(js >= 0) and np.all(js <= LOG2)
    pb, qb = rng.uniform(size=30), rng.uniform(size=30)
    jsb = np.asarray(I.js_divergence(dist.Bernoulli(probs=jnp.asarray(pb)),
                                     dist.Bernoulli(logits=jnp.asarray(np.log(qb / (1 - qb))))))
    ref = _js_reference(np.stack([1 - pb, pb], -1), np.stack([1 - qb, qb], -1))
    np.testing.assert_allclose(jsb, ref, rtol=1e-8)
    disjoint = I.js_divergence(dist.Categorical(probs=jnp.array([1.0, 0.0, 0.0])),
                               dist.Categorical(probs=jnp.array([0.0, 0.5, 0.5])))
    np.testing.assert_allclose(float(disjoint), LOG2, rtol=1e-12)
    np.testing.assert_allclose(float(I.js_divergence(p, p)[0]), 0.0, atol=1e-12)


def test_js_mc(x64):
    # MC JS within 6 standard errors of the exact discrete value and of a quadrature value
    # for two Gaussians.
    p, q = dist.Categorical(probs=jnp.array([0.2, 0.3, 0.5])), dist.Categorical(
        logits=jnp.array([0.1, -1.0, 2.0]))
    est, se = I.js_divergence_mc(jax.random.key(2), p, q, N_MC)
    assert abs(float(est) - float(I.js_divergence(p, q))) < 6 * float(se)
    pn, qn = st.norm(0.0, 1.0), st.norm(1.5, 0.7)

    def integrand(x):
        m = 0.5 * (pn.pdf(x) + qn.pdf(x))
        return 0.5 * (rel_entr(pn.pdf(x), m) + rel_entr(qn.pdf(x), m))

    ref = quad(integrand, -15, 15, limit=200)[0]
    est, se = I.js_divergence_mc(jax.random.key(3), dist.Normal(0.0, 1.0), dist.Normal(1.5, 0.7),
                                 N_MC)
    assert abs(float(est) - ref) < 6 * float(se) and float(est) <= LOG2
    # symmetric in distribution: swapping p and q estimates the same quantity
    est2, se2 = I.js_divergence_mc(jax.random.key(4), dist.Normal(1.5, 0.7), dist.Normal(0.0, 1.0),
                                   N_MC)
    assert abs(float(est2) - ref) < 6 * float(se2)


def test_jit_no_recompile_and_disable_jit():
    p, q = dist.Normal(0.0, 1.0), dist.Normal(1.0, 2.0)
    first = I.kl_mc(jax.random.key(0), p, q, 1000)
    size = I._kl_mc_impl._cache_size()
    I.kl_mc(jax.random.key(1), dist.Normal(0.3, 1.5), dist.Normal(-1.0, 0.5), 1000)
    assert I._kl_mc_impl._cache_size() == size  # new parameter values, same trace
    pb, qb = dist.Bernoulli(probs=0.3), dist.Bernoulli(logits=0.4)
    with jax.disable_jit():
        eager = I.kl_mc(jax.random.key(0), p, q, 1000)
        eager_kl = I.kl_divergence(pb, qb)
    np.testing.assert_allclose(np.asarray(first), np.asarray(eager), rtol=1e-4)
    np.testing.assert_allclose(float(eager_kl), float(I.kl_divergence(pb, qb)), rtol=1e-5)


N01 = dist.Normal(0.0, 1.0)
BAD = [
    (lambda: I.kl_divergence(1.0, N01), TypeError, "p must be a numpyro"),
    (lambda: I.kl_divergence(N01, "q"), TypeError, "q must be a numpyro"),
    (lambda: I.kl_divergence(dist.Bernoulli(probs=1.5, validate_args=False),
                             dist.Bernoulli(probs=0.5)), ValueError, "p: .*invalid probs"),
    (lambda: I.js_divergence(dist.Categorical(probs=jnp.array([0.5, 0.5])),
                             dist.Categorical(probs=jnp.array([0.5, 0.7]), validate_args=False)),
     ValueError, "q: .*invalid probs"),
    (lambda: I.entropy(dist.Normal(jnp.nan, 1.0, validate_args=False)), ValueError, "d: "),
    (lambda: I.kl_divergence(dist.Dirichlet(jnp.ones(2)), dist.Dirichlet(jnp.ones(3))),
     ValueError, "event shape"),
    (lambda: I.kl_divergence(dist.StudentT(3.0), N01), NotImplementedError, "kl_mc"),
    (lambda: I.entropy(dist.Poisson(3.0)), NotImplementedError, "entropy_mc"),
    (lambda: I.js_divergence(N01, N01), TypeError, "js_divergence_mc"),
    (lambda: I.js_divergence(dist.Bernoulli(probs=0.5),
                             dist.Categorical(probs=jnp.array([0.5, 0.5]))), TypeError, "both"),
    (lambda: I.js_divergence(dist.Categorical(probs=jnp.array([0.5, 0.5])),
                             dist.Categorical(probs=jnp.array([0.2, 0.3, 0.5]))), ValueError,
     "categories"),
    (lambda: I.kl_mc(0, N01, N01, 10), TypeError, "key"),
    (lambda: I.kl_mc(jax.random.key(0), N01, N01, 1), ValueError, "num_samples"),
    (lambda: I.entropy_mc(jax.random.key(0), N01, 10.0), TypeError, "num_samples"),
    (lambda: I.js_divergence_mc(jax.random.key(0), N01, None, 10), TypeError, "q must be"),
]


@pytest.mark.parametrize("call,exc,match", BAD, ids=[str(i) for i in range(len(BAD))])
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def _wishart_log_norm(nu, V):
    """log of the Wishart W(nu, V) normaliser 2^{nu d/2} |V|^{nu/2} Γ_d(nu/2)."""
    d = V.shape[-1]
    return 0.5 * nu * d * np.log(2.0) + 0.5 * nu * np.linalg.slogdet(V)[1] + multigammaln(
        0.5 * nu, d)


def _wishart_kl_reference(nu_p, V_p, nu_q, V_q):
    """KL(W(nu_p, V_p) || W(nu_q, V_q)) = E_p[log p(X) − log q(X)] from the log-density
    log W(X; nu, V) = (nu − d − 1)/2 log|X| − tr(V⁻¹X)/2 − log Z(nu, V) and the moments
    E_p[X] = nu_p V_p, E_p[log|X|] = Σ_{i<d} ψ((nu_p − i)/2) + d log 2 + log|V_p|."""
    d = V_p.shape[-1]
    e_logdet = (digamma(0.5 * (nu_p - np.arange(d))).sum() + d * np.log(2.0)
                + np.linalg.slogdet(V_p)[1])
    e_X = nu_p * V_p
    return (0.5 * (nu_p - nu_q) * e_logdet
            - 0.5 * np.trace((np.linalg.inv(V_p) - np.linalg.inv(V_q)) @ e_X)
            - _wishart_log_norm(nu_p, V_p) + _wishart_log_norm(nu_q, V_q))


@pytest.mark.parametrize("d", [2, 3, 5])
def test_wishart_kl_matches_an_independent_closed_form(x64, d):
    # d > 1 exercises the multivariate digamma/log-gamma sums that the 1x1 (Gamma) check
    # cannot. Random (nu, V) pairs, a batch of 4 evaluated at once; exact formulas on both
    # sides in float64, so 1e-10 relative (differences are rounding in log-dets and traces).
    rng = np.random.default_rng(d)
    n = 4

    def spd():
        A = rng.normal(size=(n, d, d))
        return A @ np.swapaxes(A, -1, -2) / d + 0.3 * np.eye(d)

    nu_p, nu_q = (d - 1 + rng.uniform(0.5, 8.0, size=n) for _ in range(2))   # nu > d − 1
    V_p, V_q = spd(), spd()
    got = np.asarray(I.kl_divergence(
        dist.Wishart(jnp.asarray(nu_p), scale_matrix=jnp.asarray(V_p)),
        dist.Wishart(jnp.asarray(nu_q), scale_matrix=jnp.asarray(V_q))))
    ref = np.array([_wishart_kl_reference(nu_p[i], V_p[i], nu_q[i], V_q[i]) for i in range(n)])
    assert got.shape == (n,) and np.all(ref > 0.05)
    np.testing.assert_allclose(got, ref, rtol=1e-10)
    # the reference's log-density is scipy's: log p(X) − log q(X) at a random SPD X
    X = spd()[0]
    diff = (st.wishart(nu_p[0], V_p[0]).logpdf(X) - st.wishart(nu_q[0], V_q[0]).logpdf(X))
    mine = (0.5 * (nu_p[0] - nu_q[0]) * np.linalg.slogdet(X)[1]
            - 0.5 * np.trace((np.linalg.inv(V_p[0]) - np.linalg.inv(V_q[0])) @ X)
            - _wishart_log_norm(nu_p[0], V_p[0]) + _wishart_log_norm(nu_q[0], V_q[0]))
    np.testing.assert_allclose(mine, diff, rtol=1e-10)
