"""Weight decay and dropout: each follows its definition, and at its neutral value changes nothing
(neither a number nor a fingerprint)."""

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from learnjax import config as config_lib, engine, guard, models, sweep, validation
from learnjax.errors import LearnjaxError


def _sgd(**train):
  config = config_lib.base_config()
  for key, value in train.items():
    config.train[key] = value
  validation.check_config(config)
  return engine._sgd(sweep.train_config(config, 64))


def test_weight_decay_is_pytorch_s_coupled_l2_through_the_momentum():
  """Two steps against PyTorch's SGD written out by hand: d = g + wd * p, buf = m * buf + d,
  p -= lr * buf."""
  lr, m, wd, p0, g1, g2 = 0.1, 0.9, 0.01, 3.0, 2.0, -1.0
  opt = _sgd(learning_rate=lr, momentum=m, weight_decay=wd)
  p = jnp.asarray(p0)
  state = opt.init(p)
  u1, state = opt.update(jnp.asarray(g1), state, p)
  p1 = p + u1
  u2, _ = opt.update(jnp.asarray(g2), state, p1)
  buf1 = g1 + wd * p0
  ref_p1 = p0 - lr * buf1
  buf2 = m * buf1 + g2 + wd * ref_p1
  np.testing.assert_allclose([float(p1), float(p1 + u2)], [ref_p1, ref_p1 - lr * buf2], rtol=1e-6)


def test_weight_decay_off_is_plain_sgd_and_leaves_every_fingerprint():
  import optax
  params = {"w": jnp.zeros(2)}   # the optimiser state a stored checkpoint holds: plain SGD's
  assert jax.tree.structure(_sgd().init(params)) == jax.tree.structure(
      optax.sgd(0.01).init(params))
  assert "train.weight_decay" not in guard.settings(config_lib.base_config())
  config = config_lib.base_config()
  config.train.weight_decay = 5e-4
  assert guard.settings(config)["train.weight_decay"] == 5e-4
  config.train.weight_decay = -1e-4
  with pytest.raises(LearnjaxError, match="train.weight_decay must be a number >= 0"):
    validation.check_config(config)


def test_a_training_step_with_weight_decay_moves_by_lr_wd_params_more():
  """Without momentum, one step with decay wd lands lr * wd * p0 below the step without it."""
  model = models.build("mlp_1", 10)
  x = jax.random.normal(jax.random.PRNGKey(0), (8, 8, 8, 1))
  y = jnp.arange(8) % 10
  moved = {}
  for wd in (0.0, 0.1):
    cfg = engine.TrainConfig(learning_rate=0.05, weight_decay=wd)
    trainer = engine.Trainer(model, cfg)
    state = engine.init_state(jax.random.PRNGKey(1), jax.random.PRNGKey(2), x[:1], model=model,
                              sgd=trainer.sgd, plateau=trainer.plateau)
    step = functools.partial(engine.train_step, model=model, sgd=trainer.sgd)
    carry = (state, jnp.zeros((), jnp.int32), jnp.ones((), bool))
    moved[wd] = step(carry, x, y)[0].params
    p0 = state.params
  expected = jax.tree.map(lambda a, p: a - 0.05 * 0.1 * p, moved[0.0], p0)
  for got, want in zip(jax.tree.leaves(moved[0.1]), jax.tree.leaves(expected)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


# ---- dropout: a hyper-parameter of learnjax's MLP and shallow CNN, and any module's rng ---------

class BatchNormDropout(nn.Module):
  """A user's module: BatchNorm, Dropout and a collection of its own (a count of training calls)."""
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    calls = self.variable("counters", "calls", lambda: jnp.zeros((), jnp.int32))
    if train:
      calls.value += 1
    x = nn.Dense(32)(x.reshape((x.shape[0], -1)))
    x = nn.relu(nn.BatchNorm(use_running_average=not train, momentum=0.8)(x))
    x = nn.Dropout(0.3, deterministic=not train)(x)
    return nn.Dense(self.num_classes)(x)


def _labels(splits, seeds):
  return np.broadcast_to(splits.d1.y, (seeds, len(splits.d1)))


def test_dropout_is_a_hyper_parameter_whose_zero_is_the_model_without_it():
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 8, 8, 1))
  for name in ("mlp_1", "shallow_cnn_16"):
    plain, zero = models.build(name, 10), models.build(name, 10, dropout=0.0)
    assert plain == zero and models.canonical_name(name, dropout=0.0) == name
    assert models.canonical_name(name, dropout=0.5) == f"{name}_dropout0.5"
    assert not engine.training_needs(plain, x[:1])
    assert engine.training_needs(models.build(name, 10, dropout=0.5), x[:1])
  assert models.canonical_name("mlp", width=8, depth=2, dropout=0.25) == \
      "mlp_depth2_width8_dropout0.25"
  with pytest.raises(models.UnknownModelError, match="dropout must be a rate in \\[0, 1\\)"):
    models.build("mlp_1", 10, dropout=1.0)
  config = config_lib.base_config()
  config.n1.model, config.n1.dropout = "vgg11", 0.5
  with pytest.raises(LearnjaxError, match="n1.dropout=\\[0.5\\] is not used by model 'vgg11'"):
    from learnjax import grid
    grid.plan(config)


