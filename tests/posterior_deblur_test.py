"""Issue 13 in the fit loop and the entry points: SGLD posterior, noise models and losses, deblurring."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

import dipjax
from dipjax import blur, operators, presets, report, tasks
from dipjax.fit import Langevin
from cli_helpers import error_of, run_main

NET = dipjax.skip_tiny(channels_down=(8,), channels_up=(8,), channels_skip=(2,))  # one level: cheap to compile
SIZE = (24, 24)


def target():
  yy, xx = np.mgrid[0:SIZE[0], 0:SIZE[1]] / 24.0
  return jnp.asarray(np.stack([0.5 + 0.3 * np.sin(3 * xx + k) * np.cos(2 * yy) for k in range(3)], -1), jnp.float32)


def run(loop, steps, *, sample_outputs=False):
  """``steps`` steps of ``loop``; with ``sample_outputs`` also the per-step outputs (σ_p = 0: f_θ(z) before a step)."""
  state = loop.init(jax.random.key(1), SIZE)
  step = jax.jit(lambda s: loop.run(s, target(), num_steps=1)[0])
  render = jax.jit(loop.render)
  outputs = []
  for _ in range(steps):
    if sample_outputs:
      outputs.append(np.asarray(render(state), np.float64))
    state = step(state)
  return state, outputs


@pytest.mark.bitwise
def test_langevin_with_no_noise_and_no_decay_is_plain_adam_bit_for_bit():
  plain = dipjax.make_fit_loop(NET, input_channels=4)
  quiet = dipjax.make_fit_loop(NET, input_channels=4, langevin=Langevin(noise_scale=0.0, weight_decay=0.0,
                                                                         burn_in=1, sample_every=2))
  noisy = dipjax.make_fit_loop(NET, input_channels=4, langevin=Langevin(weight_decay=0.0, burn_in=1, sample_every=2))
  run_ = lambda loop, n: jax.jit(lambda s: loop.run(s, target(), num_steps=n)[0])(loop.init(jax.random.key(1), SIZE))
  a, b = run_(plain, 5), run_(quiet, 5)
  np.testing.assert_array_equal(np.asarray(a.params), np.asarray(b.params))
  assert a.posterior is None and int(b.posterior.count) == 2  # steps 2 and 4 (> burn-in 1, every 2)
  # One noisy step: the conv kernels moved off Adam's step (GP-DIP puts noise on them only), the rest did not.
  one_plain, one_noisy = (jax.tree_util.tree_map(np.asarray, loop.unravel(run_(loop, 1)))["net"]
                          for loop in (plain, noisy))
  kernels_moved = []
  for (path, p), q in zip(jax.tree_util.tree_leaves_with_path(one_plain), jax.tree_util.tree_leaves(one_noisy)):
    if p.ndim == 4:
      kernels_moved.append(np.abs(p - q).max() > 1e-4)
    else:
      np.testing.assert_array_equal(p, q, err_msg=jax.tree_util.keystr(path))
  assert kernels_moved and all(kernels_moved)


def test_the_posterior_moments_equal_numpy_over_the_sampled_outputs():
  """σ_p = 0, so the sampled per-step output is f_θ(z) before the step: replay and compare with numpy."""
  lv = Langevin(noise_scale=2.0, burn_in=2, sample_every=3)
  loop = dipjax.make_fit_loop(NET, input_channels=4, langevin=lv)
  state, outputs = run(loop, 12, sample_outputs=True)
  samples = np.stack([x for t, x in enumerate(outputs) if t > lv.burn_in and t % lv.sample_every == 0])
  assert len(samples) == int(state.posterior.count) == 3  # steps 3, 6, 9
  mean, std = dipjax.sgld.moments_mean_std(state.posterior)
  np.testing.assert_allclose(np.asarray(mean), samples.mean(0), atol=1e-6)
  np.testing.assert_allclose(np.asarray(std), samples.std(0), atol=1e-6)


@pytest.mark.bitwise
def test_langevin_noise_differs_by_seed_and_chunks_equal_one_scan():
  loop = dipjax.make_fit_loop(NET, input_channels=4, reg_noise_std=0.05, langevin=Langevin(burn_in=0, sample_every=1))
  run_ = jax.jit(lambda s, n: loop.run(s, target(), num_steps=n)[0], static_argnums=1)
  s0 = loop.init(jax.random.key(3), SIZE)
  whole, parts = run_(s0, 4), run_(run_(s0, 1), 3)
  for a, b in zip(jax.tree_util.tree_leaves((whole.params, whole.posterior)),
                  jax.tree_util.tree_leaves((parts.params, parts.posterior))):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  other = run_(loop.init(jax.random.key(4), SIZE), 4)
  assert not np.allclose(np.asarray(other.posterior.mean), np.asarray(whole.posterior.mean))


def test_all_equal_samples_give_a_zero_std_map():
  """With no noise, σ_p = 0 and a zero learning rate's stand-in (a tiny one), every sample is the same image."""
  loop = dipjax.make_fit_loop(NET, input_channels=4, learning_rate=1e-30,
                              langevin=Langevin(noise_scale=0.0, weight_decay=0.0, burn_in=0, sample_every=1))
  state, _ = run(loop, 4)
  _, std = dipjax.sgld.moments_mean_std(state.posterior)
  assert int(state.posterior.count) == 3 and float(jnp.max(std)) == 0.0


