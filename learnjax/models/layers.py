"""PyTorch-default layers in Flax: the initialisation and padding every zoo model shares.

PyTorch initialises Conv2d and Linear weights with ``kaiming_uniform_(a=sqrt(5))``, i.e.
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and their biases with the same bound. fan_in is
``in_features`` for a Linear layer and ``in_channels / groups * kh * kw`` for a convolution.
Flax's ``variance_scaling(1/3, 'fan_in', 'uniform')`` gives exactly that bound for kernels;
biases need a closure that knows fan_in, which these helpers build.

BatchNorm follows PyTorch's defaults (eps 1e-5, momentum 0.1, which is Flax momentum 0.9),
with the two-pass variance, which is numerically closer to PyTorch.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_bias_init(fan_in: int):
  """U(-1/sqrt(fan_in), 1/sqrt(fan_in)), PyTorch's default bias init."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jax.numpy.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


class Dense(nn.Module):
  """A Linear layer with PyTorch's default initialisation."""
  features: int
  use_bias: bool = True
  dtype: jax.typing.DTypeLike | None = None

  @nn.compact
  def __call__(self, x):
    fan_in = x.shape[-1]
    return nn.Dense(self.features, use_bias=self.use_bias, dtype=self.dtype,
                    kernel_init=torch_kernel_init,
                    bias_init=torch_bias_init(fan_in), name="dense")(x)


class Conv(nn.Module):
  """A Conv2d with PyTorch's default init and explicit symmetric padding.

  ``padding`` is the per-side pad of PyTorch's Conv2d; it is never Flax's 'SAME', which pads
  (0, 1) for a stride-2 3x3 convolution on an even input where PyTorch pads (1, 1).
  """
  features: int
  kernel_size: int
  strides: int = 1
  padding: int = 0
  use_bias: bool = True
  groups: int = 1
  dtype: jax.typing.DTypeLike | None = None

  @nn.compact
  def __call__(self, x):
    k, p = self.kernel_size, self.padding
    fan_in = x.shape[-1] // self.groups * k * k
    return nn.Conv(self.features, (k, k), strides=(self.strides, self.strides),
                   padding=((p, p), (p, p)), use_bias=self.use_bias,
                   feature_group_count=self.groups, dtype=self.dtype,
                   kernel_init=torch_kernel_init,
                   bias_init=torch_bias_init(fan_in), name="conv")(x)


def batch_norm(train: bool, name: str | None = None, dtype=None) -> nn.BatchNorm:
  """BatchNorm2d with PyTorch's defaults: eps 1e-5, running stats updated with weight 0.1."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      use_fast_variance=False, dtype=dtype, name=name)


def max_pool(x, window: int, stride: int, padding: int = 0):
  """Max-pool padded with -inf, as PyTorch's MaxPool2d.

  A non-overlapping unpadded pool (window == stride, the shallow CNN's and VGG's 2x2) is computed
  as a reshape and a max: the same values and, since a tie can only occur where ReLU is flat, the
  same gradients, but its gradient avoids XLA's select-and-scatter, which on the CPU costs more
  than the rest of a shallow CNN's training step (benchmarks/RESULTS.md).
  """
  p = padding
  if p == 0 and window == stride:
    n, h, w, c = x.shape
    h, w = h // window * window, w // window * window  # drop the remainder, as VALID pooling does
    x = x[:, :h, :w].reshape(n, h // window, window, w // window, window, c)
    return x.max(axis=(2, 4))
  return nn.max_pool(x, (window, window), (stride, stride), padding=((p, p), (p, p)))


def avg_pool(x, window: int, stride: int | None = None):
  """Unpadded average pool."""
  stride = window if stride is None else stride
  return nn.avg_pool(x, (window, window), (stride, stride))


def head_pool(x, window: int):
  """The spec's unpadded ``window`` x ``window`` average pool when the map is exactly that
  size (the CIFAR case: 1x1 output), otherwise a global average over the remaining map.

  Always returns an (N, 1, 1, C) map, so the Linear head has C inputs for any input size.
  """
  if x.shape[1:3] == (window, window):
    return avg_pool(x, window)
  return jnp.mean(x, axis=(1, 2), keepdims=True)


def flatten(x):
  return x.reshape((x.shape[0], -1))
