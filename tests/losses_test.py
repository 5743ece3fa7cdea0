"""Losses: values and gradients against numpy, the registry, parameter checks."""

import doctest
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dipjax import losses

SHAPE = (6, 5, 3)


@pytest.fixture(scope="module")
def pair():
  rng = np.random.default_rng(0)
  pred = rng.uniform(0.05, 1.0, SHAPE).astype(np.float32)
  target = rng.uniform(0.0, 1.0, SHAPE).astype(np.float32)
  return pred, target


def _value_and_grad(fn, pred, target):
  value, grad = jax.value_and_grad(fn)(jnp.asarray(pred), jnp.asarray(target))
  return float(value), np.asarray(grad, np.float64)


def test_mse(pair):
  pred, target = pair
  p, t = pred.astype(np.float64), target.astype(np.float64)
  value, grad = _value_and_grad(losses.mse, pred, target)
  np.testing.assert_allclose(value, np.mean((p - t) ** 2), rtol=1e-6)
  np.testing.assert_allclose(grad, 2 * (p - t) / p.size, rtol=1e-5, atol=1e-9)


def test_l1(pair):
  pred, target = pair
  p, t = pred.astype(np.float64), target.astype(np.float64)
  value, grad = _value_and_grad(losses.l1, pred, target)
  np.testing.assert_allclose(value, np.mean(np.abs(p - t)), rtol=1e-6)
  np.testing.assert_allclose(grad, np.sign(p - t) / p.size, rtol=1e-6)
  _, at_target = _value_and_grad(losses.l1, target, target)
  np.testing.assert_array_equal(at_target, 0.0)  # sign(0) = 0, as torch's L1Loss


@pytest.mark.parametrize("peak", [1.0, 30.0])
def test_poisson_nll(pair, peak):
  pred, target = pair
  eps = 1e-6
  p, t = pred.astype(np.float64), target.astype(np.float64)
  value, grad = _value_and_grad(lambda a, b: losses.poisson_nll(a, b, peak=peak, eps=eps), pred, target)
  rate, counts = peak * p, peak * t
  np.testing.assert_allclose(value, np.mean(rate - counts * np.log(rate + eps)), rtol=1e-5)
  np.testing.assert_allclose(grad, (peak - counts * peak / (rate + eps)) / p.size, rtol=1e-4, atol=1e-8)


def test_poisson_nll_is_the_likelihood_without_log_factorial():
  peak = 7.0
  counts = np.array([0, 1, 2, 5, 9, 14], np.float64)
  rate = np.array([0.5, 1.5, 2.0, 4.0, 10.0, 12.0])
  log_pmf = counts * np.log(rate) - rate - np.array([math.lgamma(k + 1) for k in counts])
  value = float(losses.poisson_nll(jnp.asarray(rate / peak, jnp.float32), jnp.asarray(counts / peak, jnp.float32),
                                   peak=peak, eps=1e-12))
  log_factorial = np.mean([math.lgamma(k + 1) for k in counts])
  np.testing.assert_allclose(value + log_factorial, -np.mean(log_pmf), rtol=1e-5)
  grad = jax.grad(lambda q: losses.poisson_nll(q, jnp.asarray(counts / peak, jnp.float32), peak=peak))(
      jnp.asarray(np.maximum(counts, 1) / peak, jnp.float32))
  np.testing.assert_allclose(np.asarray(grad)[1:], 0.0, atol=1e-4)  # minimised at pred = target


def test_registry_and_jit(pair):
  pred, target = pair
  assert set(losses.LOSSES) == {"mse", "l1", "poisson_nll"}
  for name, kw in (("mse", {}), ("l1", {}), ("poisson_nll", {"peak": 20.0})):
    fn = losses.get(name, **kw)
    eager = fn(pred, target)
    assert eager.shape == () and eager.dtype == jnp.float32
    np.testing.assert_allclose(jax.jit(fn)(pred, target), eager, rtol=1e-6)


@pytest.mark.parametrize("call", [
    lambda: losses.get("huber"),
    lambda: losses.get("mse", peak=3.0),
    lambda: losses.get("poisson_nll"),
    lambda: losses.get("poisson_nll", peak=0.0),
    lambda: losses.get("poisson_nll", peak=10.0, eps=-1.0),
    lambda: losses.poisson_nll(jnp.ones(3), jnp.ones(3), peak=-2.0),
    lambda: losses.mse(jnp.ones((2, 2, 1)), jnp.ones((2, 2, 3))),
])
def test_errors_are_one_line_value_errors(call):
  with pytest.raises(ValueError) as info:
    call()
  assert "\n" not in str(info.value)


def test_doctests():
  assert doctest.testmod(losses).failed == 0
