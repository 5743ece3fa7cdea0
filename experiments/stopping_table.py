r"""Early stopping without ground truth on the colour denoising set: detected vs oracle vs last PSNR.

For each image of ``--data_dir/denoising_cset9`` (``<name>_noisy.png`` as the input,
``<name>_GT.png`` only for scoring) the denoising fit runs with every stopping
criterion tracked in the scan (``dipjax.stopping``: ES-EMV, ES-WMV, the discrepancy
principle with σ estimated from the noisy image), and the table reports the PSNR of
the per-step output at each criterion's detected step, at the best step (the
oracle, which needs ground truth) and at the last step, with the mean gap::

    python -m experiments.stopping_table --data_dir=../shared/data/benchmarks --crop=64 --steps=2500 --stop_patience=200
    python -m experiments.stopping_table --noise=poisson --peak=30 --steps=1200      # synthetic noise on the ground truth

Without ``--noise`` the inputs are the published σ = 25 images; with it (``gaussian``
with ``--sigma``, ``poisson``, ``impulse``, ``speckle``) the noise is drawn on each
ground-truth crop from ``--seed`` (``--loss`` picks the data term).

Writes ``table.md`` and ``table.json`` into ``--out_dir`` (and each image's run
folder). The benchmark images are never part of the project.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Optional

from absl import flags

import jax
import numpy as np

from dipjax import presets, restoration, tasks
from experiments import cli, flag_groups, reproduce

FLAGS = flags.FLAGS
flags.DEFINE_string("data_dir", os.path.join("..", "shared", "data", "benchmarks"),
                    "Folder laid out like ../shared/data/benchmarks (with denoising_cset9/).")
flags.DEFINE_list("images", [], "Subset of image names (default: every image of the set).")
flags.DEFINE_integer("crop", 64, "Centre crop of every image (CPU scale).")
flags.DEFINE_integer("steps", 2500, "Adam steps per image.")
flags.DEFINE_string("out_dir", "runs/stopping_table", "Output folder.")
flags.DEFINE_float("sigma", None, "Gaussian noise std on the 0-255 scale (with --noise=gaussian; default 25).")
flags.DEFINE_string("preset", "cpu", "Denoising preset (its steps and crop are replaced by --steps and --crop).")
flags.DEFINE_bool("reuse", False, "Reuse the per-image runs already in --out_dir (same flags) instead of refitting.")
flags.DEFINE_integer("seed", 0, "Seed of the fits and of the synthetic noise.")
flag_groups.define_stopping()
flag_groups.define_noise()


def run_table(*, data_dir: str, names: list[str], crop: int, steps: int, stop: restoration.StopOptions,
              out_dir: str, noise: Optional[dict] = None, seed: int = 0, preset_name: str = "cpu", reuse: bool = False,
              log=print) -> dict:
  """Runs the denoising fit on each image; returns per-image and mean PSNRs per criterion.

  ``noise``: preset fields of a synthetic noise model (``noise``, ``sigma``, ``peak``, ...,
  ``loss``) drawn on the ground truth; None: the published σ = 25 noisy images.
  ``reuse``: take the runs already written into ``out_dir`` instead of fitting them again.
  """
  folder = os.path.join(data_dir, "denoising_cset9")
  names = reproduce.list_names(folder, "_noisy.png", names)
  preset = presets.get("denoise", preset_name, steps=steps, crop=crop, **(noise or {}))
  synthetic = tasks.synthetic_noise(preset) if noise else None
  noise_key, fit_key = tasks.keys_for_seed(seed)
  rows = {}
  for index, name in enumerate(names):
    problem = reproduce.load_denoising_crop(data_dir, name, crop=crop, noise=synthetic,
                                            key=jax.random.fold_in(noise_key, index))
    m = reproduce.run_or_reuse(os.path.join(out_dir, name), fit_key, problem, preset, reuse=reuse, chunk=500,
                               stop=stop)
    st = m["summary"]["stopping"]
    rows[name] = dict(wall_s=m["wall_s"], input=m["summary"]["psnr"]["input"],
                      best=st["emv"]["psnr_best"][0], last=st["emv"]["psnr_last"][0],
                      best_step=m["summary"]["best_step_per_seed"][0],
                      sigma_255=problem.source.get("estimated_sigma_255"),
                      **{c: dict(step=st[c]["detected_step"][0], fired=st[c]["fired"][0],
                                 psnr=st[c]["psnr_detected"][0]) for c in ("emv", "wmv", "discrepancy") if c in st})
    log(f"{name}: best {rows[name]['best']:.2f} (step {rows[name]['best_step']}), last {rows[name]['last']:.2f}, "
        + ", ".join(f"{c} {rows[name][c]['psnr']:.2f} (step {rows[name][c]['step']})"
                    for c in ("emv", "wmv", "discrepancy") if c in rows[name])
        + f" [{rows[name]['wall_s']:.0f} s]")
  crits = [c for c in ("emv", "wmv", "discrepancy") if all(c in r for r in rows.values())]
  mean = {k: float(np.mean([r[k] for r in rows.values()])) for k in ("input", "best", "last")}
  for c in crits:
    mean[c] = float(np.mean([r[c]["psnr"] for r in rows.values()]))
    mean[f"{c}_gap"] = mean["best"] - mean[c]
  return dict(rows=rows, mean=mean, criteria=crits, preset=preset_name, crop=crop, steps=steps, stop=dataclasses.asdict(stop),
              noise=synthetic.description if synthetic else "published σ = 25 images", loss=preset.loss, seed=seed,
              device=str(jax.devices()[0].device_kind))


def markdown(result: dict) -> str:
  crits = result["criteria"]
  head = "| image | input | best (oracle) | " + " | ".join(f"{c} detected" for c in crits) + " | last |\n"
  head += "|---" * (4 + len(crits)) + "|\n"
  lines = []
  for name, r in result["rows"].items():
    cells = [f"{r['best']:.2f} ({r['best_step']})"] + [f"{r[c]['psnr']:.2f} ({r[c]['step']})" for c in crits]
    lines.append(f"| {name} | {r['input']:.2f} | " + " | ".join(cells) + f" | {r['last']:.2f} |")
  m = result["mean"]
  lines.append("| **mean** | %.2f | **%.2f** | " % (m["input"], m["best"]) + " | ".join(
      f"**{m[c]:.2f}** (gap {m[c + '_gap']:.2f})" for c in crits) + f" | **{m['last']:.2f}** (gap "
      f"{m['best'] - m['last']:.2f}) |")
  return f"{result['noise']}, loss {result['loss']}\n\n" + head + "\n".join(lines) + "\n"


def main():
  flag_groups.check()
  stop = restoration.StopOptions(patience=FLAGS.stop_patience, window=FLAGS.stop_window)
  out_dir = flag_groups.out_dir("runs/stopping_table")
  noise = None
  if FLAGS.noise or FLAGS.loss:
    noise = {k: v for k, v in flag_groups.noise_overrides().items() if v is not None}
    noise.setdefault("noise", "gaussian")
    if noise["noise"] == "gaussian":
      noise["sigma"] = FLAGS.sigma if FLAGS.sigma is not None else 25.0
  if FLAGS.sigma is not None and (noise or {}).get("noise") != "gaussian":
    raise ValueError("--sigma needs --noise=gaussian (without --noise the published σ = 25 images are used).")
  result = run_table(data_dir=FLAGS.data_dir, names=FLAGS.images, crop=FLAGS.crop, steps=FLAGS.steps, stop=stop,
                     out_dir=out_dir, noise=noise, seed=FLAGS.seed, preset_name=FLAGS.preset,
                     reuse=FLAGS.reuse, log=cli.say)
  reproduce.write_table(out_dir, markdown(result), result, log=cli.say)


if __name__ == "__main__":
  cli.run(main)
