"""PyTorch-default layers in Flax: the initialisation and padding every zoo model shares.

PyTorch initialises Conv2d and Linear weights with ``kaiming_uniform_(a=sqrt(5))``, i.e.
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and their biases with the same bound. fan_in is
``in_features`` for a Linear layer and ``in_channels / groups * kh * kw`` for a convolution.
Flax's ``variance_scaling(1/3, 'fan_in', 'uniform')`` gives exactly that bound for kernels;
biases need a closure that knows fan_in, which these helpers build.

BatchNorm follows PyTorch's defaults (eps 1e-5, momentum 0.1, which is Flax momentum 0.9),
with the two-pass variance, which is numerically closer to PyTorch.

Where XLA's CPU kernels are slow, equivalent forms are used (benchmarks/RESULTS.md): the 2x2
max-pool has a hand-written gradient (a first-maximum mask instead of select-and-scatter), and on
the CPU only a convolution runs through :func:`_cpu_conv` (grouped ones group by group, tiny
outputs as a matmul, kernel gradients over batch chunks). They give the same values as the
automatic forms up to float summation order.
"""

from __future__ import annotations

import functools
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
                   conv_general_dilated=conv_general_dilated(),
                   kernel_init=torch_kernel_init,
                   bias_init=torch_bias_init(fan_in), name="conv")(x)


# The kernel gradient of a convolution on the CPU is computed over this many batch chunks.
CPU_KERNEL_GRAD_CHUNKS = 4


# Convolutions whose output has at most this many positions (2x2) run as one matmul on the CPU.
CPU_MATMUL_CONV_MAX_POSITIONS = 4


def conv_general_dilated():
  """The convolution ``nn.Conv`` should call: ``lax.conv_general_dilated`` on accelerators; on the
  CPU the same convolution computed where XLA's CPU kernels are slow, by :func:`_cpu_conv`.
  """
  return _cpu_conv if jax.default_backend() == "cpu" else None


def _cpu_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
              dimension_numbers=None, feature_group_count=1, precision=None, **kwargs):
  """``lax.conv_general_dilated`` for XLA's CPU backend (same values, same gradients).

  * A grouped convolution (DPN's 32 groups) runs as one plain convolution per group: XLA's CPU
    grouped convolution takes 17 s for the gradients of DPN26's first grouped layer (batch 64)
    where the groups in turn take 0.26 s.
  * A convolution with a tiny output (VGG's 512-channel 3x3 convs on 2x2 maps) runs as one
    matmul of its patches: XLA's CPU kernel takes 400 ms for what the matmul does in 5, and its
    gradients 790 ms against 15 (batch 64).
  * Otherwise the kernel gradient is summed over batch chunks: XLA's CPU kernel gradient for a
    whole batch of 64 runs on one core and is several times slower than the forward convolution;
    chunks run faster and concurrently (shallow CNN 16, one step on 2 cores: 10.8 -> 8.9 ms).
  """
  conv = functools.partial(
      jax.lax.conv_general_dilated, window_strides=window_strides, padding=padding,
      lhs_dilation=lhs_dilation, rhs_dilation=rhs_dilation, dimension_numbers=dimension_numbers,
      feature_group_count=feature_group_count, precision=precision, **kwargs)
  if kwargs.get("batch_group_count", 1) != 1:
    return conv(lhs, rhs)
  dn = jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, dimension_numbers)
  nhwc = dn == jax.lax.conv_dimension_numbers(lhs.shape, rhs.shape, ("NHWC", "HWIO", "NHWC"))
  if nhwc and feature_group_count > 1:
    return _groups_in_turn(conv, lhs, rhs, feature_group_count)
  if (nhwc and feature_group_count == 1 and not isinstance(padding, str)
      and all(d == 1 for d in (lhs_dilation or ()) + (rhs_dilation or ()))):
    out_shape = jax.eval_shape(conv, lhs, rhs).shape
    if out_shape[1] * out_shape[2] <= CPU_MATMUL_CONV_MAX_POSITIONS:
      return _patches_matmul(lhs, rhs, window_strides, padding, out_shape, precision)
  batch_axis, out_batch_axis = dn.lhs_spec[0], dn.out_spec[0]
  chunks = CPU_KERNEL_GRAD_CHUNKS
  if lhs.shape[batch_axis] % chunks:
    return conv(lhs, rhs)

  @jax.custom_vjp
  def chunked(lhs, rhs):
    return conv(lhs, rhs)

  def forward(lhs, rhs):
    return conv(lhs, rhs), (lhs, rhs)

  def backward(residuals, g):
    lhs, rhs = residuals
    d_lhs = jax.vjp(lambda l: conv(l, rhs), lhs)[1](g)[0]
    parts = zip(jnp.split(lhs, chunks, batch_axis), jnp.split(g, chunks, out_batch_axis))
    d_rhs = functools.reduce(
        jnp.add, [jax.vjp(lambda r, l=l: conv(l, r), rhs)[1](gc)[0] for l, gc in parts])
    return d_lhs, d_rhs

  chunked.defvjp(forward, backward)
  return chunked(lhs, rhs)


