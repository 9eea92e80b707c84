"""Training K seeds of one model to the protocol's stop rule.

One seed's training is plain SGD on softmax cross-entropy with a learning rate scaled by optax's
``reduce_on_plateau``, driven once per epoch by that epoch's training error, and a stop when the
training error falls below ``stop_error`` or after ``max_epochs`` epochs (protocol.md section 3).

Seeds are batched with ``jax.vmap``: the train state has a leading seed axis, every seed has its own
init, its own data order and its own stop. A seed that has stopped (or diverged) is frozen: its
epoch is computed with the others but its state is not updated, so its parameters never change.

The *training error* of an epoch is the fraction of the epoch's training examples that were
misclassified by the parameters at the time each one was seen (the running error a PyTorch loop
reports, free to compute). ``error_measure='full'`` instead evaluates the whole training set after
the epoch, in evaluation mode (one more forward pass per epoch).

An epoch runs either as one compiled call (``loop='scan'``: ``lax.scan`` over the steps, the
fastest path on accelerators) or as one compiled call per step (``loop='step'``, faster for
convolutions on the CPU); ``loop='auto'`` picks per backend and model. Both use the same step
function. The last partial batch of an epoch is trained on, as a PyTorch DataLoader does.

:func:`train_seeds` decides how a model's seeds share the machine: all vmapped in one
computation, or one at a time per device (``seed_layout``), several of those at once in threads
(``concurrent_seeds``), spread over local devices with ``jax.sharding``. ``shared_order`` (off by
default: the protocol gives each seed its own order) gathers each batch once for all seeds.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import math
import threading
import time
from typing import Any, Callable, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optax.contrib

from learnjax.errors import LearnjaxError

# reduce_on_plateau needs a tolerance; errors are multiples of 1/N with N <= 10^7, so any atol below
# that counts exactly the strict decreases, which is what protocol.md asks for.
_PLATEAU_ATOL = 1e-8


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """What the engine needs to know; built from the ``train`` and ``n1``/``n2`` config blocks."""
  batch_size: int = 64
  learning_rate: float = 0.01
  momentum: float = 0.0
  plateau_factor: float = 0.75
  plateau_patience: int = 10
  stop_error: float = 0.01
  max_epochs: int = 500
  error_measure: str = "running"    # 'running' | 'full'
  loop: str = "auto"                # 'auto' | 'scan' | 'step'
  shared_order: bool = False        # all seeds see the batches in one order (faster, less independent)
  eval_batch_size: int = 1000


class TrainState(flax.struct.PyTreeNode):
  """One seed's training state; the engine stacks it along a leading seed axis."""
  params: Any
  batch_stats: Any
  opt_state: Any
  plateau: Any
  order_key: jax.Array
  epoch: jax.Array          # epochs trained so far
  done: jax.Array           # stopped (error below the target) or diverged
  diverged: jax.Array
  train_error: jax.Array    # error of the last trained epoch


class EpochLog(NamedTuple):
  """Per-seed numbers of one epoch, shape (S,) each, on the host."""
  epoch: int
  train_error: np.ndarray
  learning_rate: np.ndarray
  trained: np.ndarray       # which seeds were trained this epoch (not yet stopped)
  done: np.ndarray


@dataclasses.dataclass
class TrainResult:
  """The seeds' final variables (stacked) and their per-epoch history."""
  variables: dict
  epochs: np.ndarray            # (S,) epochs trained
  train_error: np.ndarray       # (S,) final training error
  learning_rate: np.ndarray     # (S,) final learning rate
  diverged: np.ndarray          # (S,) bool
  diverged_epoch: np.ndarray    # (S,) the epoch (1-based) in which a seed diverged, -1 if none
  history: dict                 # name -> (S, epochs_run) arrays: train_error, learning_rate
  seconds: float


def stop_count(stop_error: float, n: int) -> int:
  """The fewest mistakes m out of n with m / n >= stop_error (as Python divides): a seed stops
  when it makes fewer. The rule is applied to the integer count because XLA may compute m / n
  as m * (1 / n), which lands just below stop_error when m / n equals it."""
  m = max(0, math.ceil(stop_error * n))
  while m > 0 and (m - 1) / n >= stop_error:
    m -= 1
  while m / n < stop_error:
    m += 1
  return m


