"""The paper-table reproductions and the sweep, end to end on a tiny synthetic dataset laid out like the benchmarks.

The dataset is generated here (smooth images, their noisy / masked / low-resolution
versions and stand-ins for the published outputs), never the benchmark images.
Every published column is checked against the same protocol computed directly.
"""

import importlib.util
import json
import os

import jax.numpy as jnp
import numpy as np
import pytest

import dipjax
from cli_helpers import error_of, forget_script_flags, load_script, run_main
from tasks_test import save, smooth_image

HAVE_BM3D = importlib.util.find_spec("bm3d") is not None  # the optional CBM3D baseline

# The published super-resolution outputs are RGBA with alpha 255 (as are the stand-ins here).
pytestmark = pytest.mark.filterwarnings("ignore:.*alpha channel")

NOISY = {"alpha": (40, 40), "beta": (32, 48)}  # two sizes: two programs


def noisy(image, sigma, seed):
  rng = np.random.default_rng(seed)
  return np.clip(image + rng.normal(0, sigma / 255, image.shape), 0, 1)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("benchmarks")
  den = root / "denoising_cset9"
  (den / "sigma50").mkdir(parents=True)
  for i, (name, (h, w)) in enumerate(NOISY.items()):
    gt = smooth_image(h, w, seed=i)
    save(den / f"{name}_GT.png", gt)
    save(den / f"{name}_noisy.png", noisy(gt, 25, i))
    for j, m in enumerate(("deep_prior", "bm3d", "nlm")):
      save(den / f"{name}_{m}.png", noisy(gt, 4 + 2 * j, 10 + i))
    save(den / "sigma50" / f"{name}_noisy.png", noisy(gt, 50, i))
    for m in ("deep_prior", "bm3d"):
      save(den / "sigma50" / f"{name}_{m}.png", noisy(gt, 8, 20 + i))
  for f, dips in ((4, ("deep_prior",)), (8, ("deep_prior_003", "deep_prior_005"))):
    sr = root / "sr_set5" / f"x{f}"
    sr.mkdir(parents=True)
    for i, name in enumerate(("baby", "head")):
      gt = smooth_image(64, 64, seed=5 + i)
      save(sr / f"{name}_GT.png", gt)
      save(sr / f"{name}_bicubic.png", noisy(gt, 6, 30 + i))
      for dip in dips:
        out = np.round(noisy(gt, 3, 40 + i) * 255).astype(np.uint8)
        out = np.concatenate([out, np.full(out.shape[:2] + (1,), 255, np.uint8)], -1)  # RGBA, as published
        if name == "head":
          out[:4, :, :3] = 0  # a zero border, as the published head/woman: the box excludes it
          out[:, -6:, :3] = 0
        save(sr / f"{name}_{dip}.png", out, mode="RGBA")
  inp = root / "inpainting_gray50"
  inp.mkdir()
  for i, name in enumerate(("house", "montage")):
    gt = smooth_image(40, 40, c=1, seed=9 + i)
    mask = np.random.default_rng(i).uniform(size=gt.shape) < 0.5
    save(inp / f"{name}_GT.png", gt)
    save(inp / f"{name}_masked.png", gt * mask)
    for m in ("deep_prior", "papyan"):
      save(inp / f"{name}_{m}.png", noisy(gt, 5, 50 + i))
  return root


def load(path):
  return dipjax.image_io.load_image(str(path))


def psnr(a, b):
  return float(dipjax.psnr(jnp.asarray(a), jnp.asarray(b)))


def results(out):
  with open(out / "results.json") as f:
    return json.load(f)