def test_bad_langevin_settings_give_one_line_errors():
  with pytest.raises(ValueError, match="`sample_every` must be an integer >= 1"):
    dipjax.make_fit_loop(NET, langevin=Langevin(sample_every=0))
  with pytest.raises(ValueError, match="needs the default optimiser"):
    import optax
    dipjax.make_fit_loop(NET, optimizer=optax.sgd(0.1), langevin=Langevin())
  with pytest.raises(ValueError, match="`sgld_noise` > 0 needs `sample_every`"):
    presets.get("denoise", "tiny", sgld_noise=2.0)
  with pytest.raises(ValueError, match="noise 'poisson' needs `peak`"):
    presets.get("denoise", "tiny", noise="poisson")
  with pytest.raises(ValueError, match="`impulse_fraction` must be a finite number >= 0.0 and <= 1.0"):
    presets.get("denoise", "tiny", noise="impulse", impulse_fraction=1.5)


def test_sgld_entry_point_writes_the_posterior_and_uncertainty_maps(tmp_path):
  run_main("denoise", ["--preset=sgld_tiny", "--steps=10", "--seeds=2", f"--out_dir={tmp_path}"])
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  for name in ("posterior_mean.png", "posterior_ensemble.png", "posterior_std.png", "ensemble_std.png"):
    assert name in metrics["files"], name
  summary = metrics["summary"]
  assert summary["posterior_samples"] == [2, 2]  # 0-based steps 6 and 8 (after the burn-in of 4, every 2)
  assert set(summary["uncertainty"]) == {"posterior_std", "ensemble_std"}
  assert Image.open(tmp_path / "posterior_std.png").mode == "L"


def test_noise_models_and_losses_from_the_denoise_flags(tmp_path):
  run_main("denoise", ["--preset=tiny", "--steps=3", "--noise=poisson", "--peak=20", "--loss=poisson_nll",
                       f"--out_dir={tmp_path}"])
  metrics = json.loads((tmp_path / "metrics.json").read_text())
  assert metrics["preset"]["noise"] == "poisson" and metrics["preset"]["loss"] == "poisson_nll"
  assert "Poisson (shot) noise, peak 20.0" in metrics["source"]["synthetic"]
  assert np.all(np.isfinite(metrics["curves"]["loss"])) and min(metrics["curves"]["loss"][0]) < 0  # a likelihood
  assert "discrepancy" not in metrics["summary"]["stopping"]  # no single σ is known for this noise


@pytest.mark.parametrize("fields,described,changed", [
    (dict(noise="impulse", impulse_fraction=0.1), "salt-and-pepper noise, fraction 0.1", 0.1),
    (dict(noise="speckle", speckle_sigma=0.2), "speckle (multiplicative) noise σ = 0.2", 1.0)])
