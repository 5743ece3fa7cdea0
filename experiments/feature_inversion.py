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

from dipjax import features, image_io, plotting, preimage, tasks, validation
from experiments import cli, task_main

FLAGS = flags.FLAGS
flags.DEFINE_string("weights", None, "Converted classifier weights (.npz, or .pth with PyTorch installed); see "
                    "experiments/convert_weights.py. Without it: RANDOM weights.")
flags.DEFINE_enum("arch", "alexnet", sorted(features.FEATURE_NETS), "Classifier architecture.")
flags.DEFINE_string("layer", None, "Layer whose features are inverted (default: the preset's; paper: fc6).")
flags.DEFINE_string("image", None, "Picture to invert (default: scikit-image's astronaut; the paper's is "
                    "../shared/data/dip/building.jpg).")
flags.DEFINE_enum("prior", "both", ["dip", "tv", "both"], "Deep image prior, TV-regularised pixels, or both.")
flags.DEFINE_enum("preset", "cpu", list(preimage.PRESETS), "paper: the reference's settings (GPU); cpu: a few "
                  "minutes on 2 cores; tiny: tests.")
flags.DEFINE_integer("steps", None, "Override the preset's number of Adam steps.")
flags.DEFINE_float("lr", None, "Override the preset's learning rate.")
flags.DEFINE_float("tv_weight", None, "Override the TV prior's weight λ (on a [0, 1] image, beta 2).")
flags.DEFINE_integer("size", None, "Classifier input side (default: the preset's; paper 224).")
flags.DEFINE_string("out_dir", None, "Output folder.")
flags.DEFINE_integer("seed", 0, "Random seed (network, input noise, random classifier weights).")


def check_flags() -> None:
  """One-line errors for bad numeric flags."""
  for name in ("steps", "size"):
    if FLAGS[name].value is not None:
      validation.positive_int(f"--{name}", FLAGS[name].value)
  if FLAGS.lr is not None:
    validation.finite("--lr", FLAGS.lr, minimum=0.0, inclusive=False)
  if FLAGS.tv_weight is not None:
    validation.finite("--tv_weight", FLAGS.tv_weight, minimum=0.0)
  validation.non_negative_int("--seed", FLAGS.seed)
  if FLAGS.weights and not os.path.isfile(FLAGS.weights):
    raise ValueError(f"--weights={FLAGS.weights} is not a file; convert weights with experiments/convert_weights.py "
                     "or leave the flag out for random weights.")


def prior_for(name: str) -> tuple[preimage.Prior, int, dict]:
  """The preset's prior for ``name`` with the flags' overrides, its steps, and the objective's defaults."""
  s = preimage.setup("invert", FLAGS.preset, name, arch=FLAGS.arch)
  prior = preimage.with_size(s.prior, FLAGS.size) if FLAGS.size else s.prior
  if FLAGS.lr is not None:
    prior = prior._replace(learning_rate=FLAGS.lr)
  if FLAGS.tv_weight is not None and name == "tv":
    prior = prior._replace(tv_weight=FLAGS.tv_weight)
  return prior, FLAGS.steps or s.num_steps, dict(s.objective_defaults, overrides=s.classifier_overrides)


def main():
  check_flags()
  out_dir = FLAGS.out_dir or "runs/feature_inversion"
  image_io.ensure_writable(out_dir)
  names = ["dip", "tv"] if FLAGS.prior == "both" else [FLAGS.prior]
  setups = {n: prior_for(n) for n in names}
  defaults = setups[names[0]][2]
  size = setups[names[0]][0].size
  key_net, key_fit = tasks.keys_for_seed(FLAGS.seed)
  random_weights = not FLAGS.weights
  net, params = preimage.load_classifier(FLAGS.arch, FLAGS.weights, key=key_net, size=size,
                                         overrides=defaults["overrides"] if random_weights else None)
  weights_label = "RANDOM weights" if random_weights else os.path.basename(FLAGS.weights)
  if random_weights:
    cli.say(f"WARNING: no --weights: the {FLAGS.arch} classifier has RANDOM weights (seed {FLAGS.seed}); the "
            "inversions are not the paper's pictures. See experiments/convert_weights.py.")
  image = image_io.load_image(FLAGS.image) if FLAGS.image else task_main.bundled_image()
  x0 = preimage.prepare_image(image, size)
  objective = preimage.Objective(net, FLAGS.layer or defaults["layer"], mode="invert")
  data = preimage.objective_data(objective, params, x0)
  results = {}
  for name in names:
    prior, steps, _ = setups[name]
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
      priors={n: dict(prior=preimage.describe(setups[n][0]), steps=int(len(r.loss)),
                      initial_feature_loss=r.initial_objective, final_feature_loss=r.final_objective,
                      wall_s=r.wall_s, loss=np.asarray(r.loss).tolist()) for n, r in results.items()}))
  cli.say(f"results in {out_dir}")


if __name__ == "__main__":
  cli.run(main)
