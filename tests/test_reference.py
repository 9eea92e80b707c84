"""The engine against a plain training loop written without it.

The reference below is what a reader of the paper would write: for each epoch a permutation of
the training set, batches of ``batch_size`` in that order (the last, partial batch included), one
SGD step per batch on the mean softmax cross-entropy, the running training error (mistakes of the
epoch's forward passes over the examples seen), then the plateau rule (the rate times ``factor``
once the error has gone ``patience`` epochs without a strict decrease, counting again after a cut)
and the stop rule (error strictly below ``stop_error``, or ``max_epochs``). Its networks are plain
``jax.numpy`` functions of the parameter dicts (conv, ReLU, pool, BatchNorm written out), its step is
``params - rate * grad``. It shares with the engine only the models' initial parameters (from the
same init key) and the data order, which it derives as the engine documents it: epoch ``e``
(0-based) of a seed with order key ``k`` visits ``jax.random.permutation(fold_in(k, e), N)``.

Compared after every epoch, per seed (through the engine's ``on_epoch`` callback), with each
reference epoch started from the engine's state after the previous one (so rounding differences
do not compound, and the tolerance holds per epoch): parameters and BatchNorm running statistics
(float32, rtol 1e-5, atol 1e-6), the epoch's training error as a count of mistakes (exactly), the
learning rate of the next epoch (rtol 1e-6; so the epochs at which the plateau cuts the rate
match), whether the seed has stopped (so the stop epoch matches). After a seed's stop its
parameters and statistics must stay bitwise frozen while the other seeds train.
``test_train_seeds_follows_the_plain_loop`` instead runs the reference free over the whole
training (MLP; same tolerances on the final parameters). Settings (100 digits, batch 32 with a
last batch of 4, rate 0.5, patience 1, stop below 5%) make the plateau cut and the stop happen
within a few epochs, and the tests check that they did.

BatchNorm follows PyTorch (momentum 0.1, eps 1e-5, batch statistics over N, H, W in training,
running statistics in evaluation), including its running-variance rule: the running variance
folds in the unbiased batch variance (factor m / (m - 1), m = N * H * W), where Flax's
``nn.BatchNorm`` folds in the biased one. The reference can compute either
(``biased_running_var``); the engine is checked against PyTorch's, and
``test_batchnorm_running_variance_is_the_unbiased_one`` checks that the two differ here.
"""

from __future__ import annotations

import dataclasses
import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnjax import engine, execution, models
from learnjax.models import layers

# Compiles three networks twice each (engine and reference) and trains them epoch by epoch.
pytestmark = pytest.mark.slow

RTOL, ATOL = 1e-5, 1e-6
EPS, MOMENTUM = 1e-5, 0.1


class BatchNormNet(nn.Module):
  """conv 3x3 (4 filters, pad 1) -> BatchNorm -> ReLU -> 2x2 max-pool -> Linear, zoo layers."""
  num_classes: int = 10

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = layers.Conv(4, 3, padding=1)(x)
    x = nn.relu(layers.batch_norm(train)(x))
    return layers.Dense(self.num_classes)(layers.flatten(layers.max_pool(x, 2, 2)))


# ---- the reference networks: plain functions of (params, stats, x) -> (logits, new stats) ----

def _dense(p, x):
  return x @ p["dense"]["kernel"] + p["dense"]["bias"]


def _conv(p, x, pad):
  y = jax.lax.conv_general_dilated(x, p["conv"]["kernel"], (1, 1), ((pad, pad), (pad, pad)),
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                   precision=jax.lax.Precision.HIGHEST)
  return y + p["conv"]["bias"]


def _pool2(x):
  n, h, w, c = x.shape
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def mlp_forward(params, stats, x, train, biased_running_var=False):
  h = x.reshape(x.shape[0], -1)
  names = sorted(params, key=lambda k: int(k.split("_")[1]))
  for name in names[:-1]:
    h = jax.nn.relu(_dense(params[name], h))
  return _dense(params[names[-1]], h), stats


def shallow_cnn_forward(params, stats, x, train, biased_running_var=False):
  h = _pool2(jax.nn.relu(_conv(params["Conv_0"], x, 2)))
  return _dense(params["Dense_0"], h.reshape(h.shape[0], -1)), stats