def test_each_noise_model_makes_the_problem_it_says(fields, described, changed):
  clean = np.full((64, 64, 3), 0.5, np.float32)
  problem = tasks.make_problem(jax.random.key(0), "denoise", presets.get("denoise", "tiny", **fields), clean=clean)
  assert problem.source["synthetic"].startswith(described) and problem.noise_sigma is None
  assert np.mean(problem.observation != clean) == pytest.approx(changed, abs=0.02)


def test_noise_flags_are_checked():
  assert "`--impulse_fraction` must be a finite number >= 0.0 and <= 1.0" in error_of(
      "denoise", ["--preset=tiny", "--noise=impulse", "--impulse_fraction=2"])
  assert "loss 'poisson_nll' needs `peak`" in error_of("denoise", ["--preset=tiny", "--loss=poisson_nll"])


def test_blur_operator_is_the_blur_with_its_adjoint_and_shapes():
  x = jax.random.uniform(jax.random.key(0), (20, 18, 3))
  k = blur.motion_kernel(5.0, 30.0)
  for boundary in ("circular", "valid"):
    op = operators.Blur(kernel=k, boundary=boundary)
    y = op(x)
    assert y.shape == op.observation_shape(x.shape) and op.image_shape(y.shape) == x.shape
    np.testing.assert_array_equal(np.asarray(y), np.asarray(blur.blur(x, k, boundary=boundary)))
    r = jax.random.uniform(jax.random.key(1), y.shape)
    _, vjp = jax.vjp(op, x)  # the operator's transpose is blur_adjoint: <A x, r> = <x, A^T r>
    np.testing.assert_allclose(np.asarray(vjp(r)[0]), np.asarray(blur.blur_adjoint(r, k, boundary=boundary,
                                                                                    image_shape=x.shape)), atol=1e-5)
  delta = np.zeros((3, 3), np.float32)
  delta[1, 1] = 1.0
  np.testing.assert_allclose(np.asarray(operators.Blur(kernel=delta)(x)), np.asarray(x), atol=1e-6)
  with pytest.raises(ValueError, match="cannot be tiled"):
    operators.Blur(kernel=delta).window(0, 0, 8, 8)
  with pytest.raises(ValueError, match="`boundary` must be one of"):
    operators.Blur(kernel=delta, boundary="reflect")


def test_per_image_kernels_batch_like_images():
  clean = np.asarray(target())
  kernels = [blur.gaussian_kernel(1.0, 7), blur.motion_kernel(5.0, 0.0, 7)]
  problems = [tasks.deblur(clean=np.pad(clean, ((4, 4), (4, 4), (0, 0)), mode="reflect"), kernel=k) for k in kernels]
  stacked = operators.stack([p.operator for p in problems])
  one = jax.vmap(lambda op, x: op(x))(stacked, jnp.stack([p.clean for p in problems]))
  for i, p in enumerate(problems):
    np.testing.assert_allclose(np.asarray(one[i]), np.asarray(p.operator(p.clean)), atol=1e-6)


def test_deblur_entry_point_end_to_end_with_baselines_and_a_kernel_file(tmp_path):
  run_main("deblur", ["--preset=tiny", "--steps=3", "--baselines", f"--out_dir={tmp_path / 'a'}"])
  metrics = json.loads((tmp_path / "a" / "metrics.json").read_text())
  assert {"baseline_wiener", "baseline_richardson_lucy"} <= set(metrics["summary"]["psnr"])
  assert "blur 11x11 (circular)" in metrics["source"]["synthetic"]
  kernel = tmp_path / "k.png"  # a kernel file as the entry point reads it (--kernel_file), with the valid boundary
  Image.fromarray(np.full((5, 5), 255, np.uint8)).save(kernel)
  clean = np.random.default_rng(0).random((48, 48, 3), dtype=np.float32)
  problem = tasks.make_problem(jax.random.key(0), "deblur", presets.get("deblur", "tiny", boundary="valid"),
                               clean=clean, kernel=blur.load_kernel(kernel))
  assert "blur 5x5 (valid)" in problem.source["synthetic"] and problem.image_size == (48, 48)
  assert problem.observation.shape == (44, 44, 3) and problem.input_view.shape == (48, 48, 3)  # smaller by k - 1
  np.testing.assert_allclose(np.asarray(problem.operator(clean)), blur.blur(clean, np.full((5, 5), 1 / 25),
                                                                            boundary="valid"), atol=1e-6)


