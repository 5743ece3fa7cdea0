"""Running an entry point's ``main`` in-process (absl flags parsed per call), as the scripts do."""

import importlib
import sys

import pytest
from absl import flags

FLAGS = flags.FLAGS


def forget_script_flags():
  """Removes the flags the experiment scripts defined, as if no script had been imported in this process."""
  from experiments import flag_groups
  for module_name, module_flags in list(FLAGS.flags_by_module_dict().items()):
    if module_name.startswith("experiments"):
      for flag in list(module_flags):
        if flag.name in FLAGS:
          delattr(FLAGS, flag.name)
  flag_groups.RULES.clear()


def load_script(script):
  """``experiments.<script>`` with exactly its own flags defined (re-imported after forgetting the others')."""
  forget_script_flags()
  name = f"experiments.{script}"
  return importlib.reload(sys.modules[name]) if name in sys.modules else importlib.import_module(name)


def run_main(script, args):
  """Runs ``experiments.<script>.main`` with ``args`` and only its flags; returns or raises SystemExit('error: ...')."""
  from experiments import cli
  module = load_script(script)
  FLAGS.unparse_flags()
  try:
    FLAGS(["prog"] + list(args))
    cli.call(module.main)
  finally:
    FLAGS.unparse_flags()
    forget_script_flags()


def error_of(script, args):
  """The one-line ``error: ...`` message a run of ``script`` with ``args`` stops with."""
  with pytest.raises(SystemExit) as info:
    run_main(script, args)
  message = str(info.value.code)
  assert message.startswith("error: ") and "\n" not in message, message
  return message
