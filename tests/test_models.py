"""The model zoo: exact counts against the reference architectures, shapes, BatchNorm,
PyTorch-default init, padding, and a few SGD steps.

Counts, shapes and gradients are checked for every preset with ``jax.eval_shape`` (tracing
only, nothing compiled). Real computation (init, BatchNorm, SGD) compiles a deep net per test,
which takes 10-60 s each on a small CPU, so the SGD test runs three deep nets by default and all
ten when LEARNJAX_SLOW_TESTS=1 (DPN26 alone then takes minutes on the CPU: XLA's gradient of a
grouped convolution's kernel is very slow there).
"""

import functools
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import flax.linen as nn
import optax
import pytest

from learnjax import models
from learnjax.models import layers
from learnjax.models.__main__ import count, main

CIFAR = (32, 32, 3)
MNIST = (28, 28, 1)

# The reference architectures' counts (the kuangliu/pytorch-cifar models; docs/protocol.md
# section 4):
# name: (params for 10 classes, params for 100 classes, param tensors, BN running-stat elements,
#        #conv, #conv with bias, #BN, #Linear)
DEEP = {
    "vgg11": (9_231_114, 9_277_284, 34, 5_504, 8, 8, 8, 1),
    "vgg13": (9_416_010, 9_462_180, 42, 5_888, 10, 10, 10, 1),
    "vgg16": (14_728_266, 14_774_436, 54, 8_448, 13, 13, 13, 1),
    "vgg19": (20_040_522, 20_086_692, 66, 11_008, 16, 16, 16, 1),
    "resnet18": (11_173_962, 11_220_132, 62, 9_600, 20, 0, 20, 1),
    "resnet34": (21_282_122, 21_328_292, 110, 17_024, 36, 0, 36, 1),
    "preact_resnet18": (11_171_146, 11_217_316, 54, 6_784, 20, 0, 16, 1),
    "dpn26": (11_574_842, 11_793_812, 89, 35_888, 29, 0, 29, 1),
    "densenet121": (6_956_298, 7_048_548, 362, 83_520, 120, 0, 120, 1),
    "googlenet": (6_166_250, 6_258_500, 258, 15_808, 64, 64, 64, 1),
}
# Small models (no BN), on CIFAR input except the MNIST MLPs: (10-class, 100-class or None,
# param tensors). The MNIST MLPs have no CIFAR-100 reference count.
_SHALLOW_10 = (42_186, 84_362, 168_714, 337_418, 674_826, 1_349_642, 2_699_274)
_SHALLOW_100 = (410_916, 821_732, 1_643_364, 3_286_628, 6_573_156, 13_146_212, 26_292_324)
_MLP_10 = (197_322, 201_482, 205_642, 209_802, 213_962)
_MLP_100 = (203_172, 207_332, 211_492, 215_652, 219_812)
_MNIST_10 = (805, 1_600, 2_395, 3_190, 3_985, 4_780)
SMALL = {
    **{f"shallow_cnn_{k}": (p10, p100, 4)
       for k, p10, p100 in zip((16, 32, 64, 128, 256, 512, 1024), _SHALLOW_10, _SHALLOW_100)},
    **{f"mlp_{d}": (p10, p100, 2 * d + 2) for d, p10, p100 in zip(range(1, 6), _MLP_10, _MLP_100)},
    **{f"mnist_mlp_{h}": (p10, None, 4) for h, p10 in zip(range(1, 7), _MNIST_10)},
}

SGD_DEFAULT = ("vgg11", "resnet18", "preact_resnet18")
SLOW = os.environ.get("LEARNJAX_SLOW_TESTS", "") not in ("", "0")


def input_shape(name):
  return MNIST if name.startswith("mnist_") else CIFAR


def abstract_variables(name, num_classes=10, shape=CIFAR, forms=None):
  model = models.build(name, num_classes, forms=forms)
  x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
  return model, jax.eval_shape(lambda x: model.init(jax.random.key(0), x, train=False), x)


