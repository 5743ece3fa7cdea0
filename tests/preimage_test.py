"""Feature inversion and activation maximisation (dipjax.preimage) on random classifier weights, and their scripts.

Compiles dominate: the library tests run the DIP prior, the entry-point tests the TV (pixel) prior, so each of the
four (objective, prior) programs is compiled once. (An entry point's flag parsing resets JAX's absl-registered
configuration, so it cannot reuse programs compiled under the test configuration.)
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cli_helpers import error_of, run_main
from dipjax import features, preimage
from experiments import convert_weights
from tasks_test import save, smooth_image

SIZE = 48  # the tiny preset's classifier input


@pytest.fixture(scope="module")
def classifier():
  """The tiny preset's random AlexNet (full conv widths, a 64-64-1000 fc head on a 1x1 pool5) and its params."""
  overrides = preimage.setup("invert", "tiny", "dip").classifier_overrides
  return preimage.load_classifier("alexnet", key=jax.random.key(0), overrides=overrides, size=SIZE)


def test_objectives_equal_their_formulas(classifier):
  net, params = classifier
  image = jnp.asarray(smooth_image(SIZE, SIZE))
  acts = jax.jit(lambda p, x: {l: features.activation_at(net, p, x, l) for l in ("conv2", "fc8")})(params, image)
  conv2, fc8 = acts["conv2"], acts["fc8"]
  assert conv2.shape == (5, 5, 256) and fc8.shape == (1000,)
  one = preimage.Objective(net, "conv2", mode="maximize", channel=7, window=1, scale=5.0)
  assert preimage.window_bounds(5, 1) == (1, 3)  # rows 5//2 - 1 .. 5//2 + 1
  np.testing.assert_array_equal(preimage.selected_activation(one, conv2), conv2[1:3, 1:3, 7])
  whole = one._replace(window=20)  # larger than the map: the whole map (the reference's 13x13 conv4, w = 20)
  np.testing.assert_array_equal(preimage.selected_activation(whole, conv2), conv2[..., 7])
  match = preimage.Objective(net, "fc8", mode="match", channel=100, scale=5.0, target_value=300.0)
  assert preimage.selected_activation(match, fc8) == fc8[100]
  with pytest.raises(ValueError, match="`channel` 300 is out of range: layer 'conv2' has 256 channels"):
    preimage.selected_activation(one._replace(channel=300), conv2)
  invert = preimage.Objective(net, "conv2", mode="invert")
  data = preimage.objective_data(invert, params, image)
  np.testing.assert_array_equal(data["target"], conv2)
  value = jax.jit(preimage.objective_value, static_argnums=0)
  assert float(value(invert, data, image)) < 1e-8
  np.testing.assert_allclose(value(invert, dict(data, target=data["target"] + 2.0), image), 4.0, rtol=1e-4)
  with pytest.raises(ValueError, match="`image` is needed for mode='invert'"):
    preimage.objective_data(invert, params)
  with pytest.raises(ValueError, match="`layer` must be one of"):
    preimage.check_objective(invert._replace(layer="conv9"))


def test_feature_inversion_lowers_the_feature_loss(classifier):
  """The DIP prior here; the TV prior's run is the entry point's (each compile costs seconds)."""
  net, params = classifier
  s = preimage.setup("invert", "tiny", "dip")
  objective = preimage.Objective(net, s.objective_defaults["layer"], mode="invert")
  x0 = smooth_image(SIZE, SIZE, seed=1)
  result = preimage.optimize(jax.random.key(1), objective, preimage.objective_data(objective, params, x0), s.prior,
                             num_steps=s.num_steps, target=x0)
  assert result.image.shape == (SIZE, SIZE, 3) and result.loss.shape == (s.num_steps,)
  assert np.all(np.isfinite(result.loss))
  assert result.final_objective < 0.9 * result.initial_objective, (result.initial_objective, result.final_objective)
  # A sigmoid output, and the loop's first loss is the initial objective (no input jitter in inversion):
  assert 0 <= result.image.min() and result.image.max() <= 1
  np.testing.assert_allclose(result.loss[0], result.initial_objective, rtol=1e-4)


def test_activation_maximisation_raises_the_channel(classifier):
  """The DIP prior here; the TV prior's run is the entry point's."""
  net, params = classifier
  s = preimage.setup("maximize", "tiny", "dip")
  objective = preimage.Objective(net, **s.objective_defaults, mode="maximize")
  result = preimage.optimize(jax.random.key(2), objective, preimage.objective_data(objective, params), s.prior,
                             num_steps=s.num_steps)
  assert result.final_objective < result.initial_objective - 1.0, (result.initial_objective, result.final_objective)
  act = lambda x: float(preimage.selected_activation(
      objective, features.activation_at(net, params, jnp.asarray(x), objective.layer)).sum())
  np.testing.assert_allclose(act(result.image), -result.final_objective / 5, rtol=1e-4, atol=1e-3)
  tv = preimage.setup("maximize", "tiny", "tv").prior  # the pixels start at 0.5 + U(0, 0.1) ("TV only" input)
  first = preimage.init_state(jax.random.key(2), objective, {"params": params}, tv)
  assert first.z.shape == (SIZE, SIZE, 3) and 0.5 <= float(first.z.min()) and float(first.z.max()) <= 0.6


