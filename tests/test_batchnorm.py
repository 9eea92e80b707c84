"""learnjax's BatchNorm against PyTorch's semantics.

Two independent references: a NumPy BatchNorm written out here (float64; training normalises
with the biased batch variance and folds the unbiased one, ddof=1, into the running variance
with weight 0.1; evaluation uses the running statistics), and, where torch is installed,
``torch.nn.BatchNorm2d`` / ``BatchNorm1d`` themselves. Each case runs two training steps on
different batches (so the running statistics start away from their initial 0 and 1), then
evaluation, with a learnt scale and bias away from their initial ones.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnjax.errors import LearnjaxError
from learnjax.models import layers

EPS, MOMENTUM = 1e-5, 0.1


def numpy_batchnorm(x, scale, bias, mean, var, train):
  """(output, new running mean, new running var), PyTorch's rule in float64."""
  x = np.asarray(x, np.float64)
  axes = tuple(range(x.ndim - 1))
  if train:
    batch_mean, batch_var = x.mean(axes), x.var(axes)              # biased: normalisation
    unbiased = x.var(axes, ddof=1)                                  # unbiased: running var
    mean, var = ((1 - MOMENTUM) * mean + MOMENTUM * batch_mean,
                 (1 - MOMENTUM) * var + MOMENTUM * unbiased)
    used_mean, used_var = batch_mean, batch_var
  else:
    used_mean, used_var = mean, var
  y = (x - used_mean) / np.sqrt(used_var + EPS) * scale + bias
  return y, mean, var


def _batches(shape, n=3, seed=0):
  """``n`` batches with per-channel means and spreads away from 0 and 1."""
  rng = np.random.default_rng(seed)
  c = shape[-1]
  return [(rng.normal(size=shape) * rng.uniform(0.5, 3.0, c) + rng.uniform(-2, 2, c))
          .astype(np.float32) for _ in range(n)]


def _learnt(variables, seed=1):
  """The variables with a scale and bias away from their initial ones and zeros."""
  rng = np.random.default_rng(seed)
  params = {k: jnp.asarray(rng.uniform(0.5, 1.5, v.shape) if k == "scale"
                           else rng.uniform(-1, 1, v.shape), jnp.float32)
            for k, v in variables["params"].items()}
  return {"params": params, "batch_stats": variables["batch_stats"]}


def _run_learnjax(batches, dtype=None):
  """Two training steps on batches[0], batches[1], then evaluation on batches[2]."""
  train, evaluate = layers.batch_norm(True, dtype=dtype), layers.batch_norm(False, dtype=dtype)
  variables = _learnt(train.init(jax.random.key(0), jnp.asarray(batches[0], dtype)))
  outs, stats = [], []
  for x in batches[:2]:
    y, updates = train.apply(variables, jnp.asarray(x, dtype), mutable=["batch_stats"])
    variables = {"params": variables["params"], "batch_stats": updates["batch_stats"]}
    outs.append(y)
    stats.append(jax.tree.map(np.asarray, updates["batch_stats"]))
  outs.append(evaluate.apply(variables, jnp.asarray(batches[2], dtype)))
  return variables["params"], outs, stats


def _run_numpy(params, batches):
  scale, bias = np.asarray(params["scale"], np.float64), np.asarray(params["bias"], np.float64)
  mean, var = np.zeros(scale.shape), np.ones(scale.shape)
  outs, stats = [], []
  for x in batches[:2]:
    y, mean, var = numpy_batchnorm(x, scale, bias, mean, var, train=True)
    outs.append(y)
    stats.append({"mean": mean, "var": var})
  outs.append(numpy_batchnorm(batches[2], scale, bias, mean, var, train=False)[0])
  return outs, stats


@pytest.mark.parametrize("shape", [(4, 5, 5, 3), (16, 6)], ids=["2d-maps", "dense"])
def test_batchnorm_follows_the_numpy_reference(shape):
  batches = _batches(shape)
  params, outs, stats = _run_learnjax(batches)
  want_outs, want_stats = _run_numpy(params, batches)
  for got, want in zip(outs, want_outs):
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
  for got, want in zip(stats, want_stats):
    np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["var"], want["var"], rtol=1e-5, atol=1e-6)
  # The running variance is the unbiased one: m / (m - 1) away from folding in the biased one.
  m = int(np.prod(shape[:-1]))
  var = batches[0].astype(np.float64).var(tuple(range(len(shape) - 1)))
  unbiased, biased = [(1 - MOMENTUM) + MOMENTUM * v for v in (var * m / (m - 1), var)]
  np.testing.assert_allclose(stats[0]["var"], unbiased, rtol=1e-5)
  assert not np.allclose(stats[0]["var"], biased, rtol=1e-4, atol=0)


