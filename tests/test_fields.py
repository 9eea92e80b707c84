"""The table of config fields (learnjax.fields) is complete, and everything that sorts fields by
kind reads it."""

import dataclasses

import pytest

from learnjax import api, cli_input, config as config_lib, engine, fields, guard, sweep, validation
from learnjax.errors import LearnjaxError


def test_every_config_field_has_exactly_one_row():
  assert sorted(fields.FIELDS) == sorted(config_lib.flatten(config_lib.base_config()))
  assert all(f.kind in (fields.GRID, fields.UNIT, fields.PROTOCOL, fields.EXECUTION, fields.PATH)
             for f in fields.FIELDS.values())


def test_the_engine_settings_are_the_table_s_engine_fields():
  leaves = {name.rsplit(".", 1)[-1] for name in fields.engine_fields()}
  assert {f.name for f in dataclasses.fields(engine.TrainConfig)} == leaves | {"batch_size"}
  config = config_lib.base_config()
  config.train.learning_rate, config.train.max_epochs = 0.05, 7
  made = sweep.train_config(config, 32)
  assert (made.batch_size, made.learning_rate, made.max_epochs) == (32, 0.05, 7)


def test_kinds_drive_the_guard_and_neutral_values():
  assert config_lib.NEUTRAL is fields.NEUTRAL
  assert set(guard.EXECUTION_FIELDS) == {n for n, f in fields.FIELDS.items()
                                         if f.kind == fields.EXECUTION}
  assert "plugins" in guard.EXECUTION_FIELDS and "train.learning_rate" not in guard.GRID_FIELDS
  base = config_lib.base_config()
  changed = config_lib.base_config()
  changed.plugins, changed.train.loop, changed.n1.model = "x.py", "step", "mlp_1,mlp_2"
  assert guard.settings(base) == guard.settings(changed)


def test_grid_axes_become_lists_once_from_the_command_line_the_api_and_a_file():
  argv = ["main", "--config.n1.batch_size=32,64", "--config.data.variant=true,random_labels",
          "--config.data.n2_size=geometric:50:200:3", "--config.seeds=2"]
  kept, lists = cli_input.split_list_overrides(argv)
  assert kept == ["main", "--config.seeds=2"]
  config = config_lib.base_config()
  cli_input.apply_list_overrides(config, lists)
  validation.check_config(config)
  assert config.n1.batch_size == [32, 64] and config.data.variant == ["true", "random_labels"]
  assert config.data.n2_size == [50, 100, 200] and config.n2.model == ["same"]
  validation.check_config(config)   # idempotent
  assert config.n1.batch_size == [32, 64]
  other = config_lib.base_config()
  api.apply_overrides(other, {"n1.batch_size": [32, 64], "data.variant": "true,random_labels"})
  validation.check_config(other)
  assert other.n1.batch_size == [32, 64] and other.data.variant == ["true", "random_labels"]
  with pytest.raises(LearnjaxError, match="lists 'mlp_1' twice \\('mlp_1,mlp_1'\\)"):
    bad = config_lib.base_config()
    bad.n1.model = "mlp_1,mlp_1"
    validation.check_config(bad)


def test_the_report_reads_stored_lists_and_comma_strings_alike():
  assert fields.as_list("a, b") == fields.as_list(["a", "b"]) == ["a", "b"]
  assert fields.as_list(None) == [] and fields.as_list(64) == [64]


def test_nesterov_momentum_follows_its_definition():
  """Two SGD steps with Nesterov momentum, against the update written out by hand (PyTorch's
  nesterov=True: buf = m * buf + g, step = lr * (g + m * buf))."""
  import jax.numpy as jnp
  import numpy as np
  lr, m, g1, g2 = 0.1, 0.9, 2.0, -1.0
  config = config_lib.base_config()
  config.train.learning_rate, config.train.momentum, config.train.nesterov = lr, m, True
  validation.check_config(config)
  opt = engine._sgd(sweep.train_config(config, 64))
  state = opt.init(jnp.zeros(()))
  u1, state = opt.update(jnp.asarray(g1), state)
  u2, _ = opt.update(jnp.asarray(g2), state)
  buf1 = g1
  buf2 = m * buf1 + g2
  np.testing.assert_allclose([u1, u2], [-lr * (g1 + m * buf1), -lr * (g2 + m * buf2)], rtol=1e-6)
  # Without momentum it would change nothing: refused rather than recorded as if used.
  config.train.momentum = 0.0
  with pytest.raises(LearnjaxError, match="nesterov=True is read only with a momentum above 0"):
    validation.check_config(config)
  # At its neutral value it leaves every fingerprint as it was.
  assert "train.nesterov" not in guard.settings(config_lib.base_config())
