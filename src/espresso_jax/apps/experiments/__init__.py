"""The course experiments as functions returning ``(metrics, figures)``: used by the tour and
the example scripts.

- :mod:`~espresso_jax.apps.experiments.generative`: VAE on MNIST, GANs on the 8-Gaussian ring
  and on MNIST.
- :mod:`~espresso_jax.apps.experiments.bnn_mnist`: Bayes by Backprop, MC dropout and a plain
  network on MNIST, the pruning table, the rotated digit.
- :mod:`~espresso_jax.apps.experiments.bnn_training`: training and sampling those networks
  (shared by the MNIST experiments and the toys).
- :mod:`~espresso_jax.apps.experiments.bnn_toys`: the 1-D gap and heteroscedastic toys.
"""
