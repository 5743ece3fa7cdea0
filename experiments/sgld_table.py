r"""SGLD posterior against the plain fit on the colour denoising set: posterior mean, EMA, early stop, ensemble.

For each image of ``--data_dir/denoising_cset9`` (the published σ = 25 noisy crop as
input, ``<name>_GT.png`` only for scoring) and each preset of ``--presets`` (default:
the plain ``cpu`` fit and its Bayesian-DIP twin ``sgld_cpu``), ``--seeds`` fits run in
one vmapped program with every stopping criterion tracked. The table gives, averaged
over images (and seeds where a number is per seed), the PSNR of: the last output
f(z), its EMA, the per-step output at the ES-EMV detected step, the seeds' ensemble,
the posterior mean (per seed and averaged over seeds) where the preset samples, the
oracle best step; and the Pearson correlation of each uncertainty map (the posterior
std of seed 0, the seeds' std) with the actual absolute error of its estimate::

    python -m experiments.sgld_table --data_dir=../shared/data/benchmarks --crop=64 --steps=1000 --seeds=2 \
        --burn_in=400 --sample_every=10

Writes ``table.md``, ``table.json`` and each run's folder into ``--out_dir``. The
benchmark images are never part of the project.
"""

from __future__ import annotations

import os

from absl import flags

import jax
import numpy as np

from dipjax import presets, restoration, tasks
from experiments import cli, flag_groups, reproduce

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", os.path.join("..", "shared", "data", "benchmarks"),
                    "Folder laid out like ../shared/data/benchmarks (with denoising_cset9/).")
flags.DEFINE_list("images", [], "Subset of image names (default: every image of the set).")
flags.DEFINE_list("presets", ["cpu", "sgld_cpu"], "Denoising presets to compare (each fitted on every image).")
flags.DEFINE_integer("crop", 64, "Centre crop of every image (CPU scale).")
flags.DEFINE_integer("steps", 1000, "Steps per fit.")
flags.DEFINE_integer("seeds", 2, "Seeds per image (one vmapped program).")
flags.DEFINE_integer("seed", 0, "First seed.")
flags.DEFINE_integer("burn_in", None, "Posterior burn-in of the sampling presets (default: the preset's).")
flags.DEFINE_integer("sample_every", None, "Posterior thinning of the sampling presets (default: the preset's).")
flags.DEFINE_string("out_dir", "runs/sgld_table", "Output folder.")
flags.DEFINE_bool("reuse", False, "Reuse the per-image runs already in --out_dir (same flags) instead of refitting.")
flag_groups.define_stopping()

COLUMNS = {"last": "last f(z)", "ema": "EMA", "emv": "ES-EMV stop", "ensemble": "ensemble",
           "posterior": "posterior mean", "posterior_ensemble": "posterior ensemble", "oracle": "oracle best step",
           "r_posterior": "r(post. std, err)", "r_ensemble": "r(seed std, err)"}


def preset_for(name: str, *, steps: int, crop: int, burn_in, sample_every) -> presets.TaskPreset:
  """The denoising preset ``name`` at this scale; the posterior overrides apply only to presets that sample."""
  config = presets.get("denoise", name, steps=steps, crop=crop)
  if config.sample_every:
    config = presets.get("denoise", name, steps=steps, crop=crop, burn_in=burn_in, sample_every=sample_every)
  return config


def row_of(metrics: dict) -> dict:
  """The table's numbers of one run (``metrics.json`` of :func:`dipjax.report.write_run`)."""
  s = metrics["summary"]
  row = dict(input=s["psnr"]["input"], last=float(np.mean(s["psnr_output_per_seed"])),
             ema=float(np.mean(s["psnr_ema_per_seed"])),
             emv=float(np.mean(s["stopping"]["emv"]["psnr_detected"])),
             oracle=float(np.mean(s["best_psnr_per_seed"])))
  if "ensemble" in s["psnr"]:
    row["ensemble"] = s["psnr"]["ensemble"]
    row["r_ensemble"] = s["uncertainty"]["ensemble_std"]["pearson_r_with_abs_error"]
  if "psnr_posterior_mean_per_seed" in s:
    row["posterior"] = float(np.mean(s["psnr_posterior_mean_per_seed"]))
    row["posterior_ensemble"] = s["psnr"].get("posterior_ensemble", row["posterior"])
    row["r_posterior"] = s["uncertainty"]["posterior_std"]["pearson_r_with_abs_error"]
  return row