@functools.lru_cache(maxsize=None)
def initialised(name):
  """(model, variables) with a real init, cached: compiling a deep net's init takes seconds."""
  model = models.build(name, 10)
  x = jnp.zeros((1, *input_shape(name)), jnp.float32)
  return model, jax.jit(lambda k, x: model.init(k, x, train=False))(jax.random.key(0), x)


def test_every_preset_is_registered_in_order():
  """Small models first, then the deep ones in the paper's order (others may follow)."""
  names = models.preset_names()
  expected = list(SMALL) + list(DEEP)
  assert [n for n in names if n in expected] == expected


@pytest.mark.parametrize("name", list(DEEP))
@pytest.mark.parametrize("num_classes", [10, 100])
def test_deep_counts_match_the_reference(name, num_classes):
  p10, p100, tensors, bn_stats, *_ = DEEP[name]
  assert count(name, num_classes, CIFAR) == (p10 if num_classes == 10 else p100, tensors, bn_stats)


@pytest.mark.parametrize("name", list(SMALL))
@pytest.mark.parametrize("num_classes", [10, 100])
def test_small_counts_match_the_reference(name, num_classes):
  p10, p100, tensors = SMALL[name]
  expected = p10 if num_classes == 10 else p100
  if expected is None:
    pytest.skip("the MNIST MLPs have no CIFAR-100 reference count")
  assert count(name, num_classes, input_shape(name)) == (expected, tensors, 0)


@pytest.mark.parametrize("name", list(DEEP))
def test_deep_layer_kinds_match_the_reference(name):
  """#conv (with bias), #BN and #Linear from the params tree, as in the reference's table."""
  *_, n_conv, n_conv_bias, n_bn, n_linear = DEEP[name]
  _, variables = abstract_variables(name)
  kinds = {"conv": 0, "conv_bias": 0, "bn": 0, "linear": 0}

  def visit(tree):
    if "kernel" in tree:
      if len(tree["kernel"].shape) == 4:
        kinds["conv"] += 1
        kinds["conv_bias"] += "bias" in tree
      else:
        kinds["linear"] += 1
      return
    if "scale" in tree:
      kinds["bn"] += 1
      assert tree["scale"].shape == tree["bias"].shape
      return
    for sub in tree.values():
      visit(sub)

  visit(variables["params"])
  assert kinds == {"conv": n_conv, "conv_bias": n_conv_bias, "bn": n_bn, "linear": n_linear}
  stats = jax.tree_util.tree_leaves(variables["batch_stats"])
  assert len(stats) == 2 * n_bn


def count_family(family, depth):
  return count(family, 10, CIFAR, depth=depth)


def test_family_names_take_a_validated_depth():
  assert count("vgg16", 10, CIFAR) == count_family("vgg", 16)
  assert models.canonical_name("resnet", depth=34) == "resnet34"
  assert models.canonical_name("densenet", depth=121) == "densenet121"
  # The repo's other configurations of the same code; counts from its PyTorch definitions.
  assert count_family("preact_resnet", 34)[0] == 21_279_306
  assert count_family("dpn", 92)[0] == 34_236_634
  assert count_family("densenet", 169)[0] == 12_493_322
  for family, depth in (("vgg", 12), ("resnet", 50), ("preact_resnet", 10), ("dpn", 27),
                        ("densenet", 100)):
    with pytest.raises(models.UnknownModelError, match="depth"):
      models.build(family, 10, depth=depth)
  with pytest.raises(models.UnknownModelError, match="depth"):
    models.build("vgg", 10)


def test_parameter_counts_do_not_depend_on_input_size():
  # Only the stem sees the input channels; the head is Linear(C, classes) at any size.
  for name in DEEP:
    assert count(name, 10, (64, 64, 3)) == count(name, 10, (24, 24, 3)), name


