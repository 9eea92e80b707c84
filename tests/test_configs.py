"""Every experiment config loads, full and smoke, and plans a valid grid."""

import glob
import importlib.util
import os

import pytest

from learnjax import sweep

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))
# Config arguments beyond the default and ':smoke'.
TABLES = ("t8", "t9", "t10", "t11")
EXTRA_ARGS = {"quickstart.py": ["cnn"],
              "t12_mnist_mlp.py": ["curve", "curve,smoke"], "t5_mlp_variants.py": ["curve", "curve,smoke"],
              "t8_t11_correct_vs_agree.py": [*TABLES, *(f"{t},smoke" for t in TABLES)]}


def load(path):
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def config_args(path, module):
  args = [None] + (["smoke"] if ":smoke" in module.__doc__ else [])
  return args + EXTRA_ARGS.get(os.path.basename(path), [])


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_loads_and_plans(path):
  module = load(path)
  if "population" in module.get_config():   # a population of experiments: learnjax.population
    from learnjax.population import spec
    assert "python -m learnjax.population --config=configs/" in module.__doc__
    for arg in config_args(path, module) + ["mnist", "cifar10"]:
      axes, networks = spec.check(module.get_config(arg))
      # The full populations span at least five axes; :smoke, timed to minutes, four.
      smoke = arg == "smoke"
      assert len(axes) >= (4 if smoke else 5) and len(networks) >= (16 if smoke else 48)
    with pytest.raises(ValueError):
      module.get_config("no_such_variant")
    return
  assert "python -m learnjax.main --config=configs/" in module.__doc__  # its command is documented
  for arg in config_args(path, module):
    config = module.get_config(arg)
    rows = sweep.plan(config)
    assert rows and config.experiment
    sweep.train_config(config, 64)
    if arg and "smoke" in arg:
      assert config.data.name == "digits"
      assert config.seeds < 5 and config.train.max_epochs <= 20
  with pytest.raises(ValueError):
    module.get_config("no_such_variant")


def test_every_experiment_has_a_config():
  names = {load(p).get_config(arg).experiment for p in CONFIGS
           for arg in config_args(p, load(p)) if "population" not in load(p).get_config()}
  expected = {f"T{i}" for i in range(1, 15)} | {"F1", "D5"}
  assert expected <= names, expected - names


def _networks(config):
  return [job.n1.name for job, _ in sweep.plan(config)]


def test_t7_trains_the_papers_four_n1s_on_every_variant_and_no_n2():
  module = load(os.path.join(ROOT, "configs", "t7_class_distribution.py"))
  for arg in (None, "smoke"):
    config = module.get_config(arg)
    rows = sweep.plan(config)
    assert sorted({(job.variant, job.n1.name) for job, _ in rows}) == sorted(
        (v, m) for v in ("true", "random_labels", "random_images")
        for m in ("densenet121", "googlenet", "shallow_cnn_1024", "shallow_cnn_16"))
    assert all(not cells for _, cells in rows)


@pytest.mark.parametrize("table,network", [("t8", "shallow_cnn_1024"), ("t9", "shallow_cnn_16"),
                                           ("t10", "vgg11"), ("t11", "googlenet")])
def test_t8_t11_train_the_papers_pair(table, network):
  module = load(os.path.join(ROOT, "configs", "t8_t11_correct_vs_agree.py"))
  for arg in (table, f"{table},smoke"):
    config = module.get_config(arg)
    assert config.experiment == table.upper()
    rows = sweep.plan(config)
    assert [(job.variant, job.n1.name) for job, _ in rows] == [("true", network)]
    assert [cell.n2.name for cell in rows[0][1]] == [network]
  assert module.get_config("smoke").experiment == "T8"
  assert module.get_config(None).experiment == "T8"
