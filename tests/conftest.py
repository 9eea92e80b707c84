"""Shared fixtures: small real data from the embedded digits."""

import os

# Tests run on the CPU; keep XLA from grabbing every core's worth of threads per process.
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import ml_collections
import pytest

from learnjax.data import sources, splits


@pytest.fixture(scope="session")
def digits_pool():
  return sources.load_pool(ml_collections.ConfigDict({"name": "digits"}))


@pytest.fixture(scope="session")
def small_splits(digits_pool):
  """D1 = 200, D2 = 200, D3 = 100 real digits."""
  return splits.make_splits(digits_pool, 200, 200, 100)
