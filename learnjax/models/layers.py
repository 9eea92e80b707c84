"""PyTorch-default layers in Flax: the initialisation and padding every zoo model shares.

PyTorch initialises Conv2d and Linear weights with ``kaiming_uniform_(a=sqrt(5))``, i.e.
U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and their biases with the same bound. fan_in is
``in_features`` for a Linear layer and ``in_channels / groups * kh * kw`` for a convolution.
Flax's ``variance_scaling(1/3, 'fan_in', 'uniform')`` gives exactly that bound for kernels;
biases need a closure that knows fan_in, which these helpers build.

:class:`BatchNorm` is PyTorch's BatchNorm (eps 1e-5, momentum 0.1): training normalises with the
batch's biased (two-pass) variance and folds the unbiased one into the running variance, as
PyTorch does and Flax's ``nn.BatchNorm`` does not.

Where XLA's CPU kernels are slow, equivalent forms are used (benchmarks/RESULTS.md): the 2x2
max-pool has a hand-written gradient (a first-maximum mask instead of select-and-scatter), and a
layer built with ``forms='cpu'`` computes a convolution through :func:`_cpu_conv` (grouped ones
group by group, tiny outputs as a matmul, kernel gradients over batch chunks, seeds in turn under
vmap) and the shallow CNN's conv + ReLU + pool on 2x2 pixel blocks (:class:`ConvReluMaxPool`).
They give the same values as the plain forms (``forms='accelerator'``) up to float summation
order. The forms are a field of every layer and model, fixed when the model is built
(:func:`learnjax.models.build` picks them from the backend), so the program a model compiles to
follows from its construction alone.
"""

from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from learnjax.errors import LearnjaxError

torch_kernel_init = nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")

# A model's forms: 'cpu' (the equivalent forms XLA's CPU backend runs faster) or 'accelerator'
# (the plain convolution, what a GPU or TPU runs).
FORMS = ("cpu", "accelerator")


def default_forms() -> str:
  """The forms for the default backend: 'cpu' on the CPU, else 'accelerator'."""
  return "cpu" if jax.default_backend() == "cpu" else "accelerator"


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


class _ConvParams(nn.Module):
  """The kernel and bias ``nn.Conv`` would create in this scope (same names, shapes and init)."""
  kernel_shape: tuple[int, ...]
  use_bias: bool

  @nn.compact
  def __call__(self):
    kh, kw, cin, cout = self.kernel_shape
    kernel = self.param("kernel", torch_kernel_init, self.kernel_shape, jnp.float32)
    bias = (self.param("bias", torch_bias_init(cin * kh * kw), (cout,), jnp.float32)
            if self.use_bias else None)
    return kernel, bias


class Conv(nn.Module):
  """A Conv2d with PyTorch's default init and explicit symmetric padding.

  ``padding`` is the per-side pad of PyTorch's Conv2d; it is never Flax's 'SAME', which pads
  (0, 1) for a stride-2 3x3 convolution on an even input where PyTorch pads (1, 1). ``forms='cpu'``
  computes it by :func:`_cpu_conv`.
  """
  features: int
  kernel_size: int
  strides: int = 1
  padding: int = 0
  use_bias: bool = True
  groups: int = 1
  dtype: jax.typing.DTypeLike | None = None
  forms: str = "accelerator"

  @nn.compact
  def __call__(self, x):
    k, p = self.kernel_size, self.padding
    fan_in = x.shape[-1] // self.groups * k * k
    return nn.Conv(self.features, (k, k), strides=(self.strides, self.strides),
                   padding=((p, p), (p, p)), use_bias=self.use_bias,
                   feature_group_count=self.groups, dtype=self.dtype,
                   conv_general_dilated=_cpu_conv if self.forms == "cpu" else None,
                   kernel_init=torch_kernel_init,
                   bias_init=torch_bias_init(fan_in), name="conv")(x)


