"""An N1 given as predictions (n1.model=predictions) and the D2/D3 export it is made from."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from learnjax import config as config_lib
from learnjax import sweep
from learnjax.data import export, sources
from learnjax.errors import LearnjaxError

SIZES = (300, 300, 200)   # |D1|, |D2|, |D3| of the embedded digits


def _config(predictions_file, **n1):
  config = config_lib.make_smoke(config_lib.base_config(), max_epochs=3, seeds=2, sizes=SIZES)
  config.n1.model = "predictions"
  config.n1.predictions = str(predictions_file)
  config.n2.model = "mlp_1"
  config.train.learning_rate = 0.1
  for k, v in n1.items():
    setattr(config.n1, k, v)
  return config


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
  config = _config("")
  path = str(tmp_path_factory.mktemp("export") / "d2_d3.npz")
  export.export(config.data, path)
  return dict(np.load(path))


def test_export_writes_d2_and_d3_as_learnjax_splits_them(exported, digits_pool, small_splits):
  from learnjax.data import splits
  s = splits.make_splits(digits_pool, *SIZES)
  n_train = len(digits_pool.y_train)
  np.testing.assert_array_equal(exported["d2_index"], np.arange(n_train - SIZES[1], n_train))
  np.testing.assert_array_equal(exported["d3_index"], np.arange(SIZES[2]))
  np.testing.assert_array_equal(exported["d2_images"], digits_pool.x_train[-SIZES[1]:])
  np.testing.assert_array_equal(exported["d3_images"], digits_pool.x_test[:SIZES[2]])
  assert exported["d2_images"].dtype == np.uint8
  np.testing.assert_array_equal(exported["d2_images_normalised"], s.d2.x)
  np.testing.assert_array_equal(exported["d3_images_normalised"], s.d3.x)
  np.testing.assert_allclose((exported["d3_images"] - exported["mean"]) / exported["std"],
                             exported["d3_images_normalised"], rtol=1e-5, atol=1e-5)
  np.testing.assert_array_equal(exported["d2_labels"], s.d2.y)
  assert int(exported["num_classes"]) == 10 and str(exported["dataset"]) == "digits"


def test_true_labels_as_predictions_learnability_equals_n2_test_accuracy(exported, tmp_path,
                                                                          digits_pool,
                                                                          monkeypatch):
  """N1 = the truth: per seed, agreeing with N1 on D3 is being right on D3."""
  named = dataclasses.replace(digits_pool, class_names=tuple("abcdefghij"))
  monkeypatch.setattr(sources, "load_pool", lambda data_config: named)
  truth = tmp_path / "truth.npz"
  np.savez(truth, d2=exported["d2_labels"], d3=exported["d3_labels"])
  workdir = str(tmp_path / "work")
  lines = []
  [cell] = sweep.train_and_evaluate(_config(truth), workdir, out=lines.append)
  assert cell["n1_model"] == "truth" and cell["n2_model"] == "mlp_1"
  assert cell["n1_test_accuracy"]["per_seed"] == [100.0, 100.0]
  np.testing.assert_array_equal(cell["learnability"]["per_seed"],
                                cell["n2_test_accuracy"]["per_seed"])
  assert 20 < cell["learnability"]["mean"] < 100    # N2 learnt something in 3 epochs
  assert len(set(cell["learnability"]["per_seed"])) == 2   # seeds differ (N2's init and order)
  [n1] = sweep.Store(workdir).finished("n1")
  assert n1["source"] == "predictions" and n1["model"] == "truth"
  assert n1["class_names"] == list("abcdefghij")
  assert n1["train_error"] == [None, None] and "params" not in n1
  assert not any("training" in line and line.startswith("N1") for line in lines)

  # The same file again: nothing is retrained.
  again = sweep.train_and_evaluate(_config(truth), workdir, out=lines.append)
  assert again == [cell]
  # A changed file under the same name never meets the old results.
  wrong = exported["d3_labels"].copy()
  wrong[:10] = (wrong[:10] + 1) % 10
  np.savez(truth, d2=exported["d2_labels"], d3=wrong)
  with pytest.raises(LearnjaxError, match="is not the file whose predictions"):
    sweep.train_and_evaluate(_config(truth), workdir, out=lines.append)


@pytest.mark.parametrize("arrays, message", [
    ({"d2": np.zeros(299, int), "d3": np.zeros(200, int)}, "d2 has 299 labels but D2"),
    ({"d2": np.zeros(300, int), "d3": np.zeros(201, int)}, "d3 has 201 labels but D3"),
    ({"d2": np.zeros(300, int), "d3": np.full(200, 10)}, r"labels 10..10, outside 0..9"),
    ({"d2": np.full(300, -1), "d3": np.zeros(200, int)}, "outside 0..9"),
    ({"d2": np.zeros(300), "d3": np.zeros(200, int)}, r"d2 is float64 \(300\); give \(N,\) integer"),
    ({"d2": np.zeros((300, 10), int), "d3": np.zeros(200, int)}, "d2 has 10 labels but D2"),
    ({"d2": np.zeros((3, 300), int), "d3": np.zeros(200, int)}, "3 rows of labels .* 2 seeds"),
    ({"d2": np.zeros((300, 9)), "d3": np.zeros(200, int)}, "9 columns, but the data has 10"),
    ({"d2": np.full((300, 10), np.nan), "d3": np.zeros(200, int)}, "300 rows of scores not finite"),
    ({"d2": np.zeros((2, 300, 10), int), "d3": np.zeros(200, int)}, "int64 .* give"),
    ({"d1": np.zeros(299, int), "d2": np.zeros(300, int), "d3": np.zeros(200, int)},
     "d1 has 299 labels but D1"),
    ({"d2": np.zeros(300, int)}, "lacks d3"),
])
def test_bad_predictions_are_refused_before_training(tmp_path, arrays, message):
  path = tmp_path / "bad.npz"
  np.savez(path, **arrays)
  with pytest.raises(LearnjaxError, match=message):
    sweep.Experiment(_config(path), str(tmp_path / "work"))
  assert not os.path.exists(tmp_path / "work" / "n1")


@pytest.mark.parametrize("change, message", [
    ({"n2.model": "same"}, "n2.model=same needs N1's architecture"),
    ({"data.variant": "random_labels"}, "data.variant must be 'true'"),
    ({"n1.snapshot_epochs": "1"}, "data.variant must be 'true' and n1.snapshot_epochs empty"),
    ({"n1.predictions": ""}, "needs --config.n1.predictions=FILE.npz"),
    ({"n1.predictions": "/nonexistent/p.npz"}, "no such predictions file"),
    ({"n1.name": "a,b"}, "2 names for 1 predictions files"),
])
def test_bad_settings_are_refused(tmp_path, change, message):
  path = tmp_path / "p.npz"
  np.savez(path, d2=np.zeros(300, int), d3=np.zeros(200, int))
  config = _config(path)
  for key, value in change.items():
    block, field = key.split(".")
    setattr(config[block], field, value)
  with pytest.raises(LearnjaxError, match=message):
    sweep.Experiment(config, str(tmp_path / "work"))


def test_names_of_predictions_files(tmp_path):
  a, b = tmp_path / "resnet_torch.npz", tmp_path / "other.npz"
  config = _config(f"{a},{b}")
  names = [job.n1.name for job, _ in sweep.plan(config)]
  assert names == ["resnet_torch", "other"]
  config.n1.name = "torch_a,torch_b"
  assert [job.n1.name for job, _ in sweep.plan(config)] == ["torch_a", "torch_b"]
  not_a_file = tmp_path / "x.npz"
  not_a_file.write_text("not an npz")
  with pytest.raises(LearnjaxError, match="cannot read .* as .npz"):
    sweep.Experiment(_config(not_a_file), str(tmp_path / "work"))


def _run_module(args, cwd):
  env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": cwd}
  return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, timeout=300,
                        cwd=cwd, env=env)


def test_command_lines_give_one_error_line(tmp_path):
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  path = tmp_path / "p.npz"
  np.savez(path, d2=np.zeros(3, int), d3=np.zeros(200, int))
  for args, message in [
      (["learnjax.main", "--config=configs/quickstart.py", f"--workdir={tmp_path}/w",
        "--config.n1.model=predictions", f"--config.n1.predictions={path}",
        "--config.n2.model=mlp_1", "--config.data.variant=true"], "d2 has 3 labels"),
      (["learnjax.data.export", "--config=configs/quickstart.py", f"--out={tmp_path}/x.txt"],
       "--out must name an .npz file"),
      (["learnjax.data.export", "--config=configs/nope.py", f"--out={tmp_path}/x.npz"],
       "configs/nope.py"),
      (["learnjax.data.export", "--config=configs/quickstart.py"], "give --config"),
  ]:
    proc = _run_module(args, root)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(errors) == 1 and message in errors[0], proc.stderr


def test_export_writes_d1_the_first_n1_size_training_images(exported, digits_pool):
  np.testing.assert_array_equal(exported["d1_index"], np.arange(SIZES[0]))
  np.testing.assert_array_equal(exported["d1_images"], digits_pool.x_train[:SIZES[0]])
  np.testing.assert_array_equal(exported["d1_labels"], digits_pool.y_train[:SIZES[0]])
  assert not set(exported["d1_index"]) & set(exported["d2_index"])


def test_per_seed_rows_scores_and_d1_as_a_file(exported):
  """(S, N) integer rows are the seeds' own labels; (N, K) float scores are argmaxed; d1 gives N1
  its training error (its error on D1), counted by hand."""
  from learnjax import predictions, stored_nets
  y1, y2, y3 = (exported[f"{p}_labels"] for p in ("d1", "d2", "d3"))
  rows = np.stack([y2, (y2 + 1) % 10])
  scores = np.eye(10)[y3] * 0.9 + 0.01      # probabilities, argmax = y3
  d1 = y1.copy()
  d1[:30] = (d1[:30] + 1) % 10              # wrong on 30 of 300 images: 10 % training error
  sizes = {"d1": SIZES[0], "d2": SIZES[1], "d3": SIZES[2]}
  g = predictions.given({"d1": d1, "d2": rows, "d3": scores}, sizes, 10, 2, "test")
  assert g.per_seed and g.d2.shape == (2, SIZES[1]) and g.d3.shape == (2, SIZES[2])
  np.testing.assert_array_equal(g.d2, rows)
  np.testing.assert_array_equal(g.d3, np.stack([y3, y3]))
  net = stored_nets.given_net(g, 2, y1)
  np.testing.assert_allclose(net.train_error, [0.1, 0.1])
  assert stored_nets.given_net(predictions.given({"d2": y2, "d3": y3}, sizes, 10, 2, "t"), 2,
                           y1).train_error.tolist() == [None, None]


def test_one_workdir_with_a_zoo_n1_and_a_given_n1(exported, tmp_path):
  """n1.model=mlp_1,predictions: both kinds of N1 in one table, the given one shown as given."""
  from learnjax import report
  from learnjax.report import console
  y1, y2, y3 = (exported[f"{p}_labels"] for p in ("d1", "d2", "d3"))
  mine = tmp_path / "mine.npz"
  np.savez(mine, d1=y1, d2=np.stack([y2, y2]), d3=y3)
  config = _config(mine, model="mlp_1,predictions", name="truth")
  workdir = str(tmp_path / "work")
  lines = []
  cells = sweep.train_and_evaluate(config, workdir, out=lines.append)
  assert [c["n1_model"] for c in cells] == ["mlp_1", "truth"]
  zoo, given = cells
  assert given["n1_source"] == "predictions" and "n1_source" not in zoo
  assert given["n1"]["train_error"] == [0.0, 0.0]      # right on D1: d1 was given
  assert given["n1_test_accuracy"]["per_seed"] == [100.0, 100.0]
  assert any("2 cells in this task (1 N1 trainings, 1 N1s given as predictions)" in line
             for line in lines), lines
  table = console.format_table(cells, 0.01, workdir)
  row = next(line for line in table.splitlines() if line.startswith("true   truth")
             or " truth " in line)
  assert " given " in row and "not converged (N1" not in row
  markdown, _ = report.build_report(workdir)
  assert "1 trained N1s, 1 N1s given as predictions" in markdown
  assert f"given as predictions, `{mine}`" in markdown
  assert predictions_sha(mine)[:16] in markdown
  assert "| true | truth | – | mlp_1 |" in markdown
  # Every N1 given: the report's title names them, not the config's experiment.
  only = _config(mine, name="truth")
  sweep.train_and_evaluate(only, str(tmp_path / "given"), out=lines.append)
  markdown, _ = report.build_report(str(tmp_path / "given"))
  assert markdown.startswith("# Learnability report: N1s given as predictions: truth")


def predictions_sha(path):
  from learnjax import predictions
  return predictions.file_sha256(str(path))


def test_model_list_with_predictions_refused_where_it_would_be_ambiguous(tmp_path):
  path = tmp_path / "mlp_1.npz"
  np.savez(path, d2=np.zeros(300, int), d3=np.zeros(200, int))
  with pytest.raises(LearnjaxError, match="named mlp_1, as a model of n1.model"):
    sweep.plan(_config(path, model="mlp_1,predictions"))
  config = _config(path, model="mlp_1")
  with pytest.raises(LearnjaxError, match="n1.predictions=.* is read only with n1.model=predictions"):
    sweep.plan(config)


def test_given_n1_ids_have_no_batch_size_and_old_ids_are_refused(exported, tmp_path):
  truth = tmp_path / "truth.npz"
  np.savez(truth, d2=exported["d2_labels"], d3=exported["d3_labels"])
  [(job, [cell])] = sweep.plan(_config(truth))
  assert job.id == "true__truth" and cell.id == "true__truth__mlp_1__b64"
  workdir = tmp_path / "work"
  config = _config(truth)
  config.train.max_epochs = 1
  sweep.train_and_evaluate(config, str(workdir), out=lambda line: None)
  # A workdir written when a given N1's id carried the batch size: refused, not measured twice.
  os.rename(workdir / "n1" / "true__truth", workdir / "n1" / "true__truth__b64")
  before = sorted(os.listdir(workdir / "n1"))
  with pytest.raises(LearnjaxError, match=r"stores the given N1 truth as n1/true__truth__b64"):
    sweep.train_and_evaluate(config, str(workdir), out=lambda line: None)
  assert sorted(os.listdir(workdir / "n1")) == before
