"""A user's plain Flax module: registered with one call, trained from the command line and the API."""

import json
import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import numpy as np
import pytest

import learnjax
from learnjax import models

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Linear(nn.Module):
  """No dtype, no forms, no train flag: nothing learnjax-specific."""
  num_classes: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.num_classes)(x.reshape((x.shape[0], -1)))


class HiddenLayer(nn.Module):
  width: int
  num_classes: int

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.relu(nn.Dense(self.width)(x.reshape((x.shape[0], -1))))
    del train
    return nn.Dense(self.num_classes)(x)


def test_a_plain_module_registers_and_builds_without_learnjax_fields():
  models.register("test_linear", Linear)   # the class itself: num_classes by name
  models.register("test_hidden", lambda num_classes, width: HiddenLayer(width, num_classes),
                  hparams=("width",), presets={"test_hidden_8": {"width": 8}})
  module = models.build("test_linear", 10)
  size = models.size(module, (8, 8, 1))
  assert size.params == 64 * 10 + 10 and size.batch_stats == 0
  assert models.size(models.build("test_hidden_8", 3), (4, 4, 1)).params == 16 * 8 + 8 + 8 * 3 + 3
  assert models.canonical_name("test_hidden", width=8) == "test_hidden_8"
  # learnjax's own names stay its own; a builder that fails is one error naming the model.
  with pytest.raises(models.UnknownModelError, match="learnjax's own"):
    models.register("mlp_1", Linear)
  models.register("test_broken", lambda num_classes: 1 / 0)
  with pytest.raises(models.UnknownModelError, match="test_broken.*ZeroDivisionError"):
    models.build("test_broken", 10)
  models.register("test_not_a_module", lambda num_classes: "mlp")
  with pytest.raises(models.UnknownModelError, match="not a flax.linen.Module"):
    models.build("test_not_a_module", 10)


def test_a_plain_module_trains_through_the_api():
  models.register("test_linear", Linear)
  models.register("test_hidden", lambda num_classes, width: HiddenLayer(width, num_classes),
                  hparams=("width",), presets={"test_hidden_8": {"width": 8}})
  r = learnjax.learnability(n1="test_hidden_8", n2="test_linear", data="digits", seeds=2,
                            n1_size=300, n2_size=300, test_size=200,
                            config={"train.max_epochs": 30, "train.learning_rate": 0.1})
  assert r.learnability.shape == (2,)
  # Trained, not at chance: the modules learnt the digits and N2 learnt N1.
  assert r.n1_test_accuracy.mean() > 50 and r.learnability.mean() > 50
  np.testing.assert_allclose(r.learnability, 100 * (r.n1_preds_d3 == r.n2_preds_d3).mean(1))


CONFIG = '''
"""A config that registers its own model."""
import flax.linen as nn
import learnjax.models
from learnjax.config import base_config


class Linear(nn.Module):
  num_classes: int

  @nn.compact
  def __call__(self, x):
    return nn.Dense(self.num_classes)(x.reshape((x.shape[0], -1)))


learnjax.models.register("my_linear", lambda num_classes: Linear(num_classes))


def get_config(arg=None):
  config = base_config()
  config.experiment = "user_model"
  config.seeds = 2
  config.data.variant = "true,random_labels"
  config.data.n1_size, config.data.n2_size, config.data.test_size = 300, 300, 200
  config.n1.model = "my_linear"
  config.n2.model = "same,mlp_1"
  config.train.max_epochs = 20
  config.train.learning_rate = 0.1
  return config
'''


def test_a_plain_module_registered_in_a_config_trains_from_the_command_line(tmp_path):
  path = tmp_path / "my_model.py"
  path.write_text(textwrap.dedent(CONFIG))
  workdir = tmp_path / "run"
  proc = subprocess.run([sys.executable, "-m", "learnjax.main", f"--config={path}",
                         f"--workdir={workdir}"], cwd=ROOT, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr
  cells = json.load(open(workdir / "results.json"))["cells"]
  assert sorted((c["variant"], c["n1_model"], c["n2_model"]) for c in cells) == sorted(
      (v, "my_linear", n2) for v in ("true", "random_labels") for n2 in ("my_linear", "mlp_1"))
  true = [c for c in cells if c["variant"] == "true"]
  assert all(c["n1_test_accuracy"]["mean"] > 50 for c in true)
