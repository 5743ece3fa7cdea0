r"""Converts classifier weights to the ``.npz`` that :func:`dipjax.features.load_weights` reads (no torch needed there).

The input is a PyTorch state dict (``.pth``/``.pt``; needs PyTorch, imported only for
this) or an ``.npz`` of the same tensors. Keys: the reference's Caffe-converted models
(``alexnet-torch_py3.pth``, ``vgg16-caffe-py3.pth``, ``vgg19-caffe-py3.pth``: layer names
``conv1 .. fc8`` / ``conv1_1 .. fc8``) or torchvision's VGG (``features.<i>`` /
``classifier.<i>``). Every tensor the architecture needs is checked (a missing or
mis-shaped one is a one-line error naming it) and written under its layer name in
PyTorch layout::

    pip install torch   # once, on any machine (CPU wheels: --index-url https://download.pytorch.org/whl/cpu)
    python -m experiments.convert_weights --arch=alexnet --input=alexnet-torch_py3.pth --output=alexnet.npz
    python -m experiments.feature_inversion --weights=alexnet.npz --preset=paper

torchvision's own AlexNet (``alexnet-owt-*.pth``: 64/192/384/256/256 channels, no LRN,
no groups, ImageNet mean/std input) is a different network and is not supported; its
VGG-16/19 load, but they expect torchvision's input normalisation, not the Caffe
preprocessing the reference (and :mod:`dipjax.features`) uses.
"""

from __future__ import annotations

import os
import tempfile

from absl import flags

import numpy as np

from dipjax import features
from experiments import cli

FLAGS = flags.FLAGS
flags.DEFINE_enum("arch", "alexnet", sorted(features.FEATURE_NETS), "Architecture the weights are for.")
flags.DEFINE_string("input", None, "State dict to convert: .pth/.pt (needs PyTorch) or .npz.")
flags.DEFINE_string("output", None, "Output .npz (default: the input's name with .npz).")
flags.DEFINE_bool("allow_pickle", False, "Also unpickle a whole saved torch module (e.g. the reference's "
                  "alexnet-torch_py3.pth); only for files you trust.")

INSTALL = ("PyTorch is needed to read .pth files and is not installed here: `pip install torch` (CPU wheels: "
           "--index-url https://download.pytorch.org/whl/cpu), on this or any machine, then run this again")


def read_state_dict(path: str, allow_pickle: bool) -> dict:
  """``{name: np.ndarray}`` of a .npz, or of a .pth state dict (torch imported here only)."""
  if not os.path.isfile(path):
    raise ValueError(f"--input={path} is not a file.")
  if path.endswith(".npz"):
    with np.load(path, allow_pickle=False) as data:
      return {k: data[k] for k in data.files}
  if not path.endswith((".pth", ".pt")):
    raise ValueError(f"--input must end in .pth, .pt or .npz, got {path!r}.")
  try:
    import torch  # pylint: disable=import-outside-toplevel
  except ImportError:
    raise ValueError(f"{INSTALL}.") from None
  obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
  if hasattr(obj, "state_dict"):
    obj = obj.state_dict()
  return {k: v.detach().cpu().numpy() for k, v in obj.items() if hasattr(v, "detach")}


def canonical_state_dict(state: dict, arch, source: str) -> dict:
  """The tensors ``arch`` (a name or a dipjax.features module) needs under their layer names, PyTorch layout.

  Validated by loading them (:func:`dipjax.features.load_weights`); errors name ``source``.
  """
  net = features.get_feature_net(arch) if isinstance(arch, str) else arch
  fd, tmp_path = tempfile.mkstemp(suffix=".npz")
  os.close(fd)
  try:
    features.save_npz_from_state_dict(state, tmp_path)
    params = features.load_weights(tmp_path, net)
  except ValueError as e:
    raise ValueError(str(e).replace(tmp_path, source)) from None
  finally:
    os.remove(tmp_path)
  out = {}
  for layer, leaves in params.items():
    kernel = np.asarray(leaves["kernel"])
    out[f"{layer}.weight"] = np.transpose(kernel, (3, 2, 0, 1)) if kernel.ndim == 4 else kernel.T
    out[f"{layer}.bias"] = np.asarray(leaves["bias"])
  return out


def main():
  if not FLAGS.input:
    raise ValueError("--input is required: the state dict (.pth or .npz) to convert.")
  output = FLAGS.output or os.path.splitext(FLAGS.input)[0] + ".npz"
  if not output.endswith(".npz"):
    raise ValueError(f"--output must end in .npz, got {output!r}.")
  if os.path.abspath(output) == os.path.abspath(FLAGS.input):
    raise ValueError(f"--output {output!r} would overwrite --input; choose another name.")
  state = read_state_dict(FLAGS.input, FLAGS.allow_pickle)
  out = canonical_state_dict(state, FLAGS.arch, FLAGS.input)
  features.save_npz_from_state_dict(out, output)
  count = sum(int(np.prod(v.shape)) for v in out.values())
  cli.say(f"{FLAGS.arch}: {len(out)} tensors, {count:,} parameters -> {output}")


if __name__ == "__main__":
  cli.run(main)
