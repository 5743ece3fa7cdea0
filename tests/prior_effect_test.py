"""The super-resolution prior-effect study (supplement): no prior, TV prior, deep prior, and its entry point."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dipjax
from cli_helpers import error_of, run_main
from dipjax import architectures, prior_effect, tasks
from tasks_test import save, smooth_image


STEPS = 4  # as the entry-point test: the same no-prior program, compiled once (persistent compilation cache)


@pytest.fixture(scope="module")
def no_prior():
  """A 32x32 ×4 problem and its no-prior fit (shared: one compile)."""
  problem = tasks.super_resolution(clean=smooth_image(32, 32), factor=4)
  args = (jnp.asarray(problem.observation),)
  kwargs = dict(operator=problem.operator, clean=jnp.asarray(problem.clean))
  return problem, args, kwargs, prior_effect.prior_fit("no prior", steps=STEPS)(jax.random.key(0), *args, **kwargs)


def test_the_pixels_network_has_no_parameters_and_returns_its_input():
  z = jax.random.uniform(jax.random.key(0), (8, 12, 3))
  net = architectures.Pixels()
  assert net.init(jax.random.key(1), z) == {} and dipjax.count_params(net.init(jax.random.key(1), z)) == 0
  np.testing.assert_array_equal(net.apply({}, z), z)


def test_no_prior_is_adam_on_the_pixels_and_lowers_the_data_loss(no_prior):
  """The identity net with its input optimised is exactly Adam on the pixels, started at U(0, 0.1)."""
  problem, _, _, result = no_prior
  low, op = jnp.asarray(problem.observation), problem.operator
  x = result.state.z  # the initial pixels
  assert x.shape == (32, 32, 3) and 0 <= float(x.min()) and float(x.max()) <= 0.1
  tx = optax.adam(0.01)
  opt = tx.init(x)
  grad = jax.jit(jax.grad(lambda x: dipjax.metrics.mse(op(x), low)))
  for _ in range(STEPS):
    updates, opt = tx.update(grad(x), opt)
    x = optax.apply_updates(x, updates)
  np.testing.assert_allclose(result.output, x, atol=1e-5)
  loss = np.asarray(result.metrics.loss)
  assert np.all(np.diff(loss) < 0)


def test_the_tv_prior_gives_a_smoother_output_than_no_prior_at_the_same_step(no_prior):
  _, args, kwargs, result = no_prior
  tv_output = prior_effect.prior_fit("TV prior", steps=STEPS, tv_weight=1e-2)(jax.random.key(0), *args, **kwargs).output
  tv = {"no prior": prior_effect.total_variation(result.output), "TV prior": prior_effect.total_variation(tv_output)}
  assert tv["TV prior"] < 0.9 * tv["no prior"], tv
  assert prior_effect.total_variation(np.ones((4, 4, 3))) == 0.0


def test_the_entry_point_runs_all_three_priors_and_writes_pictures_and_tables(tmp_path):
  out = tmp_path / "pe"
  image = save(tmp_path / "hr.png", smooth_image(40, 40))
  run_main("sr_prior_effect", ["--preset=tiny", f"--image={image}", "--crop=32", f"--steps={STEPS}",
                                f"--out_dir={out}"])
  for f in ("no_prior.png", "tv_prior.png", "deep_prior.png", "bicubic.png", "comparison.png", "curves.png",
            "table.md", "results.json"):
    assert (out / f).exists(), f
  r = json.loads((out / "results.json").read_text())
  assert r["size"] == [32, 32, 3] and r["steps"] == STEPS and r["model"] == "tiny"
  assert set(r["psnr"]) == set(prior_effect.PRIORS) | {"bicubic"} and set(r["loss"]) == set(prior_effect.PRIORS)
  assert all(np.isfinite(v) for v in r["psnr"].values()) and all(len(c) == STEPS for c in r["psnr_curve"].values())
  deep = dipjax.image_io.load_image(str(out / "deep_prior.png"))  # the deep prior's output is an image, not z
  assert deep.shape == (32, 32, 3) and deep.std() > 0 and r["psnr"]["deep prior"] != r["psnr"]["no prior"]
  assert all(f"| {m} |" in (out / "table.md").read_text() for m in r["psnr"])
  assert "--crop must be" in error_of("sr_prior_effect", ["--crop=-1", f"--out_dir={out}"])
  assert "--steps must be >= 1" in error_of("sr_prior_effect", ["--steps=0", f"--out_dir={out}"])
  assert "--factor must be one of 2, 4, 6, 8" in error_of("sr_prior_effect", ["--factor=3", f"--out_dir={out}"])