def batchnorm_net_forward(params, stats, x, train, biased_running_var=False):
  h = _conv(params["Conv_0"], x, 1)
  bn, running = params["BatchNorm_0"], stats["BatchNorm_0"]
  if train:
    mean = h.mean(axis=(0, 1, 2))
    var = ((h - mean) ** 2).mean(axis=(0, 1, 2))
    m = h.shape[0] * h.shape[1] * h.shape[2]
    folded = var if biased_running_var else var * m / (m - 1)
    stats = {"BatchNorm_0": {"mean": (1 - MOMENTUM) * running["mean"] + MOMENTUM * mean,
                             "var": (1 - MOMENTUM) * running["var"] + MOMENTUM * folded}}
  else:
    mean, var = running["mean"], running["var"]
  h = (h - mean) / jnp.sqrt(var + EPS) * bn["scale"] + bn["bias"]
  h = _pool2(jax.nn.relu(h))
  return _dense(params["Dense_0"], h.reshape(h.shape[0], -1)), stats


NETS = {"mlp_1": (lambda: models.build("mlp_1", 10), mlp_forward),
        "shallow_cnn_16": (lambda: models.build("shallow_cnn_16", 10), shallow_cnn_forward),
        "batchnorm_net": (BatchNormNet, batchnorm_net_forward)}


# ---- the reference loop -----------------------------------------------------------------------

@dataclasses.dataclass
class Epoch:
  params: dict
  stats: dict
  mistakes: int         # the epoch's training mistakes (error = mistakes / N)
  error: float
  rate: float           # the learning rate of the next epoch
  done: bool            # stopped after this epoch


@functools.lru_cache(maxsize=None)
def _compiled(forward, biased_running_var):
  """The reference's SGD step and prediction for one network, compiled once."""

  def loss(params, stats, xb, yb):
    logits, stats = forward(params, stats, xb, True, biased_running_var)
    log_p = jax.nn.log_softmax(logits)
    return -jnp.mean(jnp.take_along_axis(log_p, yb[:, None], axis=1)), (logits, stats)

  @jax.jit
  def step(params, stats, xb, yb, rate):
    grads, (logits, stats) = jax.grad(loss, has_aux=True)(params, stats, xb, yb)
    params = jax.tree.map(lambda p, g: p - rate * g, params, grads)
    return params, stats, jnp.sum(jnp.argmax(logits, -1) != yb)

  predict = jax.jit(lambda params, stats, x: jnp.argmax(forward(params, stats, x, False)[0], -1))
  return step, predict


def reference_training(forward, variables, order_key, x, y, *, batch_size, learning_rate,
                       factor, patience, stop_error, max_epochs, error_measure="running",
                       biased_running_var=False, start=None) -> list[Epoch]:
  """One seed trained by the protocol, one Python iteration per epoch and per batch.

  ``start(e)``, if given, returns the (params, stats) that epoch e (0-based, e >= 1) starts from
  in place of the reference's own: the engine's, to compare one epoch at a time.
  """
  step, predict = _compiled(forward, biased_running_var)
  params, stats = variables["params"], variables.get("batch_stats", {})
  n = len(y)
  rate, best, bad, epochs = learning_rate, np.inf, 0, []
  for epoch in range(max_epochs):
    if start is not None and epoch:
      params, stats = start(epoch)
    order = np.asarray(jax.random.permutation(jax.random.fold_in(order_key, epoch), n))
    mistakes = 0
    for begin in range(0, n, batch_size):
      idx = order[begin:begin + batch_size]
      params, stats, wrong = step(params, stats, x[idx], y[idx], np.float32(rate))
      mistakes += int(wrong)
    if error_measure == "full":
      mistakes = int(np.sum(np.asarray(predict(params, stats, x)) != y))
    error = mistakes / n
    if error < best:
      best, bad = error, 0
    else:
      bad += 1
      if bad == patience:
        rate, bad = rate * factor, 0
    done = error < stop_error
    epochs.append(Epoch(jax.tree.map(np.asarray, params), jax.tree.map(np.asarray, stats),
                        mistakes, error, rate, done))
    if done:
      break
  return epochs


# ---- running the engine and comparing -----------------------------------------------------------

@dataclasses.dataclass
class EngineEpoch:
  log: engine.EpochLog
  params: dict
  stats: dict


def engine_training(trainer, init_keys, order_keys, x, y):
  epochs = []

  def on_epoch(log, state):
    epochs.append(EngineEpoch(log, jax.tree.map(np.array, state.params),
                              jax.tree.map(np.array, state.batch_stats)))

  result = trainer.train(init_keys, order_keys, x, y, on_epoch=on_epoch)
  return result, epochs


