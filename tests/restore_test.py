"""dipjax.restore, the one driver: equals the entry point, pins the EMA, compares like with like, validates."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import dipjax
from dipjax import batch, image_io, operators, presets, tasks
from cli_helpers import error_of, run_main


def smooth(h, w, c=3):
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  return np.stack([0.5 + 0.4 * np.sin(2 * np.pi * (k + 1) * (xx + 0.5 * yy)) for k in range(c)], -1).astype(
      np.float32)


def test_restore_equals_the_entry_point_bit_for_bit(tmp_path):
  run_main("denoise", ["--preset=tiny", "--steps=6", "--seeds=2", "--seed=3", f"--out_dir={tmp_path}"])
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  from experiments import task_main
  config = presets.get("denoise", "tiny", steps=6)
  clean = tasks.centre_crop(task_main.bundled_image("astronaut"), config.crop)
  corruption_key, fit_key = tasks.keys_for_seed(3)
  problem = tasks.make_problem(corruption_key, "denoise", config, clean=clean)
  result = tasks.restore_problem(fit_key, problem, config, seeds=2)
  for name, values in metrics["curves"].items():
    np.testing.assert_array_equal(np.asarray(getattr(result.curves, name)), np.asarray(values, np.float32), name)
  for name, image in (("output", result.output[0]), ("ema", result.ema[0]), ("ensemble", result.ensemble)):
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / f"{name}.png")), image_io.to_uint8(image), name)


@pytest.mark.bitwise
def test_a_chunk_rule_gives_the_same_result_and_sees_the_measured_speed():
  """``chunk`` may be a rule (seconds per step -> steps), e.g. runner.auto_chunk; chunking never changes results."""
  clean = smooth(32, 32)
  config = presets.get("denoise", "tiny", steps=3)
  seen = []

  def rule(seconds_per_step):
    seen.append(seconds_per_step)
    return 1 if seconds_per_step is None else 2

  by_rule = dipjax.restore(jax.random.key(5), clean, None, config, clean=clean, chunk=rule)
  by_one = dipjax.restore(jax.random.key(5), clean, None, config, clean=clean, chunk=1)
  np.testing.assert_array_equal(by_rule.output, by_one.output)
  np.testing.assert_array_equal(by_rule.curves.loss, by_one.curves.loss)
  assert seen[0] is None and seen[-1] > 0 and len(by_rule.curves.loss[0]) == 3  # 1 step, then 2 at the measured speed


def test_the_ema_value_is_the_moving_average_of_the_outputs():
  """With σ_p = 0 the per-step output is f_θ(z) before the step: replay it and average in numpy."""
  loop = dipjax.make_fit_loop(dipjax.skip_tiny(), input_channels=4, reg_noise_std=0.0, ema_decay=0.9)
  target = jnp.asarray(smooth(16, 16))
  state = loop.init(jax.random.key(0), (16, 16))
  run = jax.jit(lambda s: loop.run(s, target, num_steps=1)[0])
  render = jax.jit(loop.render)
  outputs = []
  for _ in range(4):
    outputs.append(np.asarray(render(state), np.float64))
    state = run(state)
  ema = outputs[0]
  for x in outputs[1:]:
    ema = 0.9 * ema + 0.1 * x
  np.testing.assert_allclose(np.asarray(state.ema), ema, rtol=1e-5, atol=1e-6)
  assert float(np.abs(ema - outputs[-1]).max()) > 1e-4  # the average is not just the last output


@pytest.mark.parametrize("tile", [0, pytest.param(32, marks=pytest.mark.slow)])  # tiles: tasks_test's tiled run
def test_best_is_at_least_detected_and_last_in_every_summary(tile):
  clean = smooth(48, 64)
  noisy = np.asarray(dipjax.corruptions.add_gaussian_noise(jax.random.key(1), clean, sigma=0.1))
  config = presets.get("denoise", "tiny", steps=30)
  stop = dipjax.StopOptions(patience=3, window=4)
  r = dipjax.restore(jax.random.key(2), noisy, None, config, seeds=2, clean=clean, noise_sigma=0.1, stop=stop,
                     tile=tile, tile_overlap=8, chunk=10)
  for name in ("emv", "wmv", "discrepancy"):
    entry = r.stopping[name]
    for best, detected, last in zip(entry["psnr_best"], entry["psnr_detected"], entry["psnr_last"]):
      assert best >= detected - 1e-9 and best >= last - 1e-9, (name, best, detected, last)
  assert any(step > 0 for step in r.stopping["wmv"]["detected_step"])  # something was detected
  curve = np.asarray(r.curves.psnr_clean)
  assert r.stopping["emv"]["psnr_last"] == pytest.approx(curve[:, -1].tolist(), abs=1e-4)
  assert r.output.shape == (2, 48, 64, 3) and r.info["tiles"] == (6 if tile else 1)


@pytest.mark.slow  # the same property at the grid level, quickly: batch_test's per-image masks and inputs
def test_per_image_operators_batched_equal_separate_runs():
  config = presets.get("inpaint", "tiny", steps=3)
  clean = [smooth(32, 32), smooth(32, 32)[::-1].copy()]
  masks = [dipjax.corruptions.box_mask((32, 32)), dipjax.corruptions.text_mask((32, 32))]
  problems = [tasks.masked("inpaint", clean=c, mask=m) for c, m in zip(clean, masks)]
  key = jax.random.key(4)
  together = batch.fit_problems(config, problems, key=key, seeds=2, max_batch=4)
  for problem, fitted in zip(problems, together):
    alone = batch.fit_problems(config, [problem], key=key, seeds=2, max_batch=2)[0]
    np.testing.assert_array_equal(fitted.outputs, alone.outputs)
    np.testing.assert_array_equal(fitted.curves.loss, alone.curves.loss)
  # ... and a grid fit equals dipjax.restore of the same problem (one loop, one operator path).
  r = tasks.restore_problem(key, problems[1], config, seeds=2)
  np.testing.assert_array_equal(together[1].curves.loss[:, 0], r.curves.loss)
  np.testing.assert_array_equal(together[1].outputs[:, 0], r.output)


@pytest.mark.parametrize("kwargs,message", [
    (dict(seeds=0), "`seeds` must be an integer >= 1, got 0"),
    (dict(chunk=0), "`chunk` must be an integer >= 1, got 0"),
    (dict(tile=10), "`tile` must be 0 (no tiling) or at least 32, got 10"),
    (dict(checkpoint_every=5), "need a `checkpoint_path`"),
    (dict(config="denoise"), "`config` must be a dipjax.presets.TaskPreset"),
    (dict(observation=np.ones((40, 40))), "`observation` must have shape (H, W, C)"),
    (dict(observation=np.full((40, 40, 3), np.nan, np.float32)), "`observation` has 4800 non-finite"),
    (dict(observation=np.ones((20, 40, 3), np.float32)), "at least 32x32"),
])
def test_bad_library_arguments_give_one_line_errors(kwargs, message):
  args = dict(observation=np.ones((40, 40, 3), np.float32), config=presets.get("denoise", "tiny", steps=2))
  args.update(kwargs)
  observation, config = args.pop("observation"), args.pop("config")
  with pytest.raises(ValueError) as info:
    dipjax.restore(jax.random.key(0), observation, None, config, **args)
  assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("call,message", [
    (lambda: presets.get("denoise", "cpu", learning_rate=float("nan")), "`learning_rate` must be a finite number > 0"),
    (lambda: presets.get("denoise", "cpu", steps=0), "`steps` must be an integer >= 1, got 0"),
    (lambda: presets.get("denoise", "cpu", sigma=-3.0), "`sigma` must be a finite number >= 0.0, got -3.0"),
    (lambda: presets.get("denoise", "cpu", reg_noise_std=-0.1), "`reg_noise_std` must be a finite number >= 0.0"),
    (lambda: presets.get("restore", "cpu", keep_fraction=0.0), "`keep_fraction` must be a finite number > 0.0"),
    (lambda: dipjax.make_fit(dipjax.skip_tiny(), num_steps=0), "`num_steps` must be an integer >= 1, got 0"),
    (lambda: dipjax.make_fit_loop(dipjax.skip_tiny(), learning_rate=float("inf")), "`learning_rate` must be"),
    (lambda: dipjax.make_fit_loop(dipjax.skip_tiny(), ema_decay=1.0), "`ema_decay` must be a finite number"),
    (lambda: dipjax.StopOptions(window=0), "`window` must be an integer >= 1, got 0"),
    (lambda: dipjax.StopOptions(criterion="oracle"), "`criterion` must be one of"),
    (lambda: batch.make_grid_fit(dipjax.skip_tiny(), num_steps=-1), "`num_steps` must be an integer >= 1"),
    (lambda: dipjax.corruptions.add_gaussian_noise(jax.random.key(0), jnp.ones((4, 4, 1)), sigma=-1.0),
     "`sigma` must be a finite number >= 0"),
])
def test_every_numeric_argument_is_checked_at_the_boundary(call, message):
  with pytest.raises(ValueError) as info:
    call()
  assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("script,flag,message", [
    ("denoise", "--steps=0", "`--steps` must be an integer >= 1, got 0"),
    ("denoise", "--lr=nan", "`--lr` must be a finite number > 0.0, got nan"),
    ("denoise", "--lr=-0.01", "`--lr` must be a finite number > 0.0, got -0.01"),
    ("denoise", "--reg_noise_std=-1", "`--reg_noise_std` must be a finite number >= 0.0"),
    ("denoise", "--sigma=-3", "`--sigma` must be a finite number >= 0.0, got -3.0"),
    ("denoise", "--seeds=0", "`--seeds` must be an integer >= 1, got 0"),
    ("denoise", "--chunk=-1", "`--chunk` must be an integer >= 0, got -1"),
    ("denoise", "--save_every=-1", "`--save_every` must be an integer >= 0"),
    ("denoise", "--stop_window=0", "`--stop_window` must be an integer >= 1"),
    ("denoise", "--checkpoint_every=-2", "`--checkpoint_every` must be an integer >= 0"),
    ("denoise", "--max_nonfinite=0", "`--max_nonfinite` must be an integer >= 1"),
    ("denoise", "--tile=-1", "`--tile` must be an integer >= 0"),
    ("denoise", "--crop=-4", "`--crop` must be an integer >= 0"),
    ("deblock", "--jpeg_quality=0", "`--jpeg_quality` must be a finite number >= 1"),
    ("restore", "--keep_fraction=1.5", "`--keep_fraction` must be a finite number > 0.0 and <= 1.0"),
    ("super_resolution", "--factor=3", "`--factor` must be one of [2, 4, 6, 8], got 3"),
    ("sweep", "--max_batch=-1", "`--max_batch` must be an integer >= 0"),
    ("reproduce_denoising", "--scale=-1", "`--scale` must be an integer >= 0"),
])
def test_every_invalid_numeric_flag_gives_its_message(script, flag, message, tmp_path):
  assert message in error_of(script, ["--preset=tiny", flag, f"--out_dir={tmp_path / 'o'}"] if script != "sweep"
                             else [flag, "--grid=lr=0.01", f"--out_dir={tmp_path / 'o'}"])
  assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())  # nothing written
