"""The data-variant registry: what each variant does to the protocol, asked by name everywhere.

A variant (docs/protocol.md section 2) changes what N1 is trained on, and may replace the D2 and
D3 images of the measurement. Its entry says everything the rest of learnjax needs: how it makes
N1's training data from D1 per seed, whether those images differ per seed, whether it replaces
D2/D3 (and then whether N1's test accuracy stays that on the real test images), its title in
reports, whether N1 is expected at chance, whether it reads ``data.corrupt_fraction``, and a
``construction`` string that changes whenever what the variant computes changes, so a stored
number is never reused under a different construction.

This module and the entry modules import JAX only inside the transforms: validation reads the
registered names without JAX.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

from learnjax import registration
from learnjax.errors import LearnjaxError

# (d1_x (N, H, W, C) float32, d1_y (N,), keys (S, 2), num_classes, fraction or None)
#   -> (images: (N, ...) shared or (S, N, ...) per seed, labels (S, N))
N1Data = Callable[..., tuple]
# (splits, keys (S, 2)) -> (d2 images (S, |D2|, ...), d3 images (S, |D3|, ...))
EvalImages = Callable[..., tuple]


@dataclasses.dataclass(frozen=True)
class Variant:
  name: str
  title: str                        # in report headers: 'random labels'
  n1_data: N1Data
  per_seed_images: bool             # n1_data's images are (S, N, ...), one set per seed
  construction: str                 # changes when what the variant computes changes
  description: str                  # one line for docs and errors
  order: int = 100                  # position among the variants in reports
  chance: Callable[[float | None], bool] = lambda fraction: False  # N1 at chance by design?
  eval_images: EvalImages | None = None   # replaces D2 and D3 images (per seed), if given
  real_test_accuracy: bool = True   # with eval_images: N1's test accuracy on the real D3 images
  uses_fraction: bool = False       # reads data.corrupt_fraction (a grid axis)
  reference: bool = False           # the unmodified data: its N1 test accuracy is the network's

  def expects_chance(self, fraction: float | None = None) -> bool:
    """Whether N1's test accuracy is at chance by design (the report then does not flag it)."""
    return bool(self.chance(fraction))


# A record stored before variants carried a construction string was made with this one.
LEGACY_CONSTRUCTION = "1"

_VARIANTS: dict[str, Variant] = {}


def register(variant: Variant) -> Variant:
  """Adds a variant; returns it. A name taken by another definition is refused
  (:mod:`learnjax.registration`): stored results are labelled by the variant's name."""
  if registration.admit("data variant", variant.name, _VARIANTS.get(variant.name), variant,
                        lambda v: v.n1_data):
    _VARIANTS[variant.name] = variant
  return _VARIANTS[variant.name]


def names() -> list[str]:
  """Every registered name, in report order."""
  return sorted(_VARIANTS, key=lambda n: (_VARIANTS[n].order, n))


def get(name: str) -> Variant:
  if name not in _VARIANTS:
    raise LearnjaxError(f"unknown data variant '{name}'; choose one of {', '.join(names())}")
  return _VARIANTS[name]


def find(name) -> Variant | None:
  """The entry of a stored record's variant, or None (a name this process has not registered)."""
  return _VARIANTS.get(name)


def n1_training_data(x, y, variant: str, keys, num_classes: int, fraction: float | None = None):
  """(images, labels (S, N)) N1 trains on under ``variant``, one seed per key: images (S, N, ...)
  where the variant draws them per seed, else D1's (N, ...)."""
  entry = get(variant)
  if entry.uses_fraction and fraction is None:
    raise LearnjaxError(f"data variant {variant} needs data.corrupt_fraction")
  return entry.n1_data(x, y, keys, num_classes, fraction)


def fraction_id(fraction: float) -> str:
  """The fraction as unit ids and tables write it: 0.25, 1.0."""
  return repr(float(fraction))


# Helpers the transforms share; JAX is imported when they run.

def uniform_labels(keys, n: int, num_classes: int):
  """(S, n) labels uniform over the classes, from each seed's key (purpose 0)."""
  import jax
  import jax.numpy as jnp
  return jax.vmap(lambda k: jax.random.randint(jax.random.fold_in(k, 0), (n,), 0, num_classes,
                                               jnp.int32))(keys)


def uniform_images(keys, shape, purpose: int):
  """(S, *shape) pixels uniform in [-1, 1] (normalised units), from fold_in(key, purpose)."""
  import jax
  import jax.numpy as jnp
  return jax.vmap(lambda k: jax.random.uniform(jax.random.fold_in(k, purpose), tuple(shape),
                                               jnp.float32, -1.0, 1.0))(keys)


def shared_labels(y, keys):
  """D1's labels, the same for every seed: (S, N)."""
  import jax.numpy as jnp
  return jnp.broadcast_to(jnp.asarray(y, jnp.int32), (len(keys), len(y)))
