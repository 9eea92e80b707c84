"""Every experiment config loads, full and :smoke, and plans a valid grid."""

import glob
import importlib.util
import os

import pytest

from learnjax import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))


def load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_loads_and_plans(path):
  module = load(path)
  assert "python -m learnjax.main --config=configs/" in module.__doc__  # its command is documented
  args = [None] + (["smoke"] if ":smoke" in module.__doc__ else [])
  for arg in args:
    config = module.get_config(arg)
    rows = sweep.plan(config)
    assert rows and config.experiment
    sweep.train_config(config, 64)
    if arg == "smoke":
      assert config.data.name == "digits"
  with pytest.raises(ValueError):
    module.get_config("no_such_variant")


def test_every_experiment_has_a_config():
  names = {load(p).get_config().experiment for p in CONFIGS}
  expected = {f"T{i}" for i in range(1, 15) if i not in (8, 9, 10, 11)} | {"T8", "F1", "D5"}
  assert expected <= names, expected - names
