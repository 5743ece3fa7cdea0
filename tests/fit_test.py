"""The scan-compiled fit loop: transformations (jit, vmap, chunking), determinism, guard, errors."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dipjax

SIZE = (32, 32)
STEPS = 6
LOOP_KW = dict(input_channels=4, reg_noise_std=0.05, learning_rate=0.01)


def smooth_target(c=3):
  h, w = SIZE
  yy, xx = np.mgrid[0:h, 0:w] / max(h, w)
  chans = [0.5 + 0.3 * np.sin(3 * xx + k) * np.cos(2 * yy - k) for k in range(c)]
  return jnp.asarray(np.stack(chans, -1), jnp.float32)


def one_level_net():
  """The tiny net with one level (down, skip, up, BatchNorm, concat): the same layers, a fraction of the compile."""
  return dipjax.skip_tiny(channels_down=(8,), channels_up=(8,), channels_skip=(2,))


@pytest.fixture(scope="module")
def target():
  return smooth_target()


@pytest.fixture(scope="module")
def fit():
  return dipjax.make_fit(dipjax.skip_tiny(), num_steps=STEPS, guard_every=2, **LOOP_KW)


def _plain(x):
  if jnp.issubdtype(getattr(x, "dtype", np.float32), jax.dtypes.prng_key):
    return np.asarray(jax.random.key_data(x))
  return np.asarray(x)


def assert_trees_equal(a, b):
  la, lb = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert len(la) == len(lb)
  for x, y in zip(la, lb):
    np.testing.assert_array_equal(_plain(x), _plain(y))


def assert_trees_close(a, b, tol):
  for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)):
    np.testing.assert_allclose(np.asarray(x, np.float64), np.asarray(y, np.float64), rtol=tol, atol=tol)


def test_result_shapes_and_loss_decreases(target):
  fit = dipjax.make_fit(dipjax.skip_tiny(), num_steps=40, **LOOP_KW)
  r = fit(jax.random.key(0), target, clean=target)
  assert r.output.shape == target.shape and r.ema.shape == target.shape
  assert r.metrics.loss.shape == (40,)
  assert r.snapshots is None
  loss = np.asarray(r.metrics.loss)
  assert np.all(np.isfinite(loss))
  assert loss[-5:].mean() < 0.5 * loss[:3].mean()
  np.testing.assert_allclose(r.metrics.psnr_clean, r.metrics.psnr_target, rtol=1e-6)  # clean == target here
  assert int(r.state.step) == 40


def test_same_key_gives_identical_output_and_other_key_differs(fit, target):
  a = fit(jax.random.key(5), target)
  b = fit(jax.random.key(5), target)
  c = fit(jax.random.key(6), target)
  assert_trees_equal(a, b)
  assert not np.array_equal(a.output, c.output)


def test_compiles_once_for_repeated_calls(fit, target, caplog):
  fit(jax.random.key(0), target)
  with jax.log_compiles(True), caplog.at_level(logging.WARNING):
    caplog.clear()
    fit(jax.random.key(1), target * 0.5)
    fit(jax.random.key(2), target, clean=target * 0.9)  # a clean image is a new signature: one compile
    fit(jax.random.key(3), target, clean=target)
  compiles = [r for r in caplog.records if "Compiling" in r.getMessage() and "fit_core" in r.getMessage()]
  assert len(compiles) == 1, [r.getMessage() for r in compiles]


def test_jit_equals_eager(target):
  fit = dipjax.make_fit(one_level_net(), num_steps=1, guard_every=1, **LOOP_KW)
  jitted = fit(jax.random.key(2), target, clean=target)
  with jax.disable_jit():
    eager = fit(jax.random.key(2), target, clean=target)
  assert_trees_close(jitted.output, eager.output, 1e-5)
  assert_trees_close(jitted.metrics, eager.metrics, 1e-4)


def test_vmap_over_seeds_equals_python_loop(target):
  # SGD keeps float rounding differences between batched and unbatched GEMMs at
  # rounding size; Adam's m / sqrt(v) turns a near-zero gradient's rounding into a
  # full-size step, so with Adam only the first steps can be compared tightly.
  sgd_kw = dict(LOOP_KW, optimizer=optax.sgd(0.5))
  sgd = dipjax.make_fit(one_level_net(), num_steps=STEPS, guard_every=2, **sgd_kw)
  keys = jax.random.split(jax.random.key(9), 3)
  batched = jax.jit(lambda k: dipjax.fit_seeds(sgd, k, target, clean=target, seeds_per_group=3))(keys)
  assert batched.output.shape == (3,) + target.shape
  assert batched.metrics.loss.shape == (3, STEPS)
  for i in range(3):
    single = sgd(keys[i], target, clean=target)
    assert_trees_close(batched.output[i], single.output, 1e-5)
    assert_trees_close(jax.tree_util.tree_map(lambda a: a[i], batched.metrics),
                       single.metrics, 1e-4)
    assert_trees_close(batched.state.params[i], single.state.params, 1e-5)
  assert not np.allclose(batched.output[0], batched.output[1])  # seeds differ
  # Groups of seeds run one after another in the same program give the same results.
  keys4 = jax.random.split(jax.random.key(10), 4)
  grouped = dipjax.fit_seeds(sgd, keys4, target, seeds_per_group=2)
  together = dipjax.fit_seeds(sgd, keys4, target, seeds_per_group=4)
  assert grouped.output.shape == (4,) + target.shape
  assert_trees_close(grouped.output, together.output, 1e-5)
  with pytest.raises(ValueError, match="`seeds_per_group`"):
    dipjax.fit_seeds(sgd, keys4, target, seeds_per_group=3)
  ens = dipjax.ensemble(batched.output)
  np.testing.assert_allclose(ens, batched.output.mean(0), rtol=1e-6)


def test_vmap_over_seeds_with_adam_matches_first_steps(fit, target):
  keys = jax.random.split(jax.random.key(8), 2)
  batched = dipjax.fit_seeds(fit, keys, target, seeds_per_group=2)
  assert batched.output.shape == (2,) + target.shape
  for i in range(2):
    single = fit(keys[i], target)
    np.testing.assert_allclose(batched.metrics.loss[i, :3], single.metrics.loss[:3], rtol=1e-4)


def test_batchnorm_statistics_are_not_mixed_across_seeds(fit, target):
  """A seed's result does not depend on which other seeds share its program."""
  keys = jax.random.split(jax.random.key(4), 4)
  four = dipjax.fit_seeds(fit, keys, target, seeds_per_group=4)
  two = dipjax.fit_seeds(fit, keys[:2], target, seeds_per_group=2)
  assert_trees_close(four.output[:2], two.output, 2e-5)


