"""Auto-encoders: the linear auto-encoder reaches PCA's reconstruction error; conv/MLP shapes."""

import jax
import numpy as np
import optax
import pytest
from sklearn.decomposition import PCA

from espresso_jax.nn import autoencoder as ae
from espresso_jax.nn import modules


def _low_rank(n=200, d=8, k=2, seed=0):
    """Rank-k signal (scales 2 and 1 along orthonormal directions) + 0.1 noise + offset."""
    rng = np.random.default_rng(seed)
    basis = np.linalg.qr(rng.normal(size=(d, k)))[0].T * np.array([[2.0], [1.0]])
    return (rng.normal(size=(n, k)) @ basis + 0.1 * rng.normal(size=(n, d)) + 0.5
            ).astype(np.float32)


def test_linear_autoencoder_reaches_pca_reconstruction_error():
    X = _low_rank()
    pca = PCA(2).fit(X)
    reference = np.mean(np.sum((X - pca.inverse_transform(pca.transform(X))) ** 2, axis=1))
    model = ae.AutoEncoder(data_dim=8, latent_dim=2, hidden=())
    opt = optax.adam(optax.warmup_cosine_decay_schedule(0.1, 0.1, 10, 1000, 1e-3))
    fit = ae.fit(jax.random.key(0), X, module=model, optimizer=opt, batch_size=200,
                 n_epochs=1000, progress=False)
    err = float(np.mean(ae.reconstruction_error(model, fit.best_params, X)))
    # PCA is the optimum of the linear AE (Baldi & Hornik 1989): never beaten beyond float32
    # rounding, reached within 1% (measured 0.08% above after 1000 full-batch Adam steps)
    assert reference * (1 - 1e-4) <= err < reference * 1.01
    np.testing.assert_allclose(fit.history["loss"][-1], err, rtol=0.01)
    # the code spans PCA's subspace: a linear map of the code reproduces the PCA scores
    codes = np.asarray(ae.encode(model, fit.best_params, X), dtype=np.float64)
    scores = pca.transform(X)
    design = np.column_stack([codes, np.ones(len(X))])
    coef, *_ = np.linalg.lstsq(design, scores, rcond=None)
    resid = scores - design @ coef
    assert np.sum(resid**2) < 0.01 * np.sum((scores - scores.mean(0)) ** 2)


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
def test_features_and_reconstructions_have_the_right_shapes(architecture):
    model = ae.AutoEncoder(latent_dim=6, hidden=(32,), architecture=architecture,
                           conv_features=(4, 8))
    params = ae.init(jax.random.key(0), model)
    # init is one module-level program with the module static: another key and an equal,
    # separately built module reuse it (no compile: ~0 s).
    size = modules.init_on_rows._cache_size()
    again = ae.init(jax.random.key(1), ae.AutoEncoder(latent_dim=6, hidden=(32,),
                                                      architecture=architecture,
                                                      conv_features=(4, 8)))
    assert modules.init_on_rows._cache_size() == size >= 1
    assert jax.tree.structure(again) == jax.tree.structure(params)
    assert not np.allclose(jax.tree.leaves(again)[-1], jax.tree.leaves(params)[-1])
    X = np.random.default_rng(1).random((5, 784)).astype(np.float32)
    if architecture == "conv":     # one compilation covers the encoder and the decoder
        recon = ae.reconstruct(model, params, X)
        assert recon.shape == (5, 784) and np.all(np.isfinite(recon))
    else:
        codes = ae.encode(model, params, X)
        assert codes.shape == (5, 6) and np.all(np.isfinite(codes))
        # the loss is the mean per-example squared error
        loss = ae.make_loss(model)
        assert loss is ae.make_loss(model)
        np.testing.assert_allclose(float(jax.jit(loss)(params, X, jax.random.key(0))),
                                   float(np.mean(ae.reconstruction_error(model, params, X))),
                                   rtol=1e-5)


def test_bad_inputs():
    model = ae.AutoEncoder(data_dim=8, latent_dim=2, hidden=())
    # the calls below must fail on X or module before the parameters are read: their shapes
    # (eval_shape, no init compile) are all they get
    params = jax.eval_shape(lambda k: ae.init(k, model), jax.random.key(0))
    X = _low_rank(n=10)
    with pytest.raises(ValueError, match="X has 7 columns"):
        ae.encode(model, params, X[:, :7])
    bad = X.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        ae.reconstruct(model, params, bad)
    with pytest.raises(ValueError, match="module.architecture"):
        ae.init(jax.random.key(0), ae.AutoEncoder(architecture="rnn"))
    with pytest.raises(ValueError, match="module.image_shape"):
        ae.init(jax.random.key(0), ae.AutoEncoder(data_dim=100, architecture="conv"))
    with pytest.raises(ValueError, match="module.image_shape"):
        ae.init(jax.random.key(0), ae.AutoEncoder(image_shape=(30, 30, 1), data_dim=900,
                                                  architecture="conv"))
    with pytest.raises(TypeError, match="module must be a AutoEncoder"):
        ae.encode("ae", params, X)
    with pytest.raises(ValueError, match="batch_size"):
        ae.fit(jax.random.key(0), X, module=model, optimizer=optax.sgd(0.1), batch_size=0,
               n_epochs=1, progress=False)


def test_plots_return_figures_and_tile_images_in_order():
    import matplotlib.figure

    from espresso_jax.apps.viz import nn as viz

    images = np.arange(5 * 4, dtype=np.float64).reshape(5, 4)          # five 2x2 "images"
    canvas = viz.image_grid(images, 3, image_shape=(2, 2), pad=1)
    assert canvas.shape == (2 * 3 - 1, 3 * 3 - 1)
    np.testing.assert_array_equal(canvas[3:5, 3:5], images[4].reshape(2, 2))   # row 1, col 1
    np.testing.assert_array_equal(canvas[0:2, 6:8], images[2].reshape(2, 2))   # row 0, col 2
    figs = [viz.plot_image_grid(images, n_cols=3, image_shape=(2, 2)),
            viz.plot_reconstructions(images, images[::-1], image_shape=(2, 2)),
            viz.plot_manifold(images[:4].reshape(2, 2, 4), image_shape=(2, 2)),
            viz.plot_latent_scatter(images[:, :2], np.arange(5))]
    assert all(isinstance(f, matplotlib.figure.Figure) for f in figs)
    with pytest.raises(ValueError, match="same shape"):
        viz.plot_reconstructions(images, images[:2], image_shape=(2, 2))
    with pytest.raises(ValueError, match="grid must be"):
        viz.plot_manifold(images, image_shape=(2, 2))
