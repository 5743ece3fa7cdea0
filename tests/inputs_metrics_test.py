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
  noisy = dipjax.inputs.perturb_input(jax.random.key(3), z, std=1 / 30)
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
    dipjax.metrics.mse(a[0], a[0, :8])


def test_y_channel_and_sr_protocol_helpers():
  white = jnp.ones((4, 4, 3))
  np.testing.assert_allclose(dipjax.metrics.rgb_to_y(white), 235 / 255, rtol=1e-6)  # studio range top
  np.testing.assert_allclose(dipjax.metrics.rgb_to_y(jnp.zeros((4, 4, 3))), 16 / 255, rtol=1e-6)
  canvas = np.zeros((20, 30, 3), np.float32)
  canvas[3:15, 5:26] = 0.5
  assert dipjax.metrics.nonzero_box(canvas) == (3, 14, 5, 25)
  a = jax.random.uniform(jax.random.key(0), (20, 30, 3))
  b = jnp.clip(a + 0.1, 0, 1)
  # shave 2 of box (0, 19, 0, 29) keeps rows 2:17 and columns 2:27
  expected = float(dipjax.psnr(dipjax.metrics.rgb_to_y(a)[2:17, 2:27], dipjax.metrics.rgb_to_y(b)[2:17, 2:27]))
  assert abs(dipjax.psnr_sr(a, b, shave=2) - expected) < 1e-5
  with pytest.raises(ValueError, match="3 channels"):
    dipjax.metrics.rgb_to_y(jnp.ones((4, 4, 1)))
  with pytest.raises(ValueError, match="entirely zero"):
    dipjax.metrics.nonzero_box(np.zeros((3, 3, 1)))


def test_ssim_wraps_skimage():
  from skimage.metrics import structural_similarity

  a = np.asarray(jax.random.uniform(jax.random.key(0), (32, 32, 3)))
  b = np.clip(a + 0.05, 0, 1)
  assert dipjax.ssim(a, a) == pytest.approx(1.0)
  assert dipjax.ssim(a, b) == pytest.approx(structural_similarity(a, b, data_range=1.0, channel_axis=-1))
  with pytest.raises(ValueError, match="must be equal"):
    dipjax.ssim(a, b[:16])
