"""Forward operators as values: reference values, shapes, jit == eager, vmap == loop, windows, composition."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dipjax
from dipjax import operators


def image(h=16, w=24, c=3, seed=0):
  return jax.random.uniform(jax.random.key(seed), (h, w, c))


MASK = (jax.random.uniform(jax.random.key(9), (16, 24, 1)) > 0.5).astype(jnp.float32)
CASES = {
    "identity": (operators.Identity(), lambda x: x),
    "mask": (operators.Mask(MASK), lambda x: x * MASK),
    "channel_mask": (operators.Mask(jnp.tile(MASK, (1, 1, 3)).at[0, 0, 1].set(0.0)),
                     lambda x: x * jnp.tile(MASK, (1, 1, 3)).at[0, 0, 1].set(0.0)),
    "downsample": (operators.Downsample(2), lambda x: dipjax.downsample(x, 2)),
    "box": (operators.Downsample(4, kernel="box"), lambda x: x.reshape(4, 4, 6, 4, 3).mean(axis=(1, 3))),
    "crop": (operators.Crop(2, 3, 8, 10), lambda x: x[2:10, 3:13]),
    "composed": (operators.compose(operators.Downsample(2), operators.Crop(0, 4, 16, 16)),
                 lambda x: dipjax.downsample(x[:, 4:20], 2)),
    "function": (operators.Function(lambda x, k: x * k, data=jnp.float32(0.5)), lambda x: 0.5 * x),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_reference_value_and_observation_shape(name):
  op, reference = CASES[name]
  x = image()
  y = op(x)
  np.testing.assert_allclose(y, reference(x), rtol=1e-6, atol=1e-6)
  assert op.observation_shape(x.shape) == tuple(y.shape)


@pytest.mark.parametrize("name", sorted(CASES))
def test_jit_equals_eager(name):
  op, _ = CASES[name]
  x = image()
  np.testing.assert_allclose(jax.jit(lambda o, v: o(v))(op, x), op(x), rtol=1e-6, atol=1e-7)


def test_vmap_over_per_image_operators_equals_a_loop():
  masks = (jax.random.uniform(jax.random.key(1), (3, 16, 24, 1)) > 0.5).astype(jnp.float32)
  stacked = operators.stack([operators.Mask(m) for m in masks])
  xs = jnp.stack([image(seed=i) for i in range(3)])
  batched = jax.vmap(lambda o, x: o(x))(stacked, xs)
  for i in range(3):
    np.testing.assert_array_equal(batched[i], operators.index(stacked, i)(xs[i]))
    np.testing.assert_array_equal(batched[i], xs[i] * masks[i])


def test_gradients_flow_through_every_operator():
  x = image()
  for name, (op, _) in CASES.items():
    g = jax.grad(lambda v: jnp.sum(op(v) ** 2))(x)
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).sum()) > 0, name


def test_image_shape_inverts_observation_shape_where_defined():
  assert operators.Downsample(4).image_shape((8, 12, 3)) == (32, 48, 3)
  assert operators.Identity().image_shape((8, 12, 1)) == (8, 12, 1)
  assert operators.compose(operators.Mask(MASK), operators.Identity()).image_shape((16, 24, 3)) == (16, 24, 3)
  with pytest.raises(ValueError, match="does not determine the canvas"):
    operators.Crop(0, 0, 4, 4).image_shape((4, 4, 3))


def test_windows_of_pixel_aligned_operators_and_refusals():
  x = image()
  win = operators.Mask(MASK).window(2, 4, 8, 8)
  np.testing.assert_array_equal(win(x[2:10, 4:12]), (x * MASK)[2:10, 4:12])
  assert operators.Identity().window(0, 0, 4, 4) == operators.Identity()
  for op in (operators.Downsample(2), operators.Crop(0, 0, 4, 4), operators.Function(lambda v: v)):
    with pytest.raises(ValueError, match="cannot be tiled|not pixel-aligned"):
      op.window(0, 0, 4, 4)


def test_compose_order_and_plain_callables():
  double = lambda v: 2.0 * v
  op = operators.compose(double, operators.Crop(0, 0, 4, 4))
  x = image()
  np.testing.assert_allclose(op(x), 2.0 * x[:4, :4])
  assert isinstance(operators.compose(), operators.Identity)
  assert isinstance(operators.as_operator(None), operators.Identity)
  with pytest.raises(ValueError, match="`operator` must be"):
    operators.as_operator(3)


def test_bad_operator_arguments():
  with pytest.raises(ValueError, match="`factor` must be a positive integer, got 0"):
    operators.Downsample(0)
  with pytest.raises(ValueError, match="`kernel` must be one of"):
    operators.Downsample(2, kernel="cubic")
  with pytest.raises(ValueError, match="share one structure"):
    operators.stack([operators.Identity(), operators.Mask(MASK)])


def test_an_operator_value_is_an_argument_of_the_compiled_fit():
  """A new mask does not recompile the fit: the mask is data, not a constant of the program."""
  fit = dipjax.make_fit(dipjax.skip_tiny(), num_steps=2, input_channels=4)
  target = image(16, 16)
  m1 = operators.Mask(jnp.ones((16, 16, 1)))
  m2 = operators.Mask(jnp.zeros((16, 16, 1)).at[:8].set(1.0))
  r1 = fit(jax.random.key(0), target, operator=m1)
  r2 = fit(jax.random.key(0), target, operator=m2)
  assert fit.jitted._cache_size() == 1
  assert float(r1.metrics.loss[0]) != float(r2.metrics.loss[0])
