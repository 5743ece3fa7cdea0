"""Blur operator, its adjoint, kernels, kernel files and the scikit-image baselines."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image
from scipy import signal

from dipjax import blur

RNG = np.random.default_rng(0)
IMAGE = RNG.random((20, 17, 3)).astype(np.float32)
KERNELS = {
    "odd": RNG.random((5, 3)).astype(np.float32),
    "even": RNG.random((4, 6)).astype(np.float32),
    "gauss": blur.gaussian_kernel(1.2),
}


def _circular_reference(x, k):
  """The module docstring's formula: ``y[i] = Σ_u k[u] x[(i − u + c) mod H]``, as a sum of rolls."""
  kh, kw = k.shape
  return sum(float(k[u, v]) * np.roll(x, (u - kh // 2, v - kw // 2), axis=(0, 1))
             for u in range(kh) for v in range(kw))


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_blur_matches_numpy_and_scipy(name):
  k = KERNELS[name]
  np.testing.assert_allclose(blur.blur(IMAGE, k), _circular_reference(IMAGE, k), atol=5e-6)
  valid = np.stack([signal.convolve2d(IMAGE[..., c], k, mode="valid") for c in range(3)], axis=-1)
  out = blur.blur(IMAGE, k, boundary="valid")
  assert out.shape == (20 - k.shape[0] + 1, 17 - k.shape[1] + 1, 3)
  np.testing.assert_allclose(out, valid, atol=5e-6)


@pytest.mark.parametrize("boundary", blur.BOUNDARIES)
@pytest.mark.parametrize("name", sorted(KERNELS))
def test_adjoint(boundary, name):
  k = KERNELS[name]
  x = RNG.standard_normal(IMAGE.shape).astype(np.float32)
  ax = np.asarray(blur.blur(x, k, boundary=boundary), np.float64)
  y = RNG.standard_normal(ax.shape).astype(np.float32)
  aty = np.asarray(blur.blur_adjoint(y, k, boundary=boundary, image_shape=x.shape), np.float64)
  assert aty.shape == x.shape
  lhs, rhs = np.vdot(ax, y), np.vdot(x.astype(np.float64), aty)
  assert abs(lhs - rhs) <= 1e-5 * np.linalg.norm(ax) * np.linalg.norm(y)
  _, vjp = jax.vjp(lambda v: blur.blur(v, k, boundary=boundary), jnp.asarray(x))
  np.testing.assert_allclose(aty, vjp(jnp.asarray(y))[0], atol=1e-5)


@pytest.mark.parametrize("size", [1, 3, 5])
def test_delta_kernel_is_identity(size):
  delta = np.zeros((size, size), np.float32)
  delta[size // 2, size // 2] = 1.0
  np.testing.assert_allclose(blur.blur(IMAGE, delta), IMAGE, atol=1e-6)
  np.testing.assert_allclose(blur.blur_adjoint(IMAGE, delta), IMAGE, atol=1e-6)
  r = size // 2
  np.testing.assert_array_equal(blur.blur(IMAGE, delta, boundary="valid"), IMAGE[r:20 - r, r:17 - r])


def test_kernels_sum_to_one():
  kernels = [blur.gaussian_kernel(s) for s in (0.0, 0.5, 1.0, 3.0)] + [blur.gaussian_kernel(2.0, size=5)]
  kernels += [blur.motion_kernel(length, angle) for length in (0, 1, 4.5, 9, 15) for angle in (0, 30, 90, 135, 250)]
  for k in kernels:
    assert k.dtype == np.float32 and k.ndim == 2 and k.shape[0] % 2 == 1 and k.shape[0] == k.shape[1]
    assert np.all(k >= 0) and abs(float(k.sum()) - 1) < 1e-6
  g = blur.gaussian_kernel(1.5)
  assert g.shape == (11, 11) and np.allclose(g, g.T) and np.allclose(g, g[::-1]) and g.argmax() == 60
  np.testing.assert_allclose(blur.motion_kernel(5, 0)[2], np.full(5, 0.2), rtol=1e-6)
  np.testing.assert_array_equal(blur.motion_kernel(7, 90), blur.motion_kernel(7, 0).T)
  np.testing.assert_array_equal(blur.motion_kernel(7, 180), blur.motion_kernel(7, 0))
  assert blur.gaussian_kernel(0.0).tolist() == [[1.0]] and blur.motion_kernel(0, 45).tolist() == [[1.0]]


@pytest.mark.parametrize("call", [
    lambda: blur.gaussian_kernel(-1.0), lambda: blur.gaussian_kernel(1.0, size=4),
    lambda: blur.motion_kernel(9, 45, size=5), lambda: blur.motion_kernel(-2, 0),
    lambda: blur.blur(IMAGE, np.ones((3, 3)), boundary="reflect"),
    lambda: blur.blur(IMAGE, np.ones((30, 3))), lambda: blur.blur(IMAGE, np.ones(3)),
    lambda: blur.blur_adjoint(IMAGE, np.ones((3, 3)), boundary="valid"),
    lambda: blur.blur_adjoint(IMAGE, np.ones((3, 3)), boundary="valid", image_shape=IMAGE.shape),
])
def test_bad_arguments(call):
  with pytest.raises(ValueError) as info:
    call()
  assert "\n" not in str(info.value)


def test_load_kernel_good_files(tmp_path):
  k = blur.motion_kernel(6, 20)
  np.save(tmp_path / "k.npy", 3 * k.astype(np.float64))
  np.testing.assert_allclose(blur.load_kernel(tmp_path / "k.npy"), k, rtol=1e-6)
  grey = (np.arange(15).reshape(3, 5) * 10).astype(np.uint8)
  Image.fromarray(grey).save(tmp_path / "grey.png")
  Image.fromarray(np.stack([grey] * 3, axis=-1)).convert("RGBA").save(tmp_path / "rgba.png")
  for name in ("grey.png", "rgba.png"):
    loaded = blur.load_kernel(str(tmp_path / name))
    np.testing.assert_allclose(loaded, grey / grey.sum(), rtol=1e-6)
    assert loaded.dtype == np.float32


def _write_bad_files(tmp_path):
  (tmp_path / "garbage.png").write_bytes(b"this is not a PNG file")
  (tmp_path / "garbage.npy").write_bytes(b"\x93NUMPY but broken")
  np.save(tmp_path / "cube.npy", np.ones((3, 3, 3)))
  np.save(tmp_path / "vector.npy", np.ones(5))
  np.save(tmp_path / "negative.npy", np.array([[0.5, -0.1], [0.3, 0.3]]))
  np.save(tmp_path / "zero.npy", np.zeros((3, 3)))
  np.save(tmp_path / "nan.npy", np.array([[1.0, np.nan]]))
  np.save(tmp_path / "empty.npy", np.zeros((0, 3)))
  np.save(tmp_path / "strings.npy", np.array([["a", "b"]]))
  colour = np.zeros((3, 3, 3), np.uint8)
  colour[1, 1] = (255, 0, 0)
  Image.fromarray(colour).save(tmp_path / "colour.png")
  return ["missing.npy", "garbage.png", "garbage.npy", "cube.npy", "vector.npy", "negative.npy", "zero.npy",
          "nan.npy", "empty.npy", "strings.npy", "colour.png"]


def test_load_kernel_bad_files(tmp_path):
  for name in _write_bad_files(tmp_path):
    with pytest.raises(ValueError) as info:
      blur.load_kernel(tmp_path / name)
    message = str(info.value)
    assert "\n" not in message and name in message, (name, message)


def test_traced_kernel_and_gradient():
  k = jnp.asarray(KERNELS["odd"])
  fn = jax.jit(lambda kern: jnp.sum(blur.blur(IMAGE, kern, boundary="valid") ** 2))
  grad = jax.grad(fn)(k)
  assert grad.shape == k.shape and bool(jnp.all(jnp.isfinite(grad)))


@pytest.mark.parametrize("shape,at", [((3, 3), (1, 2)), ((4, 4), (1, 3)), ((5, 5), (4, 0))])
def test_wiener_uses_the_circular_convention(shape, at):
  """A shifted delta is a pure phase: Wiener with a tiny balance undoes it only if the kernel centres agree."""
  k = np.zeros(shape, np.float32)
  k[at] = 1.0
  x = RNG.random((24, 20, 2)).astype(np.float32)
  restored = blur.wiener(np.asarray(blur.blur(x, k)), k, balance=1e-6)
  assert restored.shape == x.shape and restored.dtype == np.float32
  np.testing.assert_allclose(restored, x, atol=1e-3)


def test_richardson_lucy():
  delta = np.zeros((3, 3), np.float32)
  delta[1, 1] = 1.0
  x = RNG.uniform(0.1, 1.0, (16, 16, 3)).astype(np.float32)
  np.testing.assert_allclose(blur.richardson_lucy(x, delta, num_iter=3), x, atol=1e-5)
  k = blur.gaussian_kernel(1.0)
  smooth = np.asarray(blur.blur(jnp.asarray(blur.gaussian_kernel(3.0, size=15))[:, :, None].repeat(3, -1) * 50, k))
  out = blur.richardson_lucy(np.clip(smooth, 0, 1), k, num_iter=10)
  assert out.shape == smooth.shape and out.min() >= 0 and out.max() <= 1
  with pytest.raises(ValueError):
    blur.richardson_lucy(x, delta, num_iter=0)
  with pytest.raises(ValueError):
    blur.wiener(x, delta, balance=0.0)


def test_doctests():
  assert doctest.testmod(blur).failed == 0
