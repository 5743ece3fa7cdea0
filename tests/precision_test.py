"""Mixed precision and conv paths end to end: a bf16 fit learns with float32 state, the run records its arithmetic."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dipjax
from dipjax import presets, report, tasks
from experiments import flag_groups
from tests import cli_helpers


def _float_leaves(tree):
  return [a for a in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating)]


def test_bf16_restoration_learns_keeps_float32_state_and_records_its_arithmetic():
  config = presets.get("denoise", "tiny", steps=8, precision="bfloat16", conv_impl="rows", guard_every=0)
  clean = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32)
  problem = tasks.make_problem(jax.random.key(0), "denoise", config, clean=clean)
  result = tasks.restore_problem(jax.random.key(1), problem, config)
  loss = np.asarray(result.curves.loss)[0]
  assert np.isfinite(loss).all() and loss[-2:].mean() < loss[:2].mean()
  leaves = _float_leaves(result.state)
  assert leaves and all(a.dtype == jnp.float32 for a in leaves)  # parameters, Adam moments, EMA, metrics
  assert result.output.dtype == np.float32
  assert (result.info["precision"], result.info["conv_impl"]) == ("bfloat16", "rows")
  metrics = dict(result.info, summary=dict(psnr={}, stopping={}))  # as report.write_run spreads it in metrics.json
  assert "convolutions: bfloat16 arithmetic, rows path (cpu)" in report.summary_lines(metrics)


def test_auto_conv_path_is_recorded_as_the_one_that_ran():
  config = presets.get("denoise", "tiny")
  model = dipjax.architectures.get_network(config.model, precision=config.precision, conv_impl=config.conv_impl)
  assert (model.precision, model.conv_impl) == ("float32", "auto")
  assert dipjax.conv.resolve_impl(model.conv_impl, "cpu") == "rows"


@pytest.mark.parametrize("field,value,match", [("precision", "float16", "`precision`"),
                                               ("conv_impl", "winograd", "`conv_impl`")])
def test_bad_numerics_are_one_line_errors(field, value, match):
  with pytest.raises(ValueError, match=match):
    presets.get("denoise", "tiny", **{field: value})
  with pytest.raises(ValueError, match=match):
    dipjax.architectures.get_network("deep_decoder", channels=4, **{field: value}).init(
        jax.random.key(0), jnp.zeros((2, 2, 4)))


def test_flags_reach_the_preset():
  cli_helpers.load_script("denoise")
  flags = cli_helpers.FLAGS
  try:
    flags(["prog", "--precision=bfloat16", "--conv_impl=xla"])
    _, preset = flag_groups.preset("denoise", "tiny")
    assert (preset.precision, preset.conv_impl) == ("bfloat16", "xla")
  finally:
    flags.unparse_flags()
    cli_helpers.forget_script_flags()


def test_denoising_and_sr_cpu_presets_convolve_in_bfloat16_and_the_others_in_float32():
  # bf16 where the CPU-scale fidelity study found no PSNR loss (BUILD_NOTES §19); inpainting lost 0.36 dB.
  bf16 = {("denoise", "cpu"), ("super_resolution", "cpu")}
  for task, named in presets.PRESETS.items():
    for name, preset in named.items():
      assert preset.precision == ("bfloat16" if (task, name) in bf16 else "float32"), (task, name)
  assert presets.get("denoise", "cpu", precision="float32").precision == "float32"  # the reference arithmetic