def _sgd(cfg: TrainConfig):
  return optax.sgd(cfg.learning_rate, momentum=cfg.momentum or None)


def _plateau(cfg: TrainConfig):
  return optax.contrib.reduce_on_plateau(factor=cfg.plateau_factor,
                                         patience=cfg.plateau_patience,
                                         rtol=0.0, atol=_PLATEAU_ATOL)


def choose_loop(cfg: TrainConfig, model, variables, x_example) -> str:
  """'scan' on accelerators and for convolution-free models; 'step' for conv nets on the CPU.

  On the CPU, XLA compiles a convolution inside a ``lax.scan`` body to a much slower kernel than
  the same convolution in a call of its own (benchmarks/RESULTS.md has the measurements).
  """
  if cfg.loop not in ("auto", "scan", "step"):
    raise ValueError(f"train.loop must be auto, scan or step, got {cfg.loop!r}")
  if cfg.loop != "auto":
    return cfg.loop
  if jax.default_backend() != "cpu":
    return "scan"
  return "step" if _has_conv(model, variables, x_example) else "scan"


def _split_variables(variables):
  params = variables["params"]
  batch_stats = variables.get("batch_stats", {})
  return params, batch_stats


def _variables(params, batch_stats):
  return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def state_variables(state: TrainState) -> dict:
  """The Flax variables (stacked over seeds) of a train state."""
  return _variables(state.params, state.batch_stats)