class ConvReluMaxPool(nn.Module):
  """``Conv`` (stride 1) -> ReLU -> a ``pool`` x ``pool`` max-pool of stride ``pool``: the same
  parameters, values and gradients as the three layers in turn.

  In the CPU forms a narrow convolution of a few input channels followed by a 2x2 pool (the
  shallow CNN's) is computed on 2x2 blocks of pixels (:func:`_block_conv_relu_pool`): XLA's CPU
  convolution is several times slower on 1-3 input channels than on the 4-12 of the blocked
  input, and the pool then reduces within a block, so the full-resolution map is never
  transposed back.
  """
  features: int
  kernel_size: int
  padding: int = 0
  pool: int = 2
  dtype: jax.typing.DTypeLike | None = None
  forms: str = "accelerator"
  seed_batched: bool = False    # under vmap over seeds: patches x kernel (:func:`seed_batched_conv`)

  @nn.compact
  def __call__(self, x):
    k, p = self.kernel_size, self.padding
    kernel, bias = _ConvParams((k, k, x.shape[-1], self.features), True, name="conv")()
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    if self.pool == 2 and _block_conv_pays(x.shape, self.features, self.forms):
      return _block_conv_relu_pool(x, kernel, bias, p, self.seed_batched)
    conv = (functools.partial(_cpu_conv, kernel_grad_chunks=CPU_SHALLOW_KERNEL_GRAD_CHUNKS)
            if self.forms == "cpu" else jax.lax.conv_general_dilated)
    padding = ((p, p), (p, p))
    single = functools.partial(conv, window_strides=(1, 1), padding=padding,
                               dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = seed_batched_conv(single, x, kernel, padding) if self.seed_batched else single(x, kernel)
    return max_pool(nn.relu(y + bias), self.pool, self.pool)


# ConvReluMaxPool's kernel gradient in the CPU forms is summed over this many batch chunks: finer
# chunks than CPU_KERNEL_GRAD_CHUNKS pay for the shallow CNN when two seeds train at once in
# threads, not for the deep nets (benchmarks/RESULTS.md, "Kernel-gradient chunks").
CPU_SHALLOW_KERNEL_GRAD_CHUNKS = 16


# In the CPU forms, ConvReluMaxPool computes on 2x2 blocks of pixels when the input has at most
# CPU_BLOCK_CONV_MAX_CHANNELS channels and the convolution at most this many features (by input
# channels): beyond these the plain convolution is as fast (benchmarks/RESULTS.md, "2x2 pixel
# blocks").
CPU_BLOCK_CONV_MAX_FEATURES = {1: 16, 2: 32, 3: 32}
CPU_BLOCK_CONV_MAX_CHANNELS = 3


def _block_conv_pays(x_shape, features, forms):
  if forms != "cpu" or len(x_shape) != 4:
    return False
  channels = x_shape[-1]
  return (channels <= CPU_BLOCK_CONV_MAX_CHANNELS
          and features <= CPU_BLOCK_CONV_MAX_FEATURES[channels])


def _block_conv_relu_pool(x, kernel, bias, padding, seed_batched=False):
  """relu(conv(x, kernel) + bias) max-pooled 2x2, computed on 2x2 blocks of pixels.

  Output pixel 2*B + o (o in {0, 1}) of a stride-1 convolution reads padded input pixels
  2*B + o + t (t < k), i.e. pixel d in {0, 1} of input block B + b with 2*b + d = o + t. So with
  the input's 2x2 blocks as channels (d_row, d_col, c) and the output's as (o_row, o_col, f), the
  convolution is a stride-1 convolution over blocks with a ceil((k+1)/2)-block kernel whose entry
  [b_row, b_col, (d_row, d_col, c), (o_row, o_col, f)] is kernel[2b_row + d_row - o_row,
  2b_col + d_col - o_col, c, f] (zero outside the kernel). The pool is then a max over (o_row,
  o_col), taken before the ReLU (the same values, and the same first-maximum gradient: a ReLU
  keeps the order of positive values and zeroes the gradient of the rest).
  """
  n, h, w, c = x.shape
  k, features = kernel.shape[0], kernel.shape[-1]
  blocks = (k + 2) // 2                                       # kernel blocks per side
  hq, wq = (h + 2 * padding - k + 1) // 2, (w + 2 * padding - k + 1) // 2   # pooled output
  rows, cols = 2 * (hq + blocks - 1), 2 * (wq + blocks - 1)   # padded input rows/cols read
  x = jax.lax.pad(x, jnp.zeros((), x.dtype), (
      (0, 0, 0), (padding, rows - h - padding, 0), (padding, cols - w - padding, 0), (0, 0, 0)))
  x = x.reshape(n, rows // 2, 2, cols // 2, 2, c).transpose(0, 1, 3, 2, 4, 5)
  x = x.reshape(n, rows // 2, cols // 2, 4 * c)
  single = functools.partial(_cpu_conv, window_strides=(1, 1), padding=((0, 0), (0, 0)),
                             dimension_numbers=("NHWC", "HWIO", "NHWC"),
                             kernel_grad_chunks=CPU_SHALLOW_KERNEL_GRAD_CHUNKS)
  block_kernel = _block_kernel(kernel, blocks)
  y = (seed_batched_conv(single, x, block_kernel, ((0, 0), (0, 0))) if seed_batched
       else single(x, block_kernel))
  y = y.reshape(n, hq, wq, 4, features) + bias
  return nn.relu(_first_max(y))


def _block_kernel(kernel, blocks):
  """The (blocks, blocks, 4 c, 4 f) kernel of :func:`_block_conv_relu_pool`."""
  k, _, c, f = kernel.shape
  shifted = []
  for o_row in range(2):
    for o_col in range(2):
      padded = jnp.pad(kernel, ((o_row, 2 * blocks - k - o_row), (o_col, 2 * blocks - k - o_col),
                                (0, 0), (0, 0)))
      shifted.append(padded.reshape(blocks, 2, blocks, 2, c, f))   # b_row, d_row, b_col, d_col
  full = jnp.stack(shifted, axis=-2)                   # ..., c, (o_row, o_col), f
  full = full.transpose(0, 2, 1, 3, 4, 5, 6)           # b_row, b_col, d_row, d_col, c, o, f
  return full.reshape(blocks, blocks, 4 * c, 4 * f)


def image_patches(x, kernel_hw, padding):
  """The stride-1 patches of NHWC images ``x`` (any leading axes): (..., N, Ho, Wo, kh * kw * C),
  ordered (row, column, channel) as an HWIO kernel reshaped to (kh * kw * C, F)."""
  kh, kw = kernel_hw
  (pt, pb), (pl, pr) = padding
  x = jnp.pad(x, [(0, 0)] * (x.ndim - 3) + [(pt, pb), (pl, pr), (0, 0)])
  ho, wo = x.shape[-3] - kh + 1, x.shape[-2] - kw + 1
  return jnp.concatenate([x[..., i:i + ho, j:j + wo, :] for i in range(kh) for j in range(kw)],
                         axis=-1)


def seed_batched_conv(single, x, kernel, padding):
  """``single(x, kernel)`` (a stride-1 NHWC x HWIO convolution with ``padding``), but under
  ``jax.vmap`` over seeds, each with its own images and kernel, computed as image patches times
  the kernel: one batched matrix product over the seeds, forward and kernel gradient alike.

  vmap would otherwise turn the convolution into a grouped one (one group per seed), which
  accelerators run slower than the seeds in turn. The patches are a function of the images only
  (no parameter), computed once per step (the kernel gradient's are the forward's, merged by
  XLA), and the gradient with respect to the images, which a first layer never needs, is that of
  ``single`` (removed from the program when unused). Unbatched, with one seed, or with images
  shared by the seeds (one wide convolution), it is ``single`` as vmap batches it.
  """
  kernel_hw = kernel.shape[:2]

  def patches_and_size(xs):
    p = image_patches(xs, kernel_hw, padding)
    return p.reshape(p.shape[0], -1, p.shape[-1]), p.shape[1:-1]

  def batched_forward(xs, kernels):
    p, (n, ho, wo) = patches_and_size(xs)
    s, features = kernels.shape[0], kernels.shape[-1]
    out = jnp.einsum("spk,skf->spf", p, kernels.reshape(s, -1, features))
    return out.reshape(s, n, ho, wo, features)

  def batched_kernel_grad(xs, gs):
    p, _ = patches_and_size(xs)
    g = gs.reshape(gs.shape[0], -1, gs.shape[-1])
    return jnp.einsum("spk,spf->skf", p, g).reshape((gs.shape[0],) + kernel.shape)

  def kernel_grad_one(x, kernel, g):
    return jax.vjp(lambda k: single(x, k), kernel)[1](g)[0]

  def input_grad_one(x, kernel, g):
    return jax.vjp(lambda v: single(v, kernel), x)[1](g)[0]

  forward = _seeds_batched(single, lambda xs, ks: batched_forward(xs, ks))
  kernel_grad = _seeds_batched(kernel_grad_one, lambda xs, ks, gs: batched_kernel_grad(xs, gs))
  return _with_gradients(forward, input_grad_one, kernel_grad)(x, kernel)


def _with_gradients(forward, input_grad, kernel_grad):
  """``forward(x, kernel)`` whose gradients are ``input_grad(x, kernel, g)`` and
  ``kernel_grad(x, kernel, g)`` (a custom VJP: each computed in its own form)."""
  @jax.custom_vjp
  def fn(x, kernel):
    return forward(x, kernel)

  def fn_forward(x, kernel):
    return forward(x, kernel), (x, kernel)

  def fn_backward(residuals, g):
    x, kernel = residuals
    return input_grad(x, kernel, g), kernel_grad(x, kernel, g)

  fn.defvjp(fn_forward, fn_backward)
  return fn


def _seeds_batched(fn, batched_fn):
  """``fn(x, kernel, ...)``, but under ``jax.vmap`` with the images and the kernel both batched
  over more than one seed, ``batched_fn`` of the batched arguments; with one seed, ``fn`` of that
  seed (the unbatched program); otherwise ``fn`` as vmap batches it."""
  wrapped = jax.custom_batching.custom_vmap(fn)

  @wrapped.def_vmap
  def rule(axis_size, in_batched, *args):
    if all(in_batched):
      if axis_size > 1:
        return batched_fn(*args), True
      return wrapped(*[a[0] for a in args])[None], True
    return jax.vmap(fn, in_axes=[0 if b else None for b in in_batched])(*args), True

  return wrapped


@jax.custom_vjp
def _first_max(y):
  """Max over axis -2, the gradient going to the first maximum (as PyTorch's max-pool routes it)."""
  return y.max(axis=-2)


def _first_max_forward(y):
  pooled = _first_max(y)
  return pooled, (y, pooled)


def _first_max_backward(residuals, g):
  y, pooled = residuals
  routed = _route_to_first_max([y[..., i, :] for i in range(y.shape[-2])], pooled, g)
  return (jnp.stack(routed, axis=-2),)


_first_max.defvjp(_first_max_forward, _first_max_backward)


def _route_to_first_max(candidates, pooled, g):
  """For each candidate, ``g`` where it is the first to equal ``pooled``, else 0."""
  taken = jnp.zeros_like(pooled, dtype=bool)
  routed = []
  for candidate in candidates:
    first = (candidate == pooled) & ~taken
    taken = taken | first
    routed.append(jnp.where(first, g, jnp.zeros_like(g)))
  return routed


# The kernel gradient of a convolution on the CPU is computed over this many batch chunks.
CPU_KERNEL_GRAD_CHUNKS = 4


# Convolutions whose output has at most this many positions (2x2) run as one matmul on the CPU.
CPU_MATMUL_CONV_MAX_POSITIONS = 4


def _cpu_conv(lhs, rhs, window_strides, padding, lhs_dilation=None, rhs_dilation=None,
              dimension_numbers=None, feature_group_count=1, precision=None, *,
              kernel_grad_chunks=None, **kwargs):
  """``lax.conv_general_dilated`` for XLA's CPU backend (same values, same gradients).

  Each form below replaces an XLA CPU kernel that is slow for that case (benchmarks/RESULTS.md):

  * A grouped convolution (DPN's 32 groups) runs as one plain convolution per group.
  * A convolution with a tiny output (VGG's 512-channel 3x3 convs on 2x2 maps) runs as one
    matmul of its patches.
  * Otherwise the kernel gradient is summed over batch chunks: XLA's CPU kernel gradient for a
    whole batch runs on one core, chunks run concurrently. ``kernel_grad_chunks`` (default
    :data:`CPU_KERNEL_GRAD_CHUNKS`) is reduced to a divisor of the batch. Under ``jax.vmap``
    (seeds) these convolutions run seed by seed (:func:`_in_turn_under_vmap`), not as one
    grouped convolution.
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
  chunks = math.gcd(lhs.shape[batch_axis], kernel_grad_chunks or CPU_KERNEL_GRAD_CHUNKS)

  def input_grad(lhs, rhs, g):
    return jax.vjp(lambda l: conv(l, rhs), lhs)[1](g)[0]

  def kernel_grad(lhs, rhs, g):
    parts = zip(jnp.split(lhs, chunks, batch_axis), jnp.split(g, chunks, out_batch_axis))
    return functools.reduce(
        jnp.add, [jax.vjp(lambda r, l=l: conv(l, r), rhs)[1](gc)[0] for l, gc in parts])

  return _with_gradients(_in_turn_under_vmap(conv), _in_turn_under_vmap(input_grad),
                         _in_turn_under_vmap(kernel_grad))(lhs, rhs)


def _in_turn_under_vmap(fn):
  """``fn`` (of arrays, first one the input batch), but under ``jax.vmap`` over the input batch
  computed for one batch element after another, as the unbatched program does.

  vmapped over seeds (each with its own kernel and batch), a convolution becomes a grouped one,
  which XLA's CPU backend runs slower than the convolutions in turn and sums in another order:
  a seed's result would then depend on how many seeds share a device. With an unbatched input (a
  batch order shared by the seeds) the plain batching rule applies (one wide convolution).
  """
  wrapped = jax.custom_batching.custom_vmap(fn)

  @wrapped.def_vmap
  def rule(axis_size, in_batched, *args):
    if not in_batched[0]:
      axes = [0 if batched else None for batched in in_batched]
      return jax.vmap(fn, in_axes=axes)(*args), True
    outs = [wrapped(*[a[i] if batched else a for a, batched in zip(args, in_batched)])
            for i in range(axis_size)]
    return jnp.stack(outs), True

  return wrapped


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


class BatchNorm(nn.Module):
  """PyTorch's BatchNorm1d/2d over the last axis (the channels), affine, with running statistics.

  In training the input is normalised with the batch's mean and biased variance over every other
  axis (m values per channel; the variance two-pass, E[(x - mean)^2]), and the running statistics
  become ``(1 - momentum) * running + momentum * batch statistic``, the variance's batch statistic
  being the unbiased one, ``var * m / (m - 1)`` (PyTorch's rule; Flax's ``nn.BatchNorm`` folds in
  the biased one). During ``init`` they keep their initial values (0 and 1), as in Flax. In
  evaluation the running statistics normalise. Variables and their names are those of
  ``nn.BatchNorm`` (params ``scale``, ``bias``; batch_stats ``mean``, ``var``, all float32), so
  checkpoints and parameter counts are the same. As in Flax, statistics and normalisation are
  computed in at least float32 and the output is cast to ``dtype`` (if given).
  """
  use_running_average: bool
  momentum: float = 0.1     # PyTorch's convention: the weight of the batch statistic
  epsilon: float = 1e-5
  dtype: jax.typing.DTypeLike | None = None

  @nn.compact
  def __call__(self, x):
    features = (x.shape[-1],)
    axes = tuple(range(x.ndim - 1))
    ra_mean = self.variable("batch_stats", "mean", lambda: jnp.zeros(features, jnp.float32))
    ra_var = self.variable("batch_stats", "var", lambda: jnp.ones(features, jnp.float32))
    scale = self.param("scale", nn.initializers.ones, features, jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, features, jnp.float32)
    stats_dtype = jnp.promote_types(self.dtype or x.dtype, jnp.float32)
    if self.use_running_average:
      mean, var = ra_mean.value, ra_var.value
    else:
      xf = x.astype(stats_dtype)
      mean = xf.mean(axes)
      var = jnp.square(xf - mean).mean(axes)
      if not self.is_initializing():
        m = math.prod(x.shape[:-1])
        if m < 2:
          raise LearnjaxError(
              f"BatchNorm in training needs more than one value per channel, got an input of "
              f"shape {x.shape}; use a larger batch (or a last batch of more than one example)")
        ra_mean.value = (1 - self.momentum) * ra_mean.value + self.momentum * mean
        ra_var.value = ((1 - self.momentum) * ra_var.value
                        + self.momentum * var * (m / (m - 1)))
    y = (x - mean) * (jax.lax.rsqrt(var + self.epsilon) * scale) + bias
    return y.astype(self.dtype or jnp.result_type(x, scale))


def batch_norm(train: bool, name: str | None = None, dtype=None) -> BatchNorm:
  """BatchNorm2d with PyTorch's defaults: eps 1e-5, running stats updated with weight 0.1."""
  return BatchNorm(use_running_average=not train, dtype=dtype, name=name)


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
  routed = _route_to_first_max(
      [blocks[:, :, a, :, b, :] for a in range(window) for b in range(window)], pooled, g)
  rows = [jnp.stack(routed[a * window:(a + 1) * window], axis=3) for a in range(window)]
  dx = jnp.stack(rows, axis=2)                     # (n, h', window_a, w', window_b, c)
  return (dx.reshape(x.shape),)


_block_max.defvjp(_block_max_forward, _block_max_backward)


def avg_pool(x, window: int, stride: int | None = None):
  """Unpadded average pool."""
  stride = window if stride is None else stride
  return nn.avg_pool(x, (window, window), (stride, stride))


def head_pool(x, window: int):
  """The reference head's unpadded ``window`` x ``window`` average pool when the map is exactly
  that size (the CIFAR case: 1x1 output), otherwise a global average over the remaining map.

  Always returns an (N, 1, 1, C) map, so the Linear head has C inputs for any input size.
  """
  if x.shape[1:3] == (window, window):
    return avg_pool(x, window)
  return jnp.mean(x, axis=(1, 2), keepdims=True)


def flatten(x):
  return x.reshape((x.shape[0], -1))
