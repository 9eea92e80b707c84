"""Shared fixtures: small real data from the embedded digits."""

import os
import shutil
import tempfile

# Tests run on the CPU; keep XLA from grabbing every core's worth of threads per process.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

# One persistent compilation cache for the run, set in the environment before JAX is imported, so
# that the test processes (xdist workers) and every command line they start share compiled
# programs: many tests train the same tiny networks on the same shapes. A run that sets
# JAX_COMPILATION_CACHE_DIR itself keeps its own; the run's temporary cache is removed at the end.
_OWN_CACHE = "LEARNJAX_TEST_OWN_CACHE"
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
  os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="learnjax_test_cc_")
  os.environ[_OWN_CACHE] = os.environ["JAX_COMPILATION_CACHE_DIR"]
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The seed layouts train.seed_layout=auto measures are cached for the run only (and shared by its
# processes), never in the user's cache folder.
_OWN_LAYOUTS = "LEARNJAX_TEST_OWN_LAYOUT_CACHE"
if "LEARNJAX_CACHE_DIR" not in os.environ:
  os.environ["LEARNJAX_CACHE_DIR"] = tempfile.mkdtemp(prefix="learnjax_test_layouts_")
  os.environ[_OWN_LAYOUTS] = os.environ["LEARNJAX_CACHE_DIR"]

import ml_collections
import pytest

from learnjax.data import sources, splits


def pytest_addoption(parser):
  parser.addoption("--slow", action="store_true",
                   help="also run the tests marked slow (CI and the README's test command do)")


def pytest_collection_modifyitems(config, items):
  # The default run leaves out the long tests; --slow (or any -m expression) decides otherwise.
  if config.getoption("--slow") or config.option.markexpr:
    return
  slow = [item for item in items if item.get_closest_marker("slow")]
  if slow:
    config.hook.pytest_deselected(items=slow)
    items[:] = [item for item in items if not item.get_closest_marker("slow")]


def pytest_unconfigure(config):
  # The process that made the cache (not an xdist worker) removes it.
  if not hasattr(config, "workerinput") and os.environ.get(_OWN_CACHE):
    shutil.rmtree(os.environ.pop(_OWN_CACHE), ignore_errors=True)
  if not hasattr(config, "workerinput") and os.environ.get(_OWN_LAYOUTS):
    shutil.rmtree(os.environ.pop(_OWN_LAYOUTS), ignore_errors=True)


@pytest.fixture(scope="session")
def digits_pool():
  return sources.load_pool(ml_collections.ConfigDict({"name": "digits"}))


@pytest.fixture(scope="session")
def small_splits(digits_pool):
  """D1 = 200, D2 = 200, D3 = 100 real digits."""
  return splits.make_splits(digits_pool, 200, 200, 100)
