"""Training a group of seeds of one model to the protocol's stop rule (docs/protocol.md).

One seed's training is plain SGD on softmax cross-entropy (:func:`train_step`) with a learning
rate scaled by optax's ``reduce_on_plateau``, driven once per epoch by that epoch's training
error, and a stop when the training error falls below ``stop_error`` or after ``max_epochs``
epochs (:func:`end_epoch`).

Seeds are batched with ``jax.vmap``: the train state has a leading seed axis, every seed has its own
init, its own data order and its own stop. A seed that has stopped (or diverged) is frozen: its
epoch is computed with the others but its state is not updated, so its parameters never change.

The *training error* of an epoch is the fraction of the epoch's training examples that were
misclassified by the parameters at the time each one was seen (the running error a PyTorch loop
reports, free to compute). ``error_measure='full'`` instead evaluates the whole training set after
the epoch, in evaluation mode (one more forward pass per epoch).

An epoch runs either as one compiled call (``loop='scan'``: ``lax.scan`` over the steps, the
program accelerators run) or as one compiled call per step (``loop='step'``, faster for
convolutions on the CPU); ``loop='auto'`` picks per backend and model. Both run the same step.
The last partial batch of an epoch is trained on, as a PyTorch DataLoader does. The epoch's batch
order is each seed's own, or with ``shared_order`` one order for the whole group (vmap's
``in_axes`` for the order), gathered once per step for all seeds.

Any Flax module trains: every variable collection its init makes besides ``params``
(``batch_stats``, or a user's own) is updated in training and carried in the state, and a module
that draws random numbers in training (dropout) gets them from the seed's own key folded with the
epoch and the step (:func:`step_rngs`), so a resumed training repeats the masks of the
uninterrupted one bit for bit, whichever seed layout or loop runs it. Predictions use
``train=False`` and no random numbers.

How seeds share the machine (all in one group, in turn, in threads, over devices) is decided by
:mod:`learnjax.execution`; this module trains the one group it is given.
"""

from __future__ import annotations

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

from learnjax import models, validation

# reduce_on_plateau needs a tolerance; errors are multiples of 1/N with N <= 10^7, so any atol below
# that counts exactly the strict decreases, which is what the protocol asks for.
_PLATEAU_ATOL = 1e-8


@dataclasses.dataclass(frozen=True)
class TrainConfig:
  """What the engine needs to know; built from the ``train`` and ``n1``/``n2`` config blocks."""
  batch_size: int = 64
  learning_rate: float = 0.01
  momentum: float = 0.0
  nesterov: bool = False
  weight_decay: float = 0.0         # coupled L2: wd * params added to the gradient (PyTorch's SGD)
  plateau_factor: float = 0.75
  plateau_patience: int = 10
  stop_error: float = 0.01
  max_epochs: int = 500
  error_measure: str = "running"    # 'running' | 'full'
  loop: str = "auto"                # 'auto' | 'scan' | 'step'
  shared_order: bool = False        # one batch order for all seeds (faster, less independent)
  eval_batch_size: int = 1000


class TrainState(flax.struct.PyTreeNode):
  """One seed's training state; the engine stacks it along a leading seed axis."""
  params: Any
  batch_stats: Any          # the ``batch_stats`` collection ({} if none)
  opt_state: Any
  plateau: Any
  order_key: jax.Array
  epoch: jax.Array          # epochs trained so far
  done: jax.Array           # stopped (error below the target) or diverged
  diverged: jax.Array
  train_error: jax.Array    # error of the last trained epoch
  collections: Any = None   # the module's other mutable collections (None if it has none)
  rng_key: Any = None       # the key of its training-time randomness (None if it draws none)


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
  layout: dict | None = None    # how the seeds were trained (learnjax.execution.choose_plan)


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
  """SGD as PyTorch's ``torch.optim.SGD``: ``weight_decay`` is added to the gradient before the
  momentum (the gradient of an L2 penalty wd/2 * |params|^2), so it is scaled by the learning rate
  and its plateau factor. Without weight decay the optimiser state is plain SGD's (what a stored
  checkpoint holds)."""
  sgd = optax.sgd(cfg.learning_rate, momentum=cfg.momentum or None, nesterov=cfg.nesterov)
  if cfg.weight_decay:
    return optax.chain(optax.add_decayed_weights(cfg.weight_decay), sgd)
  return sgd


