"""Network inputs and metrics."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio

import dipjax


def test_noise_input_is_uniform_zero_to_tenth():
  z = dipjax.make_input(jax.random.key(0), (64, 48), channels=32)
  assert z.shape == (64, 48, 32) and z.dtype == jnp.float32
  assert float(z.min()) >= 0.0 and float(z.max()) <= 0.1
  assert abs(float(z.mean()) - 0.05) < 1e-3
  np.testing.assert_array_equal(z, dipjax.make_input(jax.random.key(0), (64, 48), channels=32))
  assert not np.array_equal(z, dipjax.make_input(jax.random.key(1), (64, 48), channels=32))


def test_meshgrid_input():
  z = dipjax.make_input(jax.random.key(0), (5, 9), channels=2, kind="meshgrid")
  np.testing.assert_allclose(z[0, :, 0], np.arange(9) / 8)  # channel 0 varies along the width
  np.testing.assert_allclose(z[:, 0, 1], np.arange(5) / 4)
  with pytest.raises(ValueError, match="`channels` must be 2"):
    dipjax.make_input(jax.random.key(0), (5, 9), channels=3, kind="meshgrid")
  with pytest.raises(ValueError, match="`kind`"):
    dipjax.make_input(jax.random.key(0), (5, 9), kind="gaussian")


def test_perturbation_std():
  z = jnp.zeros((128, 128, 8))
  noisy = dipjax.perturb_input(jax.random.key(3), z, std=1 / 30)
  assert abs(float(jnp.std(noisy)) - 1 / 30) < 1e-3


def test_psnr_matches_skimage_and_reduces_last_three_axes():
  a = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
  b = jnp.clip(a + 0.05 * jax.random.normal(jax.random.key(1), a.shape), 0, 1)
  ours = dipjax.psnr(a, b)
  assert ours.shape == (2,)
  for i in range(2):
    ref = peak_signal_noise_ratio(np.asarray(a[i]), np.asarray(b[i]), data_range=1.0)
    np.testing.assert_allclose(ours[i], ref, rtol=1e-5)
  np.testing.assert_allclose(jax.jit(dipjax.psnr)(a, b), ours, rtol=1e-6)
  assert np.isinf(float(dipjax.psnr(a[0], a[0])))
  with pytest.raises(ValueError, match="shapes differ"):
    dipjax.mse(a[0], a[0, :8])
