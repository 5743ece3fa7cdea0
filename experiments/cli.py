"""How every entry point starts and fails: quiet start-up, one-line errors, non-zero exit.

``cli.run(main)`` replaces ``absl.app.run(main)``: it silences absl/jax INFO logging
(e.g. the missing-``libtpu.so`` note, matplotlib's font cache), prints warnings as
``warning: ...``, refuses positional arguments, and turns a ``ValueError`` raised by
the flags, the inputs or the library into ``error: <message>`` with exit status 1 —
before anything is written, since every script checks its inputs first.
"""

from __future__ import annotations

import logging
import warnings
from typing import Callable

from absl import app
from absl import logging as absl_logging


def _quiet() -> None:
  absl_logging.set_verbosity(absl_logging.WARNING)
  for name in ("jax", "jax._src.xla_bridge", "matplotlib", "matplotlib.font_manager"):
    logging.getLogger(name).setLevel(logging.WARNING)
  warnings.formatwarning = lambda message, category, *a, **k: f"warning: {message}\n"


def call(main: Callable[[], None]) -> None:
  """Calls ``main()`` (flags already parsed); a ``ValueError`` becomes ``SystemExit('error: ...')``."""
  _quiet()
  try:
    main()
  except ValueError as e:
    raise SystemExit(f"error: {e}") from None


def run(main: Callable[[], None]) -> None:
  """Parses the flags (absl) and calls ``main()``; a ``ValueError`` becomes ``error: ...`` and exit status 1."""

  def absl_main(argv):
    if len(argv) > 1:
      raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    call(main)

  _quiet()
  app.run(absl_main)


def say(message: str) -> None:
  """Prints a line at once (progress of long runs must not sit in a buffer)."""
  print(message, flush=True)
