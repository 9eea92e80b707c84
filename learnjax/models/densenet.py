"""DenseNet121, CIFAR variant (kuangliu/pytorch-cifar): growth 32, blocks [6,12,24,16],
compression 0.5.

Stem conv 3x3 (64 = 2*growth, pad 1, no bias), with no BN, ReLU or pool after it.
Dense layer: BN -> ReLU -> 1x1 conv (4*growth) -> BN -> ReLU -> 3x3 conv (growth, pad 1);
its output is concat[new features, input] (new first, as in the repo, which matters only for
weight porting). Transition: BN -> ReLU -> 1x1 conv (floor(C/2)) -> 2x2 average pool.
No convolution has a bias. Channels/spatial: 64@32 -> 256 -> 128@16 -> 512 -> 256@8 -> 1024
-> 512@4 -> 1024@4.

Head: BN -> ReLU -> "avgpool 4" -> Linear(1024, C). For inputs that do not end on a 4x4 map
(MNIST: 28 -> 14 -> 7 -> 3, the transitions' pools floor odd sizes as PyTorch does) the head
averages the whole remaining map instead (:func:`learnjax.models.layers.head_pool`), so the
parameters never depend on the input size. The repo's DenseNet169/201 (growth 32) are also
buildable as ``densenet`` with depth=169/201.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from learnjax.models import layers
from learnjax.models.registry import UnknownModelError, register_native

GROWTH = 32
REDUCTION = 0.5
BLOCKS = {121: (6, 12, 24, 16), 169: (6, 12, 32, 32), 201: (6, 12, 48, 32)}


class DenseLayer(nn.Module):
  growth: int
  dtype: object = None
  forms: str = "accelerator"    # 'cpu' | 'accelerator' (layers.FORMS)

  @nn.compact
  def __call__(self, x, train: bool):
    y = nn.relu(layers.batch_norm(train, name="bn1", dtype=self.dtype)(x))
    y = layers.Conv(4 * self.growth, 1, use_bias=False, dtype=self.dtype, forms=self.forms,
                    name="conv1")(y)
    y = nn.relu(layers.batch_norm(train, name="bn2", dtype=self.dtype)(y))
    y = layers.Conv(self.growth, 3, 1, 1, use_bias=False, dtype=self.dtype, forms=self.forms,
                    name="conv2")(y)
    return jnp.concatenate([y, x], axis=-1)


class Transition(nn.Module):
  features: int
  dtype: object = None
  forms: str = "accelerator"    # 'cpu' | 'accelerator' (layers.FORMS)

  @nn.compact
  def __call__(self, x, train: bool):
    x = nn.relu(layers.batch_norm(train, name="bn", dtype=self.dtype)(x))
    x = layers.Conv(self.features, 1, use_bias=False, dtype=self.dtype, forms=self.forms,
                    name="conv")(x)
    return layers.avg_pool(x, 2)


class DenseNet(nn.Module):
  depth: int        # 121 (the paper's), 169 or 201
  num_classes: int
  dtype: object = None
  forms: str = "accelerator"    # 'cpu' | 'accelerator' (layers.FORMS)

  def __post_init__(self):
    if self.depth not in BLOCKS:
      raise UnknownModelError(
          f"DenseNet depth must be one of {sorted(BLOCKS)}, got {self.depth}")
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    blocks = BLOCKS[self.depth]
    x = layers.Conv(2 * GROWTH, 3, 1, 1, use_bias=False, dtype=self.dtype, forms=self.forms,
                    name="conv1")(x)
    for stage, n in enumerate(blocks):
      for i in range(n):
        x = DenseLayer(GROWTH, dtype=self.dtype, forms=self.forms,
                       name=f"dense{stage + 1}_{i}")(x, train)
      if stage < len(blocks) - 1:
        x = Transition(int(x.shape[-1] * REDUCTION), dtype=self.dtype, forms=self.forms,
                       name=f"trans{stage + 1}")(x, train)
    x = nn.relu(layers.batch_norm(train, name="bn", dtype=self.dtype)(x))
    x = layers.flatten(layers.head_pool(x, 4))
    return layers.Dense(self.num_classes, dtype=self.dtype, name="linear")(x)


register_native("densenet", DenseNet, hparams=("depth",), presets={"densenet121": {"depth": 121}})
