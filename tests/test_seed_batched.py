"""The shallow CNN's seed-batched convolution: seeds vmapped with their own batches compute the
convolution as image patches x kernel, one batched matmul over the seeds. Checked against
``lax.conv`` written out independently (forward and kernel gradient), for every width of the
paper and the digits', MNIST's and CIFAR's shapes, and in the engine's two loops against each
seed trained alone."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnjax import engine, models
from learnjax.models import layers, small

DN = ("NHWC", "HWIO", "NHWC")
SHAPES = {"digits": (8, 8, 1), "mnist": (28, 28, 1), "cifar": (32, 32, 3)}


def reference_shallow_cnn(params, x):
  """Conv 5x5 (pad 2) -> ReLU -> 2x2 max-pool -> Linear, from lax's own convolution and
  reduce_window pool at full float32 precision: the plain layers, not learnjax's forms."""
  conv = params["Conv_0"]["conv"]
  y = jax.lax.conv_general_dilated(x, conv["kernel"], (1, 1), ((2, 2), (2, 2)),
                                   dimension_numbers=DN, precision=jax.lax.Precision.HIGHEST)
  y = jax.nn.relu(y + conv["bias"])
  y = jax.lax.reduce_window(y, -jnp.inf, jax.lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
  dense = params["Dense_0"]["dense"]
  return jnp.dot(y.reshape(y.shape[0], -1), dense["kernel"],
                 precision=jax.lax.Precision.HIGHEST) + dense["bias"]


def loss(apply, params, x, y):
  logits = apply(params, x)
  return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], -1))


def seeds_data(num_seeds, batch, shape, width):
  model = small.ShallowCNN(width=width, num_classes=10)
  keys = jax.random.split(jax.random.PRNGKey(width), num_seeds)
  params = jax.vmap(lambda k: model.init(k, jnp.zeros((1,) + shape))["params"])(keys)
  x = jax.random.normal(jax.random.PRNGKey(1), (num_seeds, batch) + shape)
  y = jax.random.randint(jax.random.PRNGKey(2), (num_seeds, batch), 0, 10)
  return params, x, y


@pytest.mark.parametrize("forms", ["accelerator", "cpu"])
@pytest.mark.parametrize("data,width", [("digits", 16), ("mnist", 16), ("mnist", 64),
                                        ("cifar", 16), ("cifar", 32), ("cifar", 128)])
def test_seed_batched_forward_and_kernel_gradient_equal_lax_conv(data, width, forms):
  shape = SHAPES[data]
  params, x, y = seeds_data(3, 4, shape, width)
  model = small.ShallowCNN(width=width, num_classes=10, forms=forms, seed_batched=True)
  apply = lambda p, xb: model.apply({"params": p}, xb)
  got_logits = jax.jit(jax.vmap(apply))(params, x)
  want_logits = jax.vmap(reference_shallow_cnn)(params, x)
  np.testing.assert_allclose(got_logits, want_logits, rtol=2e-5, atol=2e-5)
  got = jax.jit(jax.vmap(jax.grad(functools.partial(loss, apply))))(params, x, y)
  want = jax.vmap(jax.grad(functools.partial(loss, reference_shallow_cnn)))(params, x, y)
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    scale = float(jnp.abs(w).max())
    np.testing.assert_allclose(g / scale, w / scale, atol=2e-5)


@pytest.mark.parametrize("width", small.SHALLOW_WIDTHS)
def test_every_width_of_the_paper_on_cifar_shapes(width):
  params, x, y = seeds_data(2, 2, SHAPES["cifar"], width)
  model = small.ShallowCNN(width=width, num_classes=10, forms="accelerator", seed_batched=True)
  apply = lambda p, xb: model.apply({"params": p}, xb)
  got = jax.jit(jax.vmap(jax.value_and_grad(functools.partial(loss, apply))))(params, x, y)
  want = jax.vmap(jax.value_and_grad(functools.partial(loss, reference_shallow_cnn)))(
      params, x, y)
  np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
  kernel, want_kernel = got[1]["Conv_0"]["conv"]["kernel"], want[1]["Conv_0"]["conv"]["kernel"]
  scale = float(jnp.abs(want_kernel).max())
  np.testing.assert_allclose(kernel / scale, want_kernel / scale, atol=2e-5)