def test_listing_prints_every_preset_with_its_counts(capsys):
  main([])
  lines = capsys.readouterr().out.splitlines()
  assert len(lines) == 1 + len(models.preset_names())
  rows = {line.split()[0]: line.split()[1:4] for line in lines[1:]}
  assert list(rows) == models.preset_names()
  for name, (p10, _, tensors, bn_stats, *_) in DEEP.items():
    assert rows[name] == [f"{p10:,}", str(tensors), f"{bn_stats:,}"]
  for name, (p10, _, tensors) in SMALL.items():
    assert rows[name] == [f"{p10:,}", str(tensors), "0"]


@pytest.mark.parametrize("name", list(DEEP))
@pytest.mark.parametrize("shape", [CIFAR, MNIST], ids=["32x32x3", "28x28x1"])
def test_forward_and_gradient_shapes(name, shape):
  """Eval- and train-mode logits are (N, classes); gradients trace for every parameter (on
  CIFAR input; the train-mode forward alone on MNIST input)."""
  model, variables = abstract_variables(name, 100, shape)
  x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
  logits = jax.eval_shape(lambda v, x: model.apply(v, x, train=False), variables, x)
  assert logits.shape == (2, 100) and logits.dtype == jnp.float32

  def loss(params, batch_stats, x):
    logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, x,
                                  train=True, mutable=["batch_stats"])
    return logits.sum(), (logits, updates["batch_stats"])

  shapes = lambda t: jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), t)
  if shape == CIFAR:
    grads, (logits, stats) = jax.eval_shape(jax.grad(loss, has_aux=True), variables["params"],
                                            variables["batch_stats"], x)
    assert shapes(grads) == shapes(variables["params"])
  else:
    _, (logits, stats) = jax.eval_shape(loss, variables["params"], variables["batch_stats"], x)
  assert logits.shape == (2, 100)
  assert shapes(stats) == shapes(variables["batch_stats"])


@pytest.mark.parametrize("name", ["vgg11", "resnet18", "densenet121", "dpn26", "googlenet"])
def test_compute_dtype_is_passed_to_every_layer(name):
  model = models.build(name, 10, dtype=jnp.bfloat16)
  x = jax.ShapeDtypeStruct((2, *CIFAR), jnp.float32)
  logits, variables = jax.eval_shape(
      lambda x: model.init_with_output(jax.random.key(0), x, train=False), x)
  assert logits.dtype == jnp.bfloat16
  assert {a.dtype for a in jax.tree_util.tree_leaves(variables)} == {jnp.dtype(jnp.float32)}


def _walk_eqns(jaxpr):
  for eqn in jaxpr.eqns:
    yield eqn
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        inner = getattr(sub, "jaxpr", sub)
        if hasattr(inner, "eqns"):
          yield from _walk_eqns(inner)


