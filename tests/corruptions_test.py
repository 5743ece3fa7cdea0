"""Corruptions and forward operators: noise, masks, JPEG, low resolution."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import dipjax
from dipjax import corruptions, image_io


def test_gaussian_noise_std_clip_and_key():
  img = jnp.full((128, 128, 3), 0.5)
  noisy = dipjax.corruptions.add_gaussian_noise(jax.random.key(0), img, sigma=25 / 255)
  assert noisy.dtype == jnp.float32 and float(noisy.min()) >= 0 and float(noisy.max()) <= 1
  assert abs(float(jnp.std(noisy - img)) - 25 / 255) < 2e-3
  np.testing.assert_array_equal(noisy, dipjax.corruptions.add_gaussian_noise(jax.random.key(0), img, sigma=25 / 255))


@pytest.mark.parametrize("keep,per_channel", [(0.5, False), (0.02, False), (0.5, True)])
def test_bernoulli_mask_kept_fraction(keep, per_channel):
  m = dipjax.corruptions.bernoulli_mask(jax.random.key(1), (256, 256, 3), keep_fraction=keep, per_channel=per_channel)
  assert set(np.unique(np.asarray(m))) <= {0.0, 1.0}
  assert abs(float(m.mean()) - keep) < 4 * np.sqrt(keep * (1 - keep) / (256 * 256))
  shared = bool(np.all(m == m[..., :1]))
  assert shared != per_channel


def test_masked_loss_ignores_holes():
  mask = dipjax.corruptions.bernoulli_mask(jax.random.key(2), (16, 16, 1), keep_fraction=0.5)
  target = jax.random.uniform(jax.random.key(3), (16, 16, 3))
  pred = jax.random.uniform(jax.random.key(4), (16, 16, 3))
  grad = jax.grad(lambda p: dipjax.corruptions.masked_mse(p, target, mask))(pred)
  holes = np.broadcast_to(np.asarray(mask) == 0, grad.shape)
  assert np.all(np.asarray(grad)[holes] == 0) and np.any(np.asarray(grad)[~holes] != 0)
  changed_in_holes = jnp.where(holes, 0.0, pred)
  np.testing.assert_allclose(dipjax.corruptions.masked_mse(changed_in_holes, target, mask),
                             dipjax.corruptions.masked_mse(pred, target, mask), rtol=1e-6)
  with pytest.raises(ValueError, match="does not fit"):
    dipjax.corruptions.apply_mask(pred, mask[:8])


def test_load_mask_checks(tmp_path):
  good = np.zeros((20, 30), np.uint8)
  good[5:10, 5:25] = 255
  Image.fromarray(good).save(tmp_path / "m.png")
  m = image_io.load_mask(str(tmp_path / "m.png"), (20, 30, 3))
  assert m.shape == (20, 30, 1) and m.sum() == 100
  with pytest.raises(ValueError, match="30x20 but the image is 31x20"):
    image_io.load_mask(str(tmp_path / "m.png"), (20, 31))
  grey = good.copy()
  grey[0, 0] = 128
  Image.fromarray(grey).save(tmp_path / "g.png")
  with pytest.raises(ValueError, match="not binary"):
    image_io.load_mask(str(tmp_path / "g.png"))
  with pytest.raises(ValueError, match="does not exist"):
    image_io.load_mask(str(tmp_path / "missing.png"))


def test_text_mask_has_text_and_background():
  m = corruptions.text_mask((96, 128))
  assert m.shape == (96, 128, 1)
  holes = 1.0 - float(m.mean())
  assert 0.01 < holes < 0.5


def test_jpeg_and_low_resolution():
  img = np.asarray(jax.random.uniform(jax.random.key(5), (64, 48, 3)))
  jpg = corruptions.jpeg_compress(img, 20)
  assert jpg.shape == img.shape and jpg.dtype == np.float32
  assert 0 < float(np.abs(jpg - img).mean()) < 0.5
  assert corruptions.jpeg_compress(img, 95).shape == img.shape
  with pytest.raises(ValueError, match="`quality`"):
    corruptions.jpeg_compress(img, 0)
  lr = corruptions.low_resolution(img, 4)
  assert lr.shape == (16, 12, 3)
  flat = corruptions.low_resolution(np.full((64, 48, 1), 0.4, np.float32), 4)
  np.testing.assert_allclose(flat, np.round(0.4 * 255) / 255, atol=1e-6)
  with pytest.raises(ValueError, match="`factor`"):
    corruptions.low_resolution(img, 0)


def test_image_io_round_trip_and_modes(tmp_path):
  rgba = np.zeros((10, 12, 4), np.uint8)
  rgba[..., 0] = 200
  rgba[..., 3] = 255
  Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
  with pytest.warns(UserWarning, match="alpha channel"):
    img = image_io.load_image(str(tmp_path / "a.png"))
  assert img.shape == (10, 12, 3) and abs(float(img[..., 0].mean()) - 200 / 255) < 1e-6
  Image.fromarray((np.arange(120).reshape(10, 12) * 500).astype(np.uint16)).save(tmp_path / "d.png")
  deep = image_io.load_image(str(tmp_path / "d.png"))
  assert deep.shape == (10, 12, 1) and float(deep.max()) <= 1.0
  image_io.save_image(str(tmp_path / "out.png"), img)
  np.testing.assert_allclose(image_io.load_image(str(tmp_path / "out.png")), img, atol=1 / 255)
  (tmp_path / "bad.png").write_bytes(b"not an image")
  with pytest.raises(ValueError, match="not a readable image"):
    image_io.load_image(str(tmp_path / "bad.png"))
