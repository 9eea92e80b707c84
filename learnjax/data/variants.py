"""N1's training data for each data variant of docs/protocol.md section 2, per seed.

- ``true``: D1's images and labels.
- ``random_labels``: D1's images, labels uniform over the classes.
- ``random_images``: every pixel uniform in [-1, 1] (in normalised units), labels uniform.

The randomness comes from each seed's own key, so a seed's variant is the same whether it is
computed alone or with others.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from learnjax.errors import LearnjaxError

VARIANTS = ("true", "random_labels", "random_images")


def check_variant(variant: str) -> str:
  if variant not in VARIANTS:
    raise LearnjaxError(f"unknown data variant '{variant}'; choose one of {', '.join(VARIANTS)}")
  return variant


def n1_training_data(x, y, variant: str, keys, num_classes: int):
  """(images, labels) for N1 under ``variant``, for each key in ``keys`` (one per seed).

  Returns images shared by all seeds, shape (N, ...), for ``true`` and ``random_labels``,
  and per-seed images (S, N, ...) for ``random_images``; labels are always (S, N).
  """
  check_variant(variant)
  num_seeds = len(keys)
  if variant == "true":
    return jnp.asarray(x), jnp.broadcast_to(jnp.asarray(y), (num_seeds, len(y)))

  def labels(key):
    return jax.random.randint(jax.random.fold_in(key, 0), (len(y),), 0, num_classes, jnp.int32)

  random_labels = jax.vmap(labels)(keys)
  if variant == "random_labels":
    return jnp.asarray(x), random_labels

  def images(key):
    return jax.random.uniform(jax.random.fold_in(key, 1), x.shape, jnp.float32, -1.0, 1.0)

  return jax.vmap(images)(keys), random_labels