class Trainer:
  """Compiled SGD for one model and one TrainConfig; call :meth:`train` per group of seeds."""

  def __init__(self, model: nn.Module, cfg: TrainConfig):
    self.model = model
    self.cfg = cfg
    self.sgd = _sgd(cfg)
    self.plateau = _plateau(cfg)
    self._cache = {}
    self._cache_lock = threading.Lock()

  # ---- one seed (everything below is vmapped over seeds) -----------------------------------

  def _init(self, init_key, order_key, x_example):
    variables = self.model.init(init_key, x_example, train=False)
    params, batch_stats = _split_variables(variables)
    return TrainState(
        params=params, batch_stats=batch_stats, opt_state=self.sgd.init(params),
        plateau=self.plateau.init(jnp.zeros((), jnp.float32)), order_key=order_key,
        epoch=jnp.zeros((), jnp.int32), done=jnp.zeros((), bool),
        diverged=jnp.zeros((), bool), train_error=jnp.ones((), jnp.float32))

  def _loss(self, params, batch_stats, x, y):
    if batch_stats:
      logits, updates = self.model.apply({"params": params, "batch_stats": batch_stats}, x,
                                         train=True, mutable=["batch_stats"])
      batch_stats = updates["batch_stats"]
    else:
      logits = self.model.apply({"params": params}, x, train=True)
    logits = logits.astype(jnp.float32)
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return loss, (logits, batch_stats)

  def _step(self, carry, x, y, idx):
    """One SGD step on the examples ``idx``; carry = (state, mistakes, finite)."""
    return self._train_batch(carry, x[idx], y[idx])

  def _train_batch(self, carry, xb, yb):
    state, mistakes, finite = carry
    (loss, (logits, batch_stats)), grads = jax.value_and_grad(self._loss, has_aux=True)(
        state.params, state.batch_stats, xb, yb)
    updates, opt_state = self.sgd.update(grads, state.opt_state, state.params)
    scale = state.plateau.scale
    updates = jax.tree.map(lambda u: (scale * u).astype(u.dtype), updates)
    params = optax.apply_updates(state.params, updates)
    mistakes = mistakes + jnp.sum(jnp.argmax(logits, -1) != yb)
    finite = finite & jnp.isfinite(loss)
    state = state.replace(params=params, batch_stats=batch_stats, opt_state=opt_state)
    return state, mistakes, finite

  def _order(self, state, n):
    return jax.random.permutation(jax.random.fold_in(state.order_key, state.epoch), n)

  def _epoch_end(self, old: TrainState, new: TrainState, mistakes, finite, x, y):
    """Error, plateau and stop bookkeeping. A seed that was already done keeps ``old`` whole;
    a seed whose loss stopped being finite keeps its last finite parameters and is marked diverged.
    """
    n = y.shape[0]
    if self.cfg.error_measure == "full":
      preds = self._predict_one(_variables(new.params, new.batch_stats), x)
      mistakes = jnp.sum(preds != y)
    error = (mistakes / n).astype(jnp.float32)
    _, plateau = self.plateau.update(jnp.zeros(()), new.plateau, value=error)
    diverged = ~finite | ~jnp.isfinite(error)
    keep_old = lambda o, u: jnp.where(diverged, o, u)
    updated = new.replace(
        params=jax.tree.map(keep_old, old.params, new.params),
        batch_stats=jax.tree.map(keep_old, old.batch_stats, new.batch_stats),
        opt_state=jax.tree.map(keep_old, old.opt_state, new.opt_state),
        plateau=plateau, epoch=old.epoch + 1, train_error=error,
        done=diverged | (mistakes < stop_count(self.cfg.stop_error, n)), diverged=diverged)
    return jax.tree.map(lambda o, u: jnp.where(old.done, o, u), old, updated)

  def _predict_one(self, variables, x):
    bs = self.cfg.eval_batch_size
    n = x.shape[0]
    chunks = -(-n // bs)
    pad = chunks * bs - n
    xp = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
    logits = jax.lax.map(lambda xb: self.model.apply(variables, xb, train=False),
                         xp.reshape((chunks, bs) + x.shape[1:]))
    return jnp.argmax(logits.reshape((chunks * bs, -1))[:n], -1)

  # ---- compiled functions over seeds -------------------------------------------------------

  def _compiled(self, name, build):
    with self._cache_lock:
      if name not in self._cache:
        self._cache[name] = build()
      return self._cache[name]

  def _x_axis(self, per_seed_x):
    return 0 if per_seed_x else None

  def scan_epoch_fn(self, per_seed_x: bool):
    """state, x, y -> state after one epoch, all in one compiled call."""
    cfg = self.cfg
    if cfg.shared_order:
      return self._shared_scan_epoch_fn(per_seed_x)

    def epoch(state, x, y):
      n = y.shape[0]
      steps, rest = divmod(n, cfg.batch_size)
      order = self._order(state, n)
      carry = (state, jnp.zeros((), jnp.int32), jnp.ones((), bool))
      if steps:
        carry, _ = jax.lax.scan(lambda c, idx: (self._step(c, x, y, idx), None), carry,
                                order[:steps * cfg.batch_size].reshape(steps, cfg.batch_size))
      if rest:
        carry = self._step(carry, x, y, order[steps * cfg.batch_size:])
      new, mistakes, finite = carry
      return self._epoch_end(state, new, mistakes, finite, x, y)

    xa = self._x_axis(per_seed_x)
    return self._compiled(("scan", per_seed_x), lambda: jax.jit(
        jax.vmap(epoch, in_axes=(0, xa, 0)), donate_argnums=0))

  def step_fns(self, per_seed_x: bool, n: int):
    """(order, step, tail, end) compiled separately, for the one-call-per-step loop.

    ``step`` trains the full batch that starts at position ``begin`` of each seed's order (the
    slice is taken inside the compiled call, so a step costs one dispatch); ``tail`` trains the
    last partial batch.
    """
    xa = self._x_axis(per_seed_x)
    bs = self.cfg.batch_size

    def full_batch(carry, x, y, order, begin):
      return self._step(carry, x, y, jax.lax.dynamic_slice_in_dim(order, begin, bs))

    def build():
      order = jax.jit(jax.vmap(lambda s: self._order(s, n)))
      step = jax.jit(jax.vmap(full_batch, in_axes=((0, 0, 0), xa, 0, 0, None)),
                     donate_argnums=0)
      tail = jax.jit(jax.vmap(self._step, in_axes=((0, 0, 0), xa, 0, 0)), donate_argnums=0)
      end = jax.jit(jax.vmap(self._epoch_end, in_axes=(0, 0, 0, 0, xa, 0)))
      return order, step, tail, end

    return self._compiled(("step", per_seed_x, n), build)

  def step_epoch(self, state, x, y, per_seed_x: bool):
    n = y.shape[-1]
    order_fn, step_fn, tail_fn, end_fn = (self._shared_step_fns(per_seed_x, n)
                                          if self.cfg.shared_order
                                          else self.step_fns(per_seed_x, n))
    bs = self.cfg.batch_size
    order = order_fn(state)
    num_seeds = y.shape[0]
    # The step donates its carry: keep an untouched copy of the epoch's starting state.
    start = jax.tree.map(jnp.copy, state)
    carry = (state, jnp.zeros((num_seeds,), jnp.int32), jnp.ones((num_seeds,), bool))
    steps, rest = divmod(n, bs)
    for begin in range(0, steps * bs, bs):
      carry = step_fn(carry, x, y, order, np.int32(begin))
    if rest:
      carry = tail_fn(carry, x, y, order[..., steps * bs:])
    new, mistakes, finite = carry
    return end_fn(start, new, mistakes, finite, x, y)

  # ---- shared order: every seed sees the same batches, gathered once per step -------------

  def _shared_order(self, state, n):
    """The order of the seed group's epoch: seed 0's key (``train`` gives every seed the same
    one) at the epoch of the seeds still training (a stopped seed's epoch no longer advances)."""
    return jax.random.permutation(jax.random.fold_in(state.order_key[0], state.epoch.max()), n)

  def _shared_batch_step(self, per_seed_x: bool):
    """carry, x, y, idx (B,) -> carry, for the stacked seeds. The batch is gathered once, so a
    first layer sees one unbatched input and vmap makes its convolution one wide convolution
    (S x k filters) rather than a grouped one."""
    train = jax.vmap(self._train_batch, in_axes=((0, 0, 0), self._x_axis(per_seed_x), 0))

    def step(carry, x, y, idx):
      return train(carry, x[:, idx] if per_seed_x else x[idx], y[:, idx])

    return step

  def _shared_scan_epoch_fn(self, per_seed_x: bool):
    bs = self.cfg.batch_size
    step = self._shared_batch_step(per_seed_x)
    end = jax.vmap(self._epoch_end, in_axes=(0, 0, 0, 0, self._x_axis(per_seed_x), 0))

    def epoch(state, x, y):
      num_seeds, n = y.shape
      steps, rest = divmod(n, bs)
      order = self._shared_order(state, n)
      carry = (state, jnp.zeros((num_seeds,), jnp.int32), jnp.ones((num_seeds,), bool))
      if steps:
        carry, _ = jax.lax.scan(lambda c, idx: (step(c, x, y, idx), None), carry,
                                order[:steps * bs].reshape(steps, bs))
      if rest:
        carry = step(carry, x, y, order[steps * bs:])
      new, mistakes, finite = carry
      return end(state, new, mistakes, finite, x, y)

    return self._compiled(("shared_scan", per_seed_x),
                          lambda: jax.jit(epoch, donate_argnums=0))

  def _shared_step_fns(self, per_seed_x: bool, n: int):
    bs = self.cfg.batch_size
    step = self._shared_batch_step(per_seed_x)

    def build():
      order = jax.jit(lambda s: self._shared_order(s, n))
      full = jax.jit(lambda c, x, y, order, begin: step(
          c, x, y, jax.lax.dynamic_slice_in_dim(order, begin, bs)), donate_argnums=0)
      tail = jax.jit(step, donate_argnums=0)
      end = jax.jit(jax.vmap(self._epoch_end, in_axes=(0, 0, 0, 0, self._x_axis(per_seed_x), 0)))
      return order, full, tail, end

    return self._compiled(("shared_step", per_seed_x, n), build)

  def init(self, init_keys, order_keys, x_example):
    return self._compiled("init", lambda: jax.jit(jax.vmap(self._init, in_axes=(0, 0, None))))(
        init_keys, order_keys, x_example)

  def predict(self, variables, x):
    """(S, N) argmax predictions of each seed's variables on shared images ``x`` (N, ...)."""
    fn = self._compiled("predict", lambda: jax.jit(jax.vmap(self._predict_one, in_axes=(0, None))))
    return fn(variables, x)

  # ---- the host loop -----------------------------------------------------------------------

  def train(self, init_keys, order_keys, x, y, *, per_seed_x: bool = False,
            on_epoch: Callable[[EpochLog, TrainState], None] | None = None,
            checkpoint=None, devices=None) -> TrainResult:
    """Trains one seed per key to the stop rule.

    x: images (N, ...) shared by the seeds, or (S, N, ...) with ``per_seed_x``; y: labels (S, N).
    ``checkpoint`` (a :class:`learnjax.checkpoint.TrainingCheckpoint`) resumes from its latest
    state, saves every ``every_epochs`` epochs and at the end, and on a requested stop saves and
    raises :class:`learnjax.checkpoint.Preempted`. With several ``devices`` the seed axis is
    sharded over them (one ``jax.sharding.Mesh`` axis, 'seeds'); the number of seeds must be a
    multiple of the number of devices.
    """
    from learnjax import checkpoint as ckpt
    cfg = self.cfg
    start_time = time.time()
    x = jnp.asarray(x)
    y = jnp.asarray(y)
    x_example = x[0, :1] if per_seed_x else x[:1]
    state, history = None, {"train_error": [], "learning_rate": []}
    if checkpoint is not None:
      abstract = jax.eval_shape(self.init, init_keys, order_keys, x_example)
      restored = checkpoint.restore(abstract)
      if restored is not None:
        state, history = restored
    if state is None:
      state = self.init(init_keys, order_keys, x_example)
    if devices is not None and len(devices) > 1:
      state, x, y = shard_seeds(devices, state, x, y, per_seed_x)
    variables = _variables(*jax.tree.map(lambda a: a[0], (state.params, state.batch_stats)))
    loop = choose_loop(cfg, self.model, variables, x_example)
    epoch_fn = (self.scan_epoch_fn(per_seed_x) if loop == "scan"
                else functools.partial(self.step_epoch, per_seed_x=per_seed_x))
    if cfg.shared_order:
      state = state.replace(order_key=jnp.broadcast_to(state.order_key[:1], state.order_key.shape))
    while True:
      # A seed at max_epochs stops like one below the target error.
      state = state.replace(done=state.done | (state.epoch >= cfg.max_epochs))
      trained = ~np.asarray(state.done)
      if not trained.any():
        break
      state = epoch_fn(state, x, y)
      log = EpochLog(epoch=int(np.asarray(state.epoch).max()),
                     train_error=np.asarray(state.train_error),
                     learning_rate=cfg.learning_rate * np.asarray(state.plateau.scale),
                     trained=trained, done=np.asarray(state.done))
      # History holds NaN for the epochs after a seed stopped.
      history["train_error"].append(np.where(trained, log.train_error, np.nan))
      history["learning_rate"].append(np.where(trained, log.learning_rate, np.nan))
      if on_epoch is not None:
        on_epoch(log, state)
      if ckpt.stop_requested():
        if checkpoint is None:
          raise ckpt.Preempted(f"stopped after epoch {log.epoch}; checkpoints are off, so this "
                               "training restarts from scratch")
        checkpoint.save(state, history)
        raise ckpt.Preempted(f"stopped after epoch {log.epoch}; state saved in "
                             f"{checkpoint.directory}")
      if checkpoint is not None and log.epoch % checkpoint.every_epochs == 0:
        checkpoint.save(state, history)
    if checkpoint is not None:
      checkpoint.save(state, history)
    epochs = np.asarray(state.epoch)
    diverged = np.asarray(state.diverged)
    return TrainResult(
        variables=_variables(state.params, state.batch_stats),
        epochs=epochs,
        train_error=np.asarray(state.train_error),
        learning_rate=cfg.learning_rate * np.asarray(state.plateau.scale),
        diverged=diverged,
        diverged_epoch=np.where(diverged, epochs, -1),
        history={k: np.stack(v, axis=1) if v else np.zeros((len(epochs), 0))
                 for k, v in history.items()},
        seconds=time.time() - start_time)


def shard_seeds(devices, state, x, y, per_seed_x: bool):
  """Places the seed axis of the state and the per-seed data across ``devices``."""
  from jax.sharding import Mesh, NamedSharding, PartitionSpec
  mesh = Mesh(np.asarray(devices), ("seeds",))
  by_seed = NamedSharding(mesh, PartitionSpec("seeds"))
  replicated = NamedSharding(mesh, PartitionSpec())
  return (jax.device_put(state, by_seed), jax.device_put(x, by_seed if per_seed_x else replicated),
          jax.device_put(y, by_seed))


def seed_groups(num_seeds: int, layout: str, num_devices: int,
                explicit_devices: bool = False) -> list[np.ndarray]:
  """The seed groups trained one after another, each spread over ``len(group)`` devices at most.

  vmap: all seeds in one group, over the largest device count that divides them (exactly
  ``num_devices`` when the user asked for it). sequential: one seed per device at a time, so no
  device ever runs a vmapped (grouped) convolution.
  """
  if layout == "vmap":
    if explicit_devices and num_seeds % num_devices:
      raise LearnjaxError(f"{num_seeds} seeds cannot be split evenly over {num_devices} devices; "
                          f"use a multiple of {num_devices} seeds or set --config.train.devices")
    return [np.arange(num_seeds)]
  return [np.arange(i, min(i + num_devices, num_seeds)) for i in range(0, num_seeds, num_devices)]


def _devices_for(group_size: int, devices: list) -> list:
  count = max(d for d in range(1, len(devices) + 1) if group_size % d == 0)
  return devices[:count]


# On the CPU, conv-free nets with at least this many parameters train faster one seed at a time
# (two at once in threads) than vmapped: MLP depth 3 on CIFAR (206k parameters) 127k against 93k
# samples/s on 2 cores, while the quickstart's 5k-parameter MLP is 3x faster vmapped.
CPU_SEQUENTIAL_MIN_PARAMS = 50_000


def choose_seed_layout(layout: str, model, x_example) -> str:
  """'vmap' (all seeds in one computation) or 'sequential' (one seed at a time, per device).

  ``auto``: vmapping a convolution over seeds (each with its own batches) turns it into a grouped
  convolution, which runs slower than the seeds in turn on GPUs (H200, shallow CNN 16: 424k
  samples/s for 5 vmapped seeds against 640k for one; ResNet18 6.9k against 20k); on the CPU,
  where vmapped convolutions run seed by seed inside one program, the seeds in turn two at a
  time are still faster (shallow CNN 16: 14,294 against 6,902 samples/s, benchmarks/RESULTS.md).
  So every conv net and every BatchNorm net trains its seeds in turn. On the CPU larger conv-free nets do too, several at
  once in threads (``CPU_SEQUENTIAL_MIN_PARAMS``); everything else is vmapped.
  """
  if layout not in ("auto", "vmap", "sequential"):
    raise ValueError(f"train.seed_layout must be auto, vmap or sequential, got {layout!r}")
  if layout != "auto":
    return layout
  init = functools.partial(model.init, train=False)
  variables = jax.eval_shape(init, jax.random.PRNGKey(0), x_example)
  if "batch_stats" in variables or _has_conv(model, variables, x_example):
    return "sequential"
  if jax.default_backend() == "cpu":
    params = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables["params"]))
    if params >= CPU_SEQUENTIAL_MIN_PARAMS:
      return "sequential"
  return "vmap"


