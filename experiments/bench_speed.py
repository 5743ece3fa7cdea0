r"""Speed benchmark: seconds per Adam step inside the compiled scan, compile time, memory.

Times dipjax's default network (2,217,831 parameters) at several image sizes with
one seed, and at a few sizes with S vmapped seeds; in the same run it times a
PyTorch eager implementation of the same architecture (experiments/torch_skip.py:
same parameter count, image and steps) and prints the ratios.

    python -m experiments.bench_speed                       # CPU defaults
    python -m experiments.bench_speed --sizes=256,512 --seed_sizes=256 --torch=false  # on a GPU

Per-step time is measured on ``FitLoop.run`` (the scan alone, after a warm-up call);
compile time is ``jax.jit(fit).lower(...).compile()`` for the whole fit.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time

from absl import flags

import jax

import dipjax
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["64", "128", "256"], "Square image sizes timed with one seed.")
flags.DEFINE_list("seed_sizes", ["64", "128"], "Image sizes timed with several vmapped seeds (empty: none).")
flags.DEFINE_list("seeds", ["1", "2", "4", "8"], "Numbers of vmapped seeds.")
flags.DEFINE_integer("seeds_per_group", 0, "Seeds vmapped together (0: all S, pure vmap); groups run "
                     "one after another with lax.map in the same program (dipjax.fit_seeds).")
flags.DEFINE_integer("steps", 10, "Timed Adam steps per measurement.")
flags.DEFINE_integer("repeats", 3, "Timed repetitions (dipjax and PyTorch interleaved); the fastest is reported.")
flags.DEFINE_bool("torch", True, "Also time the PyTorch eager implementation (needs torch).")
flags.DEFINE_string("out", "runs/bench_speed.json", "Where to write the JSON results.")
flags.DEFINE_string("model", "default", "Network preset (dipjax.PRESETS); the PyTorch comparison needs 'default'.")

REG_NOISE = 1.0 / 30.0  # the denoising setting: perturbation, EMA and guard all on
LR = 0.01


def _target(size: int) -> jax.Array:
  return jax.random.uniform(jax.random.key(0), (size, size, 3))


class DipjaxTimer:
  """One compiled configuration (image size x seeds): call once per timed repetition.

  Compile time is that of ``jax.jit(fit).lower(...).compile()`` for the whole fit;
  the timed program is ``FitLoop.run`` over ``steps`` steps (the scan alone), run
  once untimed first. S = 1 is the plain single-seed program (no ``vmap``).
  """

  def __init__(self, size: int, num_seeds: int, steps: int, seeds_per_group: int = 0, model: str = "default"):
    net = dipjax.get_model(model, out_channels=3)
    target = _target(size)
    keys = jax.random.split(jax.random.key(1), num_seeds)
    fit = dipjax.make_fit(net, num_steps=steps, reg_noise_std=REG_NOISE, learning_rate=LR, guard_every=1)
    group = min(seeds_per_group or num_seeds, num_seeds)
    whole = jax.jit(lambda k: fit(k[0], target)) if num_seeds == 1 else jax.jit(
        lambda k: dipjax.fit_seeds(fit, k, target, seeds_per_group=group))
    t0 = time.perf_counter()
    compiled_fit = whole.lower(keys).compile()
    self.compile_s = time.perf_counter() - t0
    mem = compiled_fit.memory_analysis()
    self.peak_bytes = None if mem is None else int(
        mem.temp_size_in_bytes + mem.argument_size_in_bytes + mem.output_size_in_bytes)
    del compiled_fit
    loop = fit.loop
    init_one = lambda k: loop.init(k, (size, size))
    run_one = lambda s: loop.run(s, target, num_steps=steps)[:2]
    if num_seeds == 1:
      self.state = jax.jit(init_one)(keys[0])
      self.run = jax.jit(run_one)
    else:
      self.state = jax.jit(jax.vmap(init_one))(keys)
      def run_groups(states):
        split = lambda a: a.reshape((num_seeds // group, group) + a.shape[1:])
        merge = lambda a: a.reshape((num_seeds,) + a.shape[2:])
        out = jax.lax.map(jax.vmap(run_one), jax.tree_util.tree_map(split, states))
        return jax.tree_util.tree_map(merge, out)

      self.run = jax.jit(jax.vmap(run_one)) if group == num_seeds else jax.jit(run_groups)
    self.state = jax.block_until_ready(self.run(self.state))[0]  # compile + warm-up
    self.size, self.seeds, self.steps, self.best = size, num_seeds, steps, float("inf")
    self.group = group if num_seeds > 1 else 1

  def __call__(self):
    t0 = time.perf_counter()
    self.state = jax.block_until_ready(self.run(self.state))[0]
    self.best = min(self.best, time.perf_counter() - t0)

  def result(self) -> dict:
    per_step = self.best / self.steps
    return dict(size=self.size, seeds=self.seeds, seeds_per_group=self.group, s_per_step=per_step,
                s_per_step_per_seed=per_step / self.seeds,
                compile_s=self.compile_s, xla_peak_bytes=self.peak_bytes)


class TorchTimer:
  """PyTorch eager reference: call it once per repetition; ``result()`` gives the fastest."""

  def __init__(self, size: int, steps: int):
    import torch
    from experiments.torch_skip import TorchSkip, count_params
    torch.manual_seed(0)
    self.torch, self.size, self.steps = torch, size, steps
    self.net = TorchSkip()
    assert count_params(self.net) == 2_217_831
    self.z = torch.rand(1, 32, size, size) * 0.1
    self.target = torch.rand(1, 3, size, size)
    self.opt = torch.optim.Adam(self.net.parameters(), lr=LR)
    self.best = float("inf")
    for _ in range(2):
      self._step()

  def _step(self):
    self.opt.zero_grad()
    out = self.net(self.z + self.torch.randn_like(self.z) * REG_NOISE)
    loss = ((out - self.target) ** 2).mean()
    loss.backward()
    self.opt.step()

  def __call__(self):
    t0 = time.perf_counter()
    for _ in range(self.steps):
      self._step()
    self.best = min(self.best, time.perf_counter() - t0)

  def result(self) -> dict:
    return dict(size=self.size, s_per_step=self.best / self.steps, torch_version=self.torch.__version__,
                threads=self.torch.get_num_threads())


def machine() -> dict:
  dev = jax.devices()[0]
  return dict(platform=platform.platform(), processor=platform.processor(), cpu_count=os.cpu_count(),
              jax=jax.__version__, backend=jax.default_backend(), device=str(dev.device_kind))


def main():
  sizes = [int(s) for s in FLAGS.sizes]
  seed_sizes = [int(s) for s in FLAGS.seed_sizes if s]
  seeds = [int(s) for s in FLAGS.seeds]
  results = dict(machine=machine(), steps=FLAGS.steps, single=[], seeds=[], torch=[])
  print(json.dumps(results["machine"]), flush=True)
  total, t_start = len(sizes) + len(seed_sizes), time.perf_counter()

  def progress(done):
    elapsed = time.perf_counter() - t_start
    eta = dipjax.runner.format_seconds(elapsed * (total - done) / max(done, 1))
    cli.say(f"[{done}/{total} sizes measured] {dipjax.runner.format_seconds(elapsed)} elapsed | ETA {eta}")

  for size in sizes:
    timer = None
    if FLAGS.torch and FLAGS.model != "default":
      raise ValueError("--torch compares the default network only; pass --model=default or --torch=false.")
    if FLAGS.torch:
      try:
        timer = TorchTimer(size, FLAGS.steps)
      except ImportError:
        print("torch is not installed (pip install -e '.[torch]'): skipping the PyTorch comparison")
    ours = DipjaxTimer(size, 1, FLAGS.steps, model=FLAGS.model)
    for _ in range(FLAGS.repeats):  # interleaved, so both see the same machine conditions
      ours()
      if timer is not None:
        timer()
    r = ours.result()
    results["single"].append(r)
    if timer is not None:
      t = timer.result()
      results["torch"].append(t)
      r["torch_s_per_step"] = t["s_per_step"]
      r["ratio_vs_torch"] = r["s_per_step"] / t["s_per_step"]
    print(json.dumps(r))
    progress(len(results["single"]))
  for size in seed_sizes:
    timers = [DipjaxTimer(size, s, FLAGS.steps, FLAGS.seeds_per_group, model=FLAGS.model)
              for s in sorted(set(seeds) | {1})]
    for _ in range(FLAGS.repeats):  # interleaved across S
      for t in timers:
        t()
    base = timers[0].result()["s_per_step_per_seed"]
    for t in timers:
      if t.seeds not in seeds:
        continue
      r = t.result()
      r["per_seed_vs_single"] = r["s_per_step_per_seed"] / base
      results["seeds"].append(r)
      print(json.dumps(r))
    del timers
    progress(len(sizes) + seed_sizes.index(size) + 1)
  results["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

  lines = ["| size | seeds (per group) | s/step | s/step/seed | per-seed vs S=1 | PyTorch s/step | dipjax/PyTorch | compile s | XLA peak MB |",
           "|---|---|---|---|---|---|---|---|---|"]
  for r in results["single"] + results["seeds"]:
    fmt = lambda k, f: (f % r[k]) if r.get(k) is not None else "–"
    peak = "%.0f" % (r["xla_peak_bytes"] / 2**20) if r.get("xla_peak_bytes") else "–"
    lines.append(f"| {r['size']}² | {r['seeds']} ({r['seeds_per_group']}) | {r['s_per_step']:.4f} | {r['s_per_step_per_seed']:.4f} | "
                 f"{fmt('per_seed_vs_single', '%.2f')} | {fmt('torch_s_per_step', '%.4f')} | "
                 f"{fmt('ratio_vs_torch', '%.2f')} | {r['compile_s']:.1f} | {peak} |")
  table = "\n".join(lines)
  print(table)
  results["table"] = table
  os.makedirs(os.path.dirname(FLAGS.out) or ".", exist_ok=True)
  tmp = FLAGS.out + ".tmp"
  with open(tmp, "w") as f:
    json.dump(results, f, indent=1)
  os.replace(tmp, FLAGS.out)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
