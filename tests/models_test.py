"""SkipNet: parameter-count pins, shapes, init bounds, BatchNorm, upsampling, config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dipjax
from dipjax import layers, models

# (preset, input channels, overrides, parameter count from dip_reference.md §1.2)
PARAM_COUNTS = [
    ("default", 32, {}, 2_217_831),
    ("default", 32, {"out_channels": 1}, 2_217_573),
    ("default", 3, {}, 2_184_307),
    ("deblock", 3, {}, 572_827),
    ("inpaint_text", 32, {}, 3_002_627),
    ("inpaint_region", 2, {}, 2_157_955),
    ("inpaint_large_hole", 1, {}, 2_996_467),
    ("restore_sparse", 32, {}, 1_027_379),
    ("flash", 3, {}, 2_184_307),
]
SIX = (16, 32, 64, 128, 128, 128)


def _count(net, c_in, size=(64, 64)):
  shapes = jax.eval_shape(net.init, jax.random.key(0), jnp.zeros(size + (c_in,)))
  return models.count_params(shapes)


@pytest.mark.parametrize("name,c_in,overrides,expected", PARAM_COUNTS)
def test_parameter_counts_match_reference(name, c_in, overrides, expected):
  assert _count(models.get_model(name, **overrides), c_in) == expected


def test_ablation_parameter_counts():
  feature_inversion = models.SkipNet(channels_down=SIX, channels_up=SIX, channels_skip=(4,) * 6,
                                     kernel_size_down=(7, 7, 5, 5, 3, 3), kernel_size_up=(7, 7, 5, 5, 3, 3),
                                     downsample="avg", padding="zero")
  activation_max = models.SkipNet(channels_down=SIX, channels_up=SIX, channels_skip=(0, 4, 4, 4, 4, 4),
                                  kernel_size_down=(5, 3, 5, 5, 3, 5), kernel_size_up=(5, 3, 5, 3, 5, 3),
                                  downsample="avg", upsample="bilinear")
  assert _count(feature_inversion, 32) == 2_606_763
  assert _count(activation_max, 32) == 2_948_567


@pytest.mark.parametrize("size", [(32, 32), (63, 97), (33, 45), (514, 70)])
def test_default_net_keeps_any_size(size):
  net = dipjax.skip_default()
  z = jax.ShapeDtypeStruct(size + (32,), jnp.float32)
  params = jax.eval_shape(net.init, jax.random.key(0), z)
  assert jax.eval_shape(net.apply, params, z).shape == size + (3,)


def test_odd_size_forward_runs_and_is_in_unit_range():
  net = dipjax.skip_tiny(out_channels=2)
  z = dipjax.make_input(jax.random.key(0), (13, 21), channels=4)
  params = net.init(jax.random.key(1), z)
  y = net.apply(params, z)
  assert y.shape == (13, 21, 2)
  assert float(y.min()) > 0.0 and float(y.max()) < 1.0


def test_no_skip_net_needs_multiple_of_two_to_the_levels():
  net = dipjax.skip_tiny(channels_skip=(0, 0))
  assert net.size_multiple == 4 and dipjax.skip_tiny().size_multiple == 1
  z = jnp.zeros((18, 24, 4))
  params = jax.eval_shape(net.init, jax.random.key(0), z)
  assert jax.eval_shape(net.apply, params, z).shape == (20, 24, 3)  # grows, as in the reference


@pytest.mark.parametrize("which", ["flax_init", "init_params"])
def test_init_bounds_follow_pytorch_defaults(which):
  net = dipjax.skip_default()
  z = jnp.zeros((32, 32, 32))
  if which == "flax_init":
    params = jax.jit(net.init)(jax.random.key(0), z)["params"]
  else:  # the single-draw initialiser used by fit
    params = jax.jit(lambda k: models.init_params(k, net, z))(jax.random.key(0))
  reference_tree = jax.eval_shape(net.init, jax.random.key(0), z)["params"]
  assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(reference_tree)
  conv = params["up0_conv0"]  # 3x3, (4 + 128) -> 128
  bound = 1.0 / np.sqrt(132 * 9)
  for leaf in (conv["kernel"], conv["bias"]):
    assert float(jnp.max(jnp.abs(leaf))) <= bound
  assert float(jnp.max(jnp.abs(conv["kernel"]))) > 0.95 * bound  # uniform fills the interval
  assert abs(float(jnp.std(conv["kernel"])) - bound / np.sqrt(3)) < 0.02 * bound
  bn = params["up0_bn0"]
  np.testing.assert_array_equal(bn["scale"], 1.0)
  np.testing.assert_array_equal(bn["bias"], 0.0)
  tiny = dipjax.skip_tiny(bn_scale_init="uniform")
  if which == "flax_init":
    uniform = tiny.init(jax.random.key(0), jnp.zeros((16, 16, 4)))["params"]
  else:
    uniform = models.init_params(jax.random.key(0), tiny, jnp.zeros((16, 16, 4)))
  scale = uniform["up0_bn0"]["scale"]
  assert float(scale.min()) >= 0.0 and float(scale.max()) <= 1.0 and float(jnp.std(scale)) > 0.05


def test_batchnorm_uses_statistics_of_the_current_image():
  x = jax.random.normal(jax.random.key(0), (9, 7, 5)) * 3.0 + 2.0
  bn = layers.BatchNorm()
  params = bn.init(jax.random.key(1), x)
  y = bn.apply(params, x)
  np.testing.assert_allclose(jnp.mean(y, axis=(0, 1)), 0.0, atol=1e-5)
  np.testing.assert_allclose(jnp.var(y, axis=(0, 1)), 1.0, atol=1e-3)  # biased variance, eps 1e-5
  y2 = bn.apply(params, x * 10.0 + 5.0)  # no running average: a rescaled image normalises the same
  np.testing.assert_allclose(y2, y, atol=1e-4)


@pytest.mark.parametrize("shape", [(5, 7, 3), (8, 8, 2), (1, 4, 1)])
def test_bilinear_upsampling_matches_half_pixel_resize(shape):
  x = jax.random.uniform(jax.random.key(0), shape)
  expected = jax.image.resize(x, (2 * shape[0], 2 * shape[1], shape[2]), "bilinear")
  np.testing.assert_allclose(layers.upsample2x(x, "bilinear"), expected, atol=1e-6)
  np.testing.assert_array_equal(layers.upsample2x(x, "nearest")[1::2, 1::2], x)


def test_reflection_padding_matches_torch_reflectionpad():
  x = np.arange(12, dtype=np.float32).reshape(3, 4, 1)
  padded = jnp.pad(jnp.asarray(x), ((1, 1), (1, 1), (0, 0)), mode="reflect")
  assert padded[0, 0, 0] == x[1, 1, 0]  # no edge repeat
  assert padded.shape == (5, 6, 1)


def test_concat_centre_crop_matches_reference_offsets():
  a = jnp.zeros((5, 5, 1))
  b = jnp.arange(36.0).reshape(6, 6, 1)
  out = layers.concat_centre_crop([a, b])
  assert out.shape == (5, 5, 2)
  np.testing.assert_array_equal(out[..., 1], b[0:5, 0:5, 0])  # offset (6 - 5) // 2 = 0


@pytest.mark.parametrize("mode", ["avg", "max", "lanczos2"])
def test_pooling_downsample_modes_run(mode):
  net = dipjax.skip_tiny(downsample=mode)
  z = jnp.ones((16, 16, 4)) * 0.05
  params = net.init(jax.random.key(0), z)
  assert net.apply(params, z).shape == (16, 16, 3)


@pytest.mark.parametrize("act", ["swish", "elu", "none"])
def test_activations_run(act):
  net = dipjax.skip_tiny(activation=act, padding="zero", need_sigmoid=False, need_1x1_up=False)
  z = jnp.ones((16, 16, 4)) * 0.05
  params = net.init(jax.random.key(0), z)
  assert jnp.all(jnp.isfinite(net.apply(params, z)))


@pytest.mark.parametrize("overrides,match", [
    ({"channels_up": (8, 8, 8)}, "same length"),
    ({"upsample": "lanczos"}, "`upsample`"),
    ({"downsample": ("stride",)}, "one entry per level"),
    ({"padding": "edge"}, "`padding`"),
    ({"activation": "relu6"}, "`activation`"),
])
def test_bad_configuration_raises(overrides, match):
  with pytest.raises(ValueError, match=match):
    dipjax.skip_tiny(**overrides).init(jax.random.key(0), jnp.zeros((16, 16, 4)))


def test_unknown_preset():
  with pytest.raises(ValueError, match="unknown model preset"):
    dipjax.get_model("resnet")