def _has_conv(model, variables, x_example) -> bool:
  jaxpr = jax.make_jaxpr(lambda v, x: model.apply(v, x, train=False))(variables, x_example)
  return "conv_general_dilated" in str(jaxpr)


def concat_results(results: list[TrainResult]) -> TrainResult:
  """Joins the results of seed groups trained one after another along the seed axis."""
  if len(results) == 1:
    return results[0]
  width = max(r.history["train_error"].shape[1] for r in results)

  def pad(a):
    return np.pad(a, ((0, 0), (0, width - a.shape[1])), constant_values=np.nan)

  cat = lambda name: np.concatenate([getattr(r, name) for r in results])
  return TrainResult(
      variables=jax.tree.map(lambda *a: jnp.concatenate(a), *[r.variables for r in results]),
      epochs=cat("epochs"), train_error=cat("train_error"), learning_rate=cat("learning_rate"),
      diverged=cat("diverged"), diverged_epoch=cat("diverged_epoch"),
      history={k: np.concatenate([pad(r.history[k]) for r in results])
               for k in results[0].history},
      seconds=sum(r.seconds for r in results))


# Seed groups trained at the same time by concurrent_seeds='auto' on a one-device CPU: XLA runs
# part of a small network's step on one core, so two trainings in threads keep both cores busy
# (shallow CNN 16 on 2 cores: 7.7 -> 6.0 ms per seed-step; a third thread is slower again).
CPU_CONCURRENT_SEEDS = 2