@pytest.mark.bitwise
@pytest.mark.parametrize("snapshot_every", [0, 2])
def test_chunked_run_is_bit_identical_to_one_scan(target, snapshot_every):
  loop = dipjax.make_fit_loop(one_level_net(), guard_every=2, **LOOP_KW)
  run = jax.jit(loop.run, static_argnames=("num_steps", "snapshot_every"))
  state0 = loop.init(jax.random.key(3), SIZE)
  full_state, full_metrics, full_snaps = run(state0, target, clean=target, num_steps=STEPS,
                                             snapshot_every=snapshot_every)
  state, chunks, snaps = state0, [], []
  for _ in range(STEPS // 2):
    state, m, s = run(state, target, clean=target, num_steps=2, snapshot_every=snapshot_every)
    chunks.append(m)
    snaps.append(s)
  assert_trees_equal(state, full_state)
  assert_trees_equal(jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *chunks), full_metrics)
  if snapshot_every:
    assert full_snaps.output.shape == (STEPS // 2,) + target.shape
    assert_trees_equal(jax.tree_util.tree_map(lambda *a: jnp.concatenate(a), *snaps), full_snaps)
    # render() outside the scan is a differently fused program: equal up to rounding.
    np.testing.assert_allclose(full_snaps.output[-1], jax.jit(loop.render)(full_state), atol=1e-6)


def test_snapshots_with_remainder(target):
  fit = dipjax.make_fit(dipjax.skip_tiny(), num_steps=7, snapshot_every=3, **LOOP_KW)
  r = fit(jax.random.key(0), target)
  assert r.snapshots.output.shape == (2,) + target.shape
  assert r.metrics.loss.shape == (7,)


@pytest.mark.bitwise
def test_clean_image_never_enters_the_loss(fit, target):
  with_clean = fit(jax.random.key(1), target, clean=jnp.zeros_like(target))
  without = fit(jax.random.key(1), target)
  assert_trees_equal(with_clean.output, without.output)
  assert np.all(np.isnan(without.metrics.psnr_clean))
  assert np.all(np.isfinite(with_clean.metrics.psnr_clean))


def test_rollback_guard_restores_parameters_when_forced_to_diverge(target):
  # lr 0.01, then an exploding step (count 3), then a zero-size step (count 4).
  schedule = lambda count: jnp.where(count == 3, 1e3, jnp.where(count == 4, 0.0, 1e-2))
  loop_kw = dict(LOOP_KW, reg_noise_std=0.0, optimizer=optax.adam(schedule))
  loop = dipjax.make_fit_loop(one_level_net(), guard_every=1, **loop_kw)
  run = jax.jit(loop.run, static_argnames=("num_steps", "snapshot_every"))
  state = loop.init(jax.random.key(0), SIZE)
  state, _, _ = run(state, target, num_steps=3)
  params_before_explosion = state.params
  state, m, _ = run(state, target, num_steps=2)
  assert not bool(m.rolled_back[0]) and bool(m.rolled_back[1])
  assert float(m.psnr_target[1]) < float(m.psnr_target[0]) - 5.0
  assert int(state.num_rollbacks) == 1
  assert_trees_equal(state.params, params_before_explosion)  # restored, then a zero update
  # Without the guard the same schedule leaves the parameters diverged.
  unguarded = dipjax.make_fit_loop(one_level_net(), **loop_kw)
  s = unguarded.init(jax.random.key(0), SIZE)
  s, m2, _ = jax.jit(unguarded.run, static_argnames=("num_steps", "snapshot_every"))(s, target, num_steps=5)
  assert not np.any(m2.rolled_back)
  assert float(dipjax.psnr(jax.jit(unguarded.render)(s), target)) < float(m.psnr_target[0]) - 5.0


def test_optimize_input_updates_z(target):
  loop = dipjax.make_fit_loop(dipjax.skip_tiny(), optimize_input=True, **LOOP_KW)
  state = loop.init(jax.random.key(0), SIZE)
  new, _, _ = jax.jit(loop.run, static_argnames=("num_steps", "snapshot_every"))(state, target, num_steps=2)
  assert not np.allclose(loop.unravel(new)["z"], loop.unravel(state)["z"])
  np.testing.assert_array_equal(new.z, state.z)


def test_given_input_and_super_resolution_operator():
  lr = smooth_target()[::2, ::2]
  fit = dipjax.make_fit(one_level_net(), num_steps=3, **LOOP_KW)
  r = fit(jax.random.key(0), lr, operator=dipjax.operators.Downsample(2))  # out_shape from the operator
  assert r.output.shape == SIZE + (3,)
  plain = fit(jax.random.key(0), lr, operator=lambda x: dipjax.downsample(x, 2), out_shape=SIZE)  # any function
  np.testing.assert_array_equal(plain.output, r.output)
  z = jnp.full(SIZE + (3,), 0.2)
  fit_z = dipjax.make_fit(one_level_net(), num_steps=2, input_channels=3)
  np.testing.assert_array_equal(fit_z(jax.random.key(0), smooth_target(), z=z).state.z, z)


@pytest.mark.parametrize("make_target,kwargs,match", [
    (lambda: jnp.ones((32, 32)), {}, "`target` must have shape \\(H, W, C\\)"),
    (lambda: jnp.ones((1, 32, 32, 3)), {}, "rank 3"),
    (lambda: jnp.ones((32, 32, 1)), {}, "out_channels=1"),
    (lambda: jnp.ones((32, 32, 3)).at[3, 4, 0].set(jnp.nan), {}, "`target` has 1 non-finite"),
    (lambda: jnp.ones((32, 32, 3), jnp.int32), {}, "float"),
    (lambda: jnp.ones((2, 40, 3)), {}, "too small.*needs H, W >= 4"),
    (lambda: jnp.ones((32, 32, 3)), {"clean": jnp.ones((16, 16, 3))}, "`clean` must have"),
    (lambda: jnp.ones((32, 32, 3)), {"clean": jnp.full((32, 32, 3), jnp.inf)}, "`clean` has"),
    (lambda: jnp.ones((32, 32, 3)), {"z": jnp.ones((16, 32, 4))}, "`z` has spatial size"),
    (lambda: [[1.0]], {}, "must be an array"),
])
def test_bad_arguments_raise_value_error(make_target, kwargs, match):
  fit = dipjax.make_fit(dipjax.skip_tiny(), num_steps=1, input_channels=4)
  with pytest.raises(ValueError, match=match):
    fit(jax.random.key(0), make_target(), **kwargs)


def test_bad_sizes_for_default_net_and_no_skip_net():
  fit = dipjax.make_fit(dipjax.skip_default(), num_steps=1)
  with pytest.raises(ValueError, match="31x40 is too small.*>= 32"):
    fit(jax.random.key(0), jnp.ones((31, 40, 3)))
  fit = dipjax.make_fit(dipjax.skip_tiny(channels_skip=(0, 0)), num_steps=1, input_channels=4)
  with pytest.raises(ValueError, match="multiple of 4"):
    fit(jax.random.key(0), jnp.ones((18, 24, 3)))


@pytest.mark.parametrize("kwargs,match", [
    ({"num_steps": 0}, "`num_steps`"),
    ({"num_steps": 2, "ema_decay": 1.0}, "`ema_decay`"),
    ({"num_steps": 2, "guard_every": -1}, "`guard_every`"),
    ({"num_steps": 2, "learning_rate": 0.0}, "`learning_rate`"),
    ({"num_steps": 2, "reg_noise_std": -0.1}, "`reg_noise_std`"),
    ({"num_steps": 2, "snapshot_every": -2}, "`snapshot_every`"),
])
def test_bad_options_raise_value_error(kwargs, match):
  with pytest.raises(ValueError, match=match):
    dipjax.make_fit(dipjax.skip_tiny(), **kwargs)


def test_any_linen_module_can_be_fitted(target):
  """A module that is not built from dipjax layers falls back to its own initialisers."""
  import flax.linen as nn

  class PixelNet(nn.Module):
    @nn.compact
    def __call__(self, z):
      return jax.nn.sigmoid(nn.Dense(3)(z))

  fit = dipjax.make_fit(PixelNet(), num_steps=20, input_channels=4, learning_rate=0.05)
  r = fit(jax.random.key(0), target)
  assert r.output.shape == target.shape
  assert float(r.metrics.loss[-1]) < float(r.metrics.loss[0])


def test_default_adam_reads_the_rate_from_the_carry_and_equals_optax_adam():
  import optax
  target = jax.random.uniform(jax.random.key(2), (24, 24, 3))
  ours = dipjax.make_fit(one_level_net(), num_steps=5, input_channels=4, learning_rate=0.02, reg_noise_std=0.05)
  theirs = dipjax.make_fit(one_level_net(), num_steps=5, input_channels=4, reg_noise_std=0.05,
                           optimizer=optax.adam(0.02, b1=0.9, b2=0.999, eps=1e-8))
  a, b = ours(jax.random.key(0), target), theirs(jax.random.key(0), target)
  np.testing.assert_array_equal(np.asarray(a.state.params), np.asarray(b.state.params))
  np.testing.assert_array_equal(np.asarray(a.output), np.asarray(b.output))


@pytest.mark.bitwise
def test_per_fit_hyper_parameters_equal_static_ones_and_vmap():
  target = jax.random.uniform(jax.random.key(2), (24, 24, 3))
  run = lambda loop, st: jax.jit(lambda s: loop.run(s, target, num_steps=4)[0])(st)
  static = dipjax.make_fit_loop(one_level_net(), input_channels=4, learning_rate=0.03, reg_noise_std=0.1)
  generic = dipjax.make_fit_loop(one_level_net(), input_channels=4)
  s_static = run(static, static.init(jax.random.key(1), (24, 24)))
  s_hyper = run(generic, generic.init(jax.random.key(1), (24, 24), hyper=dict(learning_rate=0.03, reg_noise_std=0.1)))
  np.testing.assert_array_equal(np.asarray(s_static.params), np.asarray(s_hyper.params))
  lrs = jnp.asarray([0.01, 0.03])
  states = jax.vmap(lambda lr: generic.init(jax.random.key(1), (24, 24), hyper=dict(learning_rate=lr,
                                                                                     reg_noise_std=0.1)))(lrs)
  batched = jax.jit(jax.vmap(lambda s: generic.run(s, target, num_steps=4)[0]))(states)
  np.testing.assert_allclose(np.asarray(batched.params[1]), np.asarray(s_static.params), atol=1e-5)
  assert not np.allclose(np.asarray(batched.params[0]), np.asarray(batched.params[1]))
  with pytest.raises(ValueError, match="takes"):
    generic.init(jax.random.key(1), (24, 24), hyper=dict(momentum=0.5))


def test_tv_weight_adds_lambda_times_the_tv_of_the_output_to_the_objective(target):
  from dipjax import regularizers
  lam = 1e-3
  plain = dipjax.make_fit_loop(one_level_net(), input_channels=4)
  with_tv = dipjax.make_fit_loop(one_level_net(), input_channels=4, tv_weight=lam, tv_beta=0.5)
  state = plain.init(jax.random.key(0), SIZE)
  after_plain, m_plain, _ = plain.run(state, target, num_steps=1)
  after, m_tv, _ = with_tv.run(state, target, num_steps=1)
  tv = float(regularizers.tv_loss(plain.render(state), 0.5))
  np.testing.assert_allclose(float(m_tv.loss[0]) - float(m_plain.loss[0]), lam * tv, rtol=1e-4)
  assert not np.array_equal(np.asarray(after.params), np.asarray(after_plain.params))
  with pytest.raises(ValueError, match="`tv_weight`"):
    dipjax.make_fit_loop(one_level_net(), tv_weight=-1.0)


def test_the_fit_draws_z_at_the_networks_input_size():
  """The Deep Decoder's input is a small seed, not an image-sized tensor; a wrong `z` is refused naming both sizes."""
  from dipjax import architectures
  net = architectures.DeepDecoder(channels=4, num_layers=3)
  loop = dipjax.make_fit_loop(net, input_channels=32)
  state = loop.init(jax.random.key(0), (16, 24))
  assert state.z.shape == (4, 6, 4)
  target = jnp.full((16, 24, 3), 0.5)
  state, metrics, _ = loop.run(state, target, num_steps=3)
  assert loop.render(state).shape == (16, 24, 3) and float(metrics.loss[-1]) < float(metrics.loss[0])
  with pytest.raises(ValueError, match=r"`z` has spatial size \(16, 24\) but this network needs \(4, 6\)"):
    dipjax.fit.check_fit_inputs(net, target, z=jnp.zeros((16, 24, 4)))
