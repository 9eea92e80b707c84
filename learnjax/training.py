"""N1's and N2's training for one measurement (docs/protocol.md section 1): arrays in, arrays out.

For each seed s: N1 is trained on D1 (with the variant's labels or images), labels D2 with its
argmax predictions, N2 is trained on (D2, N1(D2)), and

  learnability = 100 * mean over D3 of [N1(x) == N2(x)]
  N1 test accuracy = 100 * mean over D3 of [N1(x) == y].

A variant may replace the D2 and D3 images per seed (random_images: noise; shuffled_pixels:
permuted): N1 labels its D2, N2 learns it, learnability is measured on its D3, and N1's test
accuracy is taken on the real D3 where the variant says so (:class:`EvalData`).

All randomness of seed s comes from ``fold_in(fold_in(PRNGKey(experiment_seed), s), purpose)``: N1's
init, N1's data order, the variant's random labels/images, N2's init and N2's data order each
have their own purpose, so a seed's numbers do not depend on which other seeds run beside it.
A network's random numbers in training (dropout masks) derive from its init key, the epoch and
the step (:func:`learnjax.engine.step_rngs`).
"""

from __future__ import annotations

import dataclasses
import enum

import jax
import jax.numpy as jnp
import numpy as np

from learnjax import engine, execution
from learnjax.data import variants
from learnjax.data.splits import Splits


class Purpose(enum.IntEnum):
  N1_INIT = 1
  N1_ORDER = 2
  VARIANT = 3
  N2_INIT = 4
  N2_ORDER = 5
  CODE_INIT = 6    # a learnability curve's code models (learnjax.prequential)
  CODE_ORDER = 7


def seed_keys(experiment_seed: int, seed_indices, purpose: Purpose) -> jax.Array:
  """(S, 2) PRNG keys, one per seed index, for one purpose."""
  base = jax.random.PRNGKey(experiment_seed)
  return jnp.stack([jax.random.fold_in(jax.random.fold_in(base, int(s)), int(purpose))
                    for s in seed_indices])


@dataclasses.dataclass
class TrainedNet:
  """One network's training over S seeds and its predictions (numpy, seed axis first)."""
  preds_d3: np.ndarray            # (S, |D3|)
  preds_d2: np.ndarray | None     # (S, |D2|), N1 only
  epochs: np.ndarray
  train_error: np.ndarray
  learning_rate: np.ndarray
  diverged: np.ndarray
  diverged_epoch: np.ndarray
  history: dict
  seconds: float
  variables: dict | None = None   # the trained variables (device arrays), when kept
  # epoch -> (preds_d2, preds_d3) of N1 after that many epochs (its final state if it stopped sooner)
  snapshots: dict = dataclasses.field(default_factory=dict)
  log_probs_d3: np.ndarray | None = None   # (S, |D3|, K) log-softmax; None for an N1 given as labels
  # Where the variant's D3 images are not the real ones but test accuracy is taken on the real
  # D3 (random_images): the predictions there, (S, |D3|)
  preds_test: np.ndarray | None = None
  # How its seeds were trained: the plan and where it came from (learnjax.execution.choose_plan)
  layout: dict | None = None

  @property
  def test_preds(self) -> np.ndarray:
    """The predictions the network's test accuracy is measured on."""
    return self.preds_d3 if self.preds_test is None else self.preds_test
  # An N2 of a learnability curve (trained on the first n examples of D2): its predictions on
  # them, (S, n), and below |D2| the size's code models (learnjax.prequential.CodeModels, set by
  # learnjax.measurement), which code the rest of D2.
  preds_d2_train: np.ndarray | None = None
  code: object | None = None


@dataclasses.dataclass
class EvalData:
  """The D2 and D3 images of one measurement: the real ones, or a variant's, one set per seed."""
  x2: jax.Array                 # (|D2|, ...) shared, or (S, |D2|, ...) with per_seed
  x3: jax.Array
  per_seed: bool
  real_test_accuracy: bool      # per_seed: N1's test accuracy on the real D3 images, not x3


def eval_data(splits: Splits, variant: str, experiment_seed: int, seed_indices) -> EvalData:
  """What N1 labels, N2 learns and learnability is measured on, under ``variant``."""
  entry = variants.get(variant)
  if entry.eval_images is None:
    return EvalData(jnp.asarray(splits.d2.x), jnp.asarray(splits.d3.x), False, True)
  x2, x3 = entry.eval_images(splits, seed_keys(experiment_seed, seed_indices, Purpose.VARIANT))
  return EvalData(x2, x3, True, entry.real_test_accuracy)


def predict(trainer, variables, x, per_seed: bool) -> np.ndarray:
  """(S, N) predictions of each seed on shared images (N, ...) or on its own (S, N, ...)."""
  if not per_seed:
    return np.asarray(trainer.predict(variables, x))
  return np.concatenate([np.asarray(trainer.predict(jax.tree.map(lambda a: a[i:i + 1], variables),
                                                    x[i])) for i in range(x.shape[0])])


def predict_with_log_probs(trainer, variables, x, per_seed: bool):
  """(S, N) predictions and (S, N, K) log-probabilities, as :func:`predict`."""
  if not per_seed:
    return tuple(np.asarray(a) for a in trainer.predict_with_log_probs(variables, x))
  parts = [trainer.predict_with_log_probs(jax.tree.map(lambda a: a[i:i + 1], variables), x[i])
           for i in range(x.shape[0])]
  return tuple(np.concatenate([np.asarray(p[k]) for p in parts]) for k in (0, 1))