@pytest.mark.parametrize("name", list(DEEP))
def test_padding_is_explicit_and_symmetric(name):
  """Every k x k convolution pads (k//2, k//2) per side, as PyTorch does; never 'SAME' (which
  pads a stride-2 3x3 convolution (0, 1)). Every pooling window is padded symmetrically."""
  # The model as declared: lax convolutions everywhere (the CPU forms run tiny ones as matmuls).
  model, variables = abstract_variables(name, forms="accelerator")
  x = jax.ShapeDtypeStruct((2, *CIFAR), jnp.float32)
  jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=False))(variables, x)
  convs = pools = 0
  for eqn in _walk_eqns(jaxpr.jaxpr):
    if eqn.primitive.name == "conv_general_dilated":
      rhs_spec = eqn.params["dimension_numbers"].rhs_spec
      kernel = [eqn.invars[1].aval.shape[d] for d in rhs_spec[2:]]
      assert tuple(eqn.params["padding"]) == tuple((k // 2, k // 2) for k in kernel)
      convs += 1
    elif eqn.primitive.name.startswith("reduce_window"):
      assert all(lo == hi for lo, hi in eqn.params["padding"])
      pools += 1
    elif eqn.primitive.name == "reduce_max":  # unpadded 2x2 max-pools, as reshape + max
      pools += 1
  assert convs == DEEP[name][4]
  assert pools > 0   # every net pools (VGG's 2x2 max-pools, the others' head average pool)


@pytest.mark.parametrize("module, fan_in, shape", [
    (layers.Conv(64, 3, padding=1), 16 * 9, (1, 8, 8, 16)),
    (layers.Conv(96, 3, strides=2, padding=1, groups=32), 3 * 9, (1, 8, 8, 96)),
    (layers.Conv(32, 1), 256, (1, 4, 4, 256)),
    (layers.Dense(10), 512, (1, 512)),
])
def test_pytorch_default_init_bounds(module, fan_in, shape):
  variables = module.init(jax.random.key(0), jnp.zeros(shape))
  (inner,) = variables["params"].values()
  bound = 1 / math.sqrt(fan_in)
  kernel, bias = np.asarray(inner["kernel"]), np.abs(inner["bias"])
  assert np.abs(kernel).max() <= bound and np.abs(kernel).max() > 0.95 * bound  # reaches b
  assert abs(kernel.std() - bound / math.sqrt(3)) < 0.1 * bound                 # var b^2 / 3
  assert bias.max() <= bound and bias.max() > 0.5 * bound


def test_init_bounds_in_a_deep_net():
  """VGG11 (conv with bias) and ResNet18 (conv without): every kernel and bias within
  1/sqrt(fan_in); BN starts at scale 1, shift 0, mean 0, var 1."""
  for name in ("vgg11", "resnet18"):
    _, variables = initialised(name)
    n_conv = 0
    for path, leaf in jax.tree_util.tree_leaves_with_path(variables["params"]):
      keys = [p.key for p in path]
      if keys[-1] == "kernel":
        fan_in = math.prod(leaf.shape[:-1])
        assert np.abs(leaf).max() <= 1 / math.sqrt(fan_in), keys
        n_conv += leaf.ndim == 4
        parent = functools.reduce(lambda t, k: t[k], keys[:-1], variables["params"])
        if "bias" in parent:
          assert np.abs(parent["bias"]).max() <= 1 / math.sqrt(fan_in), keys
    assert n_conv == DEEP[name][4]
    scales = [v for p, v in jax.tree_util.tree_leaves_with_path(variables["params"])
              if p[-1].key == "scale"]
    assert len(scales) == DEEP[name][6] and all(np.all(s == 1) for s in scales)
    stats = variables["batch_stats"]
    for p, v in jax.tree_util.tree_leaves_with_path(stats):
      np.testing.assert_array_equal(v, 0 if p[-1].key == "mean" else 1)


def test_batch_norm_running_stats_follow_pytorch_semantics():
  model, variables = initialised("vgg11")
  x = jax.random.normal(jax.random.key(1), (4, *CIFAR))
  train = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats"]))
  evaluate = jax.jit(lambda v, x: model.apply(v, x, train=False))

  logits, updates = train(variables, x)
  old, new = variables["batch_stats"], updates["batch_stats"]
  changed = jax.tree_util.tree_map(lambda a, b: bool(np.any(a != b)), old, new)
  assert all(jax.tree_util.tree_leaves(changed))
  # PyTorch momentum 0.1: new = 0.9 * old + 0.1 * batch statistic, the variance's the unbiased
  # one, checked on the first BN layer, whose input is the first conv's output.
  conv_out = layers.Conv(64, 3, padding=1).apply({"params": variables["params"]["Conv_0"]}, x)
  bn0 = new["BatchNorm_0"]
  np.testing.assert_allclose(bn0["mean"], 0.1 * conv_out.mean((0, 1, 2)), atol=1e-6)
  np.testing.assert_allclose(bn0["var"], 0.9 + 0.1 * jnp.var(conv_out, (0, 1, 2), ddof=1),
                             rtol=1e-5)

  # Train mode normalises with the batch's statistics: running stats do not matter.
  perturbed = {"params": variables["params"],
               "batch_stats": jax.tree_util.tree_map(lambda a: a * 3.0 + 0.5, new)}
  np.testing.assert_allclose(train(perturbed, x)[0], logits, rtol=1e-5, atol=1e-5)
  # Eval mode uses the running stats.
  updated = {"params": variables["params"], "batch_stats": new}
  assert not np.allclose(evaluate(updated, x), evaluate(perturbed, x), atol=1e-3)
  assert not np.allclose(evaluate(updated, x), evaluate(variables, x), atol=1e-3)


@functools.lru_cache(maxsize=None)
def _tiny_batch(shape):
  x = jax.random.normal(jax.random.key(1), (8, *shape))
  return x, jnp.arange(8) % 10


_SGD_CASES = [pytest.param(n, marks=() if n in SGD_DEFAULT or SLOW else pytest.mark.skip(
    reason="compiles slowly on the CPU; set LEARNJAX_SLOW_TESTS=1")) for n in DEEP]


@pytest.mark.parametrize("name", ["shallow_cnn_16", "mlp_3", "mnist_mlp_2"] + _SGD_CASES)
def test_sgd_steps_reduce_the_loss(name):
  model, variables = initialised(name)
  x, y = _tiny_batch(input_shape(name))
  tx = optax.sgd(0.01)
  params, batch_stats = variables["params"], variables.get("batch_stats", {})

  @jax.jit
  def step(params, batch_stats, opt_state):
    def loss_fn(params):
      logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, x,
                                    train=True, mutable=["batch_stats"])
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
      return loss, updates.get("batch_stats", {})

    (loss, batch_stats), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), batch_stats, opt_state, loss

  opt_state = tx.init(params)
  losses = []
  for _ in range(5):
    params, batch_stats, opt_state, loss = step(params, batch_stats, opt_state)
    losses.append(float(loss))
  assert all(np.isfinite(losses)), losses
  assert losses[-1] < losses[0], losses