def test_paper_settings_and_sizes():
  inv, act = preimage.setup("invert", "paper", "dip"), preimage.setup("maximize", "paper", "dip")
  assert (inv.prior.net_size, inv.prior.size, inv.prior.reg_noise_std, inv.num_steps) == (256, 224, 0.0, 3100)
  assert inv.prior.net.padding == "zero" and inv.prior.net.kernel_size_down == (7, 7, 5, 5, 3, 3)
  assert (act.prior.size, act.prior.reg_noise_std, act.prior.learning_rate) == (227, 0.03, 0.001)
  assert act.objective_defaults == {"layer": "conv4", "channel": 2, "window": 20, "scale": 5.0, "target_value": 300.0}
  fc = preimage.setup("maximize", "paper", "dip", mode="match")
  assert fc.objective_defaults["layer"] == "fc8" and fc.prior.learning_rate == 0.01
  tv = preimage.setup("maximize", "paper", "tv", arch="vgg19").prior
  assert (tv.size, tv.net_size, tv.learning_rate, tv.tv_beta) == (224, 224, 0.01, 2.0)
  np.testing.assert_allclose(tv.tv_weight, 1e-6 * 255 ** 4)  # 1e-6 TV_2 of the 0..255 image
  assert preimage.with_size(inv.prior, 112).net_size == 128
  with pytest.raises(ValueError, match="`net_size` \\(32\\) must be >= `size` \\(48\\)"):
    preimage.check_prior(inv.prior._replace(net_size=32, size=48))


def test_feature_inversion_entry_point(tmp_path):
  out = tmp_path / "fi"
  image = save(tmp_path / "x.png", smooth_image(60, 50, seed=1))
  run_main("feature_inversion", ["--preset=tiny", "--prior=tv", f"--image={image}", f"--out_dir={out}"])
  for f in ("target.png", "tv.png", "comparison.png", "loss.png", "summary.json"):
    assert (out / f).exists(), f
  r = json.loads((out / "summary.json").read_text())
  assert r["random_weights"] is True and r["layer"] == "conv2" and r["size"] == SIZE
  p = r["priors"]["tv"]  # the pixel / TV prior lowers the feature loss too
  assert list(r["priors"]) == ["tv"] and len(p["loss"]) == 5
  assert p["final_feature_loss"] < 0.9 * p["initial_feature_loss"], p
  assert "--weights=nope.npz is not a file" in error_of("feature_inversion", ["--weights=nope.npz",
                                                                              f"--out_dir={out}"])
  assert "`--steps` must be an integer >= 1" in error_of("feature_inversion", ["--steps=0", f"--out_dir={out}"])


def test_activation_maximization_entry_point(tmp_path):
  out = tmp_path / "am"
  run_main("activation_maximization", ["--preset=tiny", "--prior=tv", f"--out_dir={out}"])
  r = json.loads((out / "summary.json").read_text())
  assert (r["layer"], r["channel"], r["window"], r["mode"], r["random_weights"]) == ("conv2", 2, 20, "maximize", True)
  p = r["priors"]["tv"]  # the pixel / TV prior raises the activation too
  assert p["final_objective"] < p["initial_objective"] - 1.0, p
  assert (out / "comparison.png").exists() and (out / "loss.png").exists()
  assert "give --channel or --class_index" in error_of("activation_maximization", ["--channel=1", "--class_index=3",
                                                                                  f"--out_dir={out}"])
  assert "out of range" in error_of("activation_maximization", ["--preset=tiny", "--prior=tv", "--channel=999",
                                                               f"--out_dir={out}"])


def test_convert_weights_round_trip_and_errors(tmp_path):
  net = features.AlexNet(fc_features=(8, 8, 5))
  shapes = jax.eval_shape(lambda k: net.init(k, jnp.zeros((227, 227, 3)), layer="fc8"), jax.random.key(0))["params"]
  rng = np.random.default_rng(0)
  state = {}
  for layer, leaves in shapes.items():
    k = leaves["kernel"].shape
    state[f"{layer}.weight"] = rng.standard_normal((k[3], k[2], k[0], k[1]) if len(k) == 4 else k[::-1],
                                                   np.float32)
    state[f"{layer}.bias"] = rng.standard_normal(leaves["bias"].shape, np.float32)
  out = convert_weights.canonical_state_dict(dict(state, extra=np.zeros(3)), net, "in.npz")
  assert set(out) == set(state)  # the extra tensor is dropped, the layout kept (OIHW, (out, in))
  assert all(np.array_equal(out[k], state[k]) for k in state)
  path = str(tmp_path / "w.npz")
  features.save_npz_from_state_dict(out, path)
  params = features.load_weights(path, net)
  np.testing.assert_array_equal(params["conv1"]["kernel"], np.transpose(state["conv1.weight"], (2, 3, 1, 0)))
  np.testing.assert_array_equal(params["fc6"]["kernel"], state["fc6.weight"].T)
  with pytest.raises(ValueError, match=r"^load_weights: tensor 'conv3.weight' in in.npz has shape \(2, 2\)"):
    convert_weights.canonical_state_dict(dict(state, **{"conv3.weight": np.zeros((2, 2))}), net, "in.npz")
  partial = str(tmp_path / "partial.npz")
  np.savez(partial, **{"conv1.weight": state["conv1.weight"], "conv1.bias": state["conv1.bias"]})
  message = error_of("convert_weights", [f"--input={partial}", f"--output={tmp_path / 'o.npz'}"])
  assert "tensor 'conv2.weight' is missing from " + partial in message
  (tmp_path / "w.pth").write_bytes(b"x")
  try:
    import torch  # noqa: F401  pylint: disable=import-outside-toplevel,unused-import
  except ImportError:
    assert "pip install torch" in error_of("convert_weights", [f"--input={tmp_path / 'w.pth'}"])
  assert "--input is required" in error_of("convert_weights", [])
