"""Shared test setup: CPU, float32, small compile cost."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The tests run tiny networks for a few steps, so XLA compile time dominates their
# cost; a lower backend optimisation level halves it (results stay float32-exact
# to the tolerances asserted; speed is measured by experiments/bench_speed.py).
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0").strip()

# One persistent XLA compilation cache per test run, shared by the xdist workers and the subprocesses the tests
# start (they inherit the environment): many tests compile the same tiny programs (measured: tasks_test 12 %
# faster). It is created fresh for every run (so CI timing never depends on an earlier run) and removed at the end.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
  import tempfile
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="dipjax-test-xla-cache-")
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
  return jax.random.key(0)


def pytest_sessionfinish(session):
  """The process that created the compilation cache (the xdist controller, or the only process) removes it."""
  if _OWN_CACHE and not hasattr(session.config, "workerinput"):
    import shutil
    shutil.rmtree(os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