def _plateau(cfg: TrainConfig):
  return optax.contrib.reduce_on_plateau(factor=cfg.plateau_factor,
                                         patience=cfg.plateau_patience,
                                         rtol=0.0, atol=_PLATEAU_ATOL)


def _mutable(state: TrainState) -> dict:
  """The collections a training step updates: ``batch_stats`` and the module's others."""
  return {**(state.collections or {}), **({"batch_stats": state.batch_stats}
                                          if state.batch_stats else {})}


def state_variables(state: TrainState) -> dict:
  """The Flax variables (stacked over seeds) of a train state."""
  return {"params": state.params, **_mutable(state)}


# Folded into a seed's init key for its training-time randomness: independent of the init.
_TRAINING_RNG = 0x64726f70


def training_needs(model, x_example) -> bool:
  """Whether ``model`` draws random numbers when applied with ``train=True`` (dropout, noise):
  found by tracing the training call, without computing, and catching Flax's missing-rng error.
  The trace uses a batch of two examples: BatchNorm refuses one value per channel in training."""
  x_example = jax.ShapeDtypeStruct((2,) + tuple(x_example.shape[1:]), x_example.dtype)
  variables = jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False),
                             x_example)
  mutable = [k for k in variables if k != "params"] or False
  try:
    jax.eval_shape(lambda v, x: model.apply(v, x, train=True, mutable=mutable), variables,
                   x_example)
  except flax.errors.InvalidRngError:
    return True
  return False


def step_rngs(rng_key, epoch, step) -> dict:
  """The rng streams of one training step of one seed: a function of the seed's key, the epoch
  and the step only. ``dropout`` by name; any other stream a module asks for falls back, in Flax,
  to ``params`` (a key of its own here, never an init key)."""
  key = jax.random.fold_in(jax.random.fold_in(rng_key, epoch), step)
  return {"dropout": jax.random.fold_in(key, 0), "params": jax.random.fold_in(key, 1)}


# ---- one seed's training: side-effect-free functions, vmapped over seeds by Trainer ----------

def init_state(init_key, order_key, x_example, *, model, sgd, plateau,
               random: bool = False) -> TrainState:
  """One seed's state before its first epoch: the model's init from ``init_key``; ``random``:
  the model draws random numbers in training (:func:`training_needs`)."""
  variables = dict(model.init(init_key, x_example, train=False))
  params, batch_stats = variables.pop("params"), variables.pop("batch_stats", {})
  return TrainState(
      params=params, batch_stats=batch_stats, opt_state=sgd.init(params),
      plateau=plateau.init(jnp.zeros((), jnp.float32)), order_key=order_key,
      epoch=jnp.zeros((), jnp.int32), done=jnp.zeros((), bool),
      diverged=jnp.zeros((), bool), train_error=jnp.ones((), jnp.float32),
      collections=variables or None,
      rng_key=jax.random.fold_in(init_key, _TRAINING_RNG) if random else None)


def loss_fn(params, mutable, x, y, rngs=None, *, model):
  """Mean softmax cross-entropy of a batch in training mode; (loss, (logits, mutable)):
  ``mutable``, the collections the module updates, as the call left them."""
  if mutable:
    logits, mutable = model.apply({"params": params, **mutable}, x, train=True,
                                  mutable=list(mutable), rngs=rngs)
  else:
    logits = model.apply({"params": params}, x, train=True, rngs=rngs)
  logits = logits.astype(jnp.float32)
  loss = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
  return loss, (logits, mutable)


