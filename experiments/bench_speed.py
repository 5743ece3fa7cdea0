r"""Speed benchmark: seconds per Adam step inside the compiled scan, compile time, memory.

Times dipjax's default network (2,217,831 parameters) at several image sizes with
one seed, and at a few sizes with S vmapped seeds, for each precision (``float32``,
``bfloat16``) and conv path (``matmul``, ``rows``, ``xla``, ``auto``) asked for; in the
same run it times a PyTorch eager implementation of the same architecture
(experiments/torch_skip.py: same parameter count, image and steps) in fp32 and with
``torch.autocast(..., torch.bfloat16)``, and prints the ratios. Every variant of a size
is compiled first and then timed in interleaved repetitions (fastest reported), so a
busy machine slows them alike.

    python -m experiments.bench_speed                       # CPU defaults (float32, auto)
    python -m experiments.bench_speed --sizes=64,128 --seed_sizes= --precisions=float32,bfloat16  # f32 vs bf16
    python -m experiments.bench_speed --suite=gpu           # the GPU table: 256², 512²; S = 1, 4, 16; every path
    python -m experiments.bench_speed --suite=smoke         # the same table at 32² with the tiny net (seconds)

Per-step time is measured on ``FitLoop.run`` (the scan alone, after a warm-up call);
compile time is ``jax.jit(fit).lower(...).compile()`` for the whole fit; fits·steps/s
is S / (s/step); XLA peak = temp + argument + output buffers of that program
(``compiled.memory_analysis()``). A variant that fails (e.g. out of device memory) is
recorded with its error and the run goes on. Flags given explicitly override a suite's.
"""

from __future__ import annotations

import itertools
import json
import os
import platform
import resource
import time

from absl import flags

import jax

import dipjax
from dipjax import conv as conv_lib
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
flags.DEFINE_bool("torch_bf16", True, "With --torch, also time PyTorch under torch.autocast(bfloat16).")
flags.DEFINE_list("precisions", ["float32"], f"dipjax precisions timed ({', '.join(conv_lib.PRECISIONS)}).")
flags.DEFINE_list("conv_impls", ["auto"], f"dipjax conv paths timed ({', '.join(conv_lib.CONV_IMPLS)}).")
flags.DEFINE_enum("suite", None, ["gpu", "smoke"], "A preset of the flags above: 'gpu' = 256² and 512², S = 1, 4, "
                  "16, both precisions, conv paths matmul, rows, xla; 'smoke' = the same at 32² with the tiny net, "
                  "2 steps, 1 repeat. Flags given explicitly win.")
flags.DEFINE_bool("time_compile", True, "Also compile the whole fit once per variant to time it (and read its "
                  "XLA peak memory).")
flags.DEFINE_string("out", "runs/bench_speed.json", "Where to write the JSON results.")
flags.DEFINE_string("model", "default", "Network preset (dipjax.PRESETS); the PyTorch comparison needs a SkipNet "
                    "preset with 3x3 convs and stride downsampling (default, tiny).")

REG_NOISE = 1.0 / 30.0  # the denoising setting: perturbation, EMA and guard all on
LR = 0.01
# The GPU suite times XLA's default f32 (TF32 on Ampere/Hopper) and bf16; add --precisions=float32_highest for full f32.
SUITES = {
    "gpu": dict(sizes=[], seed_sizes=["256", "512"], seeds=["1", "4", "16"], precisions=["float32", "bfloat16"],
                conv_impls=["matmul", "rows", "xla"]),
    "smoke": dict(sizes=[], seed_sizes=["32"], seeds=["1", "2"], precisions=["float32", "bfloat16"],
                  conv_impls=["matmul", "rows", "xla"], steps=2, repeats=1, model="tiny"),
}


def _target(size: int) -> jax.Array:
  return jax.random.uniform(jax.random.key(0), (size, size, 3))


class DipjaxTimer:
  """One compiled configuration (image size x seeds x precision x conv path): call once per timed repetition.

  Compile time is that of ``jax.jit(fit).lower(...).compile()`` for the whole fit;
  the timed program is ``FitLoop.run`` over ``steps`` steps (the scan alone), run
  once untimed first. S = 1 is the plain single-seed program (no ``vmap``).
  """

  def __init__(self, size: int, num_seeds: int, steps: int, seeds_per_group: int = 0, model: str = "default",
               precision: str = "float32", conv_impl: str = "auto", time_compile: bool = True):
    net = dipjax.get_model(model, out_channels=3, precision=precision, conv_impl=conv_impl)
    self.precision, self.conv_impl = precision, conv_impl
    target = _target(size)
    keys = jax.random.split(jax.random.key(1), num_seeds)
    fit = dipjax.make_fit(net, num_steps=steps, reg_noise_std=REG_NOISE, learning_rate=LR, guard_every=1)
    group = min(seeds_per_group or num_seeds, num_seeds)
    whole = jax.jit(lambda k: fit(k[0], target)) if num_seeds == 1 else jax.jit(
        lambda k: dipjax.fit_seeds(fit, k, target, seeds_per_group=group))
    self.compile_s = self.peak_bytes = None
    if time_compile:
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
    return dict(size=self.size, seeds=self.seeds, seeds_per_group=self.group, precision=self.precision,
                conv_impl=self.conv_impl, conv_impl_ran=conv_lib.resolve_impl(self.conv_impl), s_per_step=per_step,
                s_per_step_per_seed=per_step / self.seeds, fits_steps_per_s=self.seeds / per_step,
                compile_s=self.compile_s, xla_peak_bytes=self.peak_bytes)


