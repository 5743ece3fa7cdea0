"""Grids of fits: images x seeds x hyper-parameters in one program, buckets by size, chunks, many devices."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dipjax
from dipjax import batch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NET = dipjax.skip_tiny(channels_down=(8,), channels_up=(8,), channels_skip=(2,))  # one level: cheap to compile
# The grid is compared with a loop of one-fit calls of the same grid function: on CPU every fit runs the same
# per-fit program (groups of 1), so they agree bit for bit. Against the unbatched core (`single`) only the first
# step's loss is compared: a batched program rounds differently and Adam's first step, ±lr·sign(g), turns a
# rounding-level difference in a near-zero gradient into a ±lr parameter change (BUILD_NOTES §5).


def targets(n, size=16, seed=0):
  return jax.random.uniform(jax.random.key(seed), (n, size, size, 3))


def single(key, target, **hyper):
  loop = dipjax.make_fit_loop(NET, input_channels=4, reg_noise_std=0.05)
  st = loop.init(key, target.shape[:2], hyper=hyper or None)
  st, m, _ = jax.jit(lambda s: loop.run(s, target, num_steps=3))(st)
  return np.asarray(jax.jit(loop.render)(st)), np.asarray(m.loss)


@pytest.fixture(scope="module")
def fit_grid():
  return batch.make_grid_fit(NET, num_steps=3, input_channels=4, reg_noise_std=0.05)


@pytest.mark.bitwise
def test_grid_over_images_seeds_and_learning_rates_equals_separate_runs(fit_grid):
  t = targets(2)
  keys = jax.random.split(jax.random.key(1), 2)
  r = fit_grid(keys, t, hyper={"learning_rate": [0.01, 0.05]})
  assert r.output.shape == (2, 2, 2, 16, 16, 3) and r.metrics.loss.shape == (2, 2, 2, 3)
  np.testing.assert_allclose(r.hyper["learning_rate"], [0.01, 0.05])
  for i in range(2):
    for s in range(2):
      for v, lr in enumerate([0.01, 0.05]):
        alone = fit_grid(keys[s:s + 1], t[i:i + 1], hyper={"learning_rate": [lr]})
        np.testing.assert_array_equal(np.asarray(r.output[i, s, v]), np.asarray(alone.output[0, 0, 0]))
        np.testing.assert_array_equal(np.asarray(r.metrics.loss[i, s, v]), np.asarray(alone.metrics.loss[0, 0, 0]))
  for i, s, v in ((0, 0, 0), (1, 1, 1)):  # the unbatched core (one compile each)
    _, loss = single(keys[s], t[i], learning_rate=[0.01, 0.05][v])
    np.testing.assert_allclose(np.asarray(r.metrics.loss[i, s, v, 0]), loss[0], rtol=1e-5)
  assert not np.allclose(r.output[0, 0, 0], r.output[0, 0, 1])


@pytest.mark.bitwise
def test_cartesian_product_of_two_hyper_parameters_and_chunking(fit_grid):
  t = targets(1)
  keys = jax.random.split(jax.random.key(2), 1)
  hyper = {"learning_rate": [0.01, 0.02], "reg_noise_std": [0.0, 0.1, 0.2]}
  whole = fit_grid(keys, t, hyper=hyper)
  assert whole.output.shape[:3] == (1, 1, 6)
  r4 = lambda a: np.round(np.asarray(a, np.float64), 4).tolist()
  got = sorted(zip(r4(whole.hyper["learning_rate"]), r4(whole.hyper["reg_noise_std"])))
  assert got == sorted((a, b) for a in (0.01, 0.02) for b in (0.0, 0.1, 0.2))
  calls = []
  chunked = fit_grid(keys, t, hyper=hyper, max_batch=4, chunk=2,  # 6 fits: 4 + 2 (padded); 3 steps: 2 + 1
                     on_chunk=lambda g: calls.append((g.fits_done, g.fits_total, g.steps_done)))
  assert calls == [(0, 6, 2), (4, 6, 3), (4, 6, 2), (6, 6, 3)]
  np.testing.assert_array_equal(np.asarray(whole.output), np.asarray(chunked.output))
  v = int(np.nonzero((whole.hyper["learning_rate"] == np.float32(0.02)) &
                     (whole.hyper["reg_noise_std"] == np.float32(0.1)))[0][0])
  alone = fit_grid(keys, t, hyper={"learning_rate": [0.02], "reg_noise_std": [0.1]})
  np.testing.assert_array_equal(np.asarray(whole.output[0, 0, v]), np.asarray(alone.output[0, 0, 0]))


@pytest.mark.bitwise
def test_buckets_handle_three_sizes_with_one_compile_each(fit_grid):
  images = [targets(1, 16)[0], targets(1, 24, 1)[0], targets(1, 16, 2)[0], targets(1, 32, 3)[0]]
  keys = jax.random.split(jax.random.key(3), 2)
  results = batch.fit_buckets(fit_grid, keys, images)
  assert [r.output.shape[3:5] for r in results] == [(16, 16), (24, 24), (16, 16), (32, 32)]
  assert all(r.output.shape[:3] == (1, 2, 1) for r in results)
  alone = fit_grid(keys[1:], images[2][None])
  np.testing.assert_array_equal(np.asarray(results[2].output[0, 1, 0]), np.asarray(alone.output[0, 0, 0]))


@pytest.mark.bitwise
def test_per_image_masks_and_inputs_equal_separate_runs():
  """Per-image operators (a mask per image) and `z` (a network input per image) travel with their image."""
  grid = batch.make_grid_fit(NET, num_steps=3, input_channels=4)
  t = targets(2)
  masks = (jax.random.uniform(jax.random.key(5), (2, 16, 16, 1)) > 0.5).astype(jnp.float32)
  ops = dipjax.operators.stack([dipjax.operators.Mask(m) for m in masks])
  zs = jax.random.uniform(jax.random.key(6), (2, 16, 16, 4)) * 0.1
  keys = jax.random.split(jax.random.key(7), 2)
  r = grid(keys, t * masks, operators=ops, z=zs, clean=t)
  for i in range(2):
    alone = grid(keys[1:], (t * masks)[i:i + 1], operator=dipjax.operators.Mask(masks[i]), z=zs[i:i + 1],
                 clean=t[i:i + 1])
    np.testing.assert_array_equal(np.asarray(r.output[i, 1, 0]), np.asarray(alone.output[0, 0, 0]))
  # The mask is in the loss: a masked fit's first loss equals the unbatched core's with that mask, and the
  # two images' fits differ from a fit with the other image's mask.
  loop = dipjax.make_fit_loop(NET, input_channels=4)
  st = loop.init(keys[0], (16, 16), z=zs[1])
  _, m, _ = jax.jit(lambda s: loop.run(s, (t * masks)[1], operator=dipjax.operators.Mask(masks[1]), num_steps=1))(st)
  np.testing.assert_allclose(np.asarray(r.metrics.loss[1, 0, 0, 0]), np.asarray(m.loss[0]), rtol=1e-5)
  swapped = grid(keys, t * masks, operators=dipjax.operators.index(ops, np.array([1, 0])), z=zs, clean=t)
  assert not np.allclose(np.asarray(swapped.metrics.loss), np.asarray(r.metrics.loss))
  with pytest.raises(ValueError, match="either a shared `operator` or per-image `operators`"):
    grid(keys, t, operator=dipjax.operators.Mask(masks[0]), operators=ops)
  with pytest.raises(ValueError, match="`z` has 1 entries"):
    grid(keys, t, operators=ops, z=zs[:1])


def test_choose_max_batch_explains_itself(fit_grid):
  n, reason = batch.choose_max_batch(fit_grid.loop, (64, 64), channels=3, probe=(16, 16))
  assert n >= 1 and "per fit" in reason and "fits per call" in reason


def test_bad_grid_inputs(fit_grid):
  with pytest.raises(ValueError, match="takes 'learning_rate' and 'reg_noise_std'"):
    fit_grid(jax.random.split(jax.random.key(0), 1), targets(1), hyper={"momentum": [0.9]})
  with pytest.raises(ValueError, match=r"\(I, h, w, C\)"):
    fit_grid(jax.random.split(jax.random.key(0), 1), targets(1)[0])


SHARDED = r"""
import json, sys, jax, numpy as np, dipjax
from dipjax import batch
net = dipjax.skip_tiny(channels_down=(8,), channels_up=(8,), channels_skip=(2,))
fit_grid = batch.make_grid_fit(net, num_steps=3, input_channels=4, reg_noise_std=0.05)
t = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
r = fit_grid(jax.random.split(jax.random.key(1), 2), t, hyper={"learning_rate": [0.01, 0.05]},
             seeds_per_group=int(sys.argv[1]))
