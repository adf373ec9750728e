"""Linear models: fixed bases, least squares, Bayesian linear regression with evidence
maximisation (PRML chapter 3), Bayesian logistic regression (Laplace, PRML §4.5) and
Gaussian-process regression (PRML §6.4)."""

from espresso_jax.linear import basis, bayes, gp, logistic, regression

__all__ = ["basis", "bayes", "gp", "logistic", "regression"]
