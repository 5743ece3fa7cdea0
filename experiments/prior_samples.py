r"""Prior samples: a grid of f_θ(z) for random θ, one row per architecture, the same z draw for all.

    python -m experiments.prior_samples                                   # default, depth 2/6, U-Net, ResNet, Deep Decoder
    python -m experiments.prior_samples --nets=default,skip_noskip --samples=6 --size=128

Architectures: the skip-net presets of ``dipjax.models.PRESETS`` and the configurations of
``dipjax.architectures.ARCHITECTURES``. Writes ``prior_samples.png`` into ``--out_dir``
(default ``runs/prior_samples``).
"""

from __future__ import annotations

import os

from absl import flags

import jax

from dipjax import architectures, image_io, prior
from experiments import cli, flag_groups

FLAGS = flags.FLAGS
flags.DEFINE_list("nets", ["default", "skip_depth2", "skip_depth6", "unet", "resnet", "deep_decoder"],
                  "Architectures, one row each.")
flags.DEFINE_integer("samples", 4, "Parameter draws per architecture.")
flags.DEFINE_integer("size", 64, "Image side in pixels.")
flags.DEFINE_integer("seed", 0, "Seed of the input and the parameter draws.")
flags.DEFINE_string("out_dir", None, "Output folder (default runs/prior_samples).")


def build(name: str):
  """A network by name (a one-line error naming the flag for an unknown one)."""
  if name not in architectures.NETWORKS:
    raise ValueError(f"--nets: unknown architecture {name!r}; choose from {list(architectures.NETWORKS)}.")
  return architectures.get_network(name)


def main():
  flag_groups.check()
  for name in ("samples", "size"):
    if FLAGS[name].value < 1:
      raise ValueError(f"--{name} must be at least 1, got {FLAGS[name].value}.")
  nets = {name: build(name) for name in FLAGS.nets}
  for name, model in nets.items():
    multiple, smallest = getattr(model, "size_multiple", 1), getattr(model, "min_size", 1)
    if FLAGS.size % multiple or FLAGS.size < smallest:
      raise ValueError(f"--size={FLAGS.size} does not suit {name!r}: it needs a multiple of {multiple}, at least "
                       f"{smallest}.")
  out_dir = flag_groups.out_dir("runs/prior_samples")
  key = jax.random.key(FLAGS.seed)
  rows, labels = [], []
  for name, model in nets.items():
    images = prior.prior_samples(key, model, (FLAGS.size, FLAGS.size), samples=FLAGS.samples)
    rows.append(list(images))
    labels.append([f"{name} #{i}" for i in range(FLAGS.samples)])
    cli.say(f"{name}: {FLAGS.samples} samples, pixel mean {images.mean():.3f}, std {images.std():.3f}")
  path = os.path.join(out_dir, "prior_samples.png")
  image_io.save_grid(path, rows, labels)
  cli.say(f"wrote {path}")


if __name__ == "__main__":
  cli.run(main)
