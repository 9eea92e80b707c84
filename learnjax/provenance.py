"""What computed a stored result: the library versions and the backend.

The same config and seeds give the same numbers only under the same versions: JAX, for one,
changed its default random-number partitioning in 0.5 (``jax_threefry_partitionable``), which
changes every random stream drawn from the same keys. Every stored result keeps this record;
``constraints.txt`` pins the versions the README's numbers come from.
"""

from __future__ import annotations

import functools
import importlib.metadata
import platform

PACKAGES = ("jax", "jaxlib", "flax", "optax", "numpy")


def _version(package: str) -> str | None:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return None


@functools.lru_cache(maxsize=None)
def versions() -> dict:
  """{package: version, ..., python, backend, device_kind, device_count, threefry_partitionable}."""
  import jax
  devices = jax.local_devices()
  return {**{p: _version(p) for p in PACKAGES},
          "python": platform.python_version(),
          "backend": jax.default_backend(),
          "device_kind": devices[0].device_kind if devices else None,
          "device_count": len(devices),
          "threefry_partitionable": bool(jax.config.jax_threefry_partitionable)}
