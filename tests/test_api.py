"""The Python API: learnjax.learnability and learnjax.run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import learnjax
from learnjax import config as config_lib
from learnjax.errors import LearnjaxError

SIZES = dict(n1_size=300, n2_size=300, test_size=200)
OVERRIDES = {"train.max_epochs": 2, "train.learning_rate": 0.1}


def test_import_is_light():
  code = "import sys, learnjax; print('jax' in sys.modules, callable(learnjax.learnability))"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
  assert out.stdout.split() == ["False", "True"], out.stderr


def test_run_returns_what_the_command_line_stores_and_learnability_agrees(tmp_path):
  config = config_lib.make_smoke(config_lib.base_config(), max_epochs=2, seeds=2,
                                 sizes=tuple(SIZES.values()))
  config.n1.model, config.n2.model = "mlp_1", "mlp_1"
  config.train.learning_rate = 0.1
  cells = learnjax.run(config, str(tmp_path), out=None)
  with open(tmp_path / "results.json") as f:
    assert json.load(f)["cells"] == json.loads(json.dumps(cells))
  [cell] = cells
  # The in-memory measurement follows the same protocol, seed by seed.
  r = learnjax.learnability("mlp_1", data="digits", n2="mlp_1", seeds=2, **SIZES,
                            config=OVERRIDES)
  np.testing.assert_array_equal(r.learnability, cell["learnability"]["per_seed"])
  np.testing.assert_array_equal(r.n1_test_accuracy, cell["n1_test_accuracy"]["per_seed"])
  np.testing.assert_array_equal(r.n2_test_accuracy, cell["n2_test_accuracy"]["per_seed"])
  assert r.mean["learnability"] == pytest.approx(cell["learnability"]["mean"])
  assert r.std["learnability"] == pytest.approx(cell["learnability"]["std"])
  # Every metric of the schema, from N1's and N2's stored predictions and probabilities.
  from learnjax import metrics
  # (all but N2's fit of its own examples, which a learnability curve's N2s alone store)
  names = [n for n in metrics.names() if "n2_preds_d2_train" not in metrics.REGISTRY[n].needs]
  assert set(r.metrics) == set(names) and set(names) <= set(cell)
  for name in names:
    if metrics.REGISTRY[name].ensemble:
      assert r.mean[name] == pytest.approx(cell[name]["mean"])
    else:
      np.testing.assert_allclose(getattr(r, name), metrics.per_seed_values(cell[name]))
  assert all(v >= 0 for v in cell["kl_n1_n2"]["per_seed"])


def test_a_predict_function_that_knows_the_truth(digits_pool):
  """N1 = the truth, given as a function of the normalised images: learnability = N2's accuracy."""
  from learnjax.data import splits
  s = splits.make_splits(digits_pool, *SIZES.values())
  truth = {x.tobytes(): y for part in (s.d2, s.d3) for x, y in zip(part.x, part.y)}
  seen = []

  def predict(images):
    seen.append(images.shape)
    assert images.dtype == np.float32
    return np.eye(10)[[truth[x.tobytes()] for x in images]]    # logits are argmaxed

  r = learnjax.learnability(predict, data="digits", n2="mlp_1", seeds=[0, 1], **SIZES,
                            config=OVERRIDES)
  assert seen == [(300, 8, 8, 1), (200, 8, 8, 1)]
  assert r.n1 == "test_a_predict_function_that_knows_the_truth.<locals>.predict"
  np.testing.assert_array_equal(r.n1_test_accuracy, [100.0, 100.0])
  np.testing.assert_array_equal(r.learnability, r.n2_test_accuracy)
  assert r.learnability.shape == (2,) and r.n2_preds_d3.shape == (2, 200)
  assert "learnability" in str(r)


def test_data_as_arrays_and_labels_as_predictions(digits_pool):
  arrays = (digits_pool.x_train[:600], digits_pool.y_train[:600], digits_pool.x_test,
            digits_pool.y_test)
  r = learnjax.learnability((digits_pool.y_train[300:600], digits_pool.y_test[:200]),
                            data=arrays, n2="mlp_1", seeds=1, n1_size=300, n2_size=300,
                            test_size=200, config=OVERRIDES)
  assert r.dataset == "arrays"
  np.testing.assert_array_equal(r.learnability, r.n2_test_accuracy)


@pytest.mark.parametrize("kwargs, message", [
    (dict(n1=(np.zeros(5, int), np.zeros(200, int))), "d2 has 5 labels"),
    (dict(n1=(np.zeros(300, int), np.zeros(200, int)), n2="same"), "n2='same' needs"),
    (dict(n1=42), "n1 must be a model name"),
    (dict(n1="mlp_1", config={"train.max_epoch": 3}), "unknown config field 'train.max_epoch'"),
    (dict(n1="mlp_1", n2="resnet1000"), "unknown model 'resnet1000'"),
    (dict(n1="mlp_1", seeds=0), "seeds must be"),
    (dict(n1="mlp_1", data=(1, 2)), "data as arrays"),
])
def test_bad_arguments_are_one_learnjax_error(kwargs, message):
  with pytest.raises(LearnjaxError, match=message):
    learnjax.learnability(**{"data": "digits", "n2": "mlp_1", "seeds": 1, **SIZES, **kwargs})


def test_run_takes_a_config_file_with_overrides(tmp_path):
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  with pytest.raises(LearnjaxError, match="no such config file"):
    learnjax.run(os.path.join(root, "configs", "nope.py"), str(tmp_path))
  with pytest.raises(LearnjaxError, match="unknown config field"):
    learnjax.run(os.path.join(root, "configs", "quickstart.py"), str(tmp_path),
                 overrides={"n3.model": "x"})
