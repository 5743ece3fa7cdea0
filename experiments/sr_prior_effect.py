r"""The supplement's prior-effect study: ×4 super-resolution with no prior, a TV prior and the deep prior.

Three runs of the same Adam loop on the same problem (:mod:`dipjax.prior_effect`;
the reference's ``sr_prior_effect.ipynb``): the high-resolution pixels optimised
directly; the same plus ``1e-7 TV(x)``; the default skip network on a 3-channel noise
input. Bicubic upscaling is reported for reference::

    python -m experiments.sr_prior_effect                               # astronaut, 128x128 crop, cpu preset
    python -m experiments.sr_prior_effect --preset=paper --image=zebra_crop.png   # the notebook (2000 steps)

Outputs in ``--out_dir`` (default ``runs/sr_prior_effect``): ``no_prior.png``,
``tv_prior.png``, ``deep_prior.png``, ``bicubic.png``, ``comparison.png`` (LR | no
prior | TV | deep prior | HR, PSNRs in the captions), ``curves.png`` (PSNR against
steps), ``table.md`` and ``results.json``.
"""

from __future__ import annotations

import os

from absl import flags

import jax
import numpy as np

from dipjax import architectures, image_io, plotting, presets, prior_effect, tasks
from experiments import cli, task_main

FLAGS = flags.FLAGS
flags.DEFINE_string("image", None, "The high-resolution image (default: skimage's astronaut).")
flags.DEFINE_integer("crop", None, "Centre crop of the image (0: none; default: the preset's crop for the bundled "
                     "image, none for your own).")
flags.DEFINE_integer("factor", 4, "Super-resolution factor: 2, 4, 6 or 8.")
flags.DEFINE_integer("steps", None, "Adam steps of each run (default: the preset's).")
flags.DEFINE_enum("preset", None, list(prior_effect.PRESETS), "Study size (default: 'paper' on a GPU/TPU, else "
                  "'cpu').")
flags.DEFINE_integer("seed", 0, "Random seed of the runs.")
flags.DEFINE_string("out_dir", None, "Output folder.")

FILES = {"no prior": "no_prior.png", "TV prior": "tv_prior.png", "deep prior": "deep_prior.png",
         "bicubic": "bicubic.png"}


def markdown(result: prior_effect.PriorEffect) -> str:
  """Final RGB and Y PSNR of every method, best last, with each run's wall time."""
  rows = sorted(result.psnr, key=result.psnr.get)
  lines = ["| method | PSNR RGB (dB) | PSNR Y, 4 px shaved (dB) | wall (s) |", "|---|---|---|---|"]
  for name in rows:
    wall = f"{result.wall_s[name]:.1f}" if name in result.wall_s else "—"
    lines.append(f"| {name} | {result.psnr[name]:.2f} | {result.psnr_y[name]:.2f} | {wall} |")
  return "\n".join(lines) + "\n"


def main():
  if FLAGS.crop is not None and FLAGS.crop < 0:
    raise ValueError(f"--crop must be 0 (no crop) or a size in pixels, got {FLAGS.crop}.")
  if FLAGS.steps is not None and FLAGS.steps < 1:
    raise ValueError(f"--steps must be >= 1, got {FLAGS.steps}.")
  if FLAGS.factor not in presets.SR_FACTORS:
    raise ValueError(f"--factor must be one of {', '.join(map(str, presets.SR_FACTORS))}, got {FLAGS.factor}.")
  name = FLAGS.preset or ("cpu" if jax.default_backend() == "cpu" else "paper")
  preset = prior_effect.PRESETS[name]
  out_dir = FLAGS.out_dir or os.path.join("runs", "sr_prior_effect")
  image_io.ensure_writable(out_dir)
  image = image_io.load_image(FLAGS.image) if FLAGS.image else task_main.bundled_image()
  crop = FLAGS.crop if FLAGS.crop is not None else (0 if FLAGS.image else preset.crop)
  image = tasks.match_channels("image", tasks.centre_crop(image, crop), 3)
  steps = FLAGS.steps or preset.steps
  cli.say(f"preset {name!r} ({preset.note}): {steps} steps, deep prior {preset.model!r}, image "
          f"{image.shape[1]}x{image.shape[0]}, x{FLAGS.factor}")
  result = prior_effect.prior_effect(tasks.keys_for_seed(FLAGS.seed)[1], image, factor=FLAGS.factor, steps=steps,
                                     model=architectures.get_network(preset.model), log=cli.say)
  for method, file in FILES.items():
    image_io.save_image(os.path.join(out_dir, file), result.outputs[method])
  f = FLAGS.factor
  low_view = np.repeat(np.repeat(result.low, f, axis=0), f, axis=1)
  shown = ["no prior", "TV prior", "deep prior"]
  image_io.save_strip(os.path.join(out_dir, "comparison.png"),
                      [low_view] + [result.outputs[m] for m in shown] + [result.clean],
                      [f"LR x{f} (nearest)"] + [f"{m}: {result.psnr[m]:.2f} dB" for m in shown] + ["HR"],
                      min_tile_width=128)
  size = f"{image.shape[1]}x{image.shape[0]}"
  plotting.plot_step_curves(os.path.join(out_dir, "curves.png"), result.psnr_curve, y_label="PSNR (dB, RGB)",
                            title=f"x{f} SR, {size}, preset {name}")
  table = markdown(result)
  cli.say(table)
  image_io.save_text(os.path.join(out_dir, "table.md"), table)
  image_io.save_json(os.path.join(out_dir, "results.json"), dict(
      preset=name, steps=steps, model=preset.model, factor=f, seed=FLAGS.seed, size=list(result.clean.shape),
      image=FLAGS.image or "skimage.data.astronaut", crop=crop, device=str(jax.devices()[0].device_kind),
      psnr=result.psnr, psnr_y=result.psnr_y, wall_s=result.wall_s,
      total_variation={m: prior_effect.total_variation(x) for m, x in result.outputs.items()},
      psnr_curve={m: np.asarray(c).tolist() for m, c in result.psnr_curve.items()},
      loss={m: np.asarray(c).tolist() for m, c in result.loss.items()}))
  cli.say(f"results in {out_dir}")


if __name__ == "__main__":
  cli.run(main)
