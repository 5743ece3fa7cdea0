"""Shared test setup: CPU, float32, small compile cost."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
# The tests run tiny networks for a few steps, so XLA compile time dominates their
# cost; a lower backend optimisation level halves it (results stay float32-exact
# to the tolerances asserted; speed is measured by experiments/bench_speed.py).
# At that level XLA:CPU's newer fusion emitters compile these small programs ~3x slower than its older loop
# emitters (a tiny-net restoration: 8.4 s -> 2.9 s to compile and run, the same loss; BUILD_NOTES §5), so the
# suite uses the older ones. They round some reductions differently from program to program, so the tests
# that assert bit equality between two *different* programs (vmap vs a loop, chunked vs one scan: marker
# `bitwise`) re-run themselves in a child pytest under XLA's default emitters, the configuration users run.
DEFAULT_EMITTERS_ENV = "DIPJAX_TEST_DEFAULT_EMITTERS"
_FAST_EMITTERS = " --xla_cpu_use_fusion_emitters=false"
if "xla_backend_optimization_level" not in os.environ.get("XLA_FLAGS", ""):
  os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " --xla_backend_optimization_level=0"
                             + ("" if os.environ.get(DEFAULT_EMITTERS_ENV) else _FAST_EMITTERS)).strip()

# One persistent XLA compilation cache per test run, shared by the xdist workers and the subprocesses the tests
# start (they inherit the environment): many tests compile the same tiny programs (measured: tasks_test 12 %
# faster). It is created fresh for every run (so CI timing never depends on an earlier run) and removed at the end.
_OWN_CACHE = "JAX_COMPILATION_CACHE_DIR" not in os.environ
if _OWN_CACHE:
  import tempfile
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="dipjax-test-xla-cache-")
  os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
  os.environ["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "0"

import subprocess  # noqa: E402
import sys  # noqa: E402

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


def pytest_pyfunc_call(pyfuncitem):
  """A `bitwise` test runs in a child pytest under XLA's default emitters (see the top of this file)."""
  if pyfuncitem.get_closest_marker("bitwise") is None or _FAST_EMITTERS not in os.environ["XLA_FLAGS"]:
    return None
  env = dict(os.environ, XLA_FLAGS=os.environ["XLA_FLAGS"].replace(_FAST_EMITTERS, ""), **{DEFAULT_EMITTERS_ENV: "1"})
  root = str(pyfuncitem.config.rootpath)
  proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "-m", "bitwise",
                         pyfuncitem.nodeid], cwd=root, env=env, capture_output=True, text=True, timeout=600)
  if proc.returncode != 0:
    pytest.fail(f"under XLA's default emitters (child pytest, exit {proc.returncode}):\n{proc.stdout[-6000:]}",
                pytrace=False)
  return True