@pytest.mark.parametrize("shape", [(2, 8, 8, 3), (2, 7, 9, 4)])
def test_reshape_max_pool_equals_flax_max_pool(shape):
  x = jax.random.normal(jax.random.key(1), shape)
  want = nn.max_pool(x, (2, 2), (2, 2), padding="VALID")
  np.testing.assert_array_equal(layers.max_pool(x, 2, 2), want)
  # Gradients too (ties only arise where ReLU makes the gradient zero anyway).
  g = jax.grad(lambda x: (layers.max_pool(jax.nn.relu(x), 2, 2) ** 2).sum())(x)
  g_ref = jax.grad(lambda x: (nn.max_pool(jax.nn.relu(x), (2, 2), (2, 2)) ** 2).sum())(x)
  np.testing.assert_allclose(g, g_ref, rtol=1e-6)


def test_max_pool_gradient_goes_to_the_first_maximum_as_in_pytorch():
  # Ties inside a window: PyTorch's MaxPool2d sends the gradient to the first maximum in
  # row-major order; JAX's own reduction gradient would split it.
  x = jnp.array([[1.0, 3.0, 2.0, 2.0],
                 [3.0, 0.0, 2.0, 2.0],
                 [0.0, 0.0, -1.0, 5.0],
                 [0.0, 0.0, 5.0, -1.0]]).reshape(1, 4, 4, 1)
  g = jax.grad(lambda x: (layers.max_pool(x, 2, 2) * jnp.arange(1.0, 5.0).reshape(1, 2, 2, 1))
               .sum())(x)
  want = np.array([[0, 1, 2, 0],
                   [0, 0, 0, 0],
                   [3, 0, 0, 4],
                   [0, 0, 0, 0]], np.float32).reshape(1, 4, 4, 1)
  np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("size,groups,strides", [(9, 1, 1), (9, 1, 2), (9, 4, 1), (2, 1, 1),
                                                 (3, 1, 2), (1, 1, 1)])
