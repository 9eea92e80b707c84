"""The code models of a learnability curve: each block of N1's labels coded by a model fitted to
its prefix (docs/protocol.md section 8).

The prequential code length (Blier & Ollivier 2018; Voita & Titov 2020) sends the labels of D2 in
blocks; the block after the first n examples is coded by a model fitted to those n. The learnability
N2 of size n is no such model: it stops as soon as its training error falls below 1 %, often
after a few epochs, while it still spreads its probability over the classes. So each size n of a
curve (all but the largest) trains, per seed, a **code model** of its own, by the literature's
recipe (train on the prefix, early stopping on a held-out part of it):

* N2's architecture and training settings (SGD, batch size, learning rate, plateau schedule,
  ``max_epochs``) without the training-error stop;
* trained on the first n - h examples of D2 with N1's labels, h = max(1, round(n / 10)) (for
  n = 1: the one example, and no early stopping);
* after every epoch its mean log-loss on the held-out examples n - h + 1, ..., n; a seed stops
  when that loss has not improved for ``PATIENCE`` epochs (or at ``max_epochs``);
* the parameters of its best epoch give log p(N1's label | x) on every later example of D2.

Each seed's code model has its own init and data order (``Purpose.CODE_INIT``, ``CODE_ORDER``).
"""

from __future__ import annotations

import dataclasses
import weakref

import jax
import jax.numpy as jnp
import numpy as np

from learnjax import engine, execution, training

HELD_OUT_FRACTION = 0.1
PATIENCE = 10   # epochs without a better held-out loss before a code model stops

_TRAINERS = weakref.WeakKeyDictionary()


def held_out_size(n: int) -> int:
  """How many of the prefix's last examples are held out for early stopping (0 for n = 1)."""
  return 0 if n < 2 else max(1, round(n * HELD_OUT_FRACTION))


def fitted_size(n: int) -> int:
  """How many examples a code model of size n trains on."""
  return n - held_out_size(n)


def code_trainer(trainer: engine.Trainer) -> engine.Trainer:
  """The N2 trainer's model and settings without the training-error stop (cached per trainer)."""
  if trainer not in _TRAINERS:
    _TRAINERS[trainer] = engine.Trainer(trainer.model,
                                        dataclasses.replace(trainer.cfg, stop_error=0.0))
  return _TRAINERS[trainer]


@dataclasses.dataclass
class CodeModels:
  """The code models of one size n, per seed."""
  label_log_probs_after: np.ndarray   # (S, |D2| - n) float32: log p(N1's label) on examples > n
  held_out: int                       # h
  epochs: np.ndarray                  # (S,) epochs trained
  best_epoch: np.ndarray              # (S,) the epoch whose parameters code (0: none was finite)
  held_out_loss: np.ndarray           # (S,) its mean held-out log-loss, nats

  def record(self) -> dict:
    return {"held_out": int(self.held_out), "patience": PATIENCE,
            "epochs": [int(e) for e in self.epochs],
            "best_epoch": [int(e) for e in self.best_epoch],
            "held_out_loss": [float(v) if np.isfinite(v) else None for v in self.held_out_loss]}


class _EarlyStopping:
  """The on_epoch callback: held-out loss per seed, its best parameters, the stop."""

  def __init__(self, trainer, x_held, y_held, per_seed: bool, seeds: int, then=None):
    self.trainer, self.x_held, self.y_held, self.per_seed = trainer, x_held, y_held, per_seed
    self.best_loss = np.full(seeds, np.inf)
    self.best_epoch = np.zeros(seeds, np.int64)
    self.best = [None] * seeds      # host copies of each seed's best variables
    self.then = then

  def loss(self, variables, positions) -> np.ndarray:
    x = self.x_held[positions[0]:positions[-1] + 1] if self.per_seed else self.x_held
    _, log_probs = training.predict_with_log_probs(self.trainer, variables, x, self.per_seed)
    y = self.y_held[positions]
    return -np.take_along_axis(np.asarray(log_probs, np.float64), y[..., None], -1)[..., 0].mean(-1)

  def __call__(self, log, state, positions):
    positions = np.asarray(positions)
    variables = engine.state_variables(state)
    loss = self.loss(variables, positions) if self.x_held is not None else None
    epochs = np.asarray(jax.device_get(state.epoch))
    stop = np.zeros(len(positions), bool)
    for i, s in enumerate(positions):
      if not log.trained[i]:
        continue
      current = loss[i] if loss is not None else -float(epochs[i])   # no held-out: the last epoch
      if np.isfinite(current) and current < self.best_loss[s]:
        self.best_loss[s], self.best_epoch[s] = current, epochs[i]
        self.best[s] = jax.tree.map(lambda a, i=i: np.asarray(a[i]), variables)
      stop[i] = loss is not None and epochs[i] - self.best_epoch[s] >= PATIENCE
    if self.then is not None:
      self.then(log, state, positions)
    return stop


def fit_and_code(splits, trainer: engine.Trainer, labels_d2: np.ndarray, n: int,
                 experiment_seed: int, seed_indices, *, variant: str = "true",
                 seed_layout: str = "auto", on_epoch=None, devices: int = 0,
                 concurrent_seeds: int = 0, log=print) -> CodeModels:
  """The code models of size ``n`` < |D2| (see the module docstring) and their code of D2 after n.

  ``labels_d2``: (S, |D2|) N1's labels; ``trainer``: N2's trainer; D2's images are the
  variant's (:func:`learnjax.training.eval_data`); ``on_epoch``: progress.
  """
  data = training.eval_data(splits, variant, experiment_seed, seed_indices)
  init_keys = training.seed_keys(experiment_seed, seed_indices, training.Purpose.CODE_INIT)
  order_keys = training.seed_keys(experiment_seed, seed_indices, training.Purpose.CODE_ORDER)
  labels = np.asarray(labels_d2).astype(np.int64)
  seeds = labels.shape[0]
  h = held_out_size(n)
  fit = n - h
  x2 = data.x2
  x_fit = x2[:, :fit] if data.per_seed else x2[:fit]
  x_held = (x2[:, fit:n] if data.per_seed else x2[fit:n]) if h else None
  coder = code_trainer(trainer)
  stopping = _EarlyStopping(coder, x_held, labels[:, fit:n], data.per_seed, seeds, on_epoch)
  result = execution.train_seeds(
      coder, init_keys, order_keys, x_fit, jnp.asarray(labels[:, :fit], jnp.int32),
      per_seed_x=data.per_seed, seed_layout=seed_layout, on_epoch=stopping, devices=devices,
      concurrent_seeds=concurrent_seeds, log=log)
  final = [jax.tree.map(lambda a, s=s: np.asarray(a[s]), result.variables) for s in range(seeds)]
  best = [b if b is not None else f for b, f in zip(stopping.best, final)]
  variables = jax.tree.map(lambda *a: jnp.asarray(np.stack(a)), *best)
  _, log_probs = training.predict_with_log_probs(coder, variables, x2, data.per_seed)
  after = labels[:, n:]
  code = np.take_along_axis(np.asarray(log_probs)[:, n:], after[..., None], -1)[..., 0]
  return CodeModels(code.astype(np.float32), h, np.asarray(result.epochs),
                    stopping.best_epoch.copy(),
                    np.where(np.isfinite(stopping.best_loss), stopping.best_loss, np.nan))
