"""The application layer: everything that runs an experiment, draws a figure or writes a file.

Nothing below this package (models, engines, probability, metrics) imports it or matplotlib.

- :mod:`~espresso_jax.apps.cli`: the ``espresso-jax`` command (``tour``, ``fit``, ``bench``).
- :mod:`~espresso_jax.apps.tour`, :mod:`~espresso_jax.apps.tour_deep`: the course tour and its
  HTML report (:mod:`~espresso_jax.apps.report`).
- :mod:`~espresso_jax.apps.fitting`: fit a user's table from the command line and save/load the
  result folder.
- :mod:`~espresso_jax.apps.experiments`: the course experiments (VAE and GANs on MNIST, the BNN
  comparison on MNIST, the 1-D regression toys).
- :mod:`~espresso_jax.apps.uci`: the UCI regression benchmark protocol (20 splits, validation
  grid, refit) with MC dropout and Bayes by Backprop.
- :mod:`~espresso_jax.apps.viz`: plots (each returns a matplotlib ``Figure``).
- :mod:`~espresso_jax.apps.bench`: runs the benchmark scripts and prints the ratio table.

Submodules are imported on demand (``from espresso_jax.apps import tour``) so that
``import espresso_jax`` does not load matplotlib or the experiment code.
"""