def test_batchnorm_bfloat16_computes_statistics_in_float32():
  batches = [x.astype(jnp.bfloat16).astype(np.float32) for x in _batches((4, 5, 5, 3))]
  params, outs, stats = _run_learnjax(batches, dtype=jnp.bfloat16)
  want_outs, want_stats = _run_numpy(params, batches)
  for got, want in zip(outs, want_outs):
    assert got.dtype == jnp.bfloat16
    np.testing.assert_allclose(np.asarray(got, np.float32), want, rtol=2e-2, atol=2e-2)
  for got, want in zip(stats, want_stats):
    # The input is exact in bfloat16 and the statistics are float32: float32 tolerances.
    assert got["mean"].dtype == got["var"].dtype == np.float32
    np.testing.assert_allclose(got["mean"], want["mean"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["var"], want["var"], rtol=1e-5, atol=1e-6)
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(params))


def test_batchnorm_init_leaves_the_running_statistics_alone():
  x = jnp.asarray(_batches((4, 3, 3, 2))[0])
  variables = layers.batch_norm(True).init(jax.random.key(0), x)
  np.testing.assert_array_equal(variables["batch_stats"]["mean"], np.zeros(2))
  np.testing.assert_array_equal(variables["batch_stats"]["var"], np.ones(2))
  np.testing.assert_array_equal(variables["params"]["scale"], np.ones(2))
  np.testing.assert_array_equal(variables["params"]["bias"], np.zeros(2))


def test_batchnorm_training_on_one_value_per_channel_is_refused():
  # PyTorch refuses it too: the unbiased variance of one value is undefined.
  layer = layers.batch_norm(True)
  variables = layer.init(jax.random.key(0), jnp.ones((1, 3)))
  with pytest.raises(LearnjaxError, match="more than one value per channel"):
    layer.apply(variables, jnp.ones((1, 3)), mutable=["batch_stats"])
  y, _ = layer.apply(variables, jnp.ones((1, 2, 2, 3)), mutable=["batch_stats"])   # m = 4: fine
  assert y.shape == (1, 2, 2, 3)


@pytest.mark.parametrize("shape", [(4, 5, 5, 3), (16, 6)], ids=["BatchNorm2d", "BatchNorm1d"])
def test_batchnorm_matches_torch(shape):
  torch = pytest.importorskip("torch")
  batches = _batches(shape, seed=2)
  params, outs, stats = _run_learnjax(batches)
  c = shape[-1]
  bn = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(c).double()
  assert (bn.eps, bn.momentum) == (EPS, MOMENTUM)
  with torch.no_grad():
    bn.weight.copy_(torch.from_numpy(np.asarray(params["scale"], np.float64)))
    bn.bias.copy_(torch.from_numpy(np.asarray(params["bias"], np.float64)))
  to_torch = lambda x: torch.from_numpy(  # NHWC -> NCHW
      np.moveaxis(x.astype(np.float64), -1, 1) if x.ndim == 4 else x.astype(np.float64))
  from_torch = lambda t: np.moveaxis(t.numpy(), 1, -1) if t.ndim == 4 else t.numpy()
  bn.train()
  with torch.no_grad():
    for x, got, got_stats in zip(batches[:2], outs, stats):
      np.testing.assert_allclose(got, from_torch(bn(to_torch(x))), rtol=1e-5, atol=1e-5)
      np.testing.assert_allclose(got_stats["mean"], bn.running_mean.numpy(), rtol=1e-5, atol=1e-6)
      np.testing.assert_allclose(got_stats["var"], bn.running_var.numpy(), rtol=1e-5, atol=1e-6)
    bn.eval()
    np.testing.assert_allclose(outs[2], from_torch(bn(to_torch(batches[2]))), rtol=1e-5, atol=1e-5)
