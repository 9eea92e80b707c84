"""Every stored result records the versions and backend that computed it."""

import importlib.metadata

import jax

from learnjax import provenance
from learnjax.store import Store


def test_stored_results_carry_versions(tmp_path):
  store = Store(str(tmp_path))
  store.save("n1", "a", {"n1": "a"}, {})
  store.save("cells", "b", {"cell": "b"}, {})
  for kind, unit in (("n1", "a"), ("cells", "b")):
    versions = store.load(kind, unit, with_arrays=False)[0]["versions"]
    assert versions["jax"] == importlib.metadata.version("jax") == jax.__version__
    assert versions["backend"] == jax.default_backend()
    assert set(provenance.PACKAGES) <= set(versions) and versions["device_kind"]