def test_bad_kernel_files_give_one_line_errors(tmp_path):
  base = ["--preset=tiny", "--steps=1", f"--out_dir={tmp_path / 'o'}"]
  assert "no kernel file" in error_of("deblur", base + [f"--kernel_file={tmp_path / 'missing.npy'}"])
  np.save(tmp_path / "neg.npy", -np.ones((3, 3)))
  assert "negative entries" in error_of("deblur", base + [f"--kernel_file={tmp_path / 'neg.npy'}"])
  assert "`--blur_sigma` must be a finite number > 0.0" in error_of("deblur", base + ["--blur_sigma=0"])
  assert not (tmp_path / "o" / "metrics.json").exists()


def test_report_scores_the_posterior_mean_and_the_std_maps():
  clean = np.asarray(target())
  noisy = np.clip(clean + 0.1 * np.random.default_rng(0).standard_normal(clean.shape), 0, 1).astype(np.float32)
  config = presets.get("denoise", "sgld_tiny", steps=10)
  r = dipjax.restore(jax.random.key(0), np.pad(noisy, ((4, 4), (4, 4), (0, 0)), mode="reflect"), None, config,
                     seeds=2, clean=np.pad(clean, ((4, 4), (4, 4), (0, 0)), mode="reflect"), model=NET)
  assert r.posterior_mean.shape == r.posterior_std.shape == (2, 32, 32, 3) and r.posterior_samples == [2, 2]
  u = report.uncertainty_summary(r, np.pad(clean, ((4, 4), (4, 4), (0, 0)), mode="reflect"))
  assert -1 <= u["posterior_std"]["pearson_r_with_abs_error"] <= 1 and u["posterior_std"]["mean_std"] > 0
  np.testing.assert_allclose(r.ensemble_std, r.output.std(axis=0))


def test_sgld_resumes_bit_for_bit_and_runs_in_the_batched_grid(tmp_path):
  import shutil
  from dipjax import batch
  clean = np.pad(np.asarray(target()), ((4, 4), (4, 4), (0, 0)), mode="reflect")
  config = presets.get("denoise", "sgld_tiny", steps=10)
  problem = tasks.make_problem(jax.random.key(0), "denoise", config, clean=clean)
  ckpt, at_5 = str(tmp_path / "ck.msgpack"), str(tmp_path / "ck5.msgpack")
  keep_step_5 = lambda line: shutil.copy(ckpt, at_5) if " 5/10 " in line else None  # the state when "killed"
  whole = tasks.restore_problem(jax.random.key(1), problem, config, seeds=2, chunk=5, checkpoint_path=ckpt,
                                checkpoint_every=5, log=keep_step_5)
  shutil.copy(at_5, ckpt)
  resumed = tasks.restore_problem(jax.random.key(1), problem, config, seeds=2, chunk=5, checkpoint_path=ckpt,
                                  resume=True)
  assert resumed.posterior_samples == whole.posterior_samples == [2, 2]
  np.testing.assert_array_equal(resumed.posterior_mean, whole.posterior_mean)
  np.testing.assert_array_equal(resumed.posterior_std, whole.posterior_std)
  grid = batch.fit_problems(config, [problem], key=jax.random.key(1), seeds=2, max_batch=1)[0]
  assert grid.posterior_mean.shape == grid.posterior_std.shape == (2, 1, 32, 32, 3)
  np.testing.assert_allclose(grid.posterior_mean[:, 0], whole.posterior_mean, atol=1e-5)