def test_the_compiled_seed_batched_step_has_no_convolution_left():
  # Forward and kernel gradient are matmuls batched over the seeds; the input's gradient (a
  # convolution) is never needed, so XLA removes it.
  params, x, y = seeds_data(3, 4, SHAPES["cifar"], 16)
  model = small.ShallowCNN(width=16, num_classes=10, forms="accelerator", seed_batched=True)
  grads = jax.jit(jax.vmap(jax.grad(functools.partial(
      loss, lambda p, xb: model.apply({"params": p}, xb)))))
  hlo = grads.lower(params, x, y).compile().as_text()
  assert "convolution(" not in hlo
  assert "dot(" in hlo
  grouped = small.ShallowCNN(width=16, num_classes=10, forms="accelerator", seed_batched=False)
  grads = jax.jit(jax.vmap(jax.grad(functools.partial(
      loss, lambda p, xb: grouped.apply({"params": p}, xb)))))
  assert "convolution(" in grads.lower(params, x, y).compile().as_text()


@pytest.mark.parametrize("forms", ["accelerator", "cpu"])
def test_one_seed_and_shared_images_run_the_plain_program(forms):
  # Under vmap over one seed, or with images shared by the seeds (a shared order, predicting),
  # the seed-batched layer is the plain one, to the bit.
  params, x, y = seeds_data(2, 4, SHAPES["mnist"], 16)
  batched = small.ShallowCNN(width=16, num_classes=10, forms=forms, seed_batched=True)
  plain = small.ShallowCNN(width=16, num_classes=10, forms=forms, seed_batched=False)

  def grads(model, in_axes):
    return jax.jit(jax.vmap(jax.value_and_grad(functools.partial(
        loss, lambda p, xb: model.apply({"params": p}, xb))), in_axes=in_axes))

  one = jax.tree.map(lambda a: a[:1], (params, x, y))
  for a, b in zip(jax.tree.leaves(grads(batched, 0)(*one)), jax.tree.leaves(grads(plain, 0)(*one))):
    np.testing.assert_array_equal(a, b)
  shared = (params, x[0], y)
  for a, b in zip(jax.tree.leaves(grads(batched, (0, None, 0))(*shared)),
                  jax.tree.leaves(grads(plain, (0, None, 0))(*shared))):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("loop", ["step", "scan"])
@pytest.mark.parametrize("forms", ["accelerator", "cpu"])
def test_an_epoch_of_vmapped_seeds_equals_each_seed_trained_alone(small_splits, loop, forms):
  x = jnp.asarray(small_splits.d1.x)
  seeds = 3
  y = jnp.broadcast_to(jnp.asarray(small_splits.d1.y), (seeds, len(x)))
  cfg = engine.TrainConfig(batch_size=32, max_epochs=1, loop=loop)
  trainer = engine.Trainer(models.build("shallow_cnn_16", 10, forms=forms), cfg)
  assert trainer.model.seed_batched
  keys = jax.random.split(jax.random.PRNGKey(0), 2 * seeds)
  together = trainer.train(keys[:seeds], keys[seeds:], x, y)
  for s in range(seeds):
    alone = trainer.train(keys[s:s + 1], keys[seeds + s:seeds + s + 1], x, y[s:s + 1])
    for a, b in zip(jax.tree.leaves(together.variables), jax.tree.leaves(alone.variables)):
      np.testing.assert_allclose(a[s], b[0], rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(together.train_error[s], alone.train_error[0], atol=1 / len(x))


def test_image_patches_are_the_convolutions_inputs():
  # patches @ kernel-as-matrix is the convolution: checked against numpy's own loops.
  rng = np.random.default_rng(0)
  x = rng.normal(size=(2, 5, 6, 3)).astype(np.float32)
  k = rng.normal(size=(3, 2, 3, 4)).astype(np.float32)
  p = np.asarray(layers.image_patches(jnp.asarray(x), (3, 2), ((1, 1), (0, 2))))
  xp = np.pad(x, ((0, 0), (1, 1), (0, 2), (0, 0)))
  want = np.zeros((2, 5, 7, 4), np.float32)
  for i in range(5):
    for j in range(7):
      want[:, i, j] = np.einsum("nabc,abcf->nf", xp[:, i:i + 3, j:j + 2], k)
  np.testing.assert_allclose(p @ k.reshape(-1, 4), want, rtol=1e-5, atol=1e-5)
