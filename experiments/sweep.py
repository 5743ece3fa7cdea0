r"""Sweeps any task over a grid of flag values × seeds: a table and a heat map of PSNR.

    python -m experiments.sweep --task=denoise --grid=lr=0.003,0.01,0.03 --grid=reg_noise_std=0,0.0333 --seeds=2
    python -m experiments.sweep --task=super_resolution --grid=reg_noise_std=0,0.03,0.05 --grid=steps=500,1000
    python -m experiments.sweep --task=inpaint --clean=img.png --mask=m.png --grid=lr=0.001,0.01 --heatmap=lr

``--grid=NAME=V1,V2,...`` (repeatable) names an axis: ``lr`` and ``reg_noise_std``
are per-fit data in the scan carry, so all their combinations × all seeds are **one
compiled program** (``dipjax.batch``); any other numeric preset field that applies
to the task (``steps``, ``ema_decay``, ``sigma``, ``jpeg_quality``, ``factor``,
``keep_fraction``, ``input_channels``, ``guard_every``, ``tv_weight``) changes the problem
or the program, so each of its values is a separate program; so does ``net`` (the
network, by name: ``--grid=net=default,skip_depth2,unet,resnet``). The images, preset and every
other flag are those of the task's own entry point (``--image``, ``--clean``,
``--mask``, ``--flash``, ``--preset``, ``--crop``, ``--seeds``, ...); a corruption setting
is swept (or fixed to one value) with ``--grid``; ground truth is needed (``--clean``, or
the bundled image with a synthetic corruption). Progress: a line after every chunk
of steps (``--chunk``; by default about every 20 s).

Writes into ``--out_dir`` (default ``runs/sweep_<task>``): ``table.md`` (one row per
grid point: final output PSNR mean ± sd over seeds, EMA, ensemble of the seeds, best
step of the curve), ``heatmap.png`` (``--metric`` over the two ``--heatmap`` axes,
averaged over the other axes), ``results.json`` (everything, per seed). PSNR: all
pixels and channels of the restored image (for super-resolution RGB, not the
paper's Y channel).
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import sys
import time

from absl import flags

import jax
import numpy as np

from dipjax import batch, image_io, presets as presets_lib, report, runner, tasks
from experiments import cli, flag_groups, reproduce, task_main

FLAGS = flags.FLAGS
flag_groups.define_images(mask=True, flash=True)
flag_groups.define_fit()
flag_groups.define_batching()
flags.DEFINE_enum("task", "denoise", list(presets_lib.TASKS), "The task to sweep.")
flags.DEFINE_multi_string("grid", [], "An axis of the grid, NAME=V1,V2,... (repeatable); NAME is lr, reg_noise_std "
                          "(one program for all their values) or a numeric preset field of the task.")
flags.DEFINE_list("heatmap", [], "The two axes of the heat map (x, y); default: the first two --grid axes.")
flags.DEFINE_enum("metric", "output", ["output", "ema", "ensemble", "best"], "What the heat map shows: the final "
                  "output's PSNR (mean over seeds), the EMA's, the seed ensemble's, or the curve's best (oracle).")

BUNDLED = {"denoise": "astronaut", "deblock": "coffee", "super_resolution": "chelsea", "inpaint": "astronaut",
           "restore": "camera", "flash_no_flash": "coffee"}  # as the task entry points
IN_PROGRAM = {"lr": "learning_rate", "reg_noise_std": "reg_noise_std"}
OUTER = ("steps", "ema_decay", "sigma", "jpeg_quality", "factor", "keep_fraction", "input_channels", "guard_every",
         "tv_weight", "net")
FIELD = {"net": "model"}  # the preset field of a --grid axis named differently


def value_text(value) -> str:
  """A grid value as written in the log and the table: a number in %g, a name as it is."""
  return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def same_value(a, b) -> bool:
  """Grid values are equal: numbers within float tolerance, names exactly."""
  return a == b if isinstance(a, str) or isinstance(b, str) else bool(np.isclose(a, b))


def parse_grid(specs: list[str], preset: presets_lib.TaskPreset) -> list[tuple[str, list]]:
  """``["lr=0.01,0.03", ...]`` -> ``[("lr", [0.01, 0.03]), ...]`` with one-line errors for bad names or values."""
  axes = []
  for spec in specs:
    name, sep, values = spec.partition("=")
    name = name.strip()
    if not sep or not values.strip():
      raise ValueError(f"--grid={spec!r}: write NAME=V1,V2,... (e.g. --grid=lr=0.003,0.01).")
    if name not in IN_PROGRAM and name not in OUTER:
      raise ValueError(f"--grid axis {name!r} is not sweepable; use one of {list(IN_PROGRAM) + list(OUTER)}.")
    field = FIELD.get(name, name)
    if name in OUTER and getattr(preset, field) is None:
      raise ValueError(f"--grid axis {name!r} does not apply to {preset.task}.")
    if name in [a for a, _ in axes]:
      raise ValueError(f"--grid axis {name!r} is given twice.")
    current = getattr(preset, field) if name in OUTER else 0.0
    kind = str if isinstance(current, str) else int if isinstance(current, int) else float
    try:
      parsed = [kind(v.strip()) for v in values.split(",")]
    except ValueError:
      raise ValueError(f"--grid={spec!r}: the values of {name} must be {kind.__name__}s.") from None
    if len(set(parsed)) != len(parsed):
      raise ValueError(f"--grid={spec!r}: a value is repeated.")
    axes.append((name, parsed))
  if not axes:
    raise ValueError("no --grid axis; e.g. --grid=lr=0.003,0.01,0.03 --grid=reg_noise_std=0,0.0333.")
  return axes


def run_sweep(task: str, preset: presets_lib.TaskPreset, images: dict, axes: list[tuple[str, list]], *,
              seeds: int, seed: int, max_batch: int = 0, chunk=0, log=print) -> dict:
  """Fits every grid point × seed; returns the rows (one per grid point) and the axes.

  ``images``: ``image``/``clean``/``mask``/``flash`` arrays as for :func:`dipjax.tasks.make_problem`.
  """
  outer = [(n, v) for n, v in axes if n in OUTER]
  hyper = {IN_PROGRAM[n]: v for n, v in axes if n in IN_PROGRAM}
  corruption_key, fit_key = tasks.keys_for_seed(seed)
  rows = []
  for combo in itertools.product(*[v for _, v in outer]) if outer else [()]:
    point = dict(zip([n for n, _ in outer], combo))
    p = dataclasses.replace(preset, **{FIELD.get(k, k): v for k, v in point.items()}).validate()
    problem = tasks.make_problem(corruption_key, task, p, **images)
    if problem.clean is None:
      raise ValueError("the sweep scores every grid point against the ground truth; pass --clean (or no image, for "
                       "the bundled one).")
    if point:
      log(f"{', '.join(f'{k}={value_text(v)}' for k, v in point.items())}:")
    fitted = batch.fit_problems(p, [problem], key=fit_key, seeds=seeds, hyper=hyper or None, max_batch=max_batch,
                                chunk=chunk or runner.auto_chunk(), log=log)[0]
    item = reproduce.Item(name=task, problem=problem, published={})
    n_v = fitted.outputs.shape[1]
    for v in range(n_v):
      row = reproduce.score_item(item, fitted, reproduce.psnr_all, v=v)
      values = dict(point)
      for flag, field in IN_PROGRAM.items():
        if field in fitted.hyper:
          values[flag] = float(fitted.hyper[field][v])
      row["point"] = values
      row["wall_s"] = fitted.wall_s / n_v
      rows.append(row)
      log(f"  {', '.join(f'{k}={value_text(v)}' for k, v in values.items())}: output {row['single_mean']:.2f} ± "
          f"{row['single_sd']:.2f}, EMA {row['ema_mean']:.2f}, best {np.mean(row['best_psnr_curve']):.2f} dB")
  return dict(rows=rows, axes=[[n, v] for n, v in axes])


METRIC = {
    "output": lambda r: r["single_mean"],
    "ema": lambda r: r["ema_mean"],
    "ensemble": lambda r: r["ensemble_vs_k"][max(r["ensemble_vs_k"])],
    "best": lambda r: float(np.mean(r["best_psnr_curve"])),
}


def heat_values(result: dict, x: str, y: str, metric: str) -> tuple[list, list, np.ndarray]:
  """The ``metric`` on the ``(y, x)`` grid, averaged over the other axes."""
  axes = dict((n, v) for n, v in result["axes"])
  xs, ys = axes[x], axes[y] if y else [None]
  grid = np.full((len(ys), len(xs)), np.nan)
  for j, yv in enumerate(ys):
    for i, xv in enumerate(xs):
      vals = [METRIC[metric](r) for r in result["rows"] if same_value(r["point"][x], xv) and
              (y is None or same_value(r["point"][y], yv))]
      grid[j, i] = np.mean(vals) if vals else np.nan
  return xs, ys, grid


def markdown(result: dict) -> str:
  names = [n for n, _ in result["axes"]]
  seeds = result["seeds"]
  lines = [f"### Sweep: {result['task']}, preset `{result['preset_name']}`, {seeds} seed(s)", "",
           f"Image: {result['image']}; PSNR over all pixels; device {result['device']}; wall time "
           f"{result['wall_s'] / 60:.1f} min.", ""]
  head = names + ["output (mean ± sd)", "EMA", f"ensemble of {seeds}", "best (oracle)", "best step"]
  lines += ["| " + " | ".join(head) + " |", "|---" * len(names) + "|---:" * 5 + "|"]
  for r in result["rows"]:
    cells = [value_text(r['point'][n]) for n in names]
    cells += [f"{r['single_mean']:.2f} ± {r['single_sd']:.2f}", f"{r['ema_mean']:.2f}", f"{METRIC['ensemble'](r):.2f}",
              f"{np.mean(r['best_psnr_curve']):.2f}", f"{int(np.median(r['best_step']))}"]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines) + "\n"


def main():
  flag_groups.check()
  task = FLAGS.task
  t0 = time.perf_counter()
  name, preset = flag_groups.preset(task)
  axes = parse_grid(FLAGS.grid, preset)
  heat = FLAGS.heatmap or [n for n, _ in axes][:2]
  if len(heat) not in (1, 2) or any(h not in [n for n, _ in axes] for h in heat):
    raise ValueError(f"--heatmap={','.join(FLAGS.heatmap)}: name one or two of the --grid axes "
                     f"{[n for n, _ in axes]}.")
  out_dir = flag_groups.out_dir(os.path.join("runs", f"sweep_{task}"))
  loaded = task_main.load_images(task, preset)
  images = loaded["images"]
  image = FLAGS.image or FLAGS.clean
  if "image" not in images and "clean" not in images:
    images["clean"] = tasks.centre_crop(task_main.bundled_image(BUNDLED[task]), loaded["crop"],
                                        multiple=preset.factor if task == "super_resolution" else 1)
    image = f"skimage.data.{BUNDLED[task]}"
  image += f" (centre crop {loaded['crop']})" if loaded["crop"] else ""
  cli.say(f"sweep {task} preset {name!r}: {preset.describe()}")
  cli.say("grid: " + " x ".join(f"{n} {v}" for n, v in axes) + f" x {FLAGS.seeds} seed(s)")
  result = run_sweep(task, preset, images, axes, seeds=FLAGS.seeds, seed=FLAGS.seed, max_batch=FLAGS.max_batch,
                     chunk=FLAGS.chunk, log=cli.say)
  result.update(task=task, preset_name=name, preset=preset.to_dict(), seeds=FLAGS.seeds, seed=FLAGS.seed, image=image,
                device=str(jax.devices()[0].device_kind), backend=jax.default_backend(), versions=report.versions(),
                argv=sys.argv, metric=FLAGS.metric, heatmap=heat, wall_s=time.perf_counter() - t0)
  write(out_dir, result, heat)


def write(out_dir: str, result: dict, heat: list) -> None:
  """``table.md``, ``heatmap.png`` and ``results.json``."""
  table = markdown(result)
  xs, ys, values = heat_values(result, heat[0], heat[1] if len(heat) > 1 else None, result["metric"])
  from dipjax import plotting
  plotting.plot_heatmap(os.path.join(out_dir, "heatmap.png"), values, x_label=heat[0], x_ticks=xs,
                        y_label=heat[1] if len(heat) > 1 else "", y_ticks=ys if len(heat) > 1 else [""],
                        title=f"{result['task']}: PSNR of the {result['metric']} (mean over {result['seeds']} seed(s))")
  result["heatmap_values"] = values.tolist()
  image_io.save_text(os.path.join(out_dir, "table.md"), table)
  image_io.save_json(os.path.join(out_dir, "results.json"), result)
  cli.say(table)
  cli.say(f"results in {out_dir}")


if __name__ == "__main__":
  cli.run(main)
