"""The im2col convolution (``nn.conv.PatchConv``) against XLA's convolution (``nn.Conv``, the
same parameters): outputs and gradients; the InfoGAN discriminator with convolutions in front
of its body."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import linen as nn

from espresso_jax.nn import gan, infogan
from espresso_jax.nn.conv import ConvEncoder, PatchConv, image_patches


@pytest.mark.parametrize("shape,kernel,stride", [((2, 28, 28, 1), 4, 2), ((1, 9, 11, 2), 3, 1)])
def test_patch_conv_equals_xla_convolution(shape, kernel, stride):
    x = jax.random.normal(jax.random.key(0), shape)
    ref = nn.Conv(6, (kernel, kernel), strides=(stride, stride), padding="SAME")
    params = ref.init(jax.random.key(1), x)
    ours = PatchConv(6, kernel, stride)
    # same parameter tree and initialisation
    same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), params,
                        ours.init(jax.random.key(1), x))
    assert all(jax.tree.leaves(same))

    def loss(module, p, x):
        return jnp.sum(jnp.sin(module.apply(p, x)))

    # float32 sums of <= 50 products of O(1) values: agreement to ~1e-6 measured, 1e-5 bound
    np.testing.assert_allclose(np.asarray(ours.apply(params, x)),
                               np.asarray(ref.apply(params, x)), rtol=1e-5, atol=1e-5)
    grad = jax.jit(jax.grad(loss, argnums=(1, 2)), static_argnums=0)
    g_ours, g_ref = grad(ours, params, x), grad(ref, params, x)
    for a, b in zip(jax.tree.leaves(g_ours), jax.tree.leaves(g_ref), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-4)


def test_image_patches_reads_the_padded_image():
    x = jnp.arange(2 * 5 * 5 * 1, dtype=jnp.float32).reshape(2, 5, 5, 1)
    p = image_patches(x, 3, 2)     # SAME: out 3×3, padding 1 before and 1 after
    assert p.shape == (2, 3, 3, 9)
    padded = np.pad(np.asarray(x), ((0, 0), (1, 1), (1, 1), (0, 0)))
    np.testing.assert_array_equal(np.asarray(p[1, 2, 1]), padded[1, 4:7, 2:5, 0].ravel())


def test_conv_encoder_patches_option_changes_nothing_but_the_computation():
    x = jax.random.normal(jax.random.key(0), (3, 28, 28, 1))
    a, b = ConvEncoder((4, 8), 16), ConvEncoder((4, 8), 16, patches=True)
    params = a.init(jax.random.key(2), x)
    np.testing.assert_allclose(np.asarray(b.apply(params, x)), np.asarray(a.apply(params, x)),
                               rtol=1e-5, atol=1e-5)


def test_conv_discriminator_shapes_and_bad_image_shape_raises():
    model = infogan.mlp_infogan(784, noise_dim=4, g_hidden=(32,), d_hidden=(32,), q_hidden=8,
                                d_conv=(4, 8))
    state = gan.init_state(jax.random.key(0), model.gan, optimizer=optax.adam(1e-3))
    assert state.disc.params["conv_1"]["kernel"].shape == (4, 4, 4, 8)
    assert state.disc.params["body"]["dense_0"]["kernel"].shape == (7 * 7 * 8, 32)
    x = jnp.linspace(-1.0, 1.0, 3 * 784).reshape(3, 784)
    logit, cat, mean, log_std = model.gan.discriminator.apply({"params": state.disc.params}, x)
    assert (logit.shape, cat.shape, mean.shape, log_std.shape) == ((3,), (3, 10), (3, 2),
                                                                   (3, 2))
    with pytest.raises(ValueError, match="image_shape"):
        infogan.mlp_infogan(784, d_conv=(4,), image_shape=(28, 14, 1))
    with pytest.raises(ValueError, match="image_shape"):
        infogan.mlp_infogan(784, d_conv=(4, 8, 16), image_shape=(28, 28, 1))
