"""The library pieces behind the task entry points: presets, canvas, readout, baselines, plots, image files."""

import dataclasses
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import dipjax
from dipjax import baselines, canvas, image_io, plotting, presets


def smooth(h, w, c=3):
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  return np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (k + 1) * (xx + 0.5 * yy)) for k in range(c)], -1).astype(
      np.float32)


# --- presets: the values of dip_reference.md §2.9 ----------------------------------------------------------------


PAPER = {
    ("denoise", "paper"): dict(model="default", input_channels=32, reg_noise_std=1 / 30, learning_rate=0.01,
                               steps=1800, ema_decay=0.99, guard_every=1, sigma=25.0),
    ("denoise", "paper_sigma50"): dict(reg_noise_std=1 / 20, sigma=50.0, steps=1800),
    ("deblock", "paper"): dict(model="deblock", input_channels=3, reg_noise_std=1 / 30, learning_rate=0.01,
                               steps=2400),
    ("super_resolution", "paper_x4"): dict(model="default", input_channels=32, reg_noise_std=0.03, steps=2000,
                                           factor=4, kernel="lanczos2", guard_every=0),
    ("super_resolution", "paper_x8"): dict(reg_noise_std=0.05, steps=4000, factor=8),
    ("inpaint", "paper_text"): dict(model="inpaint_text", input_kind="noise", input_channels=32,
                                    reg_noise_std=0.03, steps=6001),
    ("inpaint", "paper_region"): dict(model="inpaint_region", input_kind="meshgrid", input_channels=2,
                                      reg_noise_std=0.03, steps=5001),
    ("inpaint", "paper_large_hole"): dict(model="inpaint_large_hole", input_channels=1, reg_noise_std=0.0,
                                          steps=3001),
    ("restore", "paper_50"): dict(model="default", learning_rate=0.001, steps=11000, reg_noise_std=0.03,
                                  guard_every=50, keep_fraction=0.5),
    ("restore", "paper_2"): dict(model="restore_sparse", learning_rate=0.01, steps=1000, reg_noise_std=0.0,
                                 keep_fraction=0.02, per_channel_mask=False),
    ("flash_no_flash", "paper"): dict(model="flash", input_kind="image", learning_rate=0.1, steps=601,
                                      reg_noise_std=0.0),
}


@pytest.mark.parametrize("task_name", sorted(PAPER))
def test_paper_presets_match_the_reference_table(task_name):
  preset = presets.get(*task_name)
  for field, value in PAPER[task_name].items():
    assert getattr(preset, field) == pytest.approx(value), field
  assert preset.model in dipjax.PRESETS


def test_every_task_has_paper_cpu_and_tiny_presets_and_they_describe_themselves():
  for task in presets.TASKS:
    names = presets.names(task)
    assert "cpu" in names and "tiny" in names and any(n.startswith("paper") for n in names)
    for name in names:
      p = presets.get(task, name)
      assert p.task == task and p.steps >= 1
      line = p.describe()
      assert f"steps={p.steps}" in line and "None" not in line
      assert dataclasses.asdict(p) == p.to_dict()


def test_preset_overrides_and_errors():
  p = presets.get("denoise", "cpu", steps=7, learning_rate=None)
  assert p.steps == 7 and p.learning_rate == 0.01
  with pytest.raises(ValueError, match="unknown preset 'nope' for denoise"):
    presets.get("denoise", "nope")
  with pytest.raises(ValueError, match="unknown task"):
    presets.get("dance", "paper")
  with pytest.raises(ValueError, match="unknown preset fields"):
    presets.get("denoise", "cpu", colour="red")


# --- canvas ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("model,size,expected", [
    (dipjax.skip_default(), (63, 97), (63, 97)),  # skips everywhere: any size >= 32
    (dipjax.skip_default(), (20, 97), (32, 97)),  # below the minimum: padded up
    (dipjax.skip_deblock(), (261, 400), (288, 416)),  # a level without skips: multiples of 32
    (dipjax.skip_inpaint_large_hole(), (40, 130), (64, 192)),  # 6 levels: multiples of 64
])
def test_canvas_for(model, size, expected):
  c = canvas.canvas_for(model, size)
  assert (c.height, c.width) == expected
  assert c.padded == (expected != size)
  assert 0 <= c.top <= c.height - size[0] and 0 <= c.left <= c.width - size[1]
  x = np.arange(c.height * c.width, dtype=np.float32).reshape(c.height, c.width, 1)
  assert c.crop(x).shape == size + (1,)