def test_cpu_conv_gradients_equal_the_automatic_ones(size, groups, strides):
  # Large maps: chunked kernel gradient; outputs of at most 2x2: the patches-matmul form.
  x = jax.random.normal(jax.random.PRNGKey(0), (8, size, size, 8))
  w = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 8 // groups, 12))
  args = dict(window_strides=(strides, strides), padding=((1, 1), (1, 1)),
              dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=groups)
  loss = lambda conv: lambda x, w: (jnp.sin(conv(x, w, **args))).sum()
  np.testing.assert_allclose(layers._cpu_conv(x, w, **args),
                             jax.lax.conv_general_dilated(x, w, **args), rtol=1e-5, atol=1e-5)
  got = jax.grad(loss(layers._cpu_conv), argnums=(0, 1))(x, w)
  want = jax.grad(loss(jax.lax.conv_general_dilated), argnums=(0, 1))(x, w)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


class _ThreeLayers(nn.Module):
  """Conv -> ReLU -> 2x2 max-pool as separate layers (plain forms): what ConvReluMaxPool must
  equal."""
  features: int

  @nn.compact
  def __call__(self, x):
    x = layers.Conv(self.features, 5, padding=2, name="Conv_0")(x)
    return layers.max_pool(nn.relu(x), 2, 2)


class _Fused(nn.Module):
  features: int
  forms: str = "cpu"

  @nn.compact
  def __call__(self, x):
    return layers.ConvReluMaxPool(self.features, 5, padding=2, pool=2, forms=self.forms,
                                  name="Conv_0")(x)


@pytest.mark.parametrize("shape,features,blocked", [
    ((4, 32, 32, 3), 16, True), ((4, 28, 28, 1), 16, True), ((3, 8, 8, 1), 16, True),
    ((2, 11, 9, 3), 32, True), ((4, 16, 16, 3), 64, False), ((2, 8, 8, 1), 32, False)])
def test_conv_relu_max_pool_equals_the_three_layers(shape, features, blocked):
  # In the CPU forms narrow ones run on 2x2 pixel blocks; the reference runs in the plain forms.
  assert layers._block_conv_pays(shape, features, "cpu") == blocked
  assert not layers._block_conv_pays(shape, features, "accelerator")
  x = jax.random.normal(jax.random.PRNGKey(0), shape)
  fused, three = _Fused(features), _ThreeLayers(features)
  variables = fused.init(jax.random.PRNGKey(1), x)
  reference = three.init(jax.random.PRNGKey(1), x)
  assert jax.tree.structure(variables) == jax.tree.structure(reference)
  jax.tree.map(np.testing.assert_array_equal, variables, reference)   # same init, bitwise

  loss = lambda module: lambda v, x: jnp.sin(module.apply(v, x)).sum()
  got = fused.apply(variables, x), jax.grad(loss(fused), argnums=(0, 1))(variables, x)
  want = three.apply(variables, x), jax.grad(loss(three), argnums=(0, 1))(variables, x)
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-4, atol=1e-5), got, want)


def test_blocked_conv_pool_routes_ties_as_the_three_layers():
  # Small integers make every sum exact, so windows tie exactly in both forms and the gradients
  # compare bitwise: each goes to the first maximum of its window (PyTorch's rule).
  x = jax.random.randint(jax.random.PRNGKey(0), (4, 12, 12, 3), 0, 2).astype(jnp.float32)
  kernel = jax.random.randint(jax.random.PRNGKey(1), (5, 5, 3, 16), -1, 2).astype(jnp.float32)
  variables = {"params": {"Conv_0": {"conv": {"kernel": kernel, "bias": jnp.zeros(16)}}}}
  weights = jax.random.randint(jax.random.PRNGKey(2), (4, 6, 6, 16), -3, 4).astype(jnp.float32)
  loss = lambda module: lambda v: (module.apply(v, x) * weights).sum()
  got = jax.grad(loss(_Fused(16)))(variables)
  want = jax.grad(loss(_ThreeLayers(16)))(variables)
  conv_out = jax.lax.conv_general_dilated(x, kernel, (1, 1), ((2, 2), (2, 2)),
                                          dimension_numbers=("NHWC", "HWIO", "NHWC"))
  windows = conv_out.reshape(4, 6, 2, 6, 2, 16)
  ties = (windows == windows.max(axis=(2, 4), keepdims=True)).sum(axis=(2, 4)) > 1
  assert int((ties & (windows.max(axis=(2, 4)) > 0)).sum()) > 50   # positive ties do occur
  jax.tree.map(np.testing.assert_array_equal, got, want)


