r"""What the paper-table reproductions and the sweep share: batched fits of many problems, scoring, tables.

A reproduction script (``reproduce_denoising``, ``reproduce_super_resolution``,
``reproduce_inpainting``) turns a folder laid out like ``../shared/data/benchmarks``
(``--data_dir``) into a list of :class:`Item` — the task's :class:`dipjax.tasks.Problem`
(observation, operator, ground truth, mask) and the published outputs of the paper
and its baselines for the same image and crop — and calls :func:`run_reproduction`:

1. :func:`dipjax.batch.fit_problems` fits every image × seed (× hyper-parameter
   value): the images are grouped by size, and each group is **one compiled
   program** (``vmap`` over the flat grid of fits, in calls of ``--max_batch`` fits
   and chunks of ``--chunk`` steps with a progress line after each);
2. :func:`score_item` scores each image with the task's protocol (RGB / gray PSNR on
   all pixels, or the paper's Y-channel super-resolution PSNR in the published box):
   every seed's final output and EMA (mean ± sd over seeds), the ensembles (mean of
   the first ``k`` seeds' outputs for ``k = 2`` and ``S``; and averaged over disjoint
   groups of ``k`` for ``k = 1, 2, 4, 8, …`` — the ensemble-vs-S analysis), the best
   step of the per-step PSNR curve (an oracle), the published images, and our
   classical baselines (``--baselines``);
3. writes ``table.md`` (per image and mean, the paper's numbers beside ours, the crop,
   steps, seeds, device and wall time), ``results.json`` (everything, with per-seed
   values and per-step curves), ``curves/<image>.png`` (PSNR vs step) and
   ``ensemble.png`` (PSNR vs number of seeds averaged), plus ``images/`` (seed-0
   output, EMA and the ensemble of every image).

``--scale N`` fits centre ``N x N`` crops (the published images are cropped the same
way and scored on the same pixels) so a run finishes on a CPU; the table then says
it is not the paper's protocol. The benchmark images are never part of the project.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
import time
import warnings
from typing import Callable, Optional, Sequence

from absl import flags

import jax
import jax.numpy as jnp
import numpy as np

import dipjax
from dipjax import baselines as baselines_lib, batch, image_io, presets as presets_lib, report, runner, tasks
from experiments import cli, flag_groups

FLAGS = flags.FLAGS


@dataclasses.dataclass
class Item:
  """One benchmark image: the problem to fit and what the paper published for it (same crop)."""

  name: str
  problem: tasks.Problem
  published: dict  # method -> (H, W, C) image in [0, 1]
  box: Optional[tuple[int, int, int, int]] = None  # super-resolution: inclusive evaluation box (r0, r1, c0, c1)


def list_names(folder: str, suffix: str, wanted: Sequence[str]) -> list[str]:
  """The image names ``<name><suffix>`` in ``folder`` (all of them, or ``wanted``, which must exist)."""
  if not os.path.isdir(folder):
    raise ValueError(f"{folder!r} does not exist; point --data_dir at a folder laid out like "
                     "../shared/data/benchmarks.")
  names = sorted(f[:-len(suffix)] for f in os.listdir(folder) if f.endswith(suffix))
  if not names:
    raise ValueError(f"no *{suffix} files in {folder!r}; point --data_dir at a folder laid out like "
                     "../shared/data/benchmarks.")
  missing = [n for n in wanted if n not in names]
  if missing:
    raise ValueError(f"--images {missing} not in {folder!r} (it has {names}).")
  return list(wanted) or names


def load(folder: str, name: str) -> np.ndarray:
  path = os.path.join(folder, name)
  if not os.path.exists(path):
    raise ValueError(f"{path!r} is missing; the benchmark folder is incomplete.")
  with warnings.catch_warnings():  # the published SR outputs are RGBA with alpha 255: dropping it loses nothing
    warnings.filterwarnings("ignore", message=".*alpha channel.*")
    return image_io.load_image(path)


# ---------------------------------------------------------------------------------------------------------------------
# Scoring
# ---------------------------------------------------------------------------------------------------------------------


def load_denoising_crop(data_dir: str, name: str, *, crop: int, noise=None, key=None) -> tasks.Problem:
  """One image of ``denoising_cset9``: its published σ = 25 noisy crop, or ``noise`` drawn from ``key`` on the
  ground-truth crop (``noise``: a :class:`dipjax.tasks.SyntheticNoise`)."""
  folder = os.path.join(data_dir, "denoising_cset9")
  clean = tasks.centre_crop(load(folder, f"{name}_GT.png"), crop)
  if noise is not None:
    return tasks.denoise(key=key, clean=clean, noise=noise)
  return tasks.denoise(noisy=tasks.centre_crop(load(folder, f"{name}_noisy.png"), crop), clean=clean)


def run_or_reuse(folder: str, key: jax.Array, problem: tasks.Problem, config, *, reuse: bool,
                 **restore_kwargs) -> dict:
  """Restores ``problem`` and writes the run into ``folder``; its ``metrics.json`` dict (with ``wall_s``).

  With ``reuse`` a run already written there (``metrics.json`` present) is read instead
  of fitted again: long tables can be rebuilt or extended image by image.
  ``restore_kwargs``: :func:`dipjax.restore` options (``seeds``, ``stop``, ``chunk``, ...).
  """
  path = os.path.join(folder, "metrics.json")
  if reuse and os.path.exists(path):
    with open(path) as f:
      metrics = json.load(f)
    metrics.setdefault("wall_s", metrics["compile_s"] + metrics["run_s"])  # runs written without it
    return metrics
  t0 = time.perf_counter()
  result = tasks.restore_problem(key, problem, config, **restore_kwargs)
  return report.write_run(folder, problem, result, config, wall_s=time.perf_counter() - t0)


def write_table(out_dir: str, table: str, result: dict, log: Callable[[str], None] = print) -> None:
  """Prints a table and writes it as ``table.md`` with its numbers as ``table.json``."""
  log(table)
  image_io.save_text(os.path.join(out_dir, "table.md"), table)
  image_io.save_json(os.path.join(out_dir, "table.json"), result)


def ensemble_sizes(seeds: int) -> list[int]:
  """1, 2, 4, 8, ... up to ``seeds`` (and ``seeds`` itself)."""
  ks = [k for k in (2 ** i for i in range(12)) if k <= seeds]
  return ks + ([seeds] if seeds not in ks else [])


def score_item(item: Item, fitted: batch.Fitted, score: Callable[..., float], *, v: int = 0) -> dict:
  """Every number of one image's row (hyper-parameter combination ``v``); ``score(image, clean, box) -> dB``."""
  clean = item.problem.clean
  score = functools.partial(_call_score, score, box=item.box)
  outs, emas = fitted.outputs[:, v], fitted.emas[:, v]
  seeds = outs.shape[0]
  single = [score(o, clean) for o in outs]
  ema = [score(e, clean) for e in emas]
  row = dict(single=single, single_mean=float(np.mean(single)), single_sd=float(np.std(single, ddof=1))
             if seeds > 1 else 0.0, ema=ema, ema_mean=float(np.mean(ema)),
             ensemble={}, ensemble_ema={}, ensemble_vs_k={}, ensemble_ema_vs_k={})
  for k in sorted({2, seeds} & set(range(2, seeds + 1))):
    row["ensemble"][k] = score(outs[:k].mean(axis=0), clean)
    row["ensemble_ema"][k] = score(emas[:k].mean(axis=0), clean)
  for k in ensemble_sizes(seeds):  # mean over the seeds // k disjoint groups of k seeds
    groups = [slice(g * k, (g + 1) * k) for g in range(seeds // k)]
    row["ensemble_vs_k"][k] = float(np.mean([score(outs[g].mean(axis=0), clean) for g in groups]))
    row["ensemble_ema_vs_k"][k] = float(np.mean([score(emas[g].mean(axis=0), clean) for g in groups]))
  curve = np.asarray(fitted.curves.psnr_clean)[:, v]  # (S, T): all-pixel PSNR of the per-step output
  row["best_step"] = [int(np.nanargmax(c)) + 1 for c in curve]
  row["best_psnr_curve"] = [float(np.nanmax(c)) for c in curve]
  row["published"] = {m: score(im, clean) for m, im in item.published.items()}
  row["input"] = score(item.problem.input_view, clean) if item.problem.input_view.shape == clean.shape else None
  row["wall_s"] = fitted.wall_s
  return row


def _call_score(score, image, clean, *, box):
  return score(image, clean, box)


def psnr_all(image, clean, box=None) -> float:
  """PSNR over all pixels and channels (denoising, inpainting); ``box`` is not used."""
  del box
  return float(dipjax.psnr(jnp.asarray(image, jnp.float32), jnp.asarray(clean, jnp.float32)))


# ---------------------------------------------------------------------------------------------------------------------
# The whole reproduction
# ---------------------------------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Spec:
  """What a reproduction script says about its table."""

  title: str  # e.g. "Denoising, σ = 25, 9 colour images"
  protocol: str  # how PSNR is computed
  paper: dict  # label -> published mean from the paper (dB)
  published_labels: dict  # method key of Item.published -> column label
  score: Callable[..., float] = psnr_all  # score(image, clean, box) -> dB
  curve_note: str = ""  # what the curves' PSNR is, if not the table's protocol


def run_reproduction(spec: Spec, preset: presets_lib.TaskPreset, items: Sequence[Item], *, seeds: int, seed: int,
                     scale: int, out_dir: str, baselines: bool, max_batch: int = 0, chunk: int = 0,
                     preset_name: str = "", log: Callable[[str], None] = print) -> dict:
  """Fits, scores and writes ``table.md``, ``results.json``, ``curves/``, ``ensemble.png`` and ``images/``."""
  t_start = time.perf_counter()
  image_io.ensure_writable(out_dir)
  log(f"{spec.title}: preset {preset_name!r}: {preset.describe()}")
  log(f"{len(items)} image(s), {seeds} seed(s), " + (f"centre {scale}x{scale} crops (CPU scale)" if scale
                                                     else "full size"))
  if not scale and jax.default_backend() == "cpu":
    pixels = sum(int(np.prod(it.problem.image_size)) for it in items)
    hours = pixels / (128 * 128) * 0.13 * preset.steps * seeds / 3600  # 0.13 s per step at 128² (BUILD_NOTES §3)
    if hours > 0.5:
      log(f"note: full-size images on a CPU: about {hours:.0f} h on 2 cores; --scale=64 runs the protocol on crops")
  fitted = batch.fit_problems(preset, [it.problem for it in items], key=tasks.keys_for_seed(seed)[1], seeds=seeds,
                              max_batch=max_batch, chunk=chunk or runner.auto_chunk(), log=log)
  rows = {}
  for item, fit in zip(items, fitted):
    row = score_item(item, fit, spec.score)
    if baselines:
      row["baselines"] = {}
      for name, fn in item.problem.baselines.items():
        t0 = time.perf_counter()
        try:
          restored = baselines_lib.call(name, fn, sigma=item.problem.noise_sigma)
        except baselines_lib.MissingDependency as e:
          log(f"{item.name}: baseline {name} skipped: {e}")
          continue
        row["baselines"][name] = spec.score(np.asarray(restored, np.float32), item.problem.clean, item.box)
        row.setdefault("baseline_s", {})[name] = time.perf_counter() - t0
    row["size"] = list(item.problem.image_size)
    rows[item.name] = row
    write_item_files(out_dir, item, fit, spec, preset)
    log(f"{item.name}: single {row['single_mean']:.2f} ± {row['single_sd']:.2f}, EMA {row['ema_mean']:.2f}"
        + "".join(f", ensemble of {k} {p:.2f}" for k, p in row["ensemble"].items())
        + "".join(f", {spec.published_labels.get(m, m)} {p:.2f}" for m, p in row["published"].items()))
  result = dict(title=spec.title, protocol=spec.protocol, paper=spec.paper, preset_name=preset_name,
                preset=preset.to_dict(), seeds=seeds, seed=seed, scale=scale, rows=rows, mean=mean_row(rows),
                device=str(jax.devices()[0].device_kind), backend=jax.default_backend(),
                device_count=jax.device_count(), versions=report.versions(), argv=sys.argv,
                curves={item.name: {k: np.asarray(getattr(f.curves, k))[:, 0].tolist()
                                    for k in ("loss", "psnr_clean", "ema_psnr_clean")}
                        for item, f in zip(items, fitted)})
  result["wall_s"] = time.perf_counter() - t_start
  table = markdown(result, spec)
  image_io.save_text(os.path.join(out_dir, "table.md"), table)
  image_io.save_json(os.path.join(out_dir, "results.json"), result)
  if seeds > 1:
    plot_ensemble(os.path.join(out_dir, "ensemble.png"), rows, title=spec.title)
  log(table)
  log(f"results in {out_dir}")
  return result


def mean_row(rows: dict) -> dict:
  """Means over images of every scalar (and of every per-k / per-method dict entry)."""
  first = next(iter(rows.values()))
  out = {}
  for key, value in first.items():
    if isinstance(value, dict):
      out[key] = {k: float(np.mean([r[key][k] for r in rows.values()])) for k in value}
    elif isinstance(value, (int, float)) and value is not None and key != "size":
      out[key] = float(np.mean([r[key] for r in rows.values()]))
  return out


def write_item_files(out_dir: str, item: Item, fit: batch.Fitted, spec: Spec, preset) -> None:
  """One image's curves plot and its seed-0 output, EMA and (with several seeds) ensemble."""
  from dipjax import plotting

  seeds = fit.outputs.shape[0]
  c = fit.curves
  pick = lambda a: np.asarray(a)[:, 0]
  plotting.plot_curves(os.path.join(out_dir, "curves", f"{item.name}.png"), loss=pick(c.loss),
                       psnr_target=pick(c.psnr_target), psnr_clean=pick(c.psnr_clean),
                       ema_psnr_clean=pick(c.ema_psnr_clean),
                       title=f"{item.name}: {item.problem.image_size[1]}x{item.problem.image_size[0]}, {preset.steps} steps, "
                             f"{seeds} seed(s){spec.curve_note}")
  images = os.path.join(out_dir, "images")
  image_io.save_image(os.path.join(images, f"{item.name}_output.png"), fit.outputs[0, 0])
  image_io.save_image(os.path.join(images, f"{item.name}_ema.png"), fit.emas[0, 0])
  if seeds > 1:
    image_io.save_image(os.path.join(images, f"{item.name}_ensemble.png"), fit.outputs[:, 0].mean(axis=0))


def _pm(mean: float, sd: float) -> str:
  return f"{mean:.2f} ± {sd:.2f}"


def markdown(result: dict, spec: Spec) -> str:
  """The table: per image and mean, ours vs published vs our baselines, with the run's setting and wall time."""
  rows, m, seeds = result["rows"], result["mean"], result["seeds"]
  ks = sorted(next(iter(rows.values()))["ensemble"])
  pub = list(next(iter(rows.values()))["published"])
  base = list(next(iter(rows.values())).get("baselines", {}))
  p = result["preset"]
  lines = [f"### {spec.title}", ""]
  setting = (f"Setting: preset `{result['preset_name']}` ({p['model']} net, {p['steps']} steps, lr {p['learning_rate']:g}, "
             f"σ_p {p['reg_noise_std']:.4g}, EMA {p['ema_decay']:g}), {seeds} seed(s) (seed {result['seed']}), ")
  setting += (f"**centre {result['scale']}×{result['scale']} crops — CPU scale, not the paper's protocol**"
              if result["scale"] else "full-size images (the paper's protocol)")
  lines.append(setting + ".")
  lines.append(f"PSNR: {spec.protocol}. Device: {result['device']} ({result['backend']}, "
               f"{result['device_count']} device(s)); wall time {result['wall_s'] / 60:.1f} min in all, "
               f"{m['wall_s']:.0f} s per image (its share of its size group's program, compile included).")
  lines.append("")
  head = ["image", "single (mean ± sd)" if seeds > 1 else "single", "EMA"]
  head += [f"ensemble of {k}" for k in ks] + (["ensemble of EMAs"] if seeds > 1 else [])
  head += ["best step (oracle)"] + [f"published {spec.published_labels.get(x, x)}" for x in pub]
  head += [f"{b} (ours)" for b in base]
  lines.append("| " + " | ".join(head) + " |")
  lines.append("|---" + "|---:" * (len(head) - 1) + "|")

  def cells(r, bold=False):
    f = (lambda s: f"**{s}**") if bold else (lambda s: s)
    c = [f(_pm(r["single_mean"], r["single_sd"]) if seeds > 1 else f"{r['single_mean']:.2f}"), f(f"{r['ema_mean']:.2f}")]
    c += [f(f"{r['ensemble'][k]:.2f}") for k in ks]
    if seeds > 1:
      c.append(f(f"{r['ensemble_ema'][seeds]:.2f}"))
    best = r["best_psnr_curve"]
    c.append(f(f"{np.mean(best):.2f}") + (f" ({int(np.median(r['best_step']))})" if not bold else ""))
    c += [f(f"{r['published'][x]:.2f}") for x in pub]
    c += [f(f"{r['baselines'][b]:.2f}") for b in base]
    return c

  for name, r in rows.items():
    lines.append(f"| {name} | " + " | ".join(cells(r)) + " |")
  mean_cells = dict(m)
  mean_cells["single_sd"] = float(np.mean([r["single_sd"] for r in rows.values()]))
  mean_cells["best_psnr_curve"] = [float(np.mean([np.mean(r["best_psnr_curve"]) for r in rows.values()]))]
  mean_cells["best_step"] = [0]
  lines.append("| **mean** | " + " | ".join(cells(mean_cells, bold=True)) + " |")
  lines.append("")
  if seeds > 1:
    lines.append("Mean ± sd: over seeds, per image; the mean row's sd is the mean of the per-image sds. "
                 "Ensemble of k: PSNR of the mean of the first k seeds' final outputs.")
  lines.append("Best step (oracle): the per-step output's best PSNR on the curve (needs ground truth; median step "
               "in parentheses)" + (f"; {spec.curve_note.strip(', ')}" if spec.curve_note else "") + ".")
  lines.append("Paper: " + ", ".join(f"{k} {v:.2f}" for k, v in spec.paper.items()) + " (full-size images).")
  if seeds > 1:
    lines.append("")
    lines.append("Ensemble vs number of seeds S (mean over images; each k averaged over the S/k disjoint groups):")
    lines.append("")
    kk = sorted(m["ensemble_vs_k"], key=int)
    lines.append("| | " + " | ".join(f"S = {k}" for k in kk) + " |")
    lines.append("|---" + "|---:" * len(kk) + "|")
    lines.append("| ensemble of outputs | " + " | ".join(f"{m['ensemble_vs_k'][k]:.2f}" for k in kk) + " |")
    lines.append("| ensemble of EMAs | " + " | ".join(f"{m['ensemble_ema_vs_k'][k]:.2f}" for k in kk) + " |")
  return "\n".join(lines) + "\n"


def plot_ensemble(path: str, rows: dict, *, title: str = "") -> None:
  """PSNR of the ensemble of k seeds against k: per image (thin) and the mean (thick), outputs and EMAs."""
  from dipjax import plotting

  fig, axes = plotting.pyplot().subplots(1, 2, figsize=(10, 3.6), sharey=False)
  for ax, key, label in ((axes[0], "ensemble_vs_k", "mean of k final outputs"),
                         (axes[1], "ensemble_ema_vs_k", "mean of k EMAs")):
    ks = sorted(next(iter(rows.values()))[key], key=int)
    x = [int(k) for k in ks]
    gains = []
    for name, r in rows.items():
      y = np.array([r[key][k] for k in ks])
      gains.append(y - y[0])
      ax.plot(x, y - y[0], color="0.6", lw=0.8)
    ax.plot(x, np.mean(gains, axis=0), color="C1", lw=2.5, marker="o", label="mean over images")
    ax.set_xscale("log", base=2)
    ax.set_xticks(x, [str(k) for k in x])
    ax.set_xlabel("seeds averaged (k)")
    ax.set_ylabel("PSNR gain over k = 1 (dB)")
    ax.set_title(label, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
  if title:
    fig.suptitle(title, fontsize=10)
  plotting.save_figure(fig, path)


def define_flags(*, data_help: str, default_seeds: int) -> None:
  """The flags of a reproduction script (its own task flags are defined by the script)."""
  flag_groups.define_benchmark(data_help=data_help)
  flag_groups.define_fit(seeds_default=default_seeds)


def make_main(prepare: Callable[[], tuple]) -> Callable[[], None]:
  """The ``main`` of a reproduction script.

  ``prepare()`` checks the script's own flags and returns ``(preset_name, preset,
  out_dir, build)``; ``build() -> (spec, items)`` loads the images once ``out_dir`` is
  known to be writable. Errors are one line and exit non-zero (:func:`experiments.cli.run`).
  """

  def main():
    flag_groups.check()
    name, preset, out_dir, build = prepare()
    image_io.ensure_writable(out_dir)
    spec, items = build()
    run_reproduction(spec, preset, items, seeds=FLAGS.seeds, seed=FLAGS.seed, scale=FLAGS.scale, out_dir=out_dir,
                     baselines=FLAGS.baselines, max_batch=FLAGS.max_batch, chunk=FLAGS.chunk, preset_name=name,
                     log=cli.say)

  return main


def preset_from_flags(task: str, default: str) -> tuple[str, presets_lib.TaskPreset]:
  """``--preset`` (default ``default``) with ``--steps/--lr/--reg_noise_std`` overrides."""
  if FLAGS.scale and FLAGS.scale < tasks.MIN_SIZE:
    raise ValueError(f"--scale must be 0 (full size) or at least {tasks.MIN_SIZE}, got {FLAGS.scale}.")
  return flag_groups.preset(task, default)