def run_table(*, data_dir: str, names: list[str], preset_names: list[str], crop: int, steps: int, seeds: int,
              seed: int, burn_in, sample_every, stop: restoration.StopOptions, out_dir: str, reuse: bool = False,
              log=print) -> dict:
  """Fits every image with every preset; returns the rows per preset and image, and their means.

  ``reuse``: take the runs already written into ``out_dir`` instead of fitting them again.
  """
  names = reproduce.list_names(os.path.join(data_dir, "denoising_cset9"), "_noisy.png", names)
  fit_key = tasks.keys_for_seed(seed)[1]
  tables = {}
  for preset_name in preset_names:
    config = preset_for(preset_name, steps=steps, crop=crop, burn_in=burn_in, sample_every=sample_every)
    log(f"preset {preset_name!r}: {config.describe()}")
    rows = {}
    for name in names:
      problem = reproduce.load_denoising_crop(data_dir, name, crop=crop)
      metrics = reproduce.run_or_reuse(os.path.join(out_dir, preset_name, name), fit_key, problem, config,
                                       reuse=reuse, seeds=seeds, chunk=250, stop=stop)
      rows[name] = dict(row_of(metrics), wall_s=metrics["wall_s"], s_per_step=metrics["s_per_step"])
      log(f"{preset_name} {name}: " + ", ".join(f"{COLUMNS.get(k, k)} {v:.3f}" for k, v in rows[name].items()))
    keys = [k for k in next(iter(rows.values())) if all(k in r for r in rows.values())]
    tables[preset_name] = dict(rows=rows, mean={k: float(np.mean([r[k] for r in rows.values()])) for k in keys},
                               preset=config.to_dict())
  return dict(tables=tables, crop=crop, steps=steps, seeds=seeds, seed=seed, stop=stop.__dict__,
              device=str(jax.devices()[0].device_kind))


def markdown(result: dict) -> str:
  """The mean over images per preset, one row per preset (PSNR in dB; r is Pearson's)."""
  columns = [c for c in COLUMNS if any(c in t["mean"] for t in result["tables"].values())]
  lines = ["| preset | input | " + " | ".join(COLUMNS[c] for c in columns) + " | s/step |",
           "|---" * (len(columns) + 3) + "|"]
  for name, table in result["tables"].items():
    m = table["mean"]
    cells = [("%.3f" if c.startswith("r_") else "%.2f") % m[c] if c in m else "—" for c in columns]
    lines.append(f"| {name} | {m['input']:.2f} | " + " | ".join(cells) + f" | {m['s_per_step']:.3f} |")
  return "\n".join(lines) + "\n"


def main():
  flag_groups.check()
  for name in ("crop", "steps", "seeds"):
    if FLAGS[name].value < 1:
      raise ValueError(f"--{name} must be at least 1, got {FLAGS[name].value}.")
  out_dir = flag_groups.out_dir("runs/sgld_table")
  stop = restoration.StopOptions(patience=FLAGS.stop_patience, window=FLAGS.stop_window)
  result = run_table(data_dir=FLAGS.data_dir, names=FLAGS.images, preset_names=FLAGS.presets, crop=FLAGS.crop,
                     steps=FLAGS.steps, seeds=FLAGS.seeds, seed=FLAGS.seed, burn_in=FLAGS.burn_in,
                     sample_every=FLAGS.sample_every, stop=stop, out_dir=out_dir, reuse=FLAGS.reuse, log=cli.say)
  reproduce.write_table(out_dir, markdown(result), result, log=cli.say)


if __name__ == "__main__":
  cli.run(main)