def test_canvas_pad_reflects_and_crop_inverts_it():
  c = canvas.canvas_for(dipjax.skip_inpaint_large_hole(), (40, 50))
  image = smooth(40, 50)
  padded = c.pad(image)
  assert padded.shape == (64, 64, 3)
  np.testing.assert_array_equal(c.crop(padded), image)
  np.testing.assert_array_equal(padded[c.top - 1], padded[c.top + 1])  # reflection about the first row
  with pytest.raises(ValueError, match="canvas holds"):
    c.pad(smooth(41, 50))


def test_readout_compares_the_crop_with_clean():
  # Fit on a 24x24 canvas with the loss on its central 16x16 window: clean is 16x16.
  win = canvas.Canvas(24, 24, 4, 4, 16, 16)
  target = jnp.asarray(smooth(16, 16))
  crop = dipjax.operators.Crop(4, 4, 16, 16)
  fit = dipjax.make_fit(dipjax.skip_tiny(), num_steps=3, input_channels=4)
  result = fit(jax.random.key(0), target, operator=crop, readout=crop, clean=target, out_shape=(24, 24))
  assert result.output.shape == (24, 24, 3)
  np.testing.assert_allclose(result.metrics.psnr_clean, result.metrics.psnr_target, rtol=1e-6)
  with pytest.raises(ValueError, match="restored image's shape"):
    fit(jax.random.key(0), target, operator=crop, readout=crop, clean=jnp.zeros((24, 24, 3)), out_shape=(24, 24))


# --- baselines ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(baselines.DENOISERS))
@pytest.mark.parametrize("channels", [1, 3])
def test_denoisers_improve_a_noisy_smooth_image(name, channels):
  if name == "cbm3d":
    pytest.importorskip("bm3d", reason="CBM3D is an optional extra: pip install 'dipjax[bm3d]'")
  clean = smooth(48, 48, channels)
  noisy = np.clip(clean + np.random.default_rng(0).normal(0, 0.1, clean.shape), 0, 1).astype(np.float32)
  out = baselines.DENOISERS[name](noisy)
  assert out.shape == clean.shape and out.dtype == np.float32
  psnr = lambda x: float(dipjax.psnr(jnp.asarray(x), jnp.asarray(clean)))
  assert psnr(out) > psnr(noisy) + 3


def test_bicubic_and_biharmonic():
  clean = smooth(48, 64)
  up = baselines.bicubic_upscale(clean[::4, ::4], 4)
  assert up.shape == clean.shape
  mask = np.ones((48, 64, 1), np.float32)
  mask[20:28, 20:30] = 0
  filled = baselines.biharmonic(clean * mask, mask)
  hole = mask[..., 0] == 0
  assert np.abs(filled[hole] - clean[hole]).mean() < 0.02 < np.abs((clean * mask)[hole] - clean[hole]).mean()
  per_channel = (np.random.default_rng(1).random((48, 64, 3)) < 0.7).astype(np.float32)
  filled = baselines.biharmonic(clean * per_channel, per_channel)
  assert np.abs(filled - clean).mean() < 0.02


# --- plot and image files ------------------------------------------------------------------------------------------


def test_plot_curves_writes_a_png(tmp_path):
  t = np.linspace(0, 1, 50)
  path = tmp_path / "curves.png"
  plotting.plot_curves(str(path), loss=np.exp(-3 * t)[None].repeat(2, 0), psnr_target=20 + 5 * t,
                       psnr_clean=np.stack([20 + 8 * t - 6 * t ** 2] * 2), ema_psnr_clean=np.stack([20 + 5 * t] * 2),
                       title="test")
  with Image.open(path) as im:
    assert im.format == "PNG" and im.size[0] > 400
  plotting.plot_curves(str(tmp_path / "no_clean.png"), loss=np.exp(-t), psnr_target=20 + t)
  assert (tmp_path / "no_clean.png").is_file()
  assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tmp-")]


