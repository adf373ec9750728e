"""The UCI regression benchmark protocol (Hernández-Lobato & Adams 2015; Gal & Ghahramani 2016):
:mod:`~espresso_jax.apps.uci.protocol` runs 20 splits with a validation grid and a refit, every
split and grid point vmapped into one compiled training call; the methods are MC dropout
(:func:`~espresso_jax.apps.uci.protocol.dropout_method`) and Bayes by Backprop
(:func:`~espresso_jax.apps.uci.bbb.bbb_method`)."""
