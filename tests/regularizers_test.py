"""tv_loss: the reference's sum-TV formula, its gradient, argument checks."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dipjax import regularizers


def _tv_numpy(x, beta):
  """The reference's tv_loss on a (1, C, H, W) tensor, transcribed to numpy."""
  t = np.transpose(np.asarray(x, np.float64), (2, 0, 1))[None]
  dh = (t[:, :, :, 1:] - t[:, :, :, :-1]) ** 2
  dw = (t[:, :, 1:, :] - t[:, :, :-1, :]) ** 2
  return np.sum((dh[:, :, :-1] + dw[:, :, :, :-1]) ** beta)


@pytest.mark.parametrize("beta", [0.5, 1.0, 2.0])
@pytest.mark.parametrize("shape", [(7, 9, 3), (2, 2, 1), (5, 4, 2)])
def test_equals_reference_formula(beta, shape):
  x = jax.random.uniform(jax.random.key(0), shape)
  np.testing.assert_allclose(regularizers.tv_loss(x, beta), _tv_numpy(x, beta), rtol=1e-5)


def test_gradient_is_finite_and_correct():
  x = jax.random.uniform(jax.random.key(0), (6, 5, 3))
  g = jax.grad(regularizers.tv_loss)(x)
  direct = jax.grad(lambda x: jnp.sum((jnp.square(x[:-1, 1:] - x[:-1, :-1])
                                        + jnp.square(x[1:, :-1] - x[:-1, :-1])) ** 0.5))(x)
  np.testing.assert_allclose(g, direct, rtol=1e-4, atol=1e-6)
  flat = jnp.zeros((6, 5, 3)).at[2:4, 1:3].set(1.0)  # flat regions: the reference's gradient is NaN there
  g_flat = jax.jit(jax.grad(regularizers.tv_loss))(flat)
  assert bool(jnp.all(jnp.isfinite(g_flat)))
  assert float(jnp.abs(jax.grad(regularizers.tv_loss)(jnp.ones((4, 4, 1)))).max()) == 0.0


def test_argument_errors():
  with pytest.raises(ValueError, match="`beta` must be > 0, got 0"):
    regularizers.tv_loss(jnp.ones((3, 3, 1)), beta=0)
  with pytest.raises(ValueError, match=r"must be \(H, W, C\) with H, W >= 2, got shape \(3, 3\)"):
    regularizers.tv_loss(jnp.ones((3, 3)))


def test_doctests():
  assert doctest.testmod(regularizers).failed == 0