print(json.dumps(dict(devices=len(jax.devices()), output=np.asarray(r.output).tolist())))
"""


@pytest.mark.bitwise
def test_sharded_over_four_host_devices_equals_one_device(tmp_path):
  def run(devices):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu",
               XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={devices}"),
               JAX_ENABLE_COMPILATION_CACHE="false")  # other devices: keep out of the suite's shared XLA cache
    proc = subprocess.run([sys.executable, "-c", SHARDED, "4"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
  one, four = run(1), run(4)
  assert one["devices"] == 1 and four["devices"] == 4
  np.testing.assert_allclose(np.asarray(four["output"]), np.asarray(one["output"]), atol=1e-6)


TWO_PROCESSES = r"""
import json, sys, jax
jax.config.update("jax_cpu_collectives_implementation", "gloo")
pid, port = int(sys.argv[1]), sys.argv[2]
jax.distributed.initialize(coordinator_address=f"localhost:{port}", num_processes=2, process_id=pid)
import numpy as np, dipjax
from dipjax import batch
net = dipjax.skip_tiny(channels_down=(8,), channels_up=(8,), channels_skip=(2,))
fit_grid = batch.make_grid_fit(net, num_steps=3, input_channels=4, reg_noise_std=0.05)
t = jax.random.uniform(jax.random.key(0), (2, 16, 16, 3))
r = fit_grid(jax.random.split(jax.random.key(1), 2), t, hyper={"learning_rate": [0.01, 0.05]})
if pid == 0:
  print(json.dumps(dict(processes=jax.process_count(), output=np.asarray(r.output).tolist(),
                        step=np.asarray(r.state.step).tolist())))
jax.distributed.shutdown()
"""


def test_two_local_processes_gather_the_same_grid(fit_grid):
  import socket
  with socket.socket() as sock:
    sock.bind(("localhost", 0))
    port = str(sock.getsockname()[1])
  env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu", JAX_ENABLE_COMPILATION_CACHE="false")
  procs = [subprocess.Popen([sys.executable, "-c", TWO_PROCESSES, str(p), port], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for p in (0, 1)]
  outs = [p.communicate(timeout=300) for p in procs]
  for p, (_, err) in zip(procs, outs):
    assert p.returncode == 0, err[-2000:]
  r = json.loads(outs[0][0].strip().splitlines()[-1])
  assert r["processes"] == 2 and np.all(np.asarray(r["step"]) == 3)
  one = fit_grid(jax.random.split(jax.random.key(1), 2), jax.random.uniform(jax.random.key(0), (2, 16, 16, 3)),
                 hyper={"learning_rate": [0.01, 0.05]})
  np.testing.assert_allclose(np.asarray(r["output"]), np.asarray(one.output), atol=1e-6)
