"""The paper's small networks: the shallow CNN (width k) and the MLPs.

Shallow CNN: conv 5x5 with k filters (pad 2, bias) -> ReLU -> 2x2 max-pool -> Linear. Its seeds,
vmapped with their own batch orders, run the convolution as one batched matmul of image patches
and kernels (``layers.seed_batched_conv``).
MLP: flatten -> [Linear(width) -> ReLU] x depth -> Linear. The CIFAR MLPs have width 64 and
depth 1..5; the MNIST MLPs have one hidden layer of 1..6 units. No BatchNorm in either.

``dropout`` (a rate, 0 by default: the paper's networks) adds inverted dropout, as
``torch.nn.Dropout``, after each hidden ReLU of the MLP and after the shallow CNN's pooling; it
is a hyper-parameter of both families and their presets (``--config.n1.dropout=0.5``).
"""

from __future__ import annotations

import flax.linen as nn

from learnjax.models import layers
from learnjax.models.registry import register_native

SHALLOW_WIDTHS = (16, 32, 64, 128, 256, 512, 1024)


def _dropout(x, rate: float, train: bool):
  """Inverted dropout in training (no layer at all at rate 0: the network without dropout)."""
  return nn.Dropout(rate, deterministic=not train)(x) if rate else x


class ShallowCNN(nn.Module):
  width: int
  num_classes: int
  dtype: object = None
  forms: str = "accelerator"    # 'cpu' | 'accelerator' (layers.FORMS)
  dropout: float = 0.0
  # Seeds vmapped with their own batches compute the convolution as image patches x kernel, one
  # batched matmul over the seeds; False: as vmap batches the convolution (a grouped one).
  seed_batched: bool = True

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = layers.ConvReluMaxPool(self.width, 5, padding=2, pool=2, dtype=self.dtype, forms=self.forms,
                               seed_batched=self.seed_batched, name="Conv_0")(x)
    x = _dropout(layers.flatten(x), self.dropout, train)
    return layers.Dense(self.num_classes, dtype=self.dtype)(x)


class MLP(nn.Module):
  width: int
  depth: int
  num_classes: int
  dtype: object = None
  forms: str = "accelerator"    # 'cpu' | 'accelerator' (layers.FORMS)
  dropout: float = 0.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = layers.flatten(x)
    for _ in range(self.depth):
      x = _dropout(nn.relu(layers.Dense(self.width, dtype=self.dtype)(x)), self.dropout, train)
    return layers.Dense(self.num_classes, dtype=self.dtype)(x)


register_native("shallow_cnn", ShallowCNN, hparams=("width",), optional=("dropout",),
         presets={f"shallow_cnn_{k}": {"width": k} for k in SHALLOW_WIDTHS})
register_native("mlp", MLP, hparams=("width", "depth"), optional=("dropout",),
         presets={**{f"mlp_{d}": {"width": 64, "depth": d} for d in range(1, 6)},
                  **{f"mnist_mlp_{h}": {"width": h, "depth": 1} for h in range(1, 7)}})