class TorchTimer:
  """PyTorch eager reference (fp32, or bf16 autocast): call it once per repetition; ``result()`` gives the fastest.

  The network is :class:`experiments.torch_skip.TorchSkip` built from the dipjax
  preset's widths; its parameter count must equal dipjax's. Runs on CUDA when
  PyTorch sees a GPU, else on the CPU.
  """

  def __init__(self, size: int, steps: int, model: str = "default", bf16: bool = False):
    import torch
    from experiments.torch_skip import TorchSkip, count_params
    net = dipjax.get_model(model, out_channels=3)
    expected = dipjax.count_params(jax.eval_shape(net.init, jax.random.key(0),
                                                  jax.ShapeDtypeStruct((size, size, 32), jax.numpy.float32))["params"])
    torch.manual_seed(0)
    self.torch, self.size, self.steps, self.bf16 = torch, size, steps, bf16
    self.device = "cuda" if torch.cuda.is_available() else "cpu"
    self.net = TorchSkip(nd=net.channels_down, nu=net.channels_up, ns=net.channels_skip,
                         upsample=net.upsample).to(self.device)
    if count_params(self.net) != expected:
      raise ValueError(f"--model={model}: the PyTorch network has {count_params(self.net)} parameters, dipjax's "
                       f"{expected}; compare with --model=default or pass --torch=false.")
    self.z = torch.rand(1, 32, size, size, device=self.device) * 0.1
    self.target = torch.rand(1, 3, size, size, device=self.device)
    self.opt = torch.optim.Adam(self.net.parameters(), lr=LR)
    self.best = float("inf")
    for _ in range(2):
      self._step()

  def _step(self):
    torch = self.torch
    self.opt.zero_grad()
    with torch.autocast(self.device, dtype=torch.bfloat16, enabled=self.bf16):
      out = self.net(self.z + torch.randn_like(self.z) * REG_NOISE)
    loss = ((out.float() - self.target) ** 2).mean()
    loss.backward()
    self.opt.step()

  def _sync(self):
    if self.device == "cuda":
      self.torch.cuda.synchronize()

  def __call__(self):
    self._sync()
    t0 = time.perf_counter()
    for _ in range(self.steps):
      self._step()
    self._sync()
    self.best = min(self.best, time.perf_counter() - t0)

  def result(self) -> dict:
    return dict(size=self.size, s_per_step=self.best / self.steps, bf16_autocast=self.bf16,
                torch_version=self.torch.__version__, threads=self.torch.get_num_threads(), device=self.device)


def machine() -> dict:
  dev = jax.devices()[0]
  return dict(platform=platform.platform(), processor=platform.processor(), cpu_model=_cpu_model(),
              cpu_count=os.cpu_count(), jax=jax.__version__, backend=jax.default_backend(),
              device=str(dev.device_kind))


def _cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
  except OSError:
    return ""


def apply_suite() -> None:
  """Sets the flags of ``--suite`` that were not given on the command line."""
  for name, value in SUITES.get(FLAGS.suite, {}).items():
    if not FLAGS[name].present:
      FLAGS[name].value = value


def torch_timers(size: int) -> list:
  """The PyTorch timers of one size (fp32, and bf16 autocast with --torch_bf16); [] when torch is missing."""
  if not FLAGS.torch:
    return []
  try:
    import torch  # noqa: F401
  except ImportError:
    print("torch is not installed (pip install -e '.[torch]'): skipping the PyTorch comparison", flush=True)
    return []
  kinds = [False, True] if FLAGS.torch_bf16 else [False]
  return [TorchTimer(size, FLAGS.steps, model=FLAGS.model, bf16=bf16) for bf16 in kinds]


def dipjax_timers(size: int, seed_counts: list, group: int) -> list:
  """One timer per (S, precision, conv path); a variant that fails to build is kept as a dict with its error."""
  timers = []
  for s, precision, impl in itertools.product(seed_counts, FLAGS.precisions, FLAGS.conv_impls):
    try:
      timers.append(DipjaxTimer(size, s, FLAGS.steps, group, model=FLAGS.model, precision=precision, conv_impl=impl,
                                time_compile=FLAGS.time_compile))
    except ValueError:
      raise
    except Exception as e:  # e.g. RESOURCE_EXHAUSTED on a device: record it, go on with the other variants
      timers.append(dict(size=size, seeds=s, precision=precision, conv_impl=impl, error=str(e).splitlines()[0][:300]))
      print(json.dumps(timers[-1]), flush=True)
  return timers


