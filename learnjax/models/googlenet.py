"""GoogLeNet, CIFAR variant (kuangliu/pytorch-cifar): no auxiliary heads, no dropout.

Stem conv 3x3 (192, pad 1, bias) -> BN -> ReLU at 32x32. An Inception block concatenates
four branches, in this order: 1x1; 1x1 -> 3x3; 1x1 -> 3x3 -> 3x3 (the "5x5" branch is two
stacked 3x3s); 3x3 max-pool (stride 1, pad 1, -inf padding) -> 1x1. Every conv has a bias and
is followed by BN -> ReLU. Sequence: a3 b3, max-pool 3x3/2 pad 1 (32 -> 16), a4 .. e4,
max-pool (16 -> 8), a5 b5, then "avgpool 8, stride 1" (8 -> 1) -> Linear(1024, C).

For inputs that do not end on an 8x8 map (MNIST: 28 -> 14 -> 7) the head averages the whole
remaining map instead (:func:`learnjax.models.layers.head_pool`), so the head stays
Linear(1024, C) and the parameters never depend on the input size.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from learnjax.models import layers
from learnjax.models.registry import register_native

# name: (n1, r3, n3, r5, n5, pool_proj); "M" = max-pool 3x3, stride 2, pad 1.
STAGES = (
    ("a3", (64, 96, 128, 16, 32, 32)),
    ("b3", (128, 128, 192, 32, 96, 64)),
    "M",
    ("a4", (192, 96, 208, 16, 48, 64)),
    ("b4", (160, 112, 224, 24, 64, 64)),
    ("c4", (128, 128, 256, 24, 64, 64)),
    ("d4", (112, 144, 288, 32, 64, 64)),
    ("e4", (256, 160, 320, 32, 128, 128)),
    "M",
    ("a5", (256, 160, 320, 32, 128, 128)),
    ("b5", (384, 192, 384, 48, 128, 128)),
)


class Inception(nn.Module):
  n1: int
  r3: int
  n3: int
  r5: int
  n5: int
  pool_proj: int
  dtype: object = None
  forms: str = "accelerator"    # 'cpu' | 'accelerator' (layers.FORMS)

  @nn.compact
  def __call__(self, x, train: bool):
    def conv_bn_relu(y, features, kernel, name):
      y = layers.Conv(features, kernel, 1, kernel // 2, dtype=self.dtype, forms=self.forms,
                      name=f"{name}_conv")(y)
      return nn.relu(layers.batch_norm(train, name=f"{name}_bn", dtype=self.dtype)(y))

    b1 = conv_bn_relu(x, self.n1, 1, "b1_0")
    b2 = conv_bn_relu(conv_bn_relu(x, self.r3, 1, "b2_0"), self.n3, 3, "b2_1")
    b3 = conv_bn_relu(x, self.r5, 1, "b3_0")
    b3 = conv_bn_relu(conv_bn_relu(b3, self.n5, 3, "b3_1"), self.n5, 3, "b3_2")
    b4 = conv_bn_relu(layers.max_pool(x, 3, 1, padding=1), self.pool_proj, 1, "b4_0")
    return jnp.concatenate([b1, b2, b3, b4], axis=-1)


class GoogLeNet(nn.Module):
  num_classes: int
  dtype: object = None
  forms: str = "accelerator"    # 'cpu' | 'accelerator' (layers.FORMS)

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = layers.Conv(192, 3, 1, 1, dtype=self.dtype, forms=self.forms, name="pre_conv")(x)
    x = nn.relu(layers.batch_norm(train, name="pre_bn", dtype=self.dtype)(x))
    for stage in STAGES:
      if stage == "M":
        x = layers.max_pool(x, 3, 2, padding=1)
      else:
        name, cfg = stage
        x = Inception(*cfg, dtype=self.dtype, forms=self.forms, name=name)(x, train)
    x = layers.flatten(layers.head_pool(x, 8))
    return layers.Dense(self.num_classes, dtype=self.dtype, name="linear")(x)


register_native("googlenet", GoogLeNet, presets={"googlenet": {}})