def assert_matches(reference: list[Epoch], got: list[EngineEpoch], seed: int, num: int,
                   result=None):
  """Seed ``seed`` of the engine's epochs against the reference, then frozen after its stop."""
  pick = lambda tree: jax.tree.map(lambda a: a[seed], tree)
  for e, (ref, eng) in enumerate(zip(reference, got), start=1):
    where = f"seed {seed}, epoch {e}"
    assert eng.log.trained[seed], where
    assert round(float(eng.log.train_error[seed]) * num) == ref.mistakes, where
    np.testing.assert_allclose(eng.log.learning_rate[seed], ref.rate, rtol=1e-6, err_msg=where)
    assert bool(eng.log.done[seed]) == ref.done, where
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL,
                                                         err_msg=where),
                 pick(eng.params), ref.params)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL,
                                                         err_msg=where),
                 pick(eng.stats), ref.stats)
  stop = len(reference)
  assert reference[-1].done or stop == len(got), "the engine ran past the reference's last epoch"
  frozen = got[stop - 1]
  for later in got[stop:]:
    assert not later.log.trained[seed]
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[seed], b[seed]),
                 (frozen.params, frozen.stats), (later.params, later.stats))
  if result is not None:
    assert int(result.epochs[seed]) == stop
    assert round(float(result.train_error[seed]) * num) == reference[-1].mistakes


def cuts(reference: list[Epoch], learning_rate: float) -> list[int]:
  """The epochs after which the plateau rule cut the rate."""
  rates = [learning_rate] + [r.rate for r in reference]
  return [e for e in range(1, len(rates)) if rates[e] < rates[e - 1]]


SETTINGS = dict(batch_size=32, learning_rate=0.5, plateau_factor=0.5, plateau_patience=1,
                stop_error=0.05, max_epochs=10)


@pytest.fixture(scope="module")
def data(small_splits):
  """100 real digits: 3 batches of 32 and a last one of 4 per epoch."""
  return np.asarray(small_splits.d1.x[:100]), np.asarray(small_splits.d1.y[:100]).astype(np.int32)


@pytest.fixture(scope="module")
def run(data):
  """run(net, seeds=2, **overrides) -> (engine result, engine epochs, references, cfg); each
  configuration is trained once per module (by the engine and by the reference)."""
  x, y = data
  done = {}

  def run_(net, seeds=2, **overrides):
    key = (net, seeds, tuple(sorted(overrides.items())))
    if key not in done:
      cfg = engine.TrainConfig(**{**SETTINGS, **overrides})
      build, forward = NETS[net]
      model = build()
      init_keys = jnp.stack([jax.random.PRNGKey(100 + s) for s in range(seeds)])
      order_keys = jnp.stack([jax.random.PRNGKey(200 + s) for s in range(seeds)])
      labels = np.broadcast_to(y, (seeds, len(y)))
      result, got = engine_training(engine.Trainer(model, cfg), init_keys, order_keys, x, labels)
      # Each epoch of the reference starts from the engine's state after the previous one.
      start = lambda i: lambda e: jax.tree.map(lambda a: a[i], (got[e - 1].params,
                                                                 got[e - 1].stats))
      references = [reference_training(
          forward, model.init(init_keys[i], x[:1], train=False), order_keys[i], x, y,
          batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, factor=cfg.plateau_factor,
          patience=cfg.plateau_patience, stop_error=cfg.stop_error, max_epochs=cfg.max_epochs,
          error_measure=cfg.error_measure, start=start(i)) for i in range(seeds)]
      done[key] = result, got, references, cfg
    return done[key]

  return run_


def assert_schedule_exercised(references, cfg):
  """The settings did their job: a plateau cut, a stop before max_epochs, seeds stopping apart."""
  assert any(cuts(r, cfg.learning_rate) for r in references), "no plateau cut happened"
  stops = [len(r) for r in references if r[-1].done]
  assert stops and min(stops) < cfg.max_epochs, "no seed reached the stop error"
  assert len({len(r) for r in references}) > 1, "the seeds should stop at different epochs"


# On the CPU 'auto' runs the conv nets one compiled call per step; the MLP runs lax.scan epochs.
@pytest.mark.parametrize("net", ["mlp_1", "shallow_cnn_16", "batchnorm_net"])
def test_engine_follows_the_plain_loop(run, data, net):
  result, got, references, cfg = run(net)
  assert_schedule_exercised(references, cfg)
  for seed, reference in enumerate(references):
    assert_matches(reference, got, seed, len(data[1]), result)


@pytest.mark.parametrize("net", ["batchnorm_net"])
def test_full_error_measure_follows_the_plain_loop(run, data, net):
  # 'full' counts the mistakes of a pass over D1 in evaluation mode after the epoch (BatchNorm
  # with its running statistics).
  result, got, references, cfg = run(net, error_measure="full")
  assert any(cuts(r, cfg.learning_rate) for r in references)
  assert any(r[-1].done for r in references)
  for seed, reference in enumerate(references):
    assert_matches(reference, got, seed, len(data[1]), result)
  running = run(net)[2]
  assert [r.mistakes for r in references[0]] != [r.mistakes for r in running[0]]


