r"""Throughput of batched grids: fits·steps per second for S fits in one program, and memory estimate vs peak.

Times ``dipjax.batch.make_grid_fit`` on the default network (2,217,831 parameters)
with the paper's denoising settings (σ_p 1/30, EMA, rollback guard) on one
``size x size`` image for S = 1, 2, 4, 8 fits (seeds) in one call. Each S is timed
on a second call (the first compiles); throughput = S · steps / seconds. Memory: the
estimate made before compiling (``dipjax.memory.estimate_bytes`` for one vmapped
group, plus the carries of the other fits, as ``dipjax.restore``
does) against the peak resident memory the timed call adds (``VmHWM`` reset before
the call; CPU only) and the compiled program's own analysis.

    python -m experiments.bench_grid                                   # CPU: 128², S = 1..8
    python -m experiments.bench_grid --size=512 --fits=1,2,4,8,16,32   # GPU

``--seeds_per_group=0`` uses the batch's default (all fits of a call vmapped together
on an accelerator, one at a time on CPU); ``-1`` vmaps all of them on CPU too.
"""

from __future__ import annotations

import json
import os
import time

from absl import flags

import jax

import dipjax
from dipjax import batch, conv as conv_lib, memory
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_integer("size", 128, "Square image size.")
flags.DEFINE_list("fits", ["1", "2", "4", "8"], "Numbers of fits (seeds) per call.")
flags.DEFINE_integer("num_steps", 20, "Adam steps per call.")
flags.DEFINE_integer("seeds_per_group", 0, "Fits vmapped together: 0 = the batch default, -1 = all.")
flags.DEFINE_string("model", "default", "Network preset (dipjax.PRESETS).")
flags.DEFINE_enum("precision", "float32", list(conv_lib.PRECISIONS), "Convolution arithmetic (dipjax.conv).")
flags.DEFINE_enum("conv_impl", "auto", list(conv_lib.CONV_IMPLS), "Convolution path (auto: by backend).")
flags.DEFINE_string("json_out", "runs/bench_grid.json", "Where to write the JSON results.")


def _status(field: str) -> int:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1]) * 1024
  return 0


def bench(size: int, fits: list[int], steps: int, group_flag: int, model_name: str, *, precision: str = "float32",
          conv_impl: str = "auto") -> list[dict]:
  model = dipjax.get_model(model_name, out_channels=3, precision=precision, conv_impl=conv_impl)
  kw = dict(learning_rate=0.01, reg_noise_std=1 / 30, ema_decay=0.99, guard_every=1, input_channels=32)
  grid = batch.make_grid_fit(model, num_steps=steps, **kw)
  target = jax.random.uniform(jax.random.key(0), (1, size, size, 3))
  on_cpu = jax.default_backend() == "cpu"
  state_bytes = sum(x.size * x.dtype.itemsize for x in jax.tree_util.tree_leaves(
      jax.eval_shape(lambda k: grid.loop.init(k, (size, size)), jax.random.key(0))))
  rows = []
  for s in fits:
    group = {0: None, -1: s}.get(group_flag, group_flag)
    eff_group = group or (1 if on_cpu else s)
    keys = jax.random.split(jax.random.key(1), s)
    run = lambda: jax.block_until_ready(grid(keys, target, max_batch=s, seeds_per_group=group).output)
    t0 = time.perf_counter()
    run()
    first = time.perf_counter() - t0
    estimate = memory.estimate_bytes(grid.loop, (size, size), channels=3, seeds=eff_group) \
        + 2 * (s - eff_group) * state_bytes
    peak = None
    if on_cpu and os.path.exists("/proc/self/clear_refs"):
      with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
      before = _status("VmRSS")
    t0 = time.perf_counter()
    run()
    t = time.perf_counter() - t0
    if on_cpu and os.path.exists("/proc/self/clear_refs"):
      peak = _status("VmHWM") - before
    elif not on_cpu:
      stats = jax.devices()[0].memory_stats() or {}
      peak = stats.get("peak_bytes_in_use")
    row = dict(size=size, fits=s, seeds_per_group=eff_group, steps=steps, precision=precision,
               conv_impl=conv_lib.resolve_impl(conv_impl), first_call_s=first, call_s=t,
               fits_steps_per_s=s * steps / t, ms_per_fit_step=1e3 * t / (s * steps),
               estimate_bytes=int(estimate), peak_bytes=peak, estimate_over_peak=estimate / peak if peak else None)
    rows.append(row)
    print(f"{size}² S={s} (group {eff_group}): {t:.2f} s/call, {row['fits_steps_per_s']:.2f} fits·steps/s, "
          f"{row['ms_per_fit_step']:.1f} ms per fit-step; memory estimate {estimate / 2**20:.0f} MiB, measured peak "
          + (f"{peak / 2**20:.0f} MiB (estimate/peak {estimate / peak:.2f})" if peak else "n/a"), flush=True)
  return rows


def main():
  fits = [int(s) for s in FLAGS.fits]
  rows = bench(FLAGS.size, fits, FLAGS.num_steps, FLAGS.seeds_per_group, FLAGS.model, precision=FLAGS.precision,
               conv_impl=FLAGS.conv_impl)
  print("\n| size | S | fits vmapped together | s/call | fits·steps/s | ms per fit-step | estimate MiB | peak MiB |")
  print("|---|---|---|---|---|---|---|---|")
  for r in rows:
    print(f"| {r['size']}² | {r['fits']} | {r['seeds_per_group']} | {r['call_s']:.2f} | {r['fits_steps_per_s']:.2f} | "
          f"{r['ms_per_fit_step']:.1f} | {r['estimate_bytes'] / 2**20:.0f} | "
          + (f"{r['peak_bytes'] / 2**20:.0f} |" if r["peak_bytes"] else "n/a |"))
  os.makedirs(os.path.dirname(os.path.abspath(FLAGS.json_out)), exist_ok=True)
  with open(FLAGS.json_out, "w") as f:
    json.dump(dict(rows=rows, device=str(jax.devices()[0].device_kind), backend=jax.default_backend()), f, indent=1)


if __name__ == "__main__":
  cli.run(main)