def train_step(carry, xb, yb, step=0, *, model, sgd):
  """The training step: one SGD step of one seed on the batch (xb, yb), the epoch's ``step``-th.

  carry = (state, mistakes, finite): the seed's state, the epoch's running count of misclassified
  examples (each counted by the parameters it was seen with) and whether every loss so far was
  finite. The SGD update is scaled by the plateau schedule's current factor.
  """
  state, mistakes, finite = carry
  rngs = None if state.rng_key is None else step_rngs(state.rng_key, state.epoch, step)
  (loss, (logits, mutable)), grads = jax.value_and_grad(
      functools.partial(loss_fn, model=model), has_aux=True)(
          state.params, _mutable(state), xb, yb, rngs)
  updates, opt_state = sgd.update(grads, state.opt_state, state.params)
  scale = state.plateau.scale
  updates = jax.tree.map(lambda u: (scale * u).astype(u.dtype), updates)
  params = optax.apply_updates(state.params, updates)
  mistakes = mistakes + jnp.sum(jnp.argmax(logits, -1) != yb)
  finite = finite & jnp.isfinite(loss)
  mutable = dict(mutable)
  batch_stats = mutable.pop("batch_stats", state.batch_stats)
  state = state.replace(params=params, batch_stats=batch_stats, opt_state=opt_state,
                        collections=mutable or state.collections)
  return state, mistakes, finite


def epoch_order(order_key, epoch, n):
  """The permutation of the n training examples for ``epoch``: a function of (key, epoch) only,
  so a resumed training repeats the uninterrupted one's order."""
  return jax.random.permutation(jax.random.fold_in(order_key, epoch), n)


def end_epoch(old: TrainState, new: TrainState, mistakes, finite, x, y, *, cfg: TrainConfig,
              plateau, predict) -> TrainState:
  """Error, plateau and stop bookkeeping after one seed's epoch from ``old`` to ``new``.

  A seed that was already done keeps ``old`` whole; a seed whose loss stopped being finite keeps
  its last finite parameters and is marked diverged.
  """
  n = y.shape[0]
  if cfg.error_measure == "full":
    mistakes = jnp.sum(predict(state_variables(new), x) != y)
  error = (mistakes / n).astype(jnp.float32)
  _, plateau_state = plateau.update(jnp.zeros(()), new.plateau, value=error)
  diverged = ~finite | ~jnp.isfinite(error)
  keep_old = lambda o, u: jnp.where(diverged, o, u)
  updated = new.replace(
      params=jax.tree.map(keep_old, old.params, new.params),
      batch_stats=jax.tree.map(keep_old, old.batch_stats, new.batch_stats),
      collections=jax.tree.map(keep_old, old.collections, new.collections),
      opt_state=jax.tree.map(keep_old, old.opt_state, new.opt_state),
      plateau=plateau_state, epoch=old.epoch + 1, train_error=error,
      done=diverged | (mistakes < stop_count(cfg.stop_error, n)), diverged=diverged)
  return jax.tree.map(lambda o, u: jnp.where(old.done, o, u), old, updated)


