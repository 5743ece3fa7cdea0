"""The paper's studies beyond restoration: the impedance experiment (Fig. 2) and prior samples."""

import json

import jax
import numpy as np
import pytest

import dipjax
from cli_helpers import error_of, run_main
from dipjax import architecture_study, architectures, corruptions, image_io, impedance, presets, prior
from tasks_test import save, smooth_image


def test_impedance_targets_are_the_image_its_noisy_and_shuffled_versions_and_white_noise():
  image = smooth_image(32, 40)
  key = jax.random.key(3)
  targets = impedance.impedance_targets(key, image, sigma=0.1)
  assert list(targets) == list(impedance.TARGETS)
  np.testing.assert_array_equal(targets["image"], image)
  k_noise, _, _ = jax.random.split(key, 3)
  np.testing.assert_array_equal(targets["image + noise"], corruptions.add_gaussian_noise(k_noise, image, sigma=0.1))
  pixels = lambda x: np.sort(x.reshape(-1, 3).view([("", x.dtype)] * 3), axis=0)  # pixels kept whole
  np.testing.assert_array_equal(pixels(targets["shuffled pixels"]), pixels(image))
  assert not np.array_equal(targets["shuffled pixels"], image)
  white = targets["white noise"]
  assert white.shape == image.shape and 0 <= white.min() and white.max() < 1 and abs(white.mean() - 0.5) < 0.02
  again = impedance.impedance_targets(key, image, sigma=0.1)
  assert all(np.array_equal(again[k], targets[k]) for k in targets)


def test_steps_to_reach_is_the_first_step_at_or_below_the_threshold():
  rng = np.random.default_rng(0)
  losses = np.cumsum(-rng.random((5, 30)), axis=1) + 10
  for t in (9.0, 3.0, -100.0):
    expected = [next((i + 1 for i, v in enumerate(row) if v <= t), 0) for row in losses]
    assert impedance.steps_to_reach(losses, t).tolist() == expected


def test_the_network_fits_the_image_before_noise_and_shuffled_pixels():
  """Fig. 2's ordering on a tiny net: final MSE image < image + noise < shuffled < white noise, for every seed."""
  config = presets.get("denoise", "tiny", steps=25, reg_noise_std=0.0)
  result = impedance.impedance(jax.random.key(0), smooth_image(32, 32), config, seeds=2, thresholds=(0.03,))
  final = np.stack([result.losses[name][:, -1] for name in impedance.TARGETS])  # (4, S)
  assert all(curve.shape == (2, 25) for curve in result.losses.values())
  assert np.all(np.diff(final, axis=0) > 0), final
  steps = result.steps_to["image"][0.03]
  assert np.all(steps > 0) and np.all(result.losses["image"][np.arange(2), steps - 1] <= 0.03)
  assert np.all(result.steps_to["white noise"][0.03] == 0), final


def test_impedance_entry_point_writes_the_plot_and_the_table(tmp_path):
  out = tmp_path / "imp"
  image = save(tmp_path / "im.png", smooth_image(40, 40))
  run_main("impedance", ["--preset=tiny", "--steps=4", f"--image={image}", "--crop=32", "--seeds=1",
                         "--thresholds=0.5,0.001", f"--out_dir={out}"])
  for f in ("impedance.png", "targets.png", "table.md", "results.json"):
    assert (out / f).exists(), f
  r = json.loads((out / "results.json").read_text())
  assert r["size"] == [32, 32, 3] and r["config"]["reg_noise_std"] == 0.0 and set(r["losses"]) == set(impedance.TARGETS)
  table = (out / "table.md").read_text()
  assert all(f"| {name} |" in table for name in impedance.TARGETS) and "steps to MSE ≤ 0.001" in table
  assert "--thresholds must be positive" in error_of("impedance", ["--thresholds=0.1,x", f"--out_dir={out}"])
  assert "--crop must be" in error_of("impedance", ["--crop=-2", f"--out_dir={out}"])


@pytest.mark.parametrize("name", ["tiny", "deep_decoder"])
def test_prior_samples_equal_separate_draws_and_differ_between_draws(name):
  model = dipjax.skip_tiny() if name == "tiny" else architectures.get_architecture(name, channels=8)
  key = jax.random.key(1)
  size = 64 if name == "deep_decoder" else 32  # 32x32 would be a one-pixel seed (refused)
  samples = prior.prior_samples(key, model, (size, size), samples=3, input_channels=4)
  assert samples.shape == (3, size, size, 3) and np.all((samples > 0) & (samples < 1))
  z_key, param_key = jax.random.split(key)
  shape = architectures.input_shape(model, size, size, 4)
  z = dipjax.inputs.make_input(z_key, shape[:2], channels=shape[2], scale=0.1)
  one = model.apply(model.init(jax.random.split(param_key, 3)[1], z), z)  # vmap equals a single draw
  np.testing.assert_allclose(samples[1], one, atol=1e-5)
  assert np.abs(samples[0] - samples[1]).max() > 1e-3


def test_prior_samples_entry_point_and_its_errors(tmp_path):
  out = tmp_path / "prior"
  run_main("prior_samples", ["--nets=tiny,deep_decoder", "--samples=2", "--size=64", f"--out_dir={out}"])
  grid = image_io.load_image(str(out / "prior_samples.png"))
  assert grid.shape[0] > 2 * 64 and grid.shape[1] >= 2 * 96  # two rows of two 64-px tiles, enlarged to >= 96 px
  assert "unknown architecture 'vgg'" in error_of("prior_samples", ["--nets=tiny,vgg", f"--out_dir={out}"])
  assert "--samples must be at least 1" in error_of("prior_samples", ["--samples=0", f"--out_dir={out}"])
  assert "--size=20 does not suit 'unet': it needs a multiple of 16" in error_of(
      "prior_samples", ["--nets=unet", "--size=20", f"--out_dir={out}"])
  with pytest.raises(ValueError, match="`samples` must be an integer >= 1"):
    prior.prior_samples(jax.random.key(0), dipjax.skip_tiny(), (32, 32), samples=0)