def test_stop_is_strict_at_exactly_the_threshold(run, data):
  # SETTINGS make a seed's error equal stop_error exactly (5 of 100) at an epoch: that seed must
  # train on (the error is not below the threshold) and stop at a later epoch, as in the reference.
  result, got, references, cfg = run("mlp_1")
  at_threshold = [(s, e) for s, r in enumerate(references) for e, epoch in enumerate(r)
                  if epoch.error == cfg.stop_error]
  assert at_threshold, "no seed hit the threshold exactly; choose other SETTINGS"
  for seed, epoch in at_threshold:
    assert not got[epoch].log.done[seed] and got[epoch + 1].log.trained[seed]
    assert int(result.epochs[seed]) > epoch + 1
  assert engine.stop_count(0.05, 100) == 5 and engine.stop_count(0.01, 25_000) == 250
  assert engine.stop_count(0.0, 10) == 0 and engine.stop_count(0.015, 200) == 3


def test_stopped_seeds_batchnorm_statistics_stay_frozen_while_others_train(run):
  _, got, references, _ = run("batchnorm_net")
  first, last = sorted(references, key=len)[0], sorted(references, key=len)[-1]
  stopped, training = references.index(first), references.index(last)
  assert len(first) < len(last) and first[-1].done
  for before, after in zip(got[len(first) - 1:], got[len(first):len(last)]):
    np.testing.assert_array_equal(before.stats["BatchNorm_0"]["var"][stopped],
                                  after.stats["BatchNorm_0"]["var"][stopped])
    assert not np.array_equal(before.stats["BatchNorm_0"]["var"][training],
                              after.stats["BatchNorm_0"]["var"][training])


def test_batchnorm_running_variance_is_the_unbiased_one(run, data):
  # PyTorch folds the unbiased batch variance into running_var (Flax's BatchNorm the biased one).
  x, y = data
  _, got, references, cfg = run("batchnorm_net")
  model = BatchNormNet()
  biased = reference_training(
      batchnorm_net_forward, model.init(jax.random.PRNGKey(100), x[:1], train=False),
      jax.random.PRNGKey(200), x, y, batch_size=cfg.batch_size,
      learning_rate=cfg.learning_rate, factor=cfg.plateau_factor, patience=cfg.plateau_patience,
      stop_error=cfg.stop_error, max_epochs=1, biased_running_var=True)
  engine_var = got[0].stats["BatchNorm_0"]["var"][0]
  np.testing.assert_allclose(engine_var, references[0][0].stats["BatchNorm_0"]["var"],
                             rtol=RTOL, atol=ATOL)
  assert not np.allclose(engine_var, biased[0].stats["BatchNorm_0"]["var"], rtol=1e-4, atol=0)


def test_train_seeds_follows_the_plain_loop(data, run):
  # Through the seed layouts: one seed at a time, two at once in threads.
  # The reference runs free here: its whole trajectory against the engine's.
  x, y = data
  cfg = run("mlp_1")[3]
  init_keys = jnp.stack([jax.random.PRNGKey(100 + s) for s in range(2)])
  order_keys = jnp.stack([jax.random.PRNGKey(200 + s) for s in range(2)])
  result = execution.train_seeds(engine.Trainer(models.build("mlp_1", 10), cfg), init_keys,
                              order_keys, x, np.broadcast_to(y, (2, len(y))),
                              seed_layout="sequential", concurrent_seeds=2)
  model = models.build("mlp_1", 10)
  references = [reference_training(
      mlp_forward, model.init(init_keys[i], x[:1], train=False), order_keys[i], x, y,
      batch_size=cfg.batch_size, learning_rate=cfg.learning_rate, factor=cfg.plateau_factor,
      patience=cfg.plateau_patience, stop_error=cfg.stop_error, max_epochs=cfg.max_epochs)
      for i in range(2)]
  assert_schedule_exercised(references, cfg)
  for seed, reference in enumerate(references):
    assert int(result.epochs[seed]) == len(reference)
    errors = result.history["train_error"][seed]
    np.testing.assert_array_equal(np.round(errors[:len(reference)] * len(y)),
                                  [r.mistakes for r in reference])
    assert np.isnan(errors[len(reference):]).all()
    np.testing.assert_allclose(result.history["learning_rate"][seed][:len(reference)],
                               [r.rate for r in reference], rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[seed], b, rtol=RTOL, atol=ATOL),
                 result.variables["params"], reference[-1].params)