def logits(variables, x, *, model, batch_size: int):
  """(N, K) logits of one seed's variables on ``x``, in evaluation mode, in chunks."""
  n = x.shape[0]
  chunks = -(-n // batch_size)
  pad = chunks * batch_size - n
  xp = jnp.concatenate([x, jnp.zeros((pad,) + x.shape[1:], x.dtype)]) if pad else x
  out = jax.lax.map(lambda xb: model.apply(variables, xb, train=False),
                    xp.reshape((chunks, batch_size) + x.shape[1:]))
  return out.reshape((chunks * batch_size, -1))[:n]


def predict(variables, x, *, model, batch_size: int):
  """Argmax predictions of one seed's variables on ``x``, in evaluation mode, in chunks."""
  return jnp.argmax(logits(variables, x, model=model, batch_size=batch_size), -1)


def predict_with_log_probs(variables, x, *, model, batch_size: int):
  """(argmax predictions (N,), float32 log-softmax probabilities (N, K)) from one pass."""
  z = logits(variables, x, model=model, batch_size=batch_size)
  return jnp.argmax(z, -1), jax.nn.log_softmax(z.astype(jnp.float32), -1)


def choose_loop(cfg: TrainConfig, model, variables, x_example) -> str:
  """'scan' on accelerators and for convolution-free models; 'step' for conv nets on the CPU.

  On the CPU, XLA compiles a convolution inside a ``lax.scan`` body to a much slower kernel than
  the same convolution in a call of its own (benchmarks/RESULTS.md).
  """
  validation.check_choice("train.loop", cfg.loop)
  if cfg.loop != "auto":
    return cfg.loop
  if jax.default_backend() != "cpu":
    return "scan"
  return "step" if models.uses_convolution(model, variables, x_example) else "scan"


def shard_seeds(devices, state, x, y, per_seed_x: bool):
  """Places the seed axis of the state and the per-seed data across ``devices``."""
  from jax.sharding import Mesh, NamedSharding, PartitionSpec
  mesh = Mesh(np.asarray(devices), ("seeds",))
  by_seed = NamedSharding(mesh, PartitionSpec("seeds"))
  replicated = NamedSharding(mesh, PartitionSpec())
  return (jax.device_put(state, by_seed), jax.device_put(x, by_seed if per_seed_x else replicated),
          jax.device_put(y, by_seed))


class Trainer:
  """Compiled SGD for one model and one TrainConfig; call :meth:`train` per group of seeds.

  The compiled programs are built from the functions above and cached, so one Trainer serves
  every seed group (also from several threads).
  """

  def __init__(self, model: nn.Module, cfg: TrainConfig):
    self.model = model
    self.cfg = cfg
    self.sgd = _sgd(cfg)
    self.plateau = _plateau(cfg)
    self._train_step = functools.partial(train_step, model=model, sgd=self.sgd)
    self._predict_one = functools.partial(predict, model=model, batch_size=cfg.eval_batch_size)
    self._cache = {}
    self._cache_lock = threading.Lock()

  def with_model(self, model: nn.Module) -> "Trainer":
    """This Trainer, or one of the same config for ``model`` (another form of the same network,
    e.g. without the seed-batched convolution), kept so its programs compile once."""
    if model == self.model:
      return self
    with self._cache_lock:
      key = ("with_model", model)
      if key not in self._cache:
        self._cache[key] = Trainer(model, self.cfg)
      return self._cache[key]

  # ---- one seed (everything here is vmapped over seeds) ------------------------------------

  def _step(self, carry, x, y, idx, step=0):
    """One SGD step on the examples ``idx`` of (x, y), the epoch's ``step``-th."""
    return self._train_step(carry, x[idx], y[idx], step)

  def _epoch_end(self, old, new, mistakes, finite, x, y):
    return end_epoch(old, new, mistakes, finite, x, y, cfg=self.cfg, plateau=self.plateau,
                     predict=self._predict_one)

  def _epoch(self, state, x, y, order):
    """One seed's epoch over ``order`` (its own, or the group's), as one program."""
    bs = self.cfg.batch_size
    steps, rest = divmod(order.shape[0], bs)
    carry = (state, jnp.zeros((), jnp.int32), jnp.ones((), bool))
    if steps:
      carry, _ = jax.lax.scan(lambda c, s: (self._step(c, x, y, s[1], s[0]), None), carry,
                              (jnp.arange(steps), order[:steps * bs].reshape(steps, bs)))
    if rest:
      carry = self._step(carry, x, y, order[steps * bs:], steps)
    return self._epoch_end(state, *carry, x, y)

  # ---- the stacked seeds -------------------------------------------------------------------

  def _orders(self, state, n):
    """Each seed's order (S, n), or with ``shared_order`` the group's one order (n,): seed 0's
    key (``train`` gives every seed the same one) at the epoch of the seeds still training (a
    stopped seed's epoch no longer advances)."""
    if self.cfg.shared_order:
      return epoch_order(state.order_key[0], state.epoch.max(), n)
    return jax.vmap(epoch_order, in_axes=(0, 0, None))(state.order_key, state.epoch, n)

  def _axes(self, per_seed_x: bool):
    """vmap's in_axes for the images and for the order: a shared order (and shared images) stay
    unbatched, so a batch is gathered once for all seeds and a first layer sees one input."""
    return (0 if per_seed_x else None), (None if self.cfg.shared_order else 0)

  def _compiled(self, name, build):
    with self._cache_lock:
      if name not in self._cache:
        self._cache[name] = build()
      return self._cache[name]

  def scan_epoch_fn(self, per_seed_x: bool):
    """state, x, y -> state after one epoch, all in one compiled call."""
    xa, oa = self._axes(per_seed_x)

    def epoch(state, x, y):
      order = self._orders(state, y.shape[-1])
      return jax.vmap(self._epoch, in_axes=(0, xa, 0, oa))(state, x, y, order)

    return self._compiled(("scan", per_seed_x), lambda: jax.jit(epoch, donate_argnums=0))

  def step_fns(self, per_seed_x: bool, n: int):
    """(start, step, tail, end, begins) compiled separately, for the one-call-per-step loop.

    ``start`` gives the epoch's order and zeroed counters; ``step`` trains the full batch that
    starts at position ``begin`` (one of ``begins``, on the device) of the order (the slice is
    taken inside the compiled call, so a step costs one dispatch); ``tail`` trains the last
    partial batch; ``end`` does the epoch's bookkeeping. No call moves data from the host.
    """
    xa, oa = self._axes(per_seed_x)
    bs = self.cfg.batch_size

    def full_batch(carry, x, y, order, begin):
      return self._step(carry, x, y, jax.lax.dynamic_slice_in_dim(order, begin, bs), begin // bs)

    def build():
      start = jax.jit(lambda s: (self._orders(s, n), jnp.zeros(s.epoch.shape, jnp.int32),
                                 jnp.ones(s.epoch.shape, bool)))
      step = jax.jit(jax.vmap(full_batch, in_axes=((0, 0, 0), xa, 0, oa, None)),
                     donate_argnums=0)
      tail = jax.jit(jax.vmap(lambda c, x, y, order: self._step(c, x, y, order[n // bs * bs:],
                                                                n // bs),
                              in_axes=((0, 0, 0), xa, 0, oa)), donate_argnums=0)
      end = jax.jit(jax.vmap(self._epoch_end, in_axes=(0, 0, 0, 0, xa, 0)))
      # The steps' start positions, placed once (no host transfer inside an epoch).
      begins = [jax.device_put(np.int32(b)) for b in range(0, n // bs * bs, bs)]
      return start, step, tail, end, begins

    return self._compiled(("step", per_seed_x, n), build)

  def step_epoch(self, state, x, y, per_seed_x: bool):
    n = y.shape[-1]
    start_fn, step_fn, tail_fn, end_fn, begins = self.step_fns(per_seed_x, n)
    order, mistakes, finite = start_fn(state)
    # The step donates its carry: keep an untouched copy of the epoch's starting state.
    start = jax.tree.map(jnp.copy, state)
    carry = (state, mistakes, finite)
    for begin in begins:
      carry = step_fn(carry, x, y, order, begin)
    if n % self.cfg.batch_size:
      carry = tail_fn(carry, x, y, order)
    return end_fn(start, *carry, x, y)

  def init(self, init_keys, order_keys, x_example):
    shape = (x_example.shape, x_example.dtype)
    random = self._compiled(("random", shape), lambda: training_needs(self.model, x_example))
    one = functools.partial(init_state, model=self.model, sgd=self.sgd, plateau=self.plateau,
                            random=random)
    return self._compiled(("init", shape),
                          lambda: jax.jit(jax.vmap(one, in_axes=(0, 0, None))))(
        init_keys, order_keys, x_example)

  def predict(self, variables, x):
    """(S, N) argmax predictions of each seed's variables on shared images ``x`` (N, ...)."""
    fn = self._compiled("predict", lambda: jax.jit(jax.vmap(self._predict_one, in_axes=(0, None))))
    return fn(variables, x)

  def predict_with_log_probs(self, variables, x):
    """(S, N) argmax predictions and (S, N, K) log-probabilities of each seed on ``x``."""
    one = functools.partial(predict_with_log_probs, model=self.model,
                            batch_size=self.cfg.eval_batch_size)
    fn = self._compiled("predict_log_probs", lambda: jax.jit(jax.vmap(one, in_axes=(0, None))))
    return fn(variables, x)

  # ---- the host loop over epochs -----------------------------------------------------------

  def train(self, init_keys, order_keys, x, y, *, per_seed_x: bool = False,
            on_epoch: Callable[[EpochLog, TrainState], None] | None = None,
            checkpoint=None, devices=None, loop: str | None = None) -> TrainResult:
    """Trains one seed per key to the stop rule.

    x: images (N, ...) shared by the seeds, or (S, N, ...) with ``per_seed_x``; y: labels (S, N).
    ``on_epoch(log, state)`` runs after every epoch; where it returns a (S,) bool array, those
    seeds stop there as if they had reached the stop rule.
    ``checkpoint`` (a :class:`learnjax.checkpoint.TrainingCheckpoint`) resumes from its latest
    state, saves every ``every_epochs`` epochs and at the end, and on a requested stop saves and
    raises :class:`learnjax.checkpoint.Preempted`. With several ``devices`` the seed axis is
    sharded over them (one ``jax.sharding.Mesh`` axis, 'seeds'); the number of seeds must be a
    multiple of the number of devices. Data and state move to the devices explicitly; an epoch
    makes no implicit host transfer. ``loop``: 'scan' or 'step' as chosen by the caller (a
    measured plan), else :func:`choose_loop`'s.
    """
    from learnjax import checkpoint as ckpt
    cfg = self.cfg
    start_time = time.time()
    x, y = jax.device_put(x), jax.device_put(y)
    x_example = x[0, :1] if per_seed_x else x[:1]
    state, history = None, {"train_error": [], "learning_rate": []}
    if checkpoint is not None:
      abstract = jax.eval_shape(self.init, init_keys, order_keys, x_example)
      restored = checkpoint.restore(abstract)
      if restored is not None:
        state, history = restored
        state = jax.device_put(state)
    if state is None:
      state = self.init(init_keys, order_keys, x_example)
    if devices is not None and len(devices) > 1:
      state, x, y = shard_seeds(devices, state, x, y, per_seed_x)
    variables = jax.tree.map(lambda a: a[0], state_variables(state))
    loop = loop or choose_loop(cfg, self.model, variables, x_example)
    epoch_fn = (self.scan_epoch_fn(per_seed_x) if loop == "scan"
                else functools.partial(self.step_epoch, per_seed_x=per_seed_x))
    if cfg.shared_order:
      state = state.replace(order_key=jnp.broadcast_to(state.order_key[:1], state.order_key.shape))
    epochs = jax.device_get(state.epoch)
    while True:
      # A seed at max_epochs stops like one below the target error.
      trained = ~jax.device_get(state.done) & (epochs < cfg.max_epochs)
      if not trained.any():
        break
      state = state.replace(done=jax.device_put(~trained, state.done.sharding))
      state = epoch_fn(state, x, y)
      epochs, error, scale, done = jax.device_get(
          (state.epoch, state.train_error, state.plateau.scale, state.done))
      log = EpochLog(epoch=int(epochs.max()), train_error=error,
                     learning_rate=cfg.learning_rate * scale, trained=trained, done=done)
      # History holds NaN for the epochs after a seed stopped.
      history["train_error"].append(np.where(trained, log.train_error, np.nan))
      history["learning_rate"].append(np.where(trained, log.learning_rate, np.nan))
      if on_epoch is not None:
        stop = on_epoch(log, state)
        if stop is not None:   # the caller's own stop (early stopping on held-out data)
          state = state.replace(done=jax.device_put(done | np.asarray(stop, bool),
                                                    state.done.sharding))
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
    epochs, error, scale, diverged = jax.device_get(
        (state.epoch, state.train_error, state.plateau.scale, state.diverged))
    return TrainResult(
        variables=state_variables(state),
        epochs=epochs,
        train_error=error,
        learning_rate=cfg.learning_rate * scale,
        diverged=diverged,
        diverged_epoch=np.where(diverged, epochs, -1),
        history={k: np.stack(v, axis=1) if v else np.zeros((len(epochs), 0))
                 for k, v in history.items()},
        seconds=time.time() - start_time)
