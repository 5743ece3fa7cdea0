"""SGLD: the noiseless limit, the noise's law, chunked runs, and the running moments."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from dipjax import sgld

LR = 0.01


def _params():
  keys = jax.random.split(jax.random.key(42), 3)
  return {"conv": {"kernel": jax.random.normal(keys[0], (3, 3, 2, 4)) * 0.3, "bias": jnp.zeros((4,))},
          "bn": {"scale": jax.random.uniform(keys[1], (4,)) + 0.5}}


def _loss(params):
  """A small non-quadratic loss, so Adam's steps differ from step to step."""
  leaves = jax.tree.leaves(params)
  return sum(jnp.sum(jnp.sin(3.0 * p) + (p - 0.2) ** 2) for p in leaves)


def _run(opt, params, state, num_steps):
  def step(carry, _):
    p, s = carry
    updates, s = opt.update(jax.grad(_loss)(p), s, p)
    return (optax.apply_updates(p, updates), s), None

  (params, state), _ = jax.lax.scan(step, (params, state), None, length=num_steps)
  return params, state


def _assert_trees_equal(a, b):
  def data(x):
    return jax.random.key_data(x) if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key) else x
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
    np.testing.assert_array_equal(data(x), data(y))


def test_zero_noise_is_adam_with_weight_decay_bit_for_bit():
  params = _params()
  noisy = sgld.sgld_adam(LR, key=jax.random.key(0), weight_decay=1e-2, noise_scale=0.0, mask=sgld.conv_kernels)
  plain = optax.chain(optax.add_decayed_weights(1e-2), optax.adam(LR))
  run = jax.jit(_run, static_argnums=(0, 3))
  ours, _ = run(noisy, params, noisy.init(params), 6)
  theirs, _ = run(plain, params, plain.init(params), 6)
  _assert_trees_equal(ours, theirs)
  assert not np.array_equal(ours["conv"]["kernel"], params["conv"]["kernel"])


@pytest.mark.parametrize("convention,scale,std", [("sgld", 1.0, np.sqrt(2 * LR)), ("sgld", 0.5, 0.5 * np.sqrt(2 * LR)),
                                                  ("gp_dip", 2.0, 2 * LR)])
def test_noise_law(convention, scale, std):
  t = sgld.add_langevin_noise(LR, key=jax.random.key(1), noise_scale=scale, convention=convention)
  zeros = {"a": jnp.zeros((200, 250)), "b": jnp.zeros((50_000,))}
  state = t.init(zeros)
  first, state = t.update(zeros, state)
  second, state = t.update(zeros, state)
  assert int(state.count) == 2
  for leaf in jax.tree.leaves(first):
    assert abs(float(leaf.mean())) < 5 * std / np.sqrt(leaf.size)
    assert abs(float(leaf.std()) / std - 1) < 0.02
  assert not np.array_equal(first["a"], second["a"])  # a fresh draw each step
  other = sgld.add_langevin_noise(LR, key=jax.random.key(2), noise_scale=scale, convention=convention)
  assert not np.array_equal(other.update(zeros, other.init(zeros))[0]["b"], first["b"])  # and for each key
  assert abs(np.corrcoef(np.ravel(first["b"]), np.ravel(first["a"])[:50_000])[0, 1]) < 0.02  # leaves independent


def test_mask_and_schedule():
  params = _params()
  opt = sgld.sgld_adam(LR, key=jax.random.key(2), **sgld.GP_DIP_OPTIMIZER)
  plain = optax.chain(optax.add_decayed_weights(5e-8), optax.adam(LR))
  grads = jax.grad(_loss)(params)
  ours, _ = opt.update(grads, opt.init(params), params)
  theirs, _ = plain.update(grads, plain.init(params), params)
  np.testing.assert_array_equal(ours["conv"]["bias"], theirs["conv"]["bias"])  # 1-D: no noise
  np.testing.assert_array_equal(ours["bn"]["scale"], theirs["bn"]["scale"])
  assert not np.array_equal(ours["conv"]["kernel"], theirs["conv"]["kernel"])
  schedule = optax.constant_schedule(LR)
  t_fixed = sgld.add_langevin_noise(LR, key=jax.random.key(3))
  t_sched = sgld.add_langevin_noise(schedule, key=jax.random.key(3))
  u_fixed, _ = t_fixed.update(grads, t_fixed.init(params))
  u_sched, _ = t_sched.update(grads, t_sched.init(params))
  _assert_trees_equal(u_fixed, u_sched)