def test_the_forms_a_model_is_built_with_fix_its_program():
  x = jax.ShapeDtypeStruct((4, 32, 32, 3), jnp.float32)

  def kernels(model):
    variables = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)
    return [eqn.invars[1].aval.shape[:2] for eqn in _walk_eqns(
        jax.make_jaxpr(model.apply)(variables, x).jaxpr)
        if eqn.primitive.name == "conv_general_dilated"]

  assert kernels(models.build("shallow_cnn_16", 10, forms="accelerator")) == [(5, 5)]
  assert kernels(models.build("shallow_cnn_16", 10, forms="cpu")) == [(3, 3)]   # 2x2 blocks
  default = models.build("shallow_cnn_16", 10)
  assert default.forms == ("cpu" if jax.default_backend() == "cpu" else "accelerator")
  # Every layer of a deep net follows its model's forms: VGG's 2x2-map convolutions are
  # matmuls in the CPU forms only.
  vgg_convs = lambda forms: len(kernels(models.build("vgg11", 10, forms=forms)))
  assert vgg_convs("accelerator") == DEEP["vgg11"][4] > vgg_convs("cpu")
  with pytest.raises(models.UnknownModelError, match="forms"):
    models.build("mlp_1", 10, forms="gpu")


@pytest.mark.parametrize("name,convolution", [("mlp_1", False), ("shallow_cnn_16", True),
                                              ("dpn26", True)])
def test_uses_convolution_reads_the_jaxpr_equations(name, convolution):
  # In the CPU forms convolutions sit inside custom_vjp / custom_vmap sub-jaxprs.
  for forms in ("cpu", "accelerator"):
    model, variables = abstract_variables(name, forms=forms)
    x = jax.ShapeDtypeStruct((1, *CIFAR), jnp.float32)
    assert models.uses_convolution(model, variables, x) == convolution


def test_cpu_conv_under_vmap_runs_seed_by_seed():
  # Seeds vmapped with their own batches: each seed's values and gradients are bitwise those of
  # the seed alone (no grouped convolution); with one shared batch, the same up to rounding.
  args = dict(window_strides=(1, 1), padding=((1, 1), (1, 1)),
              dimension_numbers=("NHWC", "HWIO", "NHWC"))
  xs = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 9, 9, 4))
  ws = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 3, 4, 6))

  def value_and_grads(x, w):
    out, vjp = jax.vjp(lambda x, w: layers._cpu_conv(x, w, **args), x, w)
    return out, vjp(jnp.cos(out))

  batched = jax.jit(jax.vmap(value_and_grads))(xs, ws)
  shared = jax.jit(jax.vmap(value_and_grads, in_axes=(None, 0)))(xs[0], ws)
  for i in range(3):
    alone = jax.jit(value_and_grads)(xs[i], ws[i])
    jax.tree.map(lambda b, a: np.testing.assert_array_equal(b[i], a), batched, alone)
    alone_shared = jax.jit(value_and_grads)(xs[0], ws[i])
    np.testing.assert_allclose(shared[0][i], alone_shared[0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(shared[1][1][i], alone_shared[1][1], rtol=1e-4, atol=1e-4)
