"""The memory estimate (probe compiles, extrapolated) against the peak RSS a run adds, on CPU."""

import json
import os
import subprocess
import sys

import pytest

from dipjax import memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = r"""
import json, sys
import jax, jax.numpy as jnp, dipjax
from dipjax import memory
size = int(sys.argv[1])
net = dipjax.skip_tiny(channels_down=(32, 32, 32), channels_up=(32, 32, 32), channels_skip=(2, 2, 2))
loop = dipjax.make_fit_loop(net, input_channels=8)
estimate = memory.estimate_bytes(loop, (size, size), channels=3, probe=(32, 32))
target = jnp.full((size, size, 3), 0.5)
state = jax.jit(lambda k: jax.vmap(lambda kk: loop.init(kk, (size, size)))(k))(jax.random.split(jax.random.key(0), 1))
compiled = jax.jit(jax.vmap(lambda s: loop.run(s, target, num_steps=1)[:2])).lower(state).compile()
def status(field):  # kB fields of /proc/self/status
  for line in open("/proc/self/status"):
    if line.startswith(field + ":"):
      return int(line.split()[1]) * 1024
with open("/proc/self/clear_refs", "w") as f:
  f.write("5")  # reset the high-water mark (VmHWM): compiles and probes before this do not count
before = status("VmRSS")
jax.block_until_ready(compiled(state))
after = status("VmHWM")
print(json.dumps(dict(estimate=estimate, program=memory.program_bytes(compiled), before=before, peak=after - before)))
"""


@pytest.mark.parametrize("size", [384, pytest.param(512, marks=pytest.mark.slow)])
def test_estimate_is_within_2x_of_the_measured_peak(size):
  env = dict(os.environ, PYTHONPATH=ROOT)
  proc = subprocess.run([sys.executable, "-c", SCRIPT, str(size)], cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  r = json.loads(proc.stdout.strip().splitlines()[-1])
  assert r["peak"] > 100e6, r  # the run's own allocations dominate the measurement
  assert 0.5 <= r["estimate"] / r["peak"] <= 2.0, r
  assert 0.5 <= r["program"] / r["peak"] <= 2.0, r


def test_check_fits_refuses_with_the_estimate_and_what_to_change():
  with pytest.raises(ValueError, match=r"needs about .* GiB but only .* GiB is free.*fewer seeds"):
    memory.check_fits(10 ** 15, what="this run")
  memory.check_fits(1, what="this run")
  assert memory.available_bytes() > 0
