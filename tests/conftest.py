"""Shared test setup: CPU, float32, small compile cost."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The tests run tiny networks for a few steps, so XLA compile time dominates their
# cost; a lower backend optimisation level halves it (results stay float32-exact
# to the tolerances asserted; speed is measured by experiments/bench_speed.py).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
  return jax.random.key(0)