def choose_concurrency(concurrent_seeds: int, layout: str, num_groups: int,
                       group_devices: int) -> int:
  """How many seed groups to train at once, each in its own thread.

  0 (auto): ``CPU_CONCURRENT_SEEDS`` for one-seed-at-a-time training on a single CPU device,
  else 1. Results do not depend on it: every group's computation is its own.
  """
  if concurrent_seeds < 0:
    raise LearnjaxError(f"train.concurrent_seeds must be 0 (auto) or positive, "
                        f"got {concurrent_seeds}")
  if concurrent_seeds == 0:
    auto = (jax.default_backend() == "cpu" and layout == "sequential" and group_devices == 1)
    concurrent_seeds = CPU_CONCURRENT_SEEDS if auto else 1
  return max(1, min(concurrent_seeds, num_groups))


def train_seeds(trainer: Trainer, init_keys, order_keys, x, y, *, per_seed_x: bool = False,
                seed_layout: str = "auto", on_epoch=None, checkpoints=None,
                devices: int = 0, concurrent_seeds: int = 0) -> TrainResult:
  """Trains one seed per key, all together or one after another as ``seed_layout`` says.

  Either way each seed's numbers depend only on its own keys and data. ``devices``: how many
  local devices to spread seeds over (0: all of them, as many as divide the seed group).
  ``concurrent_seeds``: seed groups trained at once in threads (see :func:`choose_concurrency`).
  ``on_epoch(log, state, seeds)`` also receives the positions of the seeds being trained (calls
  from concurrent groups never overlap); ``checkpoints(seeds)`` gives the checkpoint of a seed
  group (or None).
  """
  num_seeds = len(init_keys)
  local = jax.local_devices()
  if devices > len(local):
    raise LearnjaxError(f"train.devices={devices}, but this process sees {len(local)} "
                        f"{local[0].platform} device(s)")
  local = local[:devices] if devices else local
  x_example = x[0, :1] if per_seed_x else x[:1]
  layout = choose_seed_layout(seed_layout, trainer.model, x_example)
  groups = seed_groups(num_seeds, layout, len(local), explicit_devices=bool(devices))
  workers = choose_concurrency(concurrent_seeds, layout, len(groups),
                               len(_devices_for(len(groups[0]), local)))

  def train_group(seeds, callback):
    return trainer.train(init_keys[seeds], order_keys[seeds], x[seeds] if per_seed_x else x,
                         y[seeds], per_seed_x=per_seed_x, on_epoch=callback,
                         checkpoint=checkpoints(seeds) if checkpoints else None,
                         devices=_devices_for(len(seeds), local))

  if workers == 1:
    return concat_results([
        train_group(seeds, None if on_epoch is None else functools.partial(_with_seeds, on_epoch,
                                                                           seeds))
        for seeds in groups])
  return concat_results(_train_concurrently(train_group, groups, workers, on_epoch))