def _groups_in_turn(conv, lhs, rhs, groups):
  """An NHWC x HWIO grouped convolution as ``groups`` plain ones, concatenated."""
  xs = jnp.split(lhs, groups, axis=-1)
  ws = jnp.split(rhs, groups, axis=-1)
  plain = functools.partial(conv.func, **{**conv.keywords, "feature_group_count": 1})
  return jnp.concatenate([plain(x, w) for x, w in zip(xs, ws)], axis=-1)


def _patches_matmul(x, kernel, strides, padding, out_shape, precision):
  """An NHWC x HWIO convolution as (patches of x) @ (kernel as a matrix)."""
  n, _, _, cin = x.shape
  kh, kw, _, cout = kernel.shape
  (pt, pb), (pl, pr) = padding
  _, ho, wo, _ = out_shape
  sh, sw = strides
  xp = jnp.pad(x, ((0, 0), (pt, pb), (pl, pr), (0, 0)))
  patches = jnp.concatenate([
      jax.lax.slice(xp, (0, i, j, 0), (n, i + (ho - 1) * sh + 1, j + (wo - 1) * sw + 1, cin),
                    (1, sh, sw, 1))
      for i in range(kh) for j in range(kw)], axis=-1)
  out = jnp.dot(patches.reshape(n * ho * wo, kh * kw * cin), kernel.reshape(kh * kw * cin, cout),
                precision=precision)
  return out.reshape(n, ho, wo, cout)


def batch_norm(train: bool, name: str | None = None, dtype=None) -> nn.BatchNorm:
  """BatchNorm2d with PyTorch's defaults: eps 1e-5, running stats updated with weight 0.1."""
  return nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                      use_fast_variance=False, dtype=dtype, name=name)


def max_pool(x, window: int, stride: int, padding: int = 0):
  """Max-pool padded with -inf, as PyTorch's MaxPool2d.

  A non-overlapping unpadded pool (window == stride, the shallow CNN's and VGG's 2x2) is computed
  as a reshape and a max, with a hand-written gradient that, like PyTorch's, sends each output's
  gradient to the first maximum of its window in row-major order. XLA's own gradients of a pool
  (select-and-scatter, or the reduction's tie-splitting mask) cost more on the CPU than the rest
  of a shallow CNN's training step (benchmarks/RESULTS.md).
  """
  p = padding
  if p == 0 and window == stride:
    n, h, w, c = x.shape
    h, w = h // window * window, w // window * window  # drop the remainder, as VALID pooling does
    return _block_max(x[:, :h, :w], window)
  return nn.max_pool(x, (window, window), (stride, stride), padding=((p, p), (p, p)))


def _windows(x, window):
  n, h, w, c = x.shape
  return x.reshape(n, h // window, window, w // window, window, c)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def _block_max(x, window):
  return _windows(x, window).max(axis=(2, 4))


def _block_max_forward(x, window):
  pooled = _block_max(x, window)
  return pooled, (x, pooled)


def _block_max_backward(window, residuals, g):
  x, pooled = residuals
  blocks = _windows(x, window)
  is_max = blocks == pooled[:, :, None, :, None, :]
  taken = jnp.zeros_like(pooled, dtype=bool)
  grads = []
  for a in range(window):
    row = []
    for b in range(window):
      first = is_max[:, :, a, :, b, :] & ~taken
      taken = taken | first
      row.append(jnp.where(first, g, jnp.zeros_like(g)))
    grads.append(jnp.stack(row, axis=3))           # (n, h', w', window_b, c)
  dx = jnp.stack(grads, axis=2)                    # (n, h', window_a, w', window_b, c)
  return (dx.reshape(x.shape),)


_block_max.defvjp(_block_max_forward, _block_max_backward)


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
