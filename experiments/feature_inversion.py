r"""The paper's Fig. 9: invert a classifier's features at one layer with the deep image prior and with TV.

Finds an image whose layer-``l`` activations match those of a picture ``x0``,
``min mean((Φ_l(x) − Φ_l(x0))²)``, once with ``x = crop(f_θ(z))`` (Deep Image Prior) and
once optimising the pixels with a total-variation term (:mod:`dipjax.preimage`)::

    python -m experiments.feature_inversion --weights=alexnet.npz                 # paper settings on a GPU
    python -m experiments.feature_inversion --preset=cpu                           # random weights, a few minutes
    python -m experiments.feature_inversion --weights=alexnet.npz --image=../shared/data/dip/building.jpg

No classifier weights ship and nothing is downloaded: convert them once with
``experiments/convert_weights.py``. Without ``--weights`` the classifier has **random**
weights (said in the output and the pictures): the pictures are then not the paper's.
Outputs in ``--out_dir`` (default ``runs/feature_inversion``): ``target.png`` (``x0`` at the
classifier's input), ``<prior>.png``, ``comparison.png``, ``loss.png``, ``summary.json``.
"""

from __future__ import annotations

import os

from absl import flags

import jax
import numpy as np

from dipjax import image_io, plotting, preimage, tasks
from experiments import cli, flag_groups, task_main

FLAGS = flags.FLAGS
flag_groups.define_preimage(size_help="Classifier input side (default: the preset's; paper 224).")
flags.DEFINE_string("layer", None, "Layer whose features are inverted (default: the preset's; paper: fc6).")
flags.DEFINE_string("image", None, "Picture to invert (default: scikit-image's astronaut; the paper's is "
                    "../shared/data/dip/building.jpg).")


def check_flags() -> None:
  """One-line errors for bad flags."""
  flag_groups.check()


def main():
  check_flags()
  out_dir = FLAGS.out_dir or "runs/feature_inversion"
  image_io.ensure_writable(out_dir)
  key_net, key_fit = tasks.keys_for_seed(FLAGS.seed)
  setups, (net, params, weights_label, random_weights) = preimage.prepare_study(
      "invert", FLAGS.preset, key=key_net, log=cli.say, **flag_groups.preimage_options())
  names, first = list(setups), next(iter(setups.values()))
  defaults, size = first.objective_defaults, first.prior.size
  image = image_io.load_image(FLAGS.image) if FLAGS.image else task_main.bundled_image()
  x0 = preimage.prepare_image(image, size)
  objective = preimage.Objective(net, FLAGS.layer or defaults["layer"], mode="invert")
  data = preimage.objective_data(objective, params, x0)
  results = {}
  for name in names:
    prior, steps = setups[name].prior, setups[name].num_steps
    cli.say(f"{name}: {FLAGS.arch} ({weights_label}) {objective.layer}, {size}x{size} (canvas {prior.net_size}), "
            f"{steps} steps, LR {prior.learning_rate:g}")
    results[name] = preimage.optimize(key_fit, objective, data, prior, num_steps=steps, target=x0,
                                      chunk=min(steps, 100), log=cli.say)
    cli.say(f"{name}: feature loss {results[name].initial_objective:.5g} -> {results[name].final_objective:.5g} "
            f"in {results[name].wall_s:.1f} s")
  title = f"{FLAGS.arch} {objective.layer} inversion, {weights_label}, preset {FLAGS.preset}"
  image_io.save_image(os.path.join(out_dir, "target.png"), x0)
  for name, r in results.items():
    image_io.save_image(os.path.join(out_dir, f"{name}.png"), np.clip(r.image, 0, 1))
  image_io.save_strip(os.path.join(out_dir, "comparison.png"), [x0] + [np.clip(r.image, 0, 1) for r in
                      results.values()], ["original"] + [f"{n.upper()} inversion of {objective.layer} "
                      f"({'random' if random_weights else FLAGS.arch})" for n in results], min_tile_width=192)
  plotting.plot_step_curves(os.path.join(out_dir, "loss.png"), {n: r.loss for n, r in results.items()},
                            y_label="loss", log_y=True, title=title)
  image_io.save_json(os.path.join(out_dir, "summary.json"), dict(
      arch=FLAGS.arch, weights=FLAGS.weights, random_weights=random_weights, layer=objective.layer,
      preset=FLAGS.preset, size=size, image=FLAGS.image or "skimage astronaut", seed=FLAGS.seed,
      device=str(jax.devices()[0].device_kind),
      priors={n: dict(prior=preimage.describe(setups[n].prior), steps=int(len(r.loss)),
                      initial_feature_loss=r.initial_objective, final_feature_loss=r.final_objective,
                      wall_s=r.wall_s, loss=np.asarray(r.loss).tolist()) for n, r in results.items()}))
  cli.say(f"results in {out_dir}")


if __name__ == "__main__":
  cli.run(main)
