"""ResNet18/34 and PreActResNet18, CIFAR variants (kuangliu/pytorch-cifar).

ResNet (depth 18 or 34): stem conv 3x3 (64, no bias) -> BN -> ReLU, no max-pool; four stages
of BasicBlocks, widths 64/128/256/512, first-block strides 1/2/2/2, blocks [2,2,2,2] (18) or
[3,4,6,3] (34). A BasicBlock's shortcut is a 1x1 conv (no bias) -> BN when it changes stride or
width.

PreActResNet (preset 18; depth 34 also builds, as in the repo): stem conv only (no BN/ReLU);
PreActBlock a = ReLU(BN(x)), the projection shortcut (1x1 conv, no BN) reads ``a``, the
identity shortcut reads ``x``; no ReLU after the addition and no final BN-ReLU before the pool
(16 BN layers in all).

Flax module names follow the PyTorch attributes (conv1, bn1, layer2_0/shortcut_conv, linear...)
so that ported weights map by name.

Head: "avgpool 4" -> Linear(512, C). Convolutions never use 'SAME' padding (see layers.Conv).
Input sizes other than 32x32: :func:`layers.head_pool` averages the final map globally whenever it is
not exactly the reference head's window (4x4 here), so the head stays Linear(512, C) and the parameter
counts never depend on the input size. MNIST's 28x28 happens to reach 4x4 as well
(28 -> 14 -> 7 -> 4 with stride-2, pad-1 3x3 convs), where the two pools coincide anyway.
"""

from __future__ import annotations

import flax.linen as nn

from learnjax.models import layers
from learnjax.models.registry import UnknownModelError, register_native

WIDTHS = (64, 128, 256, 512)
STRIDES = (1, 2, 2, 2)
BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}   # blocks per stage, by depth


def _check_depth(cls_name: str, depth: int) -> None:
  if depth not in BLOCKS:
    raise UnknownModelError(f"{cls_name} depth must be one of {sorted(BLOCKS)}, got {depth}")


class BasicBlock(nn.Module):
  features: int
  strides: int = 1
  dtype: object = None
  forms: str = "accelerator"    # 'cpu' | 'accelerator' (layers.FORMS)

  @nn.compact
  def __call__(self, x, train: bool):
    bn = lambda name: layers.batch_norm(train, name=name, dtype=self.dtype)
    y = layers.Conv(self.features, 3, self.strides, 1, use_bias=False, dtype=self.dtype,
                    forms=self.forms, name="conv1")(x)
    y = nn.relu(bn("bn1")(y))
    y = layers.Conv(self.features, 3, 1, 1, use_bias=False, dtype=self.dtype, forms=self.forms,
                    name="conv2")(y)
    y = bn("bn2")(y)
    if self.strides != 1 or x.shape[-1] != self.features:
      x = layers.Conv(self.features, 1, self.strides, 0, use_bias=False, dtype=self.dtype,
                      forms=self.forms, name="shortcut_conv")(x)
      x = bn("shortcut_bn")(x)
    return nn.relu(y + x)


class PreActBlock(nn.Module):
  features: int
  strides: int = 1
  dtype: object = None
  forms: str = "accelerator"    # 'cpu' | 'accelerator' (layers.FORMS)

  @nn.compact
  def __call__(self, x, train: bool):
    a = nn.relu(layers.batch_norm(train, name="bn1", dtype=self.dtype)(x))
    shortcut = x
    if self.strides != 1 or x.shape[-1] != self.features:
      shortcut = layers.Conv(self.features, 1, self.strides, 0, use_bias=False,
                             dtype=self.dtype, forms=self.forms, name="shortcut_conv")(a)
    y = layers.Conv(self.features, 3, self.strides, 1, use_bias=False, dtype=self.dtype,
                    forms=self.forms, name="conv1")(a)
    y = nn.relu(layers.batch_norm(train, name="bn2", dtype=self.dtype)(y))
    y = layers.Conv(self.features, 3, 1, 1, use_bias=False, dtype=self.dtype, forms=self.forms,
                    name="conv2")(y)
    return y + shortcut


class ResNet(nn.Module):
  depth: int              # 18 or 34: BasicBlocks per stage from BLOCKS
  num_classes: int
  dtype: object = None
  forms: str = "accelerator"    # 'cpu' | 'accelerator' (layers.FORMS)

  def __post_init__(self):
    _check_depth("ResNet", self.depth)
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = layers.Conv(64, 3, 1, 1, use_bias=False, dtype=self.dtype, forms=self.forms,
                    name="conv1")(x)
    x = nn.relu(layers.batch_norm(train, name="bn1", dtype=self.dtype)(x))
    for stage, (n, width, stride) in enumerate(zip(BLOCKS[self.depth], WIDTHS, STRIDES)):
      for i in range(n):
        x = BasicBlock(width, stride if i == 0 else 1, dtype=self.dtype, forms=self.forms,
                       name=f"layer{stage + 1}_{i}")(x, train)
    x = layers.flatten(layers.head_pool(x, 4))
    return layers.Dense(self.num_classes, dtype=self.dtype, name="linear")(x)


class PreActResNet(nn.Module):
  depth: int              # 18 or 34: PreActBlocks per stage from BLOCKS
  num_classes: int
  dtype: object = None
  forms: str = "accelerator"    # 'cpu' | 'accelerator' (layers.FORMS)

  def __post_init__(self):
    _check_depth("PreActResNet", self.depth)
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = layers.Conv(64, 3, 1, 1, use_bias=False, dtype=self.dtype, forms=self.forms,
                    name="conv1")(x)
    for stage, (n, width, stride) in enumerate(zip(BLOCKS[self.depth], WIDTHS, STRIDES)):
      for i in range(n):
        x = PreActBlock(width, stride if i == 0 else 1, dtype=self.dtype, forms=self.forms,
                        name=f"layer{stage + 1}_{i}")(x, train)
    x = layers.flatten(layers.head_pool(x, 4))
    return layers.Dense(self.num_classes, dtype=self.dtype, name="linear")(x)


register_native("resnet", ResNet, hparams=("depth",),
         presets={"resnet18": {"depth": 18}, "resnet34": {"depth": 34}})
register_native("preact_resnet", PreActResNet, hparams=("depth",),
         presets={"preact_resnet18": {"depth": 18}})
