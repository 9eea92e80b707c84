"""How far an N1's parameters can move before its training error rises: the flatness searches.

Each search finds, per seed, the largest scale (sigma or alpha) at which a perturbation of the
trained parameters raises the training error on the measure's examples by at most ``bound``
(Jiang et al. 2020, appendix C: "the largest sigma such that the expected training error
increase stays under 0.1", found by search). The search is a bisection on the scale's logarithm
between ``LOW`` and ``HIGH`` (``steps`` halvings): the error at a scale is a fixed function of it,
since the same noise draws (or the same ascent start) serve every scale tried.

* PAC-Bayes flatness: u ~ N(0, sigma^2) on every parameter; the expectation over
  ``samples`` draws.
* Magnitude-aware PAC-Bayes flatness: u_i ~ N(0, sigma^2 w_i^2 + eps^2), eps = 1e-3.
* Sharpness (Keskar et al. 2017, as Jiang et al. 2020 summarise it): the worst perturbation in the
  box |u_i| <= alpha (|w_i| + 1), approximated by ``ascent_steps`` steps of projected sign
  gradient ascent on the cross-entropy from a random point of the box.

The noise draws and the ascent's start are drawn once per network on the host (numpy, from the
measure's seed): the same on every backend, and no random-number generator to compile. They take
``samples`` + 1 copies of the parameters per seed. JAX; one compiled program per evaluation model
(dropout set aside) for the three searches, every seed vmapped, the bisection on the host around
it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

LOW, HIGH = 1e-5, 1e2
MAGNITUDE_EPS = 1e-3


def _error(model, params, x, y):
  logits = model.apply({"params": params}, x, train=False)
  return jnp.mean(jnp.argmax(logits, -1) != y)


def _noise_increase(model, params, x, y, normals, sigma, *, magnitude):
  """E_u[err(w + u)] - err(w) at scale ``sigma``, u = scale * z over the standard normal draws
  ``normals`` (a tree like ``params``, each leaf with a leading draw axis): the same draws at
  every sigma."""
  base = _error(model, params, x, y)
  leaves, tree = jax.tree.flatten(params)

  def moved_error(z):
    moved = []
    for w, zz in zip(leaves, jax.tree.leaves(z)):
      scale = jnp.sqrt(sigma ** 2 * w ** 2 + MAGNITUDE_EPS ** 2) if magnitude else sigma
      moved.append(w + scale * zz)
    return _error(model, jax.tree.unflatten(tree, moved), x, y)

  return jnp.mean(jax.lax.map(moved_error, normals)) - base


def _sharpness_increase(model, params, x, y, start, alpha, *, ascent_steps):
  """err(w + u) - err(w), u the box's worst point found by projected sign-gradient ascent on the
  cross-entropy from the box's point ``start`` (a tree like ``params``, uniform in [-1, 1], times
  the radius; the same start at every alpha)."""
  base = _error(model, params, x, y)
  leaves, tree = jax.tree.flatten(params)
  radius = [alpha * (jnp.abs(w) + 1.0) for w in leaves]
  u = [r * v for r, v in zip(radius, jax.tree.leaves(start))]

  def loss(u):
    logits = model.apply({"params": jax.tree.unflatten(tree, [w + d for w, d in zip(leaves, u)])},
                         x, train=False)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

  def ascend(_, u):
    grads = jax.grad(loss)(u)
    return [jnp.clip(d + 0.25 * r * jnp.sign(g), -r, r) for d, r, g in zip(u, radius, grads)]

  u = jax.lax.fori_loop(0, ascent_steps, ascend, u)
  return _error(model, jax.tree.unflatten(tree, [w + d for w, d in zip(leaves, u)]), x, y) - base


KINDS = ("noise", "magnitude", "sharpness")
_CACHE: dict = {}


def eval_model(model):
  """The module that applies like ``model`` with ``train=False``: its dropout rate set to 0 (a
  dropout layer is the identity in evaluation), so that networks that differ only in dropout
  share one compiled program."""
  import dataclasses
  rate = getattr(model, "dropout", None)
  if (isinstance(rate, (int, float)) and rate
      and "dropout" in {f.name for f in dataclasses.fields(model)}):
    return model.clone(dropout=0.0)
  return model


def _cached(key, build):
  """One compiled program per (evaluation model, settings); a Flax module is keyed by its repr."""
  if key not in _CACHE:
    _CACHE[key] = build()
  return _CACHE[key]


def draws(stacked_params, samples: int, seed: int):
  """(normals, start): per seed, ``samples`` standard normal draws of every parameter (leaves
  (S, samples, ...)) and one uniform point of [-1, 1] per parameter (leaves (S, ...)), in the
  order of ``jax.tree.leaves``. Drawn on the host (numpy's PCG64 from ``seed``): the same on
  every backend, and no random-number generator in the compiled search."""
  import numpy as np
  leaves = [np.asarray(w) for w in jax.tree.leaves(stacked_params)]
  rng = np.random.default_rng(seed)
  normals = [rng.standard_normal((w.shape[0], samples) + w.shape[1:], np.float32) for w in leaves]
  start = [rng.uniform(-1.0, 1.0, w.shape).astype(np.float32) for w in leaves]
  return normals, start


def _increases_fn(model, ascent_steps: int):
  """(stacked params, x, y, normals, start, scales (S, 3)) -> (S, 3) the error increases of every
  kind of :data:`KINDS`, each at its own scale: one compiled program (and one call per bisection
  step) for the three searches, every seed vmapped."""
  model = eval_model(model)

  def build():
    def all_kinds(params, x, y, normals, start, scales):
      return jnp.stack([
          _noise_increase(model, params, x, y, normals, scales[0], magnitude=False),
          _noise_increase(model, params, x, y, normals, scales[1], magnitude=True),
          _sharpness_increase(model, params, x, y, start, scales[2], ascent_steps=ascent_steps)])
    return jax.jit(jax.vmap(all_kinds, in_axes=(0, None, None, 0, 0, 0)))
  return _cached((repr(model), "searches", ascent_steps), build)


def largest_scales(model, stacked_params, x, y, seed: int, *, bound: float, samples: int,
                   steps: int, ascent_steps: int) -> dict:
  """{kind: (S,)} the largest sigma ('noise', 'magnitude') and alpha ('sharpness') per seed whose
  error increase stays within ``bound``: a bisection on the log scale between LOW and HIGH, every
  kind and seed at once (each its own interval), HIGH where the bound holds there."""
  import numpy as np
  seeds = jax.tree.leaves(stacked_params)[0].shape[0]
  normals, start = draws(stacked_params, int(samples), int(seed))
  leaves, tree = jax.tree.flatten(stacked_params)
  normals, start = jax.device_put((jax.tree.unflatten(tree, normals),
                                   jax.tree.unflatten(tree, start)))   # once, not every call
  fn = _increases_fn(model, int(ascent_steps))
  x, y = jnp.asarray(x), jnp.asarray(y)
  shape = (seeds, len(KINDS))

  def fails(scale):   # compared in the program's float32: an increase of exactly the bound holds
    increase = np.asarray(fn(stacked_params, x, y, normals, start, jnp.asarray(scale, jnp.float32)))
    return increase > increase.dtype.type(bound)

  lo, hi = np.full(shape, np.log(LOW)), np.full(shape, np.log(HIGH))
  top_ok = ~fails(np.full(shape, HIGH))
  for _ in range(int(steps)):
    mid = (lo + hi) / 2
    bad = fails(np.exp(mid))
    lo, hi = np.where(bad, lo, mid), np.where(bad, mid, hi)
  found = np.where(top_ok, HIGH, np.exp(lo))
  return {kind: found[:, i] for i, kind in enumerate(KINDS)}


def _logits_fn(model):
  """(stacked params, x) -> (S, N, K) logits, compiled once per model."""
  model = eval_model(model)
  return _cached((repr(model), "logits"), lambda: jax.jit(jax.vmap(
      lambda p, x: model.apply({"params": p}, x, train=False), in_axes=(0, None))))


def logits(model, stacked_params, x, chunk: int = 2000):
  """(S, N, K) logits of every seed on ``x``, in chunks."""
  import numpy as np
  fn = _logits_fn(model)
  parts = [np.asarray(fn(stacked_params, jnp.asarray(x[i:i + chunk])))
           for i in range(0, len(x), chunk)]
  return np.concatenate(parts, axis=1)


def squared_forward(model, stacked_params, input_shape):
  """(S,) f_{w^2}(1): the sum of the outputs of the network with every parameter squared, on one
  input of ones (the path norm of Neyshabur et al. 2015, as Jiang et al. 2020 compute it)."""
  import numpy as np
  squared = jax.tree.map(lambda w: jnp.asarray(w) ** 2, stacked_params)
  ones = jnp.ones((1,) + tuple(input_shape), jnp.float32)
  out = _logits_fn(model)(squared, ones)
  return np.asarray(out, np.float64).sum(axis=(1, 2))
