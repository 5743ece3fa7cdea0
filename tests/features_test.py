"""AlexNet / VGG feature extractors: layer shapes, Caffe semantics, weight loading from .npz."""

import doctest

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dipjax import features
from dipjax import models

SMALL_FC = (8, 8, 5)


def _random_state_dict(model, seed=0):
  """A PyTorch-layout state dict (OIHW convs, (out, in) fc) with the model's shapes, from a numpy RNG."""
  rng = np.random.default_rng(seed)
  size = model.default_size
  shapes = jax.eval_shape(lambda k: model.init(k, jnp.zeros((size, size, 3)), layer=model.layer_names[-1]),
                          jax.random.key(0))["params"]
  state = {}
  for name, leaves in shapes.items():
    k = leaves["kernel"].shape
    torch_shape = (k[3], k[2], k[0], k[1]) if len(k) == 4 else (k[1], k[0])
    fan_in = int(np.prod(torch_shape[1:]))
    state[f"{name}.weight"] = (rng.uniform(-1, 1, torch_shape) / np.sqrt(fan_in)).astype(np.float32)
    state[f"{name}.bias"] = (rng.uniform(-1, 1, leaves["bias"].shape) * 0.1).astype(np.float32)
  return state


@pytest.fixture(scope="module")
def alexnet_weights(tmp_path_factory):
  model = features.AlexNet(fc_features=SMALL_FC)
  state = _random_state_dict(model)
  path = str(tmp_path_factory.mktemp("w") / "alexnet.npz")
  features.save_npz_from_state_dict(state, path)
  return model, state, path


def test_parameter_counts_of_the_full_networks():
  counts = {}
  for name in ("alexnet", "vgg16", "vgg19"):
    net = features.get_feature_net(name)
    x = jax.ShapeDtypeStruct((net.default_size, net.default_size, 3), jnp.float32)
    counts[name] = models.count_params(jax.eval_shape(net.init, jax.random.key(0), x))
  # Caffe bvlc_alexnet (grouped conv2/4/5): 60,965,224; torchvision VGG-16/19: 138,357,544 / 143,667,240.
  assert counts == {"alexnet": 60_965_224, "vgg16": 138_357_544, "vgg19": 143_667_240}


def test_loader_round_trip_and_layouts(alexnet_weights):
  model, state, path = alexnet_weights
  params = features.load_weights(path, model)
  np.testing.assert_array_equal(params["conv2"]["kernel"], np.transpose(state["conv2.weight"], (2, 3, 1, 0)))
  np.testing.assert_array_equal(params["fc7"]["kernel"], state["fc7.weight"].T)
  np.testing.assert_array_equal(params["fc8"]["bias"], state["fc8.bias"])
  assert params["conv2"]["kernel"].shape == (5, 5, 48, 256)  # grouped: (k, k, C_in / 2, C_out)


def test_alexnet_layers_at_227_match_direct_formulas(alexnet_weights):
  model, state, path = alexnet_weights
  params = features.load_weights(path, model)
  image = jax.random.uniform(jax.random.key(0), (227, 227, 3))

  @jax.jit
  def run(params, image):
    return {layer: features.activation_at(model, params, image, layer)
            for layer in ("norm1", "pool2", "conv4", "relu3", "pool5", "fc6", "fc8", "softmax")}

  acts = run(params, image)
  assert acts["pool2"].shape == (13, 13, 256) and acts["pool5"].shape == (6, 6, 256)
  assert acts["fc6"].shape == (8,) and acts["softmax"].shape == (5,)
  # conv4 (2 groups) from relu3 with XLA's grouped convolution on the PyTorch-layout weight:
  want = jax.lax.conv_general_dilated(jnp.transpose(acts["relu3"], (2, 0, 1))[None], state["conv4.weight"], (1, 1),
                                      ((1, 1), (1, 1)), feature_group_count=2)[0]
  want = want + state["conv4.bias"].reshape(-1, 1, 1)
  np.testing.assert_allclose(acts["conv4"], jnp.transpose(want, (1, 2, 0)), rtol=1e-4, atol=1e-4)
  # fc6 on torch's channel-major flattening of pool5 (the reference's View):
  want_fc6 = state["fc6.weight"] @ np.transpose(np.asarray(acts["pool5"]), (2, 0, 1)).reshape(-1) + state["fc6.bias"]
  np.testing.assert_allclose(acts["fc6"], want_fc6, rtol=1e-4, atol=1e-3)
  np.testing.assert_allclose(acts["softmax"], jax.nn.softmax(acts["fc8"]), rtol=1e-5)


def test_alexnet_small_input_and_224():
  net = features.AlexNet(fc_features=SMALL_FC)
  shape_of = lambda size, layer: jax.eval_shape(
      lambda k: net.init(k, jnp.zeros((size, size, 3)), layer=layer)["params"], jax.random.key(0))
  out = lambda size, layer: jax.eval_shape(
      lambda p: net.apply({"params": p}, jnp.zeros((size, size, 3)), layer=layer), shape_of(size, layer)).shape
  assert out(39, "pool5") == (1, 1, 256)  # the smallest input every conv layer accepts
  assert out(67, "conv5") == (3, 3, 256)
  assert out(224, "fc6") == (8,)  # ceil-mode pooling: the reference's 224 input reaches 6x6 at pool5
  with pytest.raises(ValueError, match="needs pool5 to be 6x6.*got 7x7"):
    out(240, "fc6")
  with pytest.raises(ValueError, match="too small"):
    out(38, "pool5")
  with pytest.raises(ValueError, match="`layer` must be one of"):
    out(67, "conv6")


