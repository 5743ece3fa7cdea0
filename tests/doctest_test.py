"""Every docstring example in dipjax runs and prints what it says (doctest)."""

import doctest
import importlib
import pkgutil

import pytest

import dipjax

MODULES = sorted(m.name for m in pkgutil.iter_modules(dipjax.__path__, "dipjax."))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
  module = importlib.import_module(name)
  result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
  assert result.failed == 0, f"{result.failed} of {result.attempted} doctest examples failed in {name}"


def test_the_package_docstring_example():
  result = doctest.testmod(dipjax, optionflags=doctest.ELLIPSIS)
  assert result.attempted > 0 and result.failed == 0