def test_read_image_modes(tmp_path):
  rgb = (smooth(20, 30) * 255).astype(np.uint8)
  Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "p.png")
  arr, info = image_io.read_image(str(tmp_path / "p.png"))
  assert arr.shape == (20, 30, 3) and info.mode == "P" and not info.alpha_dropped
  Image.fromarray(rgb).convert("CMYK").save(tmp_path / "c.jpg")
  arr, info = image_io.read_image(str(tmp_path / "c.jpg"))
  assert arr.shape == (20, 30, 3) and info.mode == "CMYK"
  Image.fromarray(np.dstack([rgb, np.full((20, 30), 9, np.uint8)])).save(tmp_path / "a.png")
  with pytest.warns(UserWarning, match="alpha channel"):
    arr, info = image_io.read_image(str(tmp_path / "a.png"))
  assert arr.shape == (20, 30, 3) and info.alpha_dropped
  exif = Image.Exif()
  exif[0x0112] = 6  # rotate 90° clockwise on display
  Image.fromarray(rgb).save(tmp_path / "r.jpg", exif=exif.tobytes())
  arr, info = image_io.read_image(str(tmp_path / "r.jpg"))
  assert arr.shape == (30, 20, 3) and info.size == (30, 20)


def test_save_image_16_bit_round_trip(tmp_path):
  gray = smooth(20, 30, 1)
  image_io.save_image(str(tmp_path / "g16.png"), gray, bit_depth=16)
  back, info = image_io.read_image(str(tmp_path / "g16.png"))
  assert info.bit_depth == 16 and np.abs(back - gray).max() < 1e-4
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    image_io.save_image(str(tmp_path / "rgb.png"), smooth(20, 30), bit_depth=16)  # colour: 8-bit, documented
  assert Image.open(tmp_path / "rgb.png").mode == "RGB"
  with pytest.raises(ValueError, match="bit_depth"):
    image_io.save_image(str(tmp_path / "x.png"), gray, bit_depth=12)


def test_save_strip_enlarges_small_tiles_and_wraps_captions(tmp_path):
  images = [smooth(16, 16), smooth(16, 16, 1)]
  image_io.save_strip(str(tmp_path / "s.png"), images, ["a long caption that needs two lines", "b"])
  with Image.open(tmp_path / "s.png") as im:
    assert im.size[0] == 2 * 16 * 12 + 4 and im.size[1] > 16 * 12 + 2 * 15


# --- tiling ------------------------------------------------------------------------------------------------------


def test_tiles_cover_the_image_and_blending_cut_tiles_gives_it_back():
  from dipjax import tiling
  image = smooth(100, 70)
  corners = tiling.windows((100, 70), tile=40, overlap=10)
  covered = np.zeros((100, 70), bool)
  for y, x in corners:
    assert 0 <= y <= 60 and 0 <= x <= 30
    covered[y:y + 40, x:x + 40] = True
  assert covered.all()
  tiles = np.stack([image[y:y + 40, x:x + 40] for y, x in corners])
  np.testing.assert_allclose(tiling.blend(tiles, corners, (100, 70), overlap=10), image, atol=1e-6)
  # Overlapping tiles with different values are averaged with weights that fall off toward each tile's edge.
  ones = np.ones((1, 40, 40, 1), np.float32)
  two = tiling.blend(np.concatenate([ones * 0, ones]), [(0, 0), (0, 30)], (40, 70), overlap=10)
  assert two[0, 0, 0] == 0 and two[0, 69, 0] == 1 and 0 < two[0, 35, 0] < 1
  assert np.all(np.diff(two[0, 30:40, 0]) > 0)  # a ramp across the overlap
  with pytest.raises(ValueError, match="larger than"):
    tiling.windows((30, 70), tile=40, overlap=10)
  with pytest.raises(ValueError, match="overlap < tile"):
    tiling.starts(100, 40, 40)