def measure(size: int, seed_counts: list, group: int, with_torch: bool) -> tuple[list, list]:
  """Interleaved timings of every variant of one size; returns (dipjax rows, torch rows)."""
  ours = dipjax_timers(size, seed_counts, group)
  theirs = torch_timers(size) if with_torch else []
  live = [t for t in ours if not isinstance(t, dict)] + theirs
  for _ in range(FLAGS.repeats):  # interleaved, so all see the same machine conditions
    for t in live:
      t()
  torch_rows = [t.result() for t in theirs]
  rows = []
  for t in ours:
    r = t if isinstance(t, dict) else t.result()
    if "error" not in r:
      base = next((o.result() for o in ours if not isinstance(o, dict) and o.seeds == 1 and
                   (o.precision, o.conv_impl) == (r["precision"], r["conv_impl"])), None)
      if base is not None and r["seeds"] > 1:
        r["per_seed_vs_single"] = r["s_per_step_per_seed"] / base["s_per_step_per_seed"]
      for tr in torch_rows if r["seeds"] == 1 else []:
        suffix = "_bf16" if tr["bf16_autocast"] else ""
        r[f"torch{suffix}_s_per_step"] = tr["s_per_step"]
        r[f"ratio_vs_torch{suffix}"] = r["s_per_step"] / tr["s_per_step"]
    rows.append(r)
  return rows, torch_rows


def table(rows: list) -> str:
  """The markdown table of the dipjax rows."""
  lines = ["| size | seeds (per group) | precision | conv | s/step | s/step/seed | fits·steps/s | per-seed vs S=1 | "
           "PyTorch fp32 s/step | dipjax/PyTorch fp32 | PyTorch bf16 s/step | dipjax/PyTorch bf16 | compile s | "
           "XLA peak MB |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    fmt = lambda k, f: (f % r[k]) if r.get(k) is not None else "–"
    conv = r["conv_impl"] + (f" ({r['conv_impl_ran']})" if r.get("conv_impl_ran", r["conv_impl"]) != r["conv_impl"]
                             else "")
    if "error" in r:
      lines.append(f"| {r['size']}² | {r['seeds']} | {r['precision']} | {conv} | error: {r['error'][:80]} |"
                   + " – |" * 9)
      continue
    peak = "%.0f" % (r["xla_peak_bytes"] / 2**20) if r.get("xla_peak_bytes") else "–"
    lines.append(f"| {r['size']}² | {r['seeds']} ({r['seeds_per_group']}) | {r['precision']} | {conv} | "
                 f"{r['s_per_step']:.4f} | {r['s_per_step_per_seed']:.4f} | {r['fits_steps_per_s']:.1f} | "
                 f"{fmt('per_seed_vs_single', '%.2f')} | {fmt('torch_s_per_step', '%.4f')} | "
                 f"{fmt('ratio_vs_torch', '%.2f')} | {fmt('torch_bf16_s_per_step', '%.4f')} | "
                 f"{fmt('ratio_vs_torch_bf16', '%.2f')} | {fmt('compile_s', '%.1f')} | {peak} |")
  return "\n".join(lines)


def main():
  apply_suite()
  for p in FLAGS.precisions:
    conv_lib.check_precision(p)
  for impl in FLAGS.conv_impls:
    conv_lib.resolve_impl(impl)
  sizes = [int(s) for s in FLAGS.sizes if s]
  seed_sizes = [int(s) for s in FLAGS.seed_sizes if s]
  seeds = [int(s) for s in FLAGS.seeds]
  results = dict(machine=machine(), steps=FLAGS.steps, precisions=FLAGS.precisions, conv_impls=FLAGS.conv_impls,
                 suite=FLAGS.suite, single=[], seeds=[], torch=[])
  print(json.dumps(results["machine"]), flush=True)
  total, t_start = len(sizes) + len(seed_sizes), time.perf_counter()

  def progress(done):
    elapsed = time.perf_counter() - t_start
    eta = dipjax.runner.format_seconds(elapsed * (total - done) / max(done, 1))
    cli.say(f"[{done}/{total} sizes measured] {dipjax.runner.format_seconds(elapsed)} elapsed | ETA {eta}")

  for n, size in enumerate(sizes):
    rows, torch_rows = measure(size, [1], 1, with_torch=True)
    results["single"] += rows
    results["torch"] += torch_rows
    for r in rows:
      print(json.dumps(r), flush=True)
    progress(n + 1)
  for n, size in enumerate(seed_sizes):  # PyTorch here only for sizes the single-seed section did not time
    rows, torch_rows = measure(size, sorted(set(seeds) | {1}), FLAGS.seeds_per_group, with_torch=size not in sizes)
    results["torch"] += torch_rows
    for r in rows:
      if r["seeds"] in seeds:
        results["seeds"].append(r)
        print(json.dumps(r), flush=True)
    progress(len(sizes) + n + 1)
  results["max_rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
  results["table"] = table(results["single"] + results["seeds"])
  print(results["table"])
  os.makedirs(os.path.dirname(FLAGS.out) or ".", exist_ok=True)
  tmp = FLAGS.out + ".tmp"
  with open(tmp, "w") as f:
    json.dump(results, f, indent=1)
  os.replace(tmp, FLAGS.out)
  print(f"wrote {FLAGS.out}")


if __name__ == "__main__":
  cli.run(main)
