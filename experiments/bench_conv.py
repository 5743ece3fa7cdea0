r"""Micro-benchmark: one 3x3 convolution's forward + gradients inside a ``lax.scan``.

Compares ``lax.conv_general_dilated`` differentiated by JAX with dipjax's
matmul convolution (``dipjax.conv2d``, hand-written VJP). The scan updates the
weights every step so nothing is hoisted out of the loop.

    python -m experiments.bench_conv --sizes=64,128 --channels=128
"""

from __future__ import annotations

import time

from absl import flags

import jax
import jax.numpy as jnp
from jax import lax

import dipjax
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["64", "128"], "Square feature-map sizes.")
flags.DEFINE_integer("channels", 128, "C_in = C_out.")
flags.DEFINE_integer("steps", 4, "Scan steps per timing.")


def lax_conv(x, w):
  return lax.conv_general_dilated(x[None], w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))[0]


def seconds_per_step(conv, x, w, steps):
  def train(x, w):
    def body(w, _):
      gx, gw = jax.grad(lambda x, w: jnp.sum(conv(x, w) ** 2), argnums=(0, 1))(x, w)
      return w - 1e-6 * gw + 1e-9 * jnp.sum(gx), None
    return lax.scan(body, w, None, length=steps)[0]

  compiled = jax.jit(train).lower(x, w).compile()
  jax.block_until_ready(compiled(x, w))
  t0 = time.perf_counter()
  jax.block_until_ready(compiled(x, w))
  return (time.perf_counter() - t0) / steps


def main():
  c = FLAGS.channels
  print("| size | lax.conv_general_dilated + autodiff (s/step) | dipjax.conv2d (s/step) |")
  print("|---|---|---|")
  for size in (int(s) for s in FLAGS.sizes):
    x = jax.random.normal(jax.random.key(0), (size + 2, size + 2, c))
    w = jax.random.normal(jax.random.key(1), (3, 3, c, c)) * 0.03
    slow = seconds_per_step(lax_conv, x, w, FLAGS.steps)
    fast = seconds_per_step(lambda x, w: dipjax.conv2d(x, w), x, w, FLAGS.steps)
    print(f"| {size}² | {slow:.3f} | {fast:.4f} |")


if __name__ == "__main__":
  cli.run(main)