def test_denoising_table_two_sizes_seeds_ensembles_and_published_columns(data_dir, tmp_path, capsys):
  out = tmp_path / "den"
  run_main("reproduce_denoising", [f"--data_dir={data_dir}", "--preset=tiny", "--steps=5", "--seeds=2",
                                   "--baselines", f"--out_dir={out}"])
  log = capsys.readouterr().out
  assert log.count("in one program") == 2 and "max batch:" in log  # one program per size, chunk size explained
  r = results(out)
  assert list(r["rows"]) == ["alpha", "beta"] and r["seeds"] == 2 and r["scale"] == 0
  den = data_dir / "denoising_cset9"
  for name, row in r["rows"].items():
    gt = load(den / f"{name}_GT.png")
    assert len(row["single"]) == 2 and row["ensemble"].keys() == {"2"} and row["ensemble_vs_k"].keys() == {"1", "2"}
    for m in ("deep_prior", "bm3d", "nlm"):  # the published columns: the protocol applied to the files
      assert row["published"][m] == pytest.approx(psnr(load(den / f"{name}_{m}.png"), gt), abs=1e-4)
    assert row["input"] == pytest.approx(psnr(load(den / f"{name}_noisy.png"), gt), abs=1e-4)
    assert set(row["baselines"]) == {"nlm", "tv", "wavelet"} | ({"cbm3d"} if HAVE_BM3D else set())
    assert np.isclose(row["single_mean"], np.mean(row["single"]))
    assert np.isclose(row["ensemble_vs_k"]["1"], row["single_mean"])  # k = 1: the mean of the single runs
    assert len(r["curves"][name]["psnr_clean"]) == 2 and len(r["curves"][name]["psnr_clean"][0]) == 5
    assert row["best_psnr_curve"][0] == pytest.approx(max(r["curves"][name]["psnr_clean"][0]))
  assert load(out / "images" / "alpha_ensemble.png").shape == (40, 40, 3)
  assert r["mean"]["single_mean"] == pytest.approx(np.mean([x["single_mean"] for x in r["rows"].values()]))
  table = (out / "table.md").read_text()
  assert "| alpha |" in table and "| beta |" in table and "| **mean** |" in table
  assert "full-size images (the paper's protocol)" in table and "29.22" in table and "S = 2" in table
  for f in ("curves/alpha.png", "curves/beta.png", "ensemble.png", "images/beta_output.png", "images/beta_ema.png"):
    assert (out / f).exists(), f


def test_denoising_scale_crops_every_image_and_the_sigma50_set(data_dir, tmp_path):
  out = tmp_path / "den50"
  run_main("reproduce_denoising", [f"--data_dir={data_dir}", "--preset=tiny", "--steps=3", "--sigma=50", "--seeds=1",
                                   "--scale=32", "--images=alpha", "--max_batch=4", f"--out_dir={out}"])
  r = results(out)
  assert list(r["rows"]) == ["alpha"] and r["rows"]["alpha"]["size"] == [32, 32] and r["scale"] == 32
  crop = lambda a: a[4:36, 4:36]  # the centre 32x32 of 40x40
  gt = crop(load(data_dir / "denoising_cset9" / "alpha_GT.png"))
  dip = crop(load(data_dir / "denoising_cset9" / "sigma50" / "alpha_deep_prior.png"))
  assert r["rows"]["alpha"]["published"]["deep_prior"] == pytest.approx(psnr(dip, gt), abs=1e-4)
  assert set(r["rows"]["alpha"]["published"]) == {"deep_prior", "bm3d"}
  assert "CPU scale, not the paper's protocol" in (out / "table.md").read_text()


@pytest.mark.parametrize("factor", [4, 8])
def test_super_resolution_table_uses_the_y_protocol_in_the_published_box(data_dir, tmp_path, factor):
  out = tmp_path / f"sr{factor}"
  run_main("reproduce_super_resolution", [f"--data_dir={data_dir}", "--preset=tiny", "--steps=3", f"--factor={factor}",
                                          "--max_batch=4", "--baselines", f"--out_dir={out}"])
  r = results(out)
  folder = data_dir / "sr_set5" / f"x{factor}"
  gt = load(folder / "head_GT.png")
  dips = ["deep_prior"] if factor == 4 else ["deep_prior_005", "deep_prior_003"]
  dip = load(folder / f"head_{dips[0]}.png")[..., :3]
  box = dipjax.metrics.nonzero_box(dip)
  assert box == (4, 63, 0, 57)
  row = r["rows"]["head"]
  assert row["published"][dips[0]] == pytest.approx(dipjax.psnr_sr(dip, gt, box=box), abs=1e-4)
  assert row["published"]["bicubic"] == pytest.approx(
      dipjax.psnr_sr(load(folder / "head_bicubic.png"), gt, box=box), abs=1e-4)
  assert set(row["published"]) == set(dips) | {"bicubic"} and set(row["baselines"]) == {"bicubic"}
  out_img = load(out / "images" / "head_output.png")
  assert out_img.shape == (64, 64, 3)
  assert "Y channel" in (out / "table.md").read_text()


