"""DPN26 (Dual Path Network, CIFAR variant of kuangliu/pytorch-cifar).

Stem conv 3x3 (64, no bias) -> BN -> ReLU, then four stages with bottleneck widths
96/192/384/768, residual widths o = 256/512/1024/2048, dense increments d = 16/32/24/128,
first-block strides 1/2/2/2. A block is 1x1 conv -> BN -> ReLU -> grouped 3x3 conv (groups 32,
stride s) -> BN -> ReLU -> 1x1 conv (o + d) -> BN giving y; the shortcut x' is a 1x1 conv
(stride s) -> BN in a stage's first block and the identity otherwise; the output is
ReLU(concat[x'[:o] + y[:o], x'[o:], y[o:]]). No convolution has a bias.
Channels: 64 -> 288 -> 304 | 576 -> 608 | 1072 -> 1096 | 2304 -> 2432 (spatial 32/16/8/4).

Head: "avgpool 4" -> Linear(2432, C). For inputs that do not end on a 4x4 map the head
averages globally instead (:func:`learnjax.models.layers.head_pool`); parameters never depend
on the input size. MNIST's 28x28 ends on 4x4 too (28 -> 14 -> 7 -> 4).
The repo's DPN92 (blocks 3/4/20/3, same widths) is also buildable as ``dpn`` with depth=92.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from learnjax.models import layers
from learnjax.models.registry import UnknownModelError, register_native

BOTTLENECK = (96, 192, 384, 768)
RESIDUAL = (256, 512, 1024, 2048)
DENSE = (16, 32, 24, 128)
STRIDES = (1, 2, 2, 2)
BLOCKS = {26: (2, 2, 2, 2), 92: (3, 4, 20, 3)}


class DualPathBlock(nn.Module):
  width: int        # bottleneck width (of the grouped conv)
  residual: int     # o
  dense: int        # d
  strides: int
  first: bool       # first block of a stage: projection shortcut
  dtype: object = None
  forms: str = "accelerator"    # 'cpu' | 'accelerator' (layers.FORMS)

  @nn.compact
  def __call__(self, x, train: bool):
    conv = lambda f, k, s, p, name: layers.Conv(f, k, s, p, use_bias=False, dtype=self.dtype,
                                                forms=self.forms, name=name)
    conv_g = layers.Conv(self.width, 3, self.strides, 1, use_bias=False, groups=32,
                         dtype=self.dtype, forms=self.forms, name="conv2")
    bn = lambda name: layers.batch_norm(train, name=name, dtype=self.dtype)
    o, out = self.residual, self.residual + self.dense
    y = nn.relu(bn("bn1")(conv(self.width, 1, 1, 0, "conv1")(x)))
    y = nn.relu(bn("bn2")(conv_g(y)))
    y = bn("bn3")(conv(out, 1, 1, 0, "conv3")(y))
    if self.first:
      x = bn("shortcut_bn")(conv(out, 1, self.strides, 0, "shortcut_conv")(x))
    return nn.relu(jnp.concatenate([x[..., :o] + y[..., :o], x[..., o:], y[..., o:]], axis=-1))


class DPN(nn.Module):
  depth: int        # 26 (the paper's) or 92
  num_classes: int
  dtype: object = None
  forms: str = "accelerator"    # 'cpu' | 'accelerator' (layers.FORMS)

  def __post_init__(self):
    if self.depth not in BLOCKS:
      raise UnknownModelError(f"DPN depth must be one of {sorted(BLOCKS)}, got {self.depth}")
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = layers.Conv(64, 3, 1, 1, use_bias=False, dtype=self.dtype, forms=self.forms,
                    name="conv1")(x)
    x = nn.relu(layers.batch_norm(train, name="bn1", dtype=self.dtype)(x))
    stages = zip(BLOCKS[self.depth], BOTTLENECK, RESIDUAL, DENSE, STRIDES)
    for stage, (n, width, o, d, stride) in enumerate(stages):
      for i in range(n):
        x = DualPathBlock(width, o, d, stride if i == 0 else 1, first=i == 0, dtype=self.dtype,
                          forms=self.forms, name=f"layer{stage + 1}_{i}")(x, train)
    x = layers.flatten(layers.head_pool(x, 4))
    return layers.Dense(self.num_classes, dtype=self.dtype, name="linear")(x)


register_native("dpn", DPN, hparams=("depth",), presets={"dpn26": {"depth": 26}})
