"""Early stopping without ground truth and the non-finite guard, inside the compiled scan."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dipjax
from dipjax import stopping


def smooth(h, w, c=3):
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  return np.stack([0.5 + 0.3 * np.sin(2 * np.pi * (k + 1) * (xx + 0.5 * yy)) for k in range(c)], -1).astype(
      np.float32)


NET = dipjax.skip_tiny(channels_down=(16, 16, 16), channels_up=(16, 16, 16), channels_skip=(2, 2, 2))
SIGMA = 0.1
CRITERIA = (stopping.EMV(patience=100, warmup=10), stopping.WMV(window=20, patience=100),
            stopping.Discrepancy(noise_var=SIGMA ** 2))


@pytest.fixture(scope="module")
def denoising_run():
  """A 32x32 denoising problem that a 16-channel net overfits: PSNR peaks near step 60, then falls ~7 dB."""
  clean = jnp.asarray(smooth(32, 32))
  noisy = dipjax.corruptions.add_gaussian_noise(jax.random.key(5), clean, sigma=SIGMA)
  fit = dipjax.make_fit(NET, num_steps=500, input_channels=8, learning_rate=0.01, stopping=CRITERIA)
  return clean, noisy, fit, fit(jax.random.key(0), noisy, clean=clean)


def test_criteria_fire_near_the_oracle_peak(denoising_run):
  clean, _, _, result = denoising_run
  curve = np.asarray(result.metrics.psnr_clean)
  peak, last = int(np.argmax(curve)) + 1, float(curve[-1])
  assert curve.max() > last + 4  # the problem does overfit
  for criterion, st in zip(CRITERIA, result.state.stop):
    detected = int(st.best_step)
    assert bool(st.stopped) and int(st.stopped_at) == detected + criterion.patience
    assert abs(detected - peak) <= 120, (criterion.name, detected, peak)
    at_detected = float(dipjax.psnr(st.output, clean))
    assert at_detected == pytest.approx(float(curve[detected - 1]), abs=1e-4)  # the output kept is that step's
    assert at_detected > last + 3, (criterion.name, at_detected, last)
    assert at_detected > curve.max() - 3.5, (criterion.name, at_detected, curve.max())


def test_scores_are_logged_and_the_record_freezes_after_firing(denoising_run):
  _, noisy, fit, result = denoising_run
  scores = np.asarray(result.metrics.stop_scores)
  assert scores.shape == (500, 3)
  assert np.all(np.isnan(scores[:8, 0])) and np.all(np.isfinite(scores[20:, 0]))  # EMV warm-up 10
  assert np.all(np.isnan(scores[:19, 1])) and np.all(np.isfinite(scores[19:, 1]))  # WMV window 20
  emv = result.state.stop[0]
  assert float(emv.best_score) == pytest.approx(float(np.nanmin(scores[:int(emv.stopped_at), 0])))
  # Continuing the run does not change a fired criterion's record.
  run = jax.jit(fit.loop.run, static_argnames=("num_steps", "snapshot_every"))
  state, _, _ = run(result.state, noisy, num_steps=20)
  for before, after in zip(result.state.stop, state.stop):
    assert int(before.best_step) == int(after.best_step)
    np.testing.assert_array_equal(np.asarray(before.output), np.asarray(after.output))


def test_stopping_under_vmap_equals_a_loop(denoising_run):
  _, noisy, _, _ = denoising_run
  # SGD: a batched program rounds differently and Adam amplifies that over many steps (BUILD_NOTES §5).
  fit = dipjax.make_fit(dipjax.skip_tiny(), num_steps=12, input_channels=4, optimizer=optax.sgd(0.05),
                        stopping=(stopping.EMV(patience=3, warmup=3), stopping.WMV(window=4, patience=3)))
  keys = jax.random.split(jax.random.key(3), 2)
  batched = jax.vmap(lambda k: fit(k, noisy))(keys)
  for i in range(2):
    single = fit(keys[i], noisy)
    for b, s in zip(batched.state.stop, single.state.stop):
      assert int(b.best_step[i]) == int(s.best_step)
      np.testing.assert_allclose(np.asarray(b.output[i]), np.asarray(s.output), atol=1e-4)


def test_discrepancy_fires_at_the_first_crossing():
  target = jnp.asarray(smooth(16, 16))
  c = stopping.Discrepancy(noise_var=0.01)
  st = stopping.init(c, target.shape)
  losses = [0.05, 0.02, 0.009, 0.001]
  for t, loss in enumerate(losses, start=1):
    st, _ = stopping.update(c, st, target * t, jnp.float32(loss), jnp.int32(t))
  assert int(st.best_step) == 3 and bool(st.stopped) and int(st.stopped_at) == 3
  np.testing.assert_allclose(np.asarray(st.output), np.asarray(target * 3))
  with pytest.raises(ValueError, match="unknown stopping criterion"):
    stopping.make("oracle")


def test_a_transient_nan_is_skipped_and_the_run_recovers():
  """A step whose loss is NaN (here: a NaN target for one step) leaves the state as it was."""
  target = jnp.asarray(smooth(24, 24))
  fit = dipjax.make_fit(dipjax.skip_tiny(), num_steps=9, input_channels=4, stopping=(stopping.EMV(warmup=1),))
  loop = fit.loop
  run = jax.jit(loop.run, static_argnames=("num_steps", "snapshot_every"))
  s4, _, _ = run(loop.init(jax.random.key(0), (24, 24)), target, num_steps=4)
  s5, m5, _ = run(s4, target.at[0, 0, 0].set(jnp.nan), num_steps=1)
  assert bool(m5.nonfinite[0]) and int(s5.num_nonfinite) == 1 and int(s5.nonfinite_streak) == 1
  assert int(s5.step) == 5
  for name in ("params", "opt_state", "ema", "stop"):
    jax.tree_util.tree_map(np.testing.assert_array_equal, getattr(s4, name), getattr(s5, name))
  s9, m9, _ = run(s5, target, num_steps=4)
  assert not np.any(np.asarray(m9.nonfinite)) and int(s9.nonfinite_streak) == 0 and int(s9.num_nonfinite) == 1
  # Without input perturbation the skipped step is invisible: steps 5..8 equal an uninterrupted run's 4 steps.
  s8, _, _ = run(s4, target, num_steps=4)
  np.testing.assert_array_equal(np.asarray(s9.params), np.asarray(s8.params))
  for leaf in jax.tree_util.tree_leaves((jax.jit(loop.render)(s9), s9.ema, s9.stop)):
    assert np.all(np.isfinite(np.asarray(leaf)))


def test_a_run_that_cannot_recover_keeps_counting():
  target = jnp.asarray(smooth(24, 24))
  fit = dipjax.make_fit(dipjax.skip_tiny(), num_steps=6, input_channels=4,
                        optimizer=optax.chain(optax.adam(0.01), optax.scale(jnp.inf)))
  result = fit(jax.random.key(0), target)
  assert int(result.state.nonfinite_streak) == 6 and int(result.state.num_nonfinite) == 6
  init = fit.loop.init(jax.random.key(0), (24, 24))
  np.testing.assert_array_equal(np.asarray(result.state.params), np.asarray(init.params))  # the last good state


def test_wmv_running_sums_match_the_exact_window_variance():
  c = stopping.WMV(window=20, patience=10 ** 6)
  st = stopping.init(c, (8, 8, 3))
  xs = jax.random.uniform(jax.random.key(0), (3000, 8, 8, 3)) * 0.2 + jnp.linspace(0.3, 0.6, 3000)[:, None, None, None]

  def body(st, tx):
    t, x = tx
    return stopping.update(c, st, x, jnp.float32(0), t)

  st, scores = jax.lax.scan(body, st, (jnp.arange(1, 3001, dtype=jnp.int32), xs))
  exact = np.array([np.var(np.asarray(xs[t - 20:t], np.float64), axis=0).mean() for t in range(20, 3001)])
  np.testing.assert_allclose(np.asarray(scores[19:]), exact, rtol=2e-3)
  assert np.all(np.isnan(np.asarray(scores[:19])))
