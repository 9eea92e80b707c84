"""The corruptions of Zhang et al. (2017), "Understanding deep learning requires rethinking
generalization": partial labels, shuffled pixels, random pixels and Gaussian images.

- ``partial_labels``: exactly round(f * |D1|) of D1's labels, at positions drawn per seed, are
  replaced by labels uniform over the classes (``data.corrupt_fraction`` = f, a grid axis). The
  replacement labels are those of ``random_labels`` of the same seed, so f = 0 is ``true`` and
  f = 1 is ``random_labels``, exactly.
- ``shuffled_pixels``: one permutation of the H x W pixel positions per seed (a pixel's channels
  move together), applied to every image of D1, D2 and D3: N1 and N2 both live in the permuted
  input space, where N1's test accuracy is measured too.
- ``random_pixels``: every image of D1, D2 and D3 its own permutation of pixel positions (per
  seed), labels kept: only each image's pixel values survive, not their arrangement.
- ``gaussian``: D1, D2 and D3 images drawn per seed (own keys) from a Gaussian with D1's
  per-channel mean and standard deviation (normalised units); each D1 image keeps its label, as
  Zhang et al. did; N1's test accuracy is that on the real test images.
"""

from __future__ import annotations

import math

from learnjax.data.variants.registry import (Variant, register, shared_labels, uniform_labels)

# Purposes of fold_in(variant key of a seed, purpose), beside paper.py's 0..3.
CORRUPTED_POSITIONS, PERMUTATION, GAUSSIAN_D1, GAUSSIAN_D2, GAUSSIAN_D3 = 4, 5, 6, 7, 8
RANDOM_PIXELS_D1, RANDOM_PIXELS_D2, RANDOM_PIXELS_D3 = 9, 10, 11


def corrupted_count(fraction: float, n: int) -> int:
  """How many of n labels partial_labels replaces: round(f * n), halves rounded up."""
  return int(math.floor(fraction * n + 0.5))


def _partial_labels(x, y, keys, num_classes, fraction):
  import jax
  import jax.numpy as jnp
  n = len(y)
  k = corrupted_count(fraction, n)
  random = uniform_labels(keys, n, num_classes)
  true = jnp.asarray(y, jnp.int32)

  def one(key, replacement):
    chosen = jax.random.permutation(jax.random.fold_in(key, CORRUPTED_POSITIONS), n)[:k]
    return jnp.where(jnp.zeros(n, bool).at[chosen].set(True), replacement, true)

  return jnp.asarray(x), jax.vmap(one)(keys, random)


def permutations(keys, height: int, width: int):
  """(S, H*W): each seed's permutation of the pixel positions."""
  import jax
  return jax.vmap(lambda k: jax.random.permutation(jax.random.fold_in(k, PERMUTATION),
                                                   height * width))(keys)


def permute(x, permutation):
  """Images (N, H, W, C) with their pixel positions reordered: out[:, i] = x[:, permutation[i]]."""
  n, h, w, c = x.shape
  return x.reshape(n, h * w, c)[:, permutation].reshape(n, h, w, c)


def _permuted(x, keys):
  import jax
  import jax.numpy as jnp
  x = jnp.asarray(x)
  return jax.vmap(lambda p: permute(x, p))(permutations(keys, x.shape[1], x.shape[2]))


def _shuffled_pixels(x, y, keys, num_classes, fraction=None):
  return _permuted(x, keys), shared_labels(y, keys)


def _shuffled_d2_d3(splits, keys):
  return _permuted(splits.d2.x, keys), _permuted(splits.d3.x, keys)


def _each_permuted(x, keys, purpose):
  """(S, N, H, W, C): every image permuted by its own permutation of pixel positions, per seed."""
  import jax
  import jax.numpy as jnp
  x = jnp.asarray(x)
  n, h, w, c = x.shape

  def one(key):
    order = jnp.argsort(jax.random.uniform(jax.random.fold_in(key, purpose), (n, h * w)), axis=1)
    return jnp.take_along_axis(x.reshape(n, h * w, c), order[..., None], axis=1).reshape(x.shape)

  return jax.vmap(one)(keys)


def _random_pixels(x, y, keys, num_classes, fraction=None):
  return _each_permuted(x, keys, RANDOM_PIXELS_D1), shared_labels(y, keys)


def _random_pixels_d2_d3(splits, keys):
  return (_each_permuted(splits.d2.x, keys, RANDOM_PIXELS_D2),
          _each_permuted(splits.d3.x, keys, RANDOM_PIXELS_D3))


def channel_stats(x):
  """Per-channel mean and standard deviation of images (N, H, W, C), in float64."""
  import numpy as np
  pixels = np.asarray(x, np.float64).reshape(-1, np.shape(x)[-1])
  return pixels.mean(0), pixels.std(0)


def _gaussian_images(keys, shape, stats, purpose):
  import jax
  import jax.numpy as jnp
  mean, std = (jnp.asarray(s, jnp.float32) for s in stats)
  return jax.vmap(lambda k: mean + std * jax.random.normal(jax.random.fold_in(k, purpose),
                                                           tuple(shape), jnp.float32))(keys)


def _gaussian(x, y, keys, num_classes, fraction=None):
  return _gaussian_images(keys, x.shape, channel_stats(x), GAUSSIAN_D1), shared_labels(y, keys)


def _gaussian_d2_d3(splits, keys):
  stats = channel_stats(splits.d1.x)
  return (_gaussian_images(keys, splits.d2.x.shape, stats, GAUSSIAN_D2),
          _gaussian_images(keys, splits.d3.x.shape, stats, GAUSSIAN_D3))


register(Variant(
    name="partial_labels", title="partial labels", n1_data=_partial_labels,
    per_seed_images=False, construction="1", uses_fraction=True, order=30,
    description="a fraction data.corrupt_fraction of D1's labels replaced by uniform ones, per seed",
    chance=lambda fraction: fraction is not None and fraction >= 1))
register(Variant(
    name="shuffled_pixels", title="shuffled pixels", n1_data=_shuffled_pixels,
    per_seed_images=True, construction="1", order=40, eval_images=_shuffled_d2_d3,
    real_test_accuracy=False,
    description="one permutation of pixel positions per seed, applied to D1, D2 and D3"))
register(Variant(
    name="random_pixels", title="random pixels", n1_data=_random_pixels, per_seed_images=True,
    construction="1", order=45, eval_images=_random_pixels_d2_d3, real_test_accuracy=False,
    chance=lambda fraction: True,
    description="every image of D1, D2 and D3 its own permutation of pixel positions, per seed"))
register(Variant(
    name="gaussian", title="Gaussian images", n1_data=_gaussian, per_seed_images=True,
    construction="1", order=50, eval_images=_gaussian_d2_d3, real_test_accuracy=True,
    chance=lambda fraction: True,
    description="D1, D2 and D3 images Gaussian with D1's per-channel mean and std, per seed; "
                "D1's labels kept"))
