"""VGG11/13/16/19, CIFAR variant (kuangliu/pytorch-cifar): BatchNorm, one Linear head.

Each number in the config is conv 3x3 (pad 1, bias) -> BN -> ReLU; ``M`` is a 2x2 max-pool,
stride 2. On 32x32 input the five pools give a 1x1x512 map, flattened into Linear(512, C)
(the repo's trailing AvgPool(1, 1) is a no-op and is left out).

Other input sizes (an extension: the reference architecture is defined on 32x32 only):
  * a max-pool whose input is already 1 pixel high or wide is skipped (identity), so MNIST's
    28x28 goes 28 -> 14 -> 7 -> 3 -> 1 -> (skipped) 1 instead of collapsing to an empty map;
  * a final map larger than 1x1 (e.g. 64x64 input) is averaged globally before the head.
Neither changes the parameters: the head is always Linear(512, C). On 32x32 input neither rule
fires, so the network is exactly the reference one.
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from learnjax.models import layers
from learnjax.models.registry import UnknownModelError, register_native

CONFIGS = {
    11: (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    13: (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    16: (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M",
         512, 512, 512, "M"),
    19: (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M",
         512, 512, 512, 512, "M"),
}


class VGG(nn.Module):
  depth: int           # 11, 13, 16 or 19
  num_classes: int
  dtype: object = None
  forms: str = "accelerator"    # 'cpu' | 'accelerator' (layers.FORMS)

  def __post_init__(self):
    if self.depth not in CONFIGS:
      raise UnknownModelError(f"VGG depth must be one of {sorted(CONFIGS)}, got {self.depth}")
    super().__post_init__()

  @nn.compact
  def __call__(self, x, train: bool = False):
    for item in CONFIGS[self.depth]:
      if item == "M":
        if min(x.shape[1], x.shape[2]) >= 2:
          x = layers.max_pool(x, 2, 2)
      else:
        x = layers.Conv(item, 3, padding=1, dtype=self.dtype, forms=self.forms)(x)
        x = nn.relu(layers.batch_norm(train, dtype=self.dtype)(x))
    if x.shape[1:3] != (1, 1):
      x = jnp.mean(x, axis=(1, 2), keepdims=True)
    return layers.Dense(self.num_classes, dtype=self.dtype)(layers.flatten(x))


register_native("vgg", VGG, hparams=("depth",),
         presets={f"vgg{d}": {"depth": d} for d in (11, 13, 16, 19)})
