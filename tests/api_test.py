"""Conventions of the public API: documented, `key` first, options keyword-only."""

import inspect

import pytest

import dipjax

PUBLIC = sorted(dipjax.__all__)


@pytest.mark.parametrize("name", PUBLIC)
def test_public_names_exist_and_have_docstrings(name):
  obj = getattr(dipjax, name)
  if callable(obj):
    assert inspect.getdoc(obj), f"dipjax.{name} has no docstring"


FUNCTIONS = [n for n in PUBLIC if inspect.isfunction(getattr(dipjax, n))]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_key_is_first_and_defaults_are_keyword_only(name):
  sig = inspect.signature(getattr(dipjax, name))
  params = list(sig.parameters.values())
  names = [p.name for p in params]
  assert "rng" not in names and "seed" not in names, f"{name}: use `key`"
  if "key" in names:
    assert names[0] == "key", f"{name}: `key` must be the first argument"
  for p in params:
    if p.kind == p.POSITIONAL_OR_KEYWORD and p.default is not p.empty:
      # model presets take only keyword overrides; everything else must be keyword-only
      pytest.fail(f"{name}: option `{p.name}` has a default but is not keyword-only")


def test_conv_bias_before_batchnorm_has_no_effect():
  """The biases that BatchNorm cancels are kept (parameter parity) but do not change the output."""
  import jax
  import numpy as np

  net = dipjax.skip_tiny()
  z = dipjax.make_input(jax.random.key(0), (16, 16), channels=4)
  params = net.init(jax.random.key(1), z)
  bumped = jax.tree_util.tree_map_with_path(
      lambda path, x: x + 0.3 if (path[-1].key == "bias" and "conv" in path[-2].key
                                  and path[-2].key != "out_conv") else x, params)
  np.testing.assert_allclose(net.apply(bumped, z), net.apply(params, z), atol=2e-6)
  out_bumped = jax.tree_util.tree_map_with_path(
      lambda path, x: x + 0.3 if path[-2].key == "out_conv" and path[-1].key == "bias" else x, params)
  assert not np.allclose(net.apply(out_bumped, z), net.apply(params, z), atol=1e-3)