def test_dropout_acts_in_training_only_and_is_unbiased():
  """Evaluation is the network without dropout; inverted dropout's training output averages to it
  (the last layer is linear), and each draw zeroes about the rate's share of the hidden units."""
  model, plain = models.build("mlp_1", 10, dropout=0.5), models.build("mlp_1", 10)
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 8, 8, 1))
  variables = plain.init(jax.random.PRNGKey(1), x, train=False)
  np.testing.assert_array_equal(model.apply(variables, x, train=False),
                                plain.apply(variables, x, train=False))
  keys = jax.random.split(jax.random.PRNGKey(2), 4000)
  outs = jax.vmap(lambda k: model.apply(variables, x, train=True, rngs={"dropout": k}))(keys)
  assert float(jnp.abs(outs[0] - outs[1]).max()) > 0   # two draws, two masks
  np.testing.assert_allclose(outs.mean(0), plain.apply(variables, x, train=False), atol=0.03)


@pytest.mark.parametrize("loop", ["scan", "step"])
def test_a_resumed_dropout_training_repeats_its_masks_bitwise(small_splits, loop, tmp_path):
  """Interrupted after epoch 2 and resumed from its checkpoint, a training with dropout ends with
  the very bits of the uninterrupted one; trained seed by seed, it is the vmapped one."""
  from learnjax import checkpoint
  model = models.build("mlp_1", 10, dropout=0.5)
  trainer = engine.Trainer(model, engine.TrainConfig(max_epochs=4, stop_error=0.0, loop=loop))
  keys = jax.random.split(jax.random.PRNGKey(3), 2)
  x, y = small_splits.d1.x, _labels(small_splits, 2)
  whole = trainer.train(keys, keys, x, y)

  def stop_after_two(log, state):
    if log.epoch == 2:
      checkpoint.request_stop()

  saved = checkpoint.TrainingCheckpoint(str(tmp_path / "c"), 1)
  try:
    with pytest.raises(checkpoint.Preempted):
      trainer.train(keys, keys, x, y, on_epoch=stop_after_two, checkpoint=saved)
  finally:
    checkpoint.clear_stop_request()
  resumed = trainer.train(keys, keys, x, y, checkpoint=checkpoint.TrainingCheckpoint(
      str(tmp_path / "c"), 1))
  jax.tree.map(np.testing.assert_array_equal, whole.variables, resumed.variables)
  np.testing.assert_array_equal(whole.history["train_error"], resumed.history["train_error"])
  one = [trainer.train(keys[s:s + 1], keys[s:s + 1], x, y[s:s + 1]) for s in range(2)]
  for s in range(2):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[s], b[0], rtol=1e-5, atol=1e-6),
                 whole.variables, one[s].variables)
  # The masks are the seeds' own: the two seeds of one init differ only through them.
  same_init = trainer.train(keys[:1].repeat(2, 0), keys[:1].repeat(2, 0), x, y)
  jax.tree.map(lambda a: np.testing.assert_array_equal(a[0], a[1]), same_init.variables)


def test_any_module_trains_with_its_collections_and_rngs(small_splits):
  """A user's BatchNorm + Dropout module with a collection of its own: every collection is updated
  in training (the counter counts the steps), predictions draw no random numbers."""
  model = models.registry._user_module("bn_dropout", BatchNormDropout, 10, {})
  trainer = engine.Trainer(model, engine.TrainConfig(max_epochs=6, stop_error=0.0,
                                                     learning_rate=0.1))
  keys = jax.random.split(jax.random.PRNGKey(4), 2)
  result = trainer.train(keys, keys, small_splits.d1.x, _labels(small_splits, 2))
  steps = -(-len(small_splits.d1) // 64)
  np.testing.assert_array_equal(result.variables["counters"]["calls"], [6 * steps] * 2)
  assert set(result.variables) == {"params", "batch_stats", "counters"}
  preds = np.asarray(trainer.predict(result.variables, small_splits.d3.x))
  assert preds.shape == (2, len(small_splits.d3))
  assert (preds == small_splits.d3.y).mean() > 0.5
