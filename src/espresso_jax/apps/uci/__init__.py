"""The UCI regression benchmark protocol (Hernández-Lobato & Adams 2015; Gal & Ghahramani 2016):
:mod:`~espresso_jax.apps.uci.protocol` runs 20 splits with a validation grid and a refit, every
split and grid point vmapped into one compiled training call
(:mod:`~espresso_jax.apps.uci.grid_search`, on the stacked splits of
:mod:`~espresso_jax.apps.uci.splits`); a method is a
:class:`~espresso_jax.apps.uci.method.UCIMethod`: MC dropout
(:func:`~espresso_jax.apps.uci.dropout.dropout_method`) and Bayes by Backprop
(:func:`~espresso_jax.apps.uci.bbb.bbb_method`). Everything the protocol uses is importable from
:mod:`~espresso_jax.apps.uci.protocol`."""
