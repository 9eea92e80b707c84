"""Weight decay and dropout: each follows its definition, and at its neutral value changes nothing
(neither a number nor a fingerprint)."""

import functools

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
