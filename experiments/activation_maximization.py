r"""Activation maximisation with the deep image prior and with TV (the reference's ``activation_maximization.ipynb``).

Finds an image that maximises one channel of a classifier layer summed over the
central ``2w x 2w`` window (``--mode=maximize``: loss ``−5 Σ``; the reference's conv4,
channel 2, window 20), or drives one class logit to 300 (``--class_index``,
``--mode=match``: loss ``5 |300 − logit|`` at fc8; the reference's "black swan" is
class 100), with ``x = crop(f_θ(z))`` (Deep Image Prior, input jitter 0.03) and with
TV-regularised pixels (:mod:`dipjax.preimage`)::

    python -m experiments.activation_maximization --weights=alexnet.npz --preset=paper       # GPU
    python -m experiments.activation_maximization --preset=cpu                                # random weights
    python -m experiments.activation_maximization --weights=alexnet.npz --class_index=100 --preset=paper

No classifier weights ship and nothing is downloaded (``experiments/convert_weights.py``).
Without ``--weights`` the classifier has **random** weights (said in the output and the
pictures). Outputs in ``--out_dir`` (default ``runs/activation_maximization``):
``<prior>.png``, ``comparison.png``, ``loss.png``, ``summary.json``.
"""

from __future__ import annotations

import os

from absl import flags

import jax
import numpy as np

from dipjax import image_io, plotting, preimage, tasks, validation
from experiments import cli, flag_groups

FLAGS = flags.FLAGS
flag_groups.define_preimage(size_help="Classifier input side (default: the preset's; paper 227 for AlexNet).")
flags.DEFINE_string("layer", None, "Layer (default: the preset's conv layer, or fc8 with --class_index).")
flags.DEFINE_integer("channel", None, "Channel (conv layer) or unit (fc layer) to maximise (default 2).")
flags.DEFINE_integer("class_index", None, "ImageNet class whose fc8 logit is driven to 300 (sets --layer=fc8 and "
                     "--mode=match unless given).")
flags.DEFINE_integer("window", None, "Half-width w of the central window of a conv map (default 20).")
flags.DEFINE_enum("mode", None, ["maximize", "match"], "maximize: −5 Σ activation; match: 5 |300 − activation| "
                  "(default: match with --class_index, else maximize).")


def check_flags() -> None:
  """One-line errors for bad numeric flags."""
  flag_groups.check()
  if FLAGS.window is not None:
    validation.positive_int("--window", FLAGS.window)
  for name in ("channel", "class_index"):
    if FLAGS[name].value is not None:
      validation.non_negative_int(f"--{name}", FLAGS[name].value)
  if FLAGS.channel is not None and FLAGS.class_index is not None:
    raise ValueError("give --channel or --class_index, not both.")


def mode() -> str:
  return FLAGS.mode or ("match" if FLAGS.class_index is not None else "maximize")


def objective_of(net, defaults: dict) -> preimage.Objective:
  """The flags' objective (layer, channel, window, mode) over the preset's defaults."""
  fc = FLAGS.class_index is not None
  layer = FLAGS.layer or ("fc8" if fc else defaults["layer"])
  channel = FLAGS.class_index if fc else (FLAGS.channel if FLAGS.channel is not None else defaults["channel"])
  return preimage.check_objective(preimage.Objective(
      net, layer, mode=mode(), channel=channel, window=FLAGS.window or defaults["window"], scale=defaults["scale"],
      target_value=defaults["target_value"]))


def main():
  check_flags()
  out_dir = FLAGS.out_dir or "runs/activation_maximization"
  image_io.ensure_writable(out_dir)
  key_net, key_fit = tasks.keys_for_seed(FLAGS.seed)
  setups, (net, params, weights_label, random_weights) = preimage.prepare_study(
      "maximize", FLAGS.preset, key=key_net, mode="match" if FLAGS.class_index is not None else mode(),
      log=cli.say, **flag_groups.preimage_options())
  names, first = list(setups), next(iter(setups.values()))
  defaults, size = first.objective_defaults, first.prior.size
  objective = objective_of(net, defaults)
  data = preimage.objective_data(objective, params)
  what = f"{objective.layer} {'unit' if objective.layer.startswith('fc') else 'channel'} {objective.channel}"
  results = {}
  for name in names:
    prior, steps = setups[name].prior, setups[name].num_steps
    cli.say(f"{name}: {FLAGS.arch} ({weights_label}) {what}, {objective.mode}, {size}x{size} (canvas "
            f"{prior.net_size}), {steps} steps, LR {prior.learning_rate:g}")
    results[name] = preimage.optimize(key_fit, objective, data, prior, num_steps=steps, chunk=min(steps, 100),
                                      log=cli.say)
    cli.say(f"{name}: objective {results[name].initial_objective:.5g} -> {results[name].final_objective:.5g} in "
            f"{results[name].wall_s:.1f} s")
  for name, r in results.items():
    image_io.save_image(os.path.join(out_dir, f"{name}.png"), np.clip(r.image, 0, 1))
  image_io.save_strip(os.path.join(out_dir, "comparison.png"), [np.clip(r.image, 0, 1) for r in results.values()],
                      [f"{n.upper()}: {what} ({'random' if random_weights else FLAGS.arch})" for n in results],
                      min_tile_width=192)
  plotting.plot_step_curves(os.path.join(out_dir, "loss.png"), {n: r.loss for n, r in results.items()},
                            y_label="loss", title=f"{FLAGS.arch} {what} {objective.mode}, {weights_label}, "
                            f"preset {FLAGS.preset}")
  image_io.save_json(os.path.join(out_dir, "summary.json"), dict(
      arch=FLAGS.arch, weights=FLAGS.weights, random_weights=random_weights, layer=objective.layer,
      channel=objective.channel, window=objective.window, mode=objective.mode, preset=FLAGS.preset, size=size,
      seed=FLAGS.seed, device=str(jax.devices()[0].device_kind),
      priors={n: dict(prior=preimage.describe(setups[n].prior), steps=int(len(r.loss)),
                      initial_objective=r.initial_objective, final_objective=r.final_objective, wall_s=r.wall_s,
                      loss=np.asarray(r.loss).tolist()) for n, r in results.items()}))
  cli.say(f"results in {out_dir}")


if __name__ == "__main__":
  cli.run(main)