def test_chunked_run_equals_one_run():
  params = _params()
  opt = sgld.sgld_adam(LR, key=jax.random.key(4), noise_scale=0.1)
  run = jax.jit(_run, static_argnums=(0, 3))
  whole, whole_state = run(opt, params, opt.init(params), 8)
  part, part_state = run(opt, params, opt.init(params), 4)
  part, part_state = run(opt, part, part_state, 4)
  _assert_trees_equal(whole, part)
  _assert_trees_equal(whole_state, part_state)


def test_running_moments_equal_numpy():
  samples = np.random.default_rng(0).normal(0.3, 2.0, (25, 4, 5, 3)).astype(np.float32)
  state = sgld.moments_init(samples.shape[1:])
  mean, std = sgld.moments_mean_std(state)
  assert int(state.count) == 0 and not np.any(mean) and not np.any(std)
  state, _ = jax.lax.scan(lambda s, x: (sgld.moments_update(s, x), None), state, samples)
  assert int(state.count) == 25
  mean, std = sgld.moments_mean_std(state)
  np.testing.assert_allclose(mean, samples.astype(np.float64).mean(0), atol=2e-6)
  np.testing.assert_allclose(std, samples.astype(np.float64).std(0), rtol=1e-5)
  np.testing.assert_allclose(sgld.moments_mean_std(state, ddof=1)[1], samples.astype(np.float64).std(0, ddof=1),
                             rtol=1e-5)


def test_std_is_zero_for_equal_samples():
  state = sgld.moments_init((3, 2))
  x = jnp.asarray(np.random.default_rng(1).random((3, 2)), jnp.float32) * 1e3 + 0.1
  for _ in range(7):
    state = sgld.moments_update(state, x)
  mean, std = sgld.moments_mean_std(state)
  np.testing.assert_array_equal(mean, x)
  np.testing.assert_array_equal(std, 0.0)


def test_conditional_accumulation_in_a_scan():
  burn_in, every, steps = 20, 5, 60
  outputs = np.random.default_rng(2).random((steps, 2, 3)).astype(np.float32)

  def step(s, inputs):
    i, x = inputs
    return sgld.moments_update(s, x, where=sgld.is_sample_step(i, burn_in=burn_in, sample_every=every)), None

  state, _ = jax.jit(lambda s: jax.lax.scan(step, s, (jnp.arange(steps), outputs)))(sgld.moments_init((2, 3)))
  chosen = [i for i in range(steps) if i > burn_in and i % every == 0]  # the reference's schedule
  assert int(state.count) == len(chosen) == 7
  mean, std = sgld.moments_mean_std(state)
  np.testing.assert_allclose(mean, outputs[chosen].mean(0), atol=1e-6)
  np.testing.assert_allclose(std, outputs[chosen].std(0), atol=1e-6)


@pytest.mark.parametrize("call", [
    lambda: sgld.add_langevin_noise(LR, key=jax.random.key(0), convention="pSGLD"),
    lambda: sgld.add_langevin_noise(LR, key=jax.random.key(0), noise_scale=-1.0),
    lambda: sgld.sgld_adam(-0.1, key=jax.random.key(0)),
    lambda: sgld.is_sample_step(3, burn_in=0, sample_every=0),
    lambda: sgld.moments_update(sgld.moments_init((2,)), jnp.zeros(3)),
])
def test_errors(call):
  with pytest.raises(ValueError) as info:
    call()
  assert "\n" not in str(info.value)


def test_doctests():
  assert doctest.testmod(sgld).failed == 0
