"""Noise models: statistics on a large constant image, determinism, jit/vmap, parameter checks."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dipjax import noise

X = 0.5
SHAPE = (256, 256, 3)  # 196 608 draws: the standard error of a mean of σ-noise is σ / 443


@pytest.fixture(scope="module")
def flat():
  return jnp.full(SHAPE, X, jnp.float32)


def _mean_var(y):
  y = np.asarray(y, np.float64)
  return y.mean(), y.var()


def test_gaussian_statistics(flat):
  sigma = 0.1
  y = noise.gaussian(jax.random.key(0), flat, sigma=sigma)
  mean, var = _mean_var(y)
  assert y.dtype == jnp.float32 and y.shape == SHAPE
  assert abs(mean - X) < 5 * sigma / np.sqrt(y.size)
  assert abs(var / sigma**2 - 1) < 0.02
  on_255 = noise.gaussian(jax.random.key(0), flat, sigma=25.5, scale="255")
  np.testing.assert_allclose(on_255, y, atol=1e-6)


def test_gaussian_clip():
  y = noise.gaussian(jax.random.key(0), jnp.full((64, 64, 3), 0.95), sigma=0.3)
  assert float(y.min()) >= 0.0 and float(y.max()) == 1.0
  unclipped = noise.gaussian(jax.random.key(0), jnp.full((64, 64, 3), 0.95), sigma=0.3, clip=False)
  assert float(unclipped.max()) > 1.0


def test_poisson_statistics(flat):
  peak = 20.0
  y = noise.poisson(jax.random.key(1), flat, peak=peak, clip=False)
  mean, var = _mean_var(y)
  assert abs(mean - X) < 5 * np.sqrt(X / peak / y.size)
  assert abs(var / (X / peak) - 1) < 0.02
  counts = np.asarray(y) * peak
  np.testing.assert_allclose(counts, np.round(counts), atol=1e-4)  # multiples of 1 / peak
  clipped = noise.poisson(jax.random.key(1), flat, peak=peak)
  assert float(clipped.max()) <= 1.0 and float(clipped.min()) >= 0.0


def test_impulse_fractions_per_channel(flat):
  fraction, salt = 0.2, 0.3
  y = np.asarray(noise.impulse(jax.random.key(2), flat, fraction=fraction, salt_vs_pepper=salt))
  assert set(np.unique(y)) <= {0.0, X, 1.0}
  tol = 5 * np.sqrt(0.25 / y.size)
  assert abs(np.mean(y == 1.0) - fraction * salt) < tol
  assert abs(np.mean(y == 0.0) - fraction * (1 - salt)) < tol
  hit = y != X
  assert np.mean(np.all(hit, axis=-1)) < 0.05  # independent channels: all three hit ~ 0.2³


def test_impulse_per_pixel(flat):
  y = np.asarray(noise.impulse(jax.random.key(3), flat, fraction=0.25, per_channel=False))
  np.testing.assert_array_equal(y, np.repeat(y[..., :1], 3, axis=-1))  # a hit pixel is white or black
  assert abs(np.mean(y[..., 0] != X) - 0.25) < 5 * np.sqrt(0.25 / y[..., 0].size)


def test_speckle_statistics(flat):
  sigma = 0.2
  y = noise.speckle(jax.random.key(4), flat, sigma=sigma)
  mean, var = _mean_var(y)
  assert abs(mean - X) < 5 * X * sigma / np.sqrt(y.size)
  assert abs(var / (X * sigma) ** 2 - 1) < 0.02


@pytest.mark.parametrize("name,params", [("gaussian", dict(sigma=0.1)), ("poisson", dict(peak=10.0)),
                                         ("impulse", dict(fraction=0.1)), ("speckle", dict(sigma=0.2))])
def test_deterministic_jit_and_vmap(name, params):
  image = jax.random.uniform(jax.random.key(9), (32, 32, 3))  # the doctests' shape: poisson compiles per shape
  fn = noise.make(name, **params)
  a = fn(jax.random.key(5), image)
  np.testing.assert_array_equal(a, fn(jax.random.key(5), image))
  assert not np.array_equal(a, fn(jax.random.key(6), image))
  np.testing.assert_allclose(jax.jit(fn)(jax.random.key(5), image), a, atol=1e-6)
  keys = jax.random.split(jax.random.key(7), 3)
  batched = jax.vmap(fn, in_axes=(0, None))(keys, image)
  for i in range(3):
    np.testing.assert_allclose(batched[i], fn(keys[i], image), atol=1e-6)


def test_traced_parameters():
  image = jnp.full((8, 8, 1), 0.5)
  sigmas = jnp.asarray([0.0, 0.1])
  out = jax.vmap(lambda s: noise.gaussian(jax.random.key(0), image, sigma=s))(sigmas)
  np.testing.assert_array_equal(out[0], image)
  hits = jax.jit(lambda f: noise.impulse(jax.random.key(0), image, fraction=f))(1.0)
  assert set(np.unique(hits)) <= {0.0, 1.0}


@pytest.mark.parametrize("name,params,argument", [
    ("gaussian", dict(sigma=-0.1), "sigma"),
    ("speckle", dict(sigma=-1.0), "sigma"),
    ("poisson", dict(peak=0.0), "peak"),
    ("poisson", dict(peak=-3), "peak"),
    ("impulse", dict(fraction=1.5), "fraction"),
    ("impulse", dict(fraction=-0.1), "fraction"),
    ("impulse", dict(fraction=0.1, salt_vs_pepper=2.0), "salt_vs_pepper"),
    ("gaussian", dict(sigma=0.1, scale="percent"), "scale"),
    ("gaussian", dict(sigma=float("nan")), "sigma"),
])
def test_bad_parameters(name, params, argument):
  with pytest.raises(ValueError) as info:
    noise.make(name, **params)
  message = str(info.value)
  assert "\n" not in message and f"`{argument}`" in message and repr(params[argument]) in message
  with pytest.raises(ValueError):  # the functions check too
    noise.NOISE_MODELS[name](jax.random.key(0), jnp.zeros((4, 4, 1)), **params)


def test_make_errors():
  for call in (lambda: noise.make("gamma", sigma=0.1), lambda: noise.make("gaussian", peak=3.0),
               lambda: noise.make("poisson")):
    with pytest.raises(ValueError) as info:
      call()
    assert "\n" not in str(info.value)
  with pytest.raises(ValueError, match="H, W, C"):
    noise.gaussian(jax.random.key(0), jnp.zeros((4, 4)), sigma=0.1)
  assert set(noise.NOISE_MODELS) == {"gaussian", "poisson", "impulse", "speckle"}


def test_doctests():
  assert doctest.testmod(noise, optionflags=doctest.ELLIPSIS).failed == 0

