"""CBM3D, the paper's denoising comparator (optional ``bm3d`` package), and how the baselines get the noise level."""

import os
import sys

import jax
import numpy as np
import pytest

import dipjax
from cli_helpers import forget_script_flags, load_script
from dipjax import baselines, tasks
from tasks_test import save, smooth_image


def noisy_pair(size, channels, sigma=0.1):
  clean = smooth_image(size, size, channels)
  noisy = np.clip(clean + np.random.default_rng(0).normal(0, sigma, clean.shape), 0, 1).astype(np.float32)
  return clean, noisy


def psnr(a, b):
  return float(dipjax.psnr(np.asarray(a), np.asarray(b)))


@pytest.mark.parametrize("channels", [3, 1])
def test_cbm3d_raises_the_psnr_of_a_noisy_image(channels):
  pytest.importorskip("bm3d", reason="the CBM3D baseline needs the optional bm3d package (pip install bm3d)")
  clean, noisy = noisy_pair(32, channels)
  out = baselines.cbm3d(noisy, sigma=0.1)
  assert out.shape == clean.shape and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1
  assert psnr(out, clean) > psnr(noisy, clean) + 5
  with pytest.raises(ValueError, match="`sigma` must be a finite number > 0"):
    baselines.cbm3d(noisy, sigma=0.0)
  flat = np.full((32, 32, channels), 0.25, np.float32)  # estimated σ = 0: returned as is
  np.testing.assert_array_equal(baselines.cbm3d(flat), flat)
  if channels == 1:  # a gray picture stored as RGB: gray BM3D on each (equal) channel, not bm3d_rgb's NaN
    np.testing.assert_allclose(baselines.cbm3d(np.repeat(noisy, 3, -1), sigma=0.1), np.repeat(out, 3, -1), atol=1e-6)


def test_without_bm3d_cbm3d_is_a_one_line_message_and_the_other_baselines_still_run(monkeypatch):
  from experiments import task_main
  monkeypatch.setitem(sys.modules, "bm3d", None)  # `import bm3d` now raises ImportError
  with pytest.raises(baselines.MissingDependency, match=r"pip install bm3d") as info:
    baselines.cbm3d(np.zeros((8, 8, 3), np.float32))
  assert "\n" not in str(info.value)
  problem = tasks.denoise(key=jax.random.key(0), clean=smooth_image(32, 32), sigma_255=25)
  lines = []
  images, seconds = task_main.run_baselines(problem, log=lines.append)
  assert set(images) == set(seconds) == {"nlm", "tv", "wavelet"}
  assert [l for l in lines if "cbm3d" in l] == [f"baseline cbm3d skipped: {info.value}"]


def test_cbm3d_gets_the_known_noise_level_and_the_others_estimate_theirs(monkeypatch):
  from experiments import task_main
  seen = {}

  def fake(image, *, sigma=None):
    seen["sigma"] = sigma
    return image

  monkeypatch.setitem(baselines.DENOISERS, "cbm3d", fake)
  problem = tasks.denoise(key=jax.random.key(0), clean=smooth_image(32, 32), sigma_255=25)
  task_main.run_baselines(problem, log=lambda line: None)
  assert seen["sigma"] == pytest.approx(25 / 255)
  calls = []
  record = lambda **kwargs: calls.append(kwargs) or np.zeros((2, 2, 1), np.float32)
  baselines.call("nlm", record, sigma=0.1)
  baselines.call("cbm3d", record, sigma=None)
  baselines.call("cbm3d", record, sigma=0.1)
  assert calls == [{}, {}, {"sigma": 0.1}]


def test_the_denoising_reproduction_gives_cbm3d_the_published_sigma(tmp_path):
  folder = tmp_path / "denoising_cset9"
  os.makedirs(folder / "sigma50")
  clean, noisy = noisy_pair(32, 3)
  save(folder / "im_GT.png", clean)
  for sub, methods in (("", ("noisy", "deep_prior", "bm3d", "nlm")), ("sigma50", ("noisy", "deep_prior", "bm3d"))):
    for m in methods:
      save(folder / sub / f"im_{m}.png", noisy)
  reproduce_denoising = load_script("reproduce_denoising")  # defines its flags: forgotten again below
  try:
    for sigma in (25, 50):
      (item,) = reproduce_denoising.load_items(str(tmp_path), sigma=sigma, scale=0)
      assert item.problem.noise_sigma == pytest.approx(sigma / 255)
  finally:
    forget_script_flags()
