"""The uncertainty leaderboard (issue 16): every registered method
(:mod:`~espresso_jax.apps.leaderboard.registry`) through the UCI protocol, scored per split on
RMSE, NLL, calibration and coverage (:mod:`~espresso_jax.apps.leaderboard.scores`) and, on the
small sets, against the NUTS BNN posterior predictive of the same split
(:mod:`~espresso_jax.apps.leaderboard.agreement`, :mod:`~espresso_jax.apps.leaderboard.nuts_cache`);
:mod:`~espresso_jax.apps.leaderboard.runner` runs it and
:mod:`~espresso_jax.apps.leaderboard.report` writes the Markdown table, JSON and figure
(command: ``espresso-jax leaderboard``); :mod:`~espresso_jax.apps.leaderboard.merge` pools the
per-split scores of several runs into one board (``espresso-jax leaderboard-merge``).
"""
