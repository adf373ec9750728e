"""Bayesian neural networks: Bayes by Backprop, MC dropout, aleatoric heads, uncertainty metrics."""
