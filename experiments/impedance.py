r"""The paper's Fig. 2: the network fits a natural image faster than noise ("high impedance" to noise).

Fits four targets with the same network and settings — the image, the image plus
Gaussian noise, its shuffled pixels, U(0, 1) white noise — ``--seeds`` each, all in one
vmapped program (:func:`dipjax.impedance.impedance`), and writes the MSE-against-steps
plot (log–log), the table of steps to reach each loss threshold, and the targets with
the fitted outputs::

    python -m experiments.impedance                          # astronaut, 64x64 crop, cpu preset, 2000 steps
    python -m experiments.impedance --image=photo.png --crop=128 --steps=5000 --seeds=4

The input jitter is off by default (``--reg_noise_std=0``: the loss is that of f_θ(z)
itself, as in the figure). Outputs in ``--out_dir`` (default ``runs/impedance``):
``impedance.png``, ``targets.png``, ``table.md``, ``results.json``.
"""

from __future__ import annotations

import os

from absl import flags

import jax
import numpy as np

from dipjax import image_io, impedance, plotting, presets, runner, tasks, validation
from experiments import cli, flag_groups, task_main

FLAGS = flags.FLAGS
flags.DEFINE_string("image", None, "The natural image (default: skimage's astronaut).")
flags.DEFINE_integer("crop", 64, "Centre crop of the image (0: none).")
flags.DEFINE_float("sigma", 25.0, "Noise std of the image + noise target (0-255 scale).")
flags.DEFINE_list("thresholds", ["0.01", "0.003", "0.001"], "MSE levels of the steps-to-reach table.")
flag_groups.define_fit()

DEFAULT_STEPS = 2000


def parse_threshold(text: str) -> float:
  """One ``--thresholds`` entry as a positive float (one-line error otherwise)."""
  try:
    return validation.finite("thresholds", float(text), minimum=0.0, inclusive=False)
  except ValueError:
    raise ValueError(f"--thresholds must be positive numbers, got {text!r}.") from None


def markdown(result: impedance.Impedance) -> str:
  """Steps to reach each threshold per target (mean over seeds; "—" where a seed never reached it) and final MSE."""
  head = "| target | " + " | ".join(f"steps to MSE ≤ {t:g}" for t in result.thresholds) + " | final MSE |\n"
  head += "|---" * (len(result.thresholds) + 2) + "|\n"
  rows = []
  for name, curve in result.losses.items():
    cells = []
    for t in result.thresholds:
      steps = result.steps_to[name][t]
      cells.append("—" if (steps == 0).any() else f"{steps.mean():.0f}")
    rows.append(f"| {name} | " + " | ".join(cells) + f" | {curve[:, -1].mean():.2e} |")
  return head + "\n".join(rows) + "\n"


def main():
  flag_groups.check()
  if FLAGS.crop < 0:
    raise ValueError(f"--crop must be 0 (no crop) or a size in pixels, got {FLAGS.crop}.")
  if not np.isfinite(FLAGS.sigma) or FLAGS.sigma < 0:
    raise ValueError(f"--sigma must be a finite number >= 0 (0-255 scale), got {FLAGS.sigma}.")
  thresholds = [parse_threshold(t) for t in FLAGS.thresholds]
  out_dir = flag_groups.out_dir("runs/impedance")
  image = image_io.load_image(FLAGS.image) if FLAGS.image else task_main.bundled_image()
  image = tasks.centre_crop(image, FLAGS.crop)
  name = FLAGS.preset or presets.default_name("denoise", jax.default_backend())
  config = presets.get("denoise", name, model=FLAGS.net, steps=FLAGS.steps or DEFAULT_STEPS, learning_rate=FLAGS.lr,
                       reg_noise_std=FLAGS.reg_noise_std or 0.0, tv_weight=FLAGS.tv_weight)
  cli.say(f"preset {name!r} ({config.describe()}), image {image.shape[1]}x{image.shape[0]}, {FLAGS.seeds} seed(s)")
  result = impedance.impedance(tasks.keys_for_seed(FLAGS.seed)[1], image, config, seeds=FLAGS.seeds,
                               sigma=FLAGS.sigma / 255.0, thresholds=thresholds, chunk=runner.auto_chunk(),
                               log=cli.say)
  table = markdown(result)
  cli.say(table)
  plotting.plot_loss_curves(os.path.join(out_dir, "impedance.png"), result.losses, thresholds=result.thresholds,
                            title=f"{image.shape[1]}x{image.shape[0]}, preset {name}, {FLAGS.seeds} seed(s)")
  names = list(result.targets)
  image_io.save_strip(os.path.join(out_dir, "targets.png"),
                      [result.targets[n] for n in names] + [result.outputs[n][0] for n in names],
                      names + [f"fit of {n}" for n in names], min_tile_width=128)
  image_io.save_text(os.path.join(out_dir, "table.md"), table)
  image_io.save_json(os.path.join(out_dir, "results.json"), dict(
      preset=name, config=config.to_dict(), seeds=FLAGS.seeds, size=list(image.shape), wall_s=result.wall_s,
      thresholds=list(result.thresholds), device=str(jax.devices()[0].device_kind),
      steps_to={n: {str(t): s.tolist() for t, s in d.items()} for n, d in result.steps_to.items()},
      losses={n: np.asarray(c).tolist() for n, c in result.losses.items()}))
  cli.say(f"results in {out_dir}")


if __name__ == "__main__":
  cli.run(main)