def test_inpainting_masks_come_from_the_published_masked_inputs(data_dir, tmp_path, capsys):
  items = load_script("reproduce_inpainting").load_items(str(data_dir), scale=0)
  forget_script_flags()
  folder = data_dir / "inpainting_gray50"
  for item in items:
    masked = load(folder / f"{item.name}_masked.png")
    np.testing.assert_array_equal(item.problem.mask, (masked > 0).astype(np.float32))
    np.testing.assert_array_equal(item.problem.observation, masked)
  out = tmp_path / "inp"
  run_main("reproduce_inpainting", [f"--data_dir={data_dir}", "--preset=tiny", "--steps=3", "--max_batch=1",
                                    "--baselines", f"--out_dir={out}"])
  log = capsys.readouterr().out
  assert "1/2 fits done" in log and "2/2 fits done" in log  # progress between calls of --max_batch fits
  r = results(out)
  gt = load(folder / "house_GT.png")
  assert r["rows"]["house"]["published"]["papyan"] == pytest.approx(psnr(load(folder / "house_papyan.png"), gt),
                                                                    abs=1e-4)
  assert set(r["rows"]["house"]["baselines"]) == {"biharmonic"}
  assert "33.48" in (out / "table.md").read_text()


def test_reproduction_errors_are_one_line(data_dir, tmp_path):
  out = f"--out_dir={tmp_path / 'e'}"
  assert "laid out like" in error_of("reproduce_denoising", [f"--data_dir={tmp_path / 'nowhere'}", out])
  assert "not in" in error_of("reproduce_denoising", [f"--data_dir={data_dir}", "--images=gamma", out])
  assert "--sigma must be 25 or 50" in error_of("reproduce_denoising", [f"--data_dir={data_dir}", "--sigma=30", out])
  assert "--scale must be 0" in error_of("reproduce_inpainting", [f"--data_dir={data_dir}", "--scale=8", out])
  assert "--factor must be 4 or 8" in error_of("reproduce_super_resolution", [f"--data_dir={data_dir}",
                                                                              "--factor=3", out])
  assert not os.path.exists(tmp_path / "e" / "table.md")


def test_sweep_grid_table_heatmap_and_a_point_equals_its_own_run(tmp_path):
  out = tmp_path / "sweep"
  run_main("sweep", ["--task=denoise", "--preset=tiny", "--steps=4", "--crop=32", "--seeds=2", "--max_batch=8",
                     "--grid=lr=0.01,0.03", "--grid=sigma=15,25", f"--out_dir={out}"])
  r = results(out)
  points = [(round(row["point"]["lr"], 6), row["point"]["sigma"]) for row in r["rows"]]
  assert points == [(0.01, 15), (0.03, 15), (0.01, 25), (0.03, 25)]
  assert np.asarray(r["heatmap_values"]).shape == (2, 2) and (out / "heatmap.png").exists()
  assert r["heatmap_values"][1][0] == pytest.approx(r["rows"][2]["single_mean"])  # y = sigma 25, x = lr 0.01
  one = tmp_path / "one"
  run_main("sweep", ["--task=denoise", "--preset=tiny", "--steps=4", "--crop=32", "--seeds=2", "--max_batch=8",
                     "--grid=lr=0.03", "--grid=sigma=25", f"--out_dir={one}"])
  assert results(one)["rows"][0]["single"] == r["rows"][3]["single"]  # bit-identical on CPU
  assert "| 0.03 | 25 |" in (out / "table.md").read_text()


def test_sweep_errors_are_one_line(tmp_path):
  out = f"--out_dir={tmp_path / 's'}"
  assert "not sweepable" in error_of("sweep", ["--task=denoise", "--grid=momentum=0.9", out])
  assert "does not apply to denoise" in error_of("sweep", ["--task=denoise", "--grid=factor=2,4", out])
  assert "no --grid axis" in error_of("sweep", ["--task=denoise", out])
  assert "must be floats" in error_of("sweep", ["--task=denoise", "--grid=lr=fast", out])
  assert "--heatmap" in error_of("sweep", ["--task=denoise", "--grid=lr=0.01", "--heatmap=sigma", out])


BENCHMARKS = os.environ.get("DIPJAX_BENCHMARKS", os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "..", "shared", "data", "benchmarks"))


@pytest.mark.skipif(not os.path.isdir(BENCHMARKS), reason=f"benchmark images not found at {BENCHMARKS} "
                    "(set DIPJAX_BENCHMARKS)")
