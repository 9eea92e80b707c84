"""The Python API: learnjax.learnability and learnjax.run."""

import dataclasses
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
  truth = {x.tobytes(): y for part in (s.d1, s.d2, s.d3) for x, y in zip(part.x, part.y)}
  seen = []

  def predict(images):
    seen.append(images.shape)
    assert images.dtype == np.float32
    return np.eye(10)[[truth[x.tobytes()] for x in images]]    # logits are argmaxed

  r = learnjax.learnability(predict, data="digits", n2="mlp_1", seeds=[0, 1], **SIZES,
                            config=OVERRIDES)
  assert seen == [(300, 8, 8, 1), (300, 8, 8, 1), (200, 8, 8, 1)]   # D1, D2, D3
  assert r.n1 == "test_a_predict_function_that_knows_the_truth.<locals>.predict"
  np.testing.assert_array_equal(r.n1_test_accuracy, [100.0, 100.0])
  np.testing.assert_array_equal(r.learnability, r.n2_test_accuracy)
  assert r.learnability.shape == (2,) and r.n2_preds_d3.shape == (2, 200)
  assert "learnability" in str(r)
  np.testing.assert_array_equal(r.n1_train_error, [0.0, 0.0])   # N1 is right on D1 too
  assert r.n1_source == "given"


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


def test_result_reads_well_in_a_notebook_and_per_seed_predictions_are_seeds(digits_pool):
  """Per-seed (S, N) labels as a dict with d1; the result's repr, markdown, dict, frame, status,
  N2 epochs and training error; progress lines through ``progress``; a name for N1."""
  y1, y2, y3 = (digits_pool.y_train[:300], digits_pool.y_train[-300:], digits_pool.y_test[:200])
  wrong = y3.copy()
  wrong[:20] = (wrong[:20] + 1) % 10
  d1 = y1.copy()
  d1[:15] = (d1[:15] + 1) % 10
  lines = []
  r = learnjax.learnability({"d1": d1, "d2": np.stack([y2, y2]), "d3": np.stack([y3, wrong])},
                            data="digits", n2="mlp_1", seeds=2, **SIZES, config=OVERRIDES,
                            n1_name="mine", progress=lines.append)
  np.testing.assert_array_equal(r.n1_test_accuracy, [100.0, 90.0])   # each seed its own row
  np.testing.assert_allclose(r.n1_train_error, [0.05, 0.05])          # 15 of 300 wrong on D1
  assert r.n1 == "mine" and r.n1_source == "given"
  assert r.n2_epochs.tolist() == [2, 2] and r.n2_train_error.shape == (2,)
  assert r.status == "not converged"     # two epochs: above the 1 % stop error
  # train.stop_error=0 is no early stop: two epochs were all it was asked to train.
  assert dataclasses.replace(r, stop_error=0.0).status == "ok"
  assert any("N2 mlp_1 <- mine" in line and "epoch    2/2" in line for line in lines), lines
  text = repr(r)
  assert len(text) < 200 and text.startswith("<Learnability mine (given) -> mlp_1 on digits")
  assert "status=not converged" in text
  assert "| learnability |" in r._repr_markdown_()
  assert "N2 2 epochs" in str(r) and "N1 training error 5.0 %" in str(r)
  d = json.loads(json.dumps(r.to_dict()))
  assert d["metrics"]["learnability"] == r.learnability.tolist() and d["n2_epochs"] == [2, 2]
  # A lambda has no name: a clear default; silence with progress=None.
  quiet = learnjax.learnability(lambda x: np.zeros(len(x), int), data="digits", n2="mlp_1",
                                seeds=1, **SIZES, config={"train.max_epochs": 1}, progress=None)
  assert quiet.n1 == "predict"
  with pytest.raises(LearnjaxError, match="3 rows of labels .* 2 seeds"):
    learnjax.learnability((np.zeros((3, 300), int), y3), data="digits", seeds=2, **SIZES)
  with pytest.raises(LearnjaxError, match="a predict function returns labels"):
    learnjax.learnability(lambda x: np.zeros((2, len(x)), int), data="digits", seeds=2, **SIZES)
  try:
    import pandas  # noqa: F401  optional: to_pandas says so when it is missing
  except ImportError:
    with pytest.raises(ImportError, match="to_pandas\\(\\) needs pandas"):
      r.to_pandas()
  else:
    frame = r.to_pandas()
    assert list(frame.index) == [0, 1] and frame["learnability"].tolist() == r.learnability.tolist()