def _trained(trainer, result: engine.TrainResult, splits: Splits, data: EvalData, with_d2: bool,
             keep_variables: bool) -> TrainedNet:
  preds_d3, log_probs_d3 = predict_with_log_probs(trainer, result.variables, data.x3,
                                                  data.per_seed)
  preds_d2 = predict(trainer, result.variables, data.x2, data.per_seed) if with_d2 else None
  preds_test = None
  if data.per_seed and data.real_test_accuracy:
    preds_test = predict(trainer, result.variables, jnp.asarray(splits.d3.x), False)
  return TrainedNet(preds_d3=preds_d3, preds_d2=preds_d2, log_probs_d3=log_probs_d3,
                    epochs=result.epochs,
                    train_error=result.train_error, learning_rate=result.learning_rate,
                    diverged=result.diverged, diverged_epoch=result.diverged_epoch,
                    history=result.history, seconds=result.seconds,
                    variables=result.variables if keep_variables else None, preds_test=preds_test,
                    layout=result.layout)


def train_n1(splits: Splits, trainer: engine.Trainer, variant: str, experiment_seed: int,
             seed_indices, seed_layout: str = "auto", on_epoch=None,
             keep_variables: bool = False, snapshot_epochs=(), snapshot_cache=None,
             checkpoints=None, devices: int = 0, concurrent_seeds: int = 0,
             corrupt_fraction: float | None = None, log=print) -> TrainedNet:
  """Step 1 and 2: N1 on D1 under ``variant``; its predictions on D2 and D3 (the variant's).

  ``corrupt_fraction``: for the variants that read one (partial_labels).

  ``snapshot_epochs`` also keeps N1's predictions after each of those epochs, for measuring
  learnability along training (experiment F1). They go into ``snapshot_cache`` (a mapping
  (epoch, seed position) -> (preds_d2, preds_d3); a dict unless given), so a resumed training can
  keep the snapshots taken before it was interrupted. ``checkpoints``, ``devices`` and
  ``concurrent_seeds``: see :func:`learnjax.execution.train_seeds`.
  """
  snapshot_epochs = sorted(set(int(e) for e in snapshot_epochs))
  cache = {} if snapshot_cache is None else snapshot_cache
  if snapshot_epochs:
    x2, x3 = jnp.asarray(splits.d2.x), jnp.asarray(splits.d3.x)
    user_callback = on_epoch

    def on_epoch(log, state, seeds):
      if log.epoch in snapshot_epochs:
        variables = engine.state_variables(state)
        preds_d2 = np.asarray(trainer.predict(variables, x2))
        preds_d3 = np.asarray(trainer.predict(variables, x3))
        for i, s in enumerate(seeds):
          cache[(log.epoch, int(s))] = (preds_d2[i], preds_d3[i])
      if user_callback is not None:
        user_callback(log, state, seeds)

  entry = variants.get(variant)
  if snapshot_epochs and entry.eval_images is not None:
    raise ValueError(f"snapshot epochs are not kept under {variant}, whose D2/D3 are per seed")
  x, y = variants.n1_training_data(splits.d1.x, splits.d1.y, variant,
                                   seed_keys(experiment_seed, seed_indices, Purpose.VARIANT),
                                   splits.num_classes, corrupt_fraction)
  result = execution.train_seeds(
      trainer, seed_keys(experiment_seed, seed_indices, Purpose.N1_INIT),
      seed_keys(experiment_seed, seed_indices, Purpose.N1_ORDER), x, y,
      per_seed_x=entry.per_seed_images, seed_layout=seed_layout, on_epoch=on_epoch,
      checkpoints=checkpoints, devices=devices, concurrent_seeds=concurrent_seeds, log=log)
  data = eval_data(splits, variant, experiment_seed, seed_indices)
  net = _trained(trainer, result, splits, data, with_d2=True, keep_variables=keep_variables)
  # A seed that stopped before epoch e is, at epoch e, its final self.
  net.snapshots = {
      e: tuple(np.stack([cache[(e, s)][k] if (e, s) in cache else final[s]
                         for s in range(len(seed_indices))])
               for k, final in enumerate((net.preds_d2, net.preds_d3)))
      for e in snapshot_epochs}
  return net


def train_n2(splits: Splits, trainer: engine.Trainer, n1_labels_d2: np.ndarray,
             experiment_seed: int, seed_indices, seed_layout: str = "auto",
             on_epoch=None, checkpoints=None, devices: int = 0,
             concurrent_seeds: int = 0, variant: str = "true",
             n2_size: int | None = None, log=print) -> TrainedNet:
  """Step 3: N2 of seed s on (D2, N1_s(D2)); its predictions on D3 (both the variant's).

  ``n2_size`` (a learnability curve): N2 learns the first ``n2_size`` examples of D2 only and
  also returns its predictions on them.
  """
  data = eval_data(splits, variant, experiment_seed, seed_indices)
  labels = np.asarray(n1_labels_d2)
  n = len(splits.d2) if n2_size is None else int(n2_size)
  if not 1 <= n <= len(splits.d2):
    raise ValueError(f"n2_size must be in 1..{len(splits.d2)}, got {n2_size}")
  x2 = data.x2[:, :n] if data.per_seed else data.x2[:n]
  result = execution.train_seeds(
      trainer, seed_keys(experiment_seed, seed_indices, Purpose.N2_INIT),
      seed_keys(experiment_seed, seed_indices, Purpose.N2_ORDER),
      x2, jnp.asarray(labels[:, :n], jnp.int32), per_seed_x=data.per_seed,
      seed_layout=seed_layout, on_epoch=on_epoch, checkpoints=checkpoints, devices=devices,
      concurrent_seeds=concurrent_seeds, log=log)
  net = _trained(trainer, result, splits, data, with_d2=False, keep_variables=False)
  if n2_size is not None:
    net.preds_d2_train = predict(trainer, result.variables, x2, data.per_seed)
  return net