class _Abandoned(Exception):
  """Raised in a seed group's training when a concurrent group failed or was interrupted."""


def _train_concurrently(train_group, groups, workers: int, on_epoch) -> list[TrainResult]:
  """Runs ``train_group`` for each group in ``workers`` threads; results in group order.

  A failure (or Ctrl-C) in one group stops the others at their next epoch end (their last
  checkpoints stay), and the first real error is raised once every thread has finished.
  """
  lock = threading.Lock()
  abandon = threading.Event()

  def callback(seeds, log, state):
    if abandon.is_set():
      raise _Abandoned()
    if on_epoch is not None:
      with lock:
        _with_seeds(on_epoch, seeds, log, state)

  def run(seeds):
    if abandon.is_set():
      raise _Abandoned()
    try:
      return train_group(seeds, functools.partial(callback, seeds))
    except BaseException:
      abandon.set()
      raise

  pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="learnjax-seeds")
  futures = [pool.submit(run, seeds) for seeds in groups]
  try:
    concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_EXCEPTION)
  except BaseException:  # Ctrl-C while waiting
    abandon.set()
    raise
  finally:
    pool.shutdown(wait=True, cancel_futures=True)
  errors = [f.exception() for f in futures if not f.cancelled() and f.exception() is not None]
  real = [e for e in errors if not isinstance(e, _Abandoned)]
  if real:
    raise real[0]
  return [f.result() for f in futures]


def _with_seeds(on_epoch, seeds, log, state):
  on_epoch(log, state, seeds)