def test_save_grid_stacks_rows_of_different_widths(tmp_path):
  rows = [[np.zeros((8, 8, 3))] * 3, [np.ones((8, 12, 1))]]
  image_io.save_grid(str(tmp_path / "g.png"), rows, [["a", "b", "c"], ["d"]], min_tile_width=16)
  grid = image_io.load_image(str(tmp_path / "g.png"))
  assert grid.shape[1] == 3 * 16 + 2 * 4  # the wider row: three 16-px tiles and two gaps
  with pytest.raises(ValueError, match="2 rows and 1 label rows"):
    image_io.save_grid(str(tmp_path / "h.png"), rows, [["a"]])


def test_architecture_study_entry_point_fits_each_network_and_writes_the_table(tmp_path):
  """One network here (each is its own program; the library loops over them); its seeds batched, scored, pictured."""
  out = tmp_path / "arch"
  run_main("architecture_study", ["--preset=tiny", "--nets=tiny", "--seeds=2", "--steps=2", f"--out_dir={out}"])
  r = json.loads((out / "results.json").read_text())
  assert [row["name"] for row in r["rows"]] == ["tiny"]
  assert r["config"]["mask_kind"] == "box" and r["config"]["steps"] == 2 and r["image_size"] == [32, 32]
  (row,) = r["rows"]
  assert len(row["psnr"]) == 2 and np.isfinite(row["psnr"]).all() and row["learning_rate"] == 0.01
  assert row["psnr"][0] != row["psnr"][1]  # two seeds, two fits
  assert len(row["hole_psnr"]) == 2 and np.isfinite(row["hole_psnr"]).all()
  assert row["num_params"] == architecture_study.network_params("tiny", 3, 1, (32, 32))
  assert architecture_study.network_params("skip_depth2", 3, 1, (32, 32)) > row["num_params"]
  assert "| tiny |" in (out / "table.md").read_text() and "in the hole" in (out / "table.md").read_text()
  assert (out / "outputs.png").exists()


def test_architecture_study_errors_are_one_line(tmp_path):
  out = f"--out_dir={tmp_path / 'a'}"
  assert "unknown network(s) ['vit']" in error_of("architecture_study", ["--nets=tiny,vit", out])
  assert "--seeds must be at least 1" in error_of("architecture_study", ["--seeds=0", out])
  config = architecture_study.study_config("inpaint", "tiny")
  problem = dipjax.tasks.make_problem(None, "inpaint", config, image=smooth_image(32, 32),
                                      mask=corruptions.box_mask((32, 32)))
  with pytest.raises(ValueError, match="needs `clean`"):
    architecture_study.study(jax.random.key(0), problem, config, ["tiny"])
  problem = dipjax.tasks.make_problem(None, "inpaint", config, clean=smooth_image(32, 32))
  with pytest.raises(ValueError, match="distinct networks"):
    architecture_study.study(jax.random.key(0), problem, config, ["tiny", "tiny"])
  assert architecture_study.study_config("denoise", "paper").steps == presets.get("denoise", "paper").steps
  assert architecture_study.default_nets("inpaint") == architecture_study.FIG8_NETS


def test_net_and_tv_weight_flags_reach_the_preset_of_every_task_entry_point():
  from absl import flags
  from cli_helpers import forget_script_flags, load_script
  from experiments import flag_groups
  for script, task in (("denoise", "denoise"), ("inpaint", "inpaint"), ("super_resolution", "super_resolution")):
    load_script(script)
    try:
      flags.FLAGS(["prog", "--preset=tiny", "--net=resnet", "--tv_weight=1e-6"])
      _, config = flag_groups.preset(task)
      assert (config.model, config.tv_weight) == ("resnet", 1e-6), script
      assert config.fit_options()["tv_weight"] == 1e-6
    finally:
      flags.FLAGS.unparse_flags()
      forget_script_flags()
  with pytest.raises(flags.IllegalFlagValueError, match="--net=vit: value should be one of"):
    run_main("denoise", ["--net=vit"])


def test_sweep_takes_a_network_axis():
  from cli_helpers import forget_script_flags, load_script
  sweep = load_script("sweep")
  forget_script_flags()
  axes = sweep.parse_grid(["net=tiny, skip_depth2", "tv_weight=0,1e-6"], presets.get("denoise", "tiny"))
  assert axes == [("net", ["tiny", "skip_depth2"]), ("tv_weight", [0.0, 1e-6])]
  rows = [dict(point=dict(net=n, tv_weight=t), single_mean=m, single_sd=0.0, ema_mean=m, best_psnr_curve=[m],
               best_step=[1], ensemble_vs_k={1: m})
          for (n, t), m in zip([("tiny", 0.0), ("skip_depth2", 0.0), ("tiny", 1e-6), ("skip_depth2", 1e-6)],
                               [20.0, 21.0, 22.0, 23.0])]
  result = dict(rows=rows, axes=[[n, v] for n, v in axes], task="denoise", preset_name="tiny", seeds=1, image="x",
                device="cpu", wall_s=1.0)
  xs, ys, grid = sweep.heat_values(result, "net", "tv_weight", "output")
  assert xs == ["tiny", "skip_depth2"] and grid.tolist() == [[20.0, 21.0], [22.0, 23.0]]
  assert "| skip_depth2 | 1e-06 |" in sweep.markdown(result)
