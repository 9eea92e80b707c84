"""The paper's variants: true data, random labels, and random images in its two constructions.

``random_images`` is the construction that reproduces the paper's random-images tables: per seed,
D1, D2 and D3 are all uniform noise in [-1, 1] (own keys), so N1 is measured on its own input
distribution. ``random_images_real_eval`` trains the same N1 (same noise, same labels) but lets it
label the real D2 and measures agreement on the real D3, as the paper's text describes.
"""

from __future__ import annotations

from learnjax.data.variants.registry import (Variant, register, shared_labels, uniform_images,
                                             uniform_labels)

# Purposes of fold_in(variant key of a seed, purpose): 0 labels (uniform_labels), 1 D1's noise,
# 2 D2's noise, 3 D3's noise.
D1_NOISE, D2_NOISE, D3_NOISE = 1, 2, 3


def _true(x, y, keys, num_classes, fraction=None):
  import jax.numpy as jnp
  return jnp.asarray(x), shared_labels(y, keys)


def _random_labels(x, y, keys, num_classes, fraction=None):
  import jax.numpy as jnp
  return jnp.asarray(x), uniform_labels(keys, len(y), num_classes)


def _random_images(x, y, keys, num_classes, fraction=None):
  return uniform_images(keys, x.shape, D1_NOISE), uniform_labels(keys, len(y), num_classes)


def _noise_d2_d3(splits, keys):
  return (uniform_images(keys, splits.d2.x.shape, D2_NOISE),
          uniform_images(keys, splits.d3.x.shape, D3_NOISE))


register(Variant(
    name="true", title="true data", n1_data=_true, per_seed_images=False, construction="1",
    description="D1's images and labels", order=90, reference=True))
register(Variant(
    name="random_labels", title="random labels", n1_data=_random_labels, per_seed_images=False,
    construction="1", description="D1's images, labels uniform over the classes, per seed",
    order=10, chance=lambda fraction: True))
register(Variant(
    name="random_images", title="random images", n1_data=_random_images, per_seed_images=True,
    construction="2: noise D1, D2 and D3",
    description="D1, D2 and D3 images uniform in [-1, 1] per seed (own keys), D1's labels "
                "uniform; N1's test accuracy on the real test images",
    order=20, chance=lambda fraction: True, eval_images=_noise_d2_d3, real_test_accuracy=True))
register(Variant(
    name="random_images_real_eval", title="random images, real D2/D3",
    n1_data=_random_images, per_seed_images=True, construction="1",
    description="N1 as random_images (noise D1, uniform labels); N2 learns N1's labels of the "
                "real D2, learnability on the real D3",
    order=25, chance=lambda fraction: True))