def test_vgg_shapes_and_alias_keys(tmp_path):
  net = features.VGG(depth=16, fc_features=SMALL_FC)
  state = _random_state_dict(net)
  index = {n: i for i, n in enumerate(features.VGG16_LAYERS[:features.VGG16_LAYERS.index("pool5") + 1])}
  torchvision = {}
  for key, value in state.items():
    layer, leaf = key.split(".")
    prefix = f"features.{index[layer]}" if layer in index else f"classifier.{3 * (int(layer[2]) - 6)}"
    torchvision[f"{prefix}.{leaf}"] = value
  path = str(tmp_path / "vgg16.npz")
  features.save_npz_from_state_dict(torchvision, path)
  params = features.load_weights(path, net)
  np.testing.assert_array_equal(params["conv5_3"]["kernel"], np.transpose(state["conv5_3.weight"], (2, 3, 1, 0)))
  np.testing.assert_array_equal(params["fc8"]["kernel"], state["fc8.weight"].T)
  image = jax.random.uniform(jax.random.key(0), (32, 32, 3))
  act = jax.jit(lambda p, x: features.activation_at(net, p, x, "pool5"))(params, image)
  assert act.shape == (1, 1, 512)
  assert features.VGG19_LAYERS.count("pool4") == 1 and len(features.VGG19_LAYERS) == 45


def test_wrong_shape_and_missing_tensor_are_one_line_errors(alexnet_weights, tmp_path):
  model, state, _ = alexnet_weights
  bad = dict(state, **{"conv3.weight": np.zeros((384, 128, 3, 3), np.float32)})
  path = str(tmp_path / "bad.npz")
  features.save_npz_from_state_dict(bad, path)
  with pytest.raises(ValueError, match=r"^load_weights: tensor 'conv3.weight' .* has shape \(384, 128, 3, 3\), "
                     r"expected \(384, 256, 3, 3\)[^\n]*$"):
    features.load_weights(path, model)
  missing = {k: v for k, v in state.items() if k != "fc7.bias"}
  features.save_npz_from_state_dict(missing, path)
  with pytest.raises(ValueError, match=r"^load_weights: tensor 'fc7.bias' is missing[^\n]*$"):
    features.load_weights(path, model)
  with pytest.raises(ValueError, match="full AlexNet"):  # default arch: full-size fc6 (4096 x 9216)
    try:
      features.load_weights(str(tmp_path / "bad.npz"), "alexnet")
    except ValueError as e:
      assert "'fc6.weight'" in str(e) or "'conv3.weight'" in str(e)
      raise ValueError("full AlexNet") from e
  with pytest.raises(ValueError, match="is not a file"):
    features.load_weights(str(tmp_path / "none.npz"), "vgg19")
  with pytest.raises(ValueError, match="unknown feature net 'resnet50'"):
    features.load_weights(path, "resnet50")


def test_pth_without_torch_is_a_clear_error(tmp_path):
  try:
    import torch  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
    pytest.skip("PyTorch is installed: the .pth path is exercised only without it here.")
  except ImportError:
    pass
  path = tmp_path / "w.pth"
  path.write_bytes(b"not a checkpoint")
  with pytest.raises(ValueError, match="needs PyTorch"):
    features.load_weights(str(path), "alexnet")


def test_preprocessing_lrn_and_ceil_pool_against_numpy():
  rng = np.random.default_rng(0)
  image = rng.uniform(size=(4, 5, 3)).astype(np.float32)
  want = image[..., ::-1] * 255 - np.array([103.939, 116.779, 123.680])
  np.testing.assert_allclose(features.caffe_preprocess(jnp.asarray(image)), want, rtol=1e-6, atol=1e-4)

  x = rng.normal(size=(3, 4, 7)).astype(np.float32) * 30
  sq = np.pad(x ** 2, ((0, 0), (0, 0), (2, 2)))
  scale = 1 + 1e-4 / 5 * np.stack([sq[..., c:c + 5].sum(-1) for c in range(7)], axis=-1)
  np.testing.assert_allclose(features.local_response_norm(jnp.asarray(x)), x / scale ** 0.75, rtol=1e-5)

  y = rng.normal(size=(6, 7, 2)).astype(np.float32)  # ceil mode: ceil((6-3)/2)+1 = 3, ceil((7-3)/2)+1 = 3
  want = np.array([[y[2 * i:2 * i + 3, 2 * j:2 * j + 3].max(axis=(0, 1)) for j in range(3)] for i in range(3)])
  np.testing.assert_array_equal(features.max_pool(jnp.asarray(y), 3, 2, ceil_mode=True), want)
  assert features.max_pool(jnp.asarray(y), 3, 2, ceil_mode=False).shape == (2, 3, 2)


def test_doctests():
  assert doctest.testmod(features).failed == 0
