"""The fixed Lanczos/box/Gaussian downsampler (dip_reference.md §1.5)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dipjax

LANCZOS2_X4_HALF = [-0.001065, -0.009752, -0.020384, -0.014878, 0.024594, 0.098658, 0.183115, 0.239711]


def test_lanczos2_x4_taps_match_reference():
  taps = dipjax.downsampler.kernel_1d(4, kernel_type="lanczos2")
  assert taps.shape == (16,)
  np.testing.assert_allclose(taps[:8], LANCZOS2_X4_HALF, atol=1e-6)
  np.testing.assert_allclose(taps[8:], LANCZOS2_X4_HALF[::-1], atol=1e-6)


@pytest.mark.parametrize("kind,factor,n", [("lanczos2", 8, 32), ("lanczos3", 4, 24), ("box", 4, 4),
                                           ("gauss", 4, 16)])
def test_kernels_are_normalised(kind, factor, n):
  taps = dipjax.downsampler.kernel_1d(factor, kernel_type=kind)
  assert taps.shape == (n,)
  np.testing.assert_allclose(taps.sum(), 1.0, atol=1e-12)
  np.testing.assert_allclose(taps, taps[::-1], atol=1e-12)


@pytest.mark.parametrize("kind", ["lanczos2", "lanczos3", "box", "gauss"])
def test_constant_image_stays_constant(kind):
  y = dipjax.downsample(jnp.full((32, 24, 3), 0.37), 4, kernel_type=kind)
  assert y.shape == (8, 6, 3)
  np.testing.assert_allclose(y, 0.37, atol=1e-6)


def test_matches_dense_depthwise_convolution():
  x = jax.random.uniform(jax.random.key(0), (16, 20, 2))
  taps = dipjax.downsampler.kernel_1d(2)
  k2 = np.outer(taps, taps)
  pad = (len(taps) - 2) // 2
  xp = np.pad(np.asarray(x), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
  expected = np.zeros((8, 10, 2))
  for p in range(8):
    for q in range(10):
      expected[p, q] = np.einsum("uv,uvc->c", k2, xp[2 * p:2 * p + 8, 2 * q:2 * q + 8])
  np.testing.assert_allclose(dipjax.downsample(x, 2), expected, atol=1e-5)


def test_bad_arguments():
  with pytest.raises(ValueError, match="`factor`"):
    dipjax.downsampler.kernel_1d(0)
  with pytest.raises(ValueError, match="`kernel_type`"):
    dipjax.downsampler.kernel_1d(2, kernel_type="bicubic")
  with pytest.raises(ValueError, match="`image`"):
    dipjax.downsample(jnp.ones((8, 8)), 2)
