r"""Micro-benchmark: one 3x3 convolution's forward + gradients inside a ``lax.scan``, per conv path and precision.

Times every implementation of :func:`dipjax.conv2d` (``impl``: ``matmul`` im2col,
``rows`` row-im2col, ``xla`` = ``lax.conv_general_dilated`` differentiated by JAX) in
float32 and bfloat16 (bf16 operands, f32 accumulation). The scan updates the weights
every step so nothing is hoisted out of the loop. All variants are compiled first,
then timed in interleaved repetitions (the fastest is reported), so a busy machine
slows them alike.

    python -m experiments.bench_conv --sizes=64,128 --channels=128
    python -m experiments.bench_conv --impls=matmul,rows --precisions=float32,bfloat16 --repeats=5
"""

from __future__ import annotations

import itertools
import time

from absl import flags

import jax
import jax.numpy as jnp
from jax import lax

import dipjax
from dipjax import conv as conv_lib
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_list("sizes", ["64", "128"], "Square feature-map sizes.")
flags.DEFINE_integer("channels", 128, "C_in = C_out.")
flags.DEFINE_integer("kernel", 3, "Kernel size k.")
flags.DEFINE_integer("steps", 4, "Scan steps per timing.")
flags.DEFINE_integer("repeats", 3, "Interleaved timed repetitions; the fastest is reported.")
flags.DEFINE_list("impls", ["xla", "matmul", "rows"], f"Conv paths ({conv_lib.CONV_IMPLS}).")
flags.DEFINE_list("precisions", ["float32", "bfloat16"], f"Precisions ({conv_lib.PRECISIONS}).")


def lax_conv(x, w):
  return lax.conv_general_dilated(x[None], w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))[0]


def compile_train(conv, x, w, steps):
  """The compiled scan of ``steps`` forward + both-gradient steps of ``conv``."""
  def train(x, w):
    def body(w, _):
      gx, gw = jax.grad(lambda x, w: jnp.sum(conv(x, w) ** 2), argnums=(0, 1))(x, w)
      return w - 1e-6 * gw + 1e-9 * jnp.sum(gx), None
    return lax.scan(body, w, None, length=steps)[0]

  compiled = jax.jit(train).lower(x, w).compile()
  jax.block_until_ready(compiled(x, w))
  return compiled


def seconds_per_step(conv, x, w, steps):
  """One timed call (after a warm-up) of :func:`compile_train`, per step."""
  compiled = compile_train(conv, x, w, steps)
  t0 = time.perf_counter()
  jax.block_until_ready(compiled(x, w))
  return (time.perf_counter() - t0) / steps


def main():
  c, k = FLAGS.channels, FLAGS.kernel
  variants = list(itertools.product(FLAGS.impls, FLAGS.precisions))
  for impl, precision in variants:
    conv_lib.resolve_impl(impl)
    conv_lib.check_precision(precision)
  print("| size | " + " | ".join(f"{i} {p} (s/step)" for i, p in variants) + " |")
  print("|---|" + "---|" * len(variants))
  for size in (int(s) for s in FLAGS.sizes):
    x = jax.random.normal(jax.random.key(0), (size + k - 1, size + k - 1, c))
    w = jax.random.normal(jax.random.key(1), (k, k, c, c)) * 0.03
    programs = [compile_train(lambda x, w, i=i, p=p: dipjax.conv2d(x, w, precision=p, impl=i), x, w, FLAGS.steps)
                for i, p in variants]
    best = [float("inf")] * len(variants)
    for _ in range(FLAGS.repeats):
      for n, program in enumerate(programs):
        t0 = time.perf_counter()
        jax.block_until_ready(program(x, w))
        best[n] = min(best[n], (time.perf_counter() - t0) / FLAGS.steps)
    print(f"| {size}² | " + " | ".join(f"{b:.4f}" for b in best) + " |", flush=True)


if __name__ == "__main__":
  cli.run(main)