def test_published_columns_at_full_size_match_the_verified_tables():
  """The scripts' loaders and protocols give the benchmark README's verified means for the published outputs."""
  from dipjax import presets
  from experiments import reproduce

  def mean_of(items, method, score):
    return np.mean([score(it.published[method], it.problem.clean, it.box) for it in items])

  sr = load_script("reproduce_super_resolution").load_items(BENCHMARKS, factor=4, scale=0,
                                                            preset=presets.get("super_resolution", "paper_x4"))
  y = lambda image, clean, box: dipjax.psnr_sr(image, clean, box=box)
  assert mean_of(sr, "deep_prior", y) == pytest.approx(29.90, abs=0.01)
  assert mean_of(sr, "bicubic", y) == pytest.approx(28.44, abs=0.01)
  den = load_script("reproduce_denoising").load_items(BENCHMARKS, sigma=25, scale=0,
                                                      preset=presets.get("denoise", "paper"))
  assert mean_of(den, "deep_prior", reproduce.psnr_all) == pytest.approx(31.29, abs=0.01)
  assert mean_of(den, "bm3d", reproduce.psnr_all) == pytest.approx(31.42, abs=0.01)
  inp = load_script("reproduce_inpainting").load_items(BENCHMARKS, scale=0)
  forget_script_flags()
  assert mean_of(inp, "deep_prior", reproduce.psnr_all) == pytest.approx(33.44, abs=0.01)
  assert mean_of(inp, "papyan", reproduce.psnr_all) == pytest.approx(31.16, abs=0.01)


def test_stopping_table_with_synthetic_noise_scores_every_criterion(data_dir, tmp_path):
  out = tmp_path / "stop"
  run_main("stopping_table", [f"--data_dir={data_dir}", "--preset=tiny", "--steps=12", "--crop=32", "--images=alpha",
                              "--noise=impulse", "--impulse_fraction=0.2", "--loss=l1", "--stop_patience=2",
                              "--stop_window=3", f"--out_dir={out}"])
  r = json.loads((out / "table.json").read_text())
  row = r["rows"]["alpha"]
  assert r["criteria"] == ["emv", "wmv"] and r["loss"] == "l1" and "fraction 0.2" in r["noise"]  # no σ: no discrepancy
  gt = load(data_dir / "denoising_cset9" / "alpha_GT.png")[4:36, 4:36]
  noisy = load(out / "alpha" / "input.png")
  assert 0.15 < np.mean(np.abs(noisy - gt) > 0.02) < 0.25  # the drawn impulse noise, not the published Gaussian
  assert row["input"] == pytest.approx(psnr(noisy, gt), abs=0.05)
  assert row["best"] >= max(row["last"], row["emv"]["psnr"], row["wmv"]["psnr"]) - 1e-6  # the oracle is the max
  assert "| alpha |" in (out / "table.md").read_text()
  assert "--sigma needs --noise=gaussian" in error_of("stopping_table", [f"--data_dir={data_dir}", "--sigma=10",
                                                                         f"--out_dir={out}"])


def test_sgld_table_compares_posterior_mean_with_the_plain_fit(data_dir, tmp_path):
  out = tmp_path / "sgld"
  run_main("sgld_table", [f"--data_dir={data_dir}", "--presets=tiny,sgld_tiny", "--steps=10", "--seeds=2",
                          "--crop=32", "--images=alpha", "--burn_in=4", "--sample_every=2", "--stop_patience=2",
                          "--stop_window=3", f"--out_dir={out}"])
  r = json.loads((out / "table.json").read_text())
  plain, sgld = r["tables"]["tiny"], r["tables"]["sgld_tiny"]
  assert "posterior" not in plain["mean"] and {"posterior", "r_posterior", "r_ensemble"} <= set(sgld["mean"])
  metrics = json.loads((out / "sgld_tiny" / "alpha" / "metrics.json").read_text())
  assert metrics["summary"]["posterior_samples"] == [2, 2]  # 0-based steps 6, 8 of 0..9 (step > burn-in 4, every 2)
  assert sgld["rows"]["alpha"]["posterior"] == pytest.approx(np.mean(
      metrics["summary"]["psnr_posterior_mean_per_seed"]))
  assert plain["preset"]["sample_every"] == 0 and sgld["preset"]["burn_in"] == 4
  table = (out / "table.md").read_text()
  assert "| tiny |" in table and "| sgld_tiny |" in table and "posterior mean" in table
