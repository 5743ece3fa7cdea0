"""UNet, ResNet, Deep Decoder and the registry: parameter counts, sizes, upsampling primitives, jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dipjax import architectures as arch
from dipjax import canvas as canvas_lib
from dipjax import models


def _count(net, shape):
  shapes = jax.eval_shape(net.init, jax.random.key(0), jax.ShapeDtypeStruct(shape, jnp.float32))
  return models.count_params(shapes)


def _unet_reference_count(c_in, out, feature_scale, more_layers, upsample, norm_affine, concat_x=False):
  """Parameter count of the reference's models/unet.py, written from its constructor."""
  f = [n // feature_scale for n in (64, 128, 256, 512, 1024)]
  conv = lambda i, o, k: k * k * i * o + o
  block = lambda i, o, normed: conv(i, o, 3) + conv(o, o, 3) + (4 * o if normed and norm_affine else 0)

  def up(o, same):
    nf = o if same else 2 * o
    return (16 * nf * o + o if upsample == "deconv" else conv(nf, o, 3)) + block(2 * o, o, False)

  w = lambda n: n - c_in if concat_x else n
  total = block(c_in, w(f[0]), True) + sum(block(f[i - 1], w(f[i]), True) for i in range(1, 5))
  total += more_layers * (block(f[4], w(f[4]), True) + up(f[4], True))
  return total + sum(up(f[i], False) for i in range(4)) + conv(f[0], out, 1)


def _skip_noskip_reference_count(c_in, down, up, kd, ku, need_1x1, out=3):
  """Parameter count of the reference's skip() with num_channels_skip = 0 everywhere."""
  total, d = 0, c_in
  for i, (nd, nu) in enumerate(zip(down, up)):
    total += kd * kd * d * nd + nd + 2 * nd + kd * kd * nd * nd + nd + 2 * nd
    c = up[i + 1] if i + 1 < len(down) else nd
    total += 2 * c + ku * ku * c * nu + nu + 2 * nu + ((nu * nu + nu + 2 * nu) if need_1x1 else 0)
    d = nd
  return total + up[0] * out + out


# (name, C_in, expected, source)
PARAM_COUNTS = [
    ("skip_depth6", 1, 2_996_467),  # dip_reference.md §1.2 (library skip_depth6)
    ("skip_feature_inversion", 32, 2_606_763),  # dip_reference.md §1.2
    ("skip_activation_max", 32, 2_948_567),  # dip_reference.md §1.2
    # §1.2's default (2,217,831) minus skip convs + BN (2,236), concat-BN (40) and up-conv input rows (23,040):
    ("skip_noskip", 32, 2_217_831 - 25_316),
    ("resnet", 1, 158_979),  # models/resnet.py: 9*1*32+32 + 8*(2*9*32^2 + 4*32) + 9*32^2+32 + 64 + 9*32*3+3
    ("deep_decoder", 64, 25_536),  # decodernw([64]*5): 6*(64^2 + 2*64) + 64*3
    ("deep_decoder_128", 128, 100_224),  # decodernw([128]*5): 6*(128^2 + 2*128) + 128*3
]


@pytest.mark.parametrize("name,c_in,expected", PARAM_COUNTS)
def test_parameter_counts(name, c_in, expected):
  net = arch.get_architecture(name)
  assert _count(net, arch.input_shape(net, 64, 64, c_in)) == expected


@pytest.mark.parametrize("depth", [2, 4, 6])
def test_skip_depth_counts_match_reference_formula(depth):
  ch = (16, 32, 64, 128, 128, 128)[:depth]
  expected = _skip_noskip_reference_count(1, ch, ch, 5, 3, need_1x1=False)
  assert _count(arch.get_architecture(f"skip_depth{depth}"), (64, 64, 1)) == expected


@pytest.mark.parametrize("name,c_in,overrides,fs,more,up,affine", [
    ("unet", 32, {}, 4, 0, "bilinear", True),  # get_net('UNet'): 2,164,899
    ("unet_deconv", 1, {}, 8, 1, "deconv", False),  # inpainting "UNET" (InstanceNorm: no affine): 1,616,315
    ("unet", 3, {"upsample": "nearest", "norm": "none", "feature_scale": 16}, 16, 0, "nearest", False),
    ("unet", 3, {"upsample": "deconv", "more_layers": 2, "feature_scale": 16}, 16, 2, "deconv", True),
])
def test_unet_counts_match_reference_formula(name, c_in, overrides, fs, more, up, affine):
  net = arch.get_architecture(name, **overrides)
  expected = _unet_reference_count(c_in, 3, fs, more, up, affine)
  assert _count(net, (2 ** (4 + more), 2 ** (4 + more), c_in)) == expected
  if not overrides:
    assert expected == {"unet": 2_164_899, "unet_deconv": 1_616_315}[name]


def test_unet_concat_x_count_and_shape():
  net = arch.UNet(feature_scale=8, concat_x=True, upsample="bilinear", norm="bn")
  shapes = jax.eval_shape(net.init, jax.random.key(0), jax.ShapeDtypeStruct((32, 32, 3), jnp.float32))
  assert models.count_params(shapes) == _unet_reference_count(3, 3, 8, 0, "bilinear", True, concat_x=True)
  assert jax.eval_shape(net.apply, shapes, jax.ShapeDtypeStruct((32, 32, 3), jnp.float32)).shape == (32, 32, 3)


def _forward(net, z):
  """Initial parameters (dipjax.models.init_params) and output, in one compiled program."""
  return jax.jit(lambda key, z: net.apply({"params": models.init_params(key, net, z)}, z))(jax.random.key(1), z)


@pytest.mark.parametrize("upsample,more_layers,norm,padding", [("deconv", 1, "in", "zero"),
                                                                 ("bilinear", 0, "bn", "reflect")])
def test_unet_forward_shape_and_range(upsample, more_layers, norm, padding):
  net = arch.UNet(feature_scale=16, upsample=upsample, more_layers=more_layers, norm=norm, padding=padding,
                  out_channels=2)
  out = _forward(net, jax.random.uniform(jax.random.key(0), (32, 64, 3)) * 0.1)
  assert out.shape == (32, 64, 2)
  assert float(out.min()) > 0 and float(out.max()) < 1


def test_jit_equals_eager():
  for net, shape in [(arch.ResNet(num_blocks=1, num_channels=4), (8, 8, 2)),
                     (arch.DeepDecoder(channels=4, num_layers=3), (2, 3, 4))]:
    z = jax.random.uniform(jax.random.key(0), shape) * 0.1
    params = jax.jit(models.init_params, static_argnums=1)(jax.random.key(1), net, z)
    eager = net.apply({"params": params}, z)
    np.testing.assert_allclose(jax.jit(net.apply)({"params": params}, z), eager, rtol=1e-5, atol=1e-5)


def test_unet_rejects_sizes_it_would_change():
  net = arch.get_architecture("unet", feature_scale=16)
  with pytest.raises(ValueError, match="33x32.*multiples of 16"):
    net.init(jax.random.key(0), jnp.zeros((33, 32, 3)))
  with pytest.raises(ValueError, match="multiples of 32"):
    arch.get_architecture("unet_deconv").init(jax.random.key(0), jnp.zeros((48, 48, 1)))
  with pytest.raises(ValueError, match="`norm` must be one of"):
    arch.UNet(norm="group").init(jax.random.key(0), jnp.zeros((16, 16, 3)))


def test_resnet_keeps_odd_sizes():
  net = arch.get_architecture("resnet", num_blocks=2, num_channels=8)
  assert _forward(net, jax.random.uniform(jax.random.key(0), (13, 21, 2)) * 0.1).shape == (13, 21, 3)


def test_deep_decoder_seed_and_output_size():
  net = arch.get_architecture("deep_decoder", channels=8)
  assert net.seed_shape(64, 96) == (2, 3, 8)
  assert arch.input_shape(net, 64, 96, channels=32) == (2, 3, 8)
  assert (net.min_size, net.size_multiple, net.out_channels) == (32, 32, 3)
  out = _forward(net, jax.random.uniform(jax.random.key(0), net.seed_shape(64, 96)) * 0.1)
  assert out.shape == (64, 96, 3)
  with pytest.raises(ValueError, match="100x64 must be a positive multiple of 32"):
    net.seed_shape(100, 64)
  with pytest.raises(ValueError, match="32x32 is too small for 6 layers: its seed would be one pixel"):
    net.seed_shape(32, 32)  # channel normalisation of a 1x1 seed is zero: a constant output


def test_deep_decoder_equals_its_definition():
  """conv1x1 -> bilinear x2 (not after the last layer) -> ReLU -> channel norm; conv1x1 -> sigmoid."""
  net = arch.DeepDecoder(channels=4, num_layers=3, out_channels=2)
  z = jax.random.uniform(jax.random.key(0), (3, 2, 4)) * 0.1
  params = jax.jit(models.init_params, static_argnums=1)(jax.random.key(1), net, z)
  x = np.asarray(z, np.float64)
  for i in range(3):
    x = x @ np.asarray(params[f"conv{i}"]["kernel"])[0, 0]
    if i < 2:
      x = np.asarray(jax.image.resize(x, (2 * x.shape[0], 2 * x.shape[1], 4), "bilinear"))
    x = np.maximum(x, 0)
    x = (x - x.mean(axis=(0, 1))) / np.sqrt(x.var(axis=(0, 1)) + 1e-5)  # BN scale 1, bias 0 at init
  want = 1 / (1 + np.exp(-(x @ np.asarray(params["out_conv"]["kernel"])[0, 0])))
  out = jax.jit(net.apply)({"params": params}, z)
  assert out.shape == (12, 8, 2)
  np.testing.assert_allclose(out, want, rtol=1e-4, atol=1e-5)


def test_canvas_for_uses_size_properties():
  assert canvas_lib.canvas_for(arch.get_architecture("unet"), (33, 40))[:2] == (48, 48)
  assert canvas_lib.canvas_for(arch.get_architecture("deep_decoder"), (33, 70))[:2] == (64, 96)
  assert canvas_lib.canvas_for(arch.get_architecture("resnet"), (33, 41))[:2] == (33, 41)


def test_init_params_matches_init_structure_and_torch_bounds():
  net = arch.UNet(feature_scale=16, upsample="deconv", norm="bn")
  z = jax.ShapeDtypeStruct((16, 16, 3), jnp.float32)
  reference = jax.eval_shape(net.init, jax.random.key(0), z)["params"]
  params = jax.jit(models.init_params, static_argnums=1)(jax.random.key(0), net, jnp.zeros(z.shape))
  assert jax.tree_util.tree_structure(params) == jax.tree_util.tree_structure(reference)
  kernel = params["up1_deconv"]["kernel"]  # (4, 4, C_out=4, C_in=8): PyTorch's fan-in is 16 * C_out
  assert kernel.shape == (4, 4, 4, 8)
  bound = 1 / np.sqrt(16 * 4)
  assert 0.8 * bound < float(jnp.abs(kernel).max()) <= bound
  assert 0.5 * bound < float(jnp.abs(params["up1_deconv"]["bias"]).max()) <= bound
  assert float(jnp.abs(params["down1_bn0"]["scale"] - 1).max()) == 0.0


def _conv_transpose_numpy(x, torch_weight, bias):
  """ConvTranspose2d(k=4, stride=2, padding=1) by its definition: scatter each input pixel."""
  h, w, _ = x.shape
  y = np.zeros((2 * h + 2, 2 * w + 2, torch_weight.shape[1]))
  for i in range(4):
    for j in range(4):
      contrib = np.einsum("hwc,co->hwo", x, torch_weight[:, :, i, j])
      y[i:i + 2 * h:2, j:j + 2 * w:2] += contrib
  return y[1:1 + 2 * h, 1:1 + 2 * w] + bias


def test_conv_transpose_matches_definition_and_lax():
  rng = np.random.default_rng(0)
  x = rng.normal(size=(3, 5, 2)).astype(np.float32)
  torch_weight = rng.normal(size=(2, 4, 4, 4)).astype(np.float32)  # (C_in, C_out, kh, kw)
  bias = rng.normal(size=(4,)).astype(np.float32)
  kernel = jnp.asarray(np.transpose(torch_weight, (2, 3, 1, 0)))
  out = arch.conv_transpose2x(jnp.asarray(x), kernel, jnp.asarray(bias))
  np.testing.assert_allclose(out, _conv_transpose_numpy(x, torch_weight, bias), atol=1e-5)

  def with_lax(x, kernel):
    return jax.lax.conv_transpose(x[None], kernel, (2, 2), ((2, 2), (2, 2)),
                                  dimension_numbers=("NHWC", "HWIO", "NHWC"), transpose_kernel=True)[0]

  np.testing.assert_allclose(out, with_lax(x, kernel) + bias.reshape(1, 1, 4), atol=1e-5)
  r = jnp.asarray(rng.normal(size=out.shape).astype(np.float32))
  ours = jax.grad(lambda x, k: jnp.sum(arch.conv_transpose2x(x, k) * r), argnums=(0, 1))(jnp.asarray(x), kernel)
  theirs = jax.grad(lambda x, k: jnp.sum(with_lax(x, k) * r), argnums=(0, 1))(jnp.asarray(x), kernel)
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("shape", [(1, 1, 1), (2, 3, 2), (5, 8, 3)])
def test_bicubic_matches_jax_image_resize(shape):
  out_shape = (2 * shape[0], 2 * shape[1], shape[2])

  @jax.jit
  def both(x, r):
    ours, theirs = arch.upsample2x_bicubic, lambda x: jax.image.resize(x, out_shape, "bicubic")
    grad = lambda f: jax.grad(lambda x: jnp.sum(f(x) * r))(x)
    return ours(x), theirs(x), grad(ours), grad(theirs)

  x = jax.random.normal(jax.random.key(0), shape)
  ours, theirs, g_ours, g_theirs = both(x, jax.random.normal(jax.random.key(1), out_shape))
  np.testing.assert_allclose(ours, theirs, atol=1e-5)
  np.testing.assert_allclose(g_ours, g_theirs, atol=1e-5)


def test_registry_errors_and_overrides():
  with pytest.raises(ValueError, match=r"unknown architecture 'vit'; choose one of \['deep_decoder'"):
    arch.get_architecture("vit")
  assert arch.get_architecture("skip_noskip", channels_skip=(1,) * 5).channels_skip == (1,) * 5
  assert all(hasattr(arch.get_architecture(n), "min_size") for n in arch.ARCHITECTURES)


def test_get_network_builds_every_name_of_both_registries():
  assert set(arch.NETWORKS) == set(models.PRESETS) | set(arch.ARCHITECTURES)
  for name in arch.NETWORKS:
    net = arch.get_network(name, out_channels=1)
    assert net.out_channels == 1 and hasattr(net, "min_size"), name
  assert arch.get_network("tiny") == models.get_model("tiny")
  assert arch.get_network("unet", norm="bn") == arch.get_architecture("unet", norm="bn")
  with pytest.raises(ValueError, match=r"unknown network 'vit'; choose one of \["):
    arch.get_network("vit")


def test_skipnet_takes_transposed_conv_and_bicubic_upsampling():
  shape = (16, 16, 4)
  tiny = _count(models.skip_tiny(), shape)
  assert _count(models.skip_tiny(upsample="bicubic"), shape) == tiny  # parameter-free
  assert _count(models.skip_tiny(upsample="deconv"), shape) - tiny == 2 * (16 * 8 * 8 + 8)  # (4,4,C,C) + bias
  assert arch.get_network("skip_deconv").upsample == "deconv" and arch.get_network("skip_bicubic").upsample == "bicubic"
  x = jax.random.normal(jax.random.key(0), (5, 7, 3))
  from dipjax import layers
  np.testing.assert_allclose(layers.upsample2x(x, "bicubic"), jax.image.resize(x, (10, 14, 3), "bicubic"), atol=1e-5)
  net = models.skip_tiny(upsample=("deconv", "bicubic"))
  z = jax.random.uniform(jax.random.key(1), (16, 12, 4))
  out = jax.jit(net.apply)({"params": models.init_params(jax.random.key(2), net, z)}, z)
  assert out.shape == (16, 12, 3) and np.isfinite(out).all()
  with pytest.raises(ValueError, match="`upsample` must be one of"):
    models.skip_tiny(upsample="lanczos").init(jax.random.key(0), z)
