"""The report: layouts from hand-made stored results, and the command line on a real tiny run."""

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from learnjax import report
from learnjax.errors import LearnjaxError
from learnjax.store import Store

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def stats(values):
  values = np.asarray(values, float)
  return {"mean": float(values.mean()), "std": float(values.std()), "per_seed": values.tolist()}


def summary(seeds, epochs=10, train_error=0.0):
  return {"epochs": [epochs] * seeds, "train_error": [train_error] * seeds,
          "final_learning_rate": [0.01] * seeds, "diverged": [False] * seeds,
          "diverged_epoch": [-1] * seeds, "seconds": 1.0}


def save_cell(store, variant="true", n1="mlp_1", n2=None, n1_batch=64, n1_epoch=None,
              n1_preds=None, n2_preds=None, y=None, learn=None, acc=None, params=100,
              status="ok", num_classes=10, tensors=4):
  """A cell as sweep.Experiment.cell stores it; numbers from the predictions when given."""
  n2 = n2 or n1
  if n1_preds is None:
    learn = [50.0, 60.0] if learn is None else learn
    acc = [40.0, 50.0] if acc is None else acc
    seeds = len(learn)
    y = np.arange(20) % num_classes   # an N1 that is neither one-class nor at chance
    n1_preds = n2_preds = np.tile(y, (seeds, 1))
  else:
    n1_preds, n2_preds, y = np.asarray(n1_preds), np.asarray(n2_preds), np.asarray(y)
    seeds = n1_preds.shape[0]
    learn = 100 * (n1_preds == n2_preds).mean(1)   # the protocol's definitions, written out
    acc = 100 * (n1_preds == y).mean(1)
  epoch = "" if n1_epoch is None else f"__e{n1_epoch}"
  cell_id = f"{variant}__{n1}__b{n1_batch}__{n2}__b64{epoch}"
  result = {"cell": cell_id, "dataset": "digits", "variant": variant, "n1_model": n1,
            "n1_batch_size": n1_batch, "n2_model": n2, "n2_batch_size": 64, "n1_epoch": n1_epoch,
            "seeds": seeds, "d1": 8, "d2": 8, "d3": len(y), "num_classes": num_classes,
            "n1_params": params, "n1_param_tensors": tensors, "learnability": stats(learn),
            "n1_test_accuracy": stats(acc), "n2_test_accuracy": stats(acc),
            "n1": summary(seeds), "n2": summary(seeds), "status": status}
  store.save("cells", cell_id, result, {"n1_preds_d3": n1_preds, "n2_preds_d3": n2_preds,
                                        "y_d3": y})
  return result


def save_oom_cell(store, n1, n1_batch):
  cell_id = f"true__{n1}__b{n1_batch}__vgg11__b64"
  store.save("cells", cell_id, {
      "cell": cell_id, "status": "out_of_memory", "error": "RESOURCE_EXHAUSTED: Out of memory",
      "dataset": "digits", "variant": "true", "n1_model": n1, "n1_batch_size": n1_batch,
      "n2_model": "vgg11", "n2_batch_size": 64, "n1_epoch": None, "seeds": 2}, {})


def save_n1(store, model, preds_d3, preds_d2=None, y_d2=None, variant="true", num_classes=10,
            history=None, class_names=None):
  preds_d3 = np.asarray(preds_d3)
  seeds = preds_d3.shape[0]
  n1_id = f"{variant}__{model}__b64"
  arrays = {"n1_preds_d3": preds_d3, "y_d3": np.zeros(preds_d3.shape[1], int)}
  if preds_d2 is not None:
    arrays["n1_preds_d2"] = np.asarray(preds_d2)
    arrays["y_d2"] = np.asarray(y_d2) if y_d2 is not None else np.zeros(arrays["n1_preds_d2"].shape[1], int)
  if history is not None:
    arrays["n1_history_train_error"] = np.asarray(history, np.float32)
  store.save("n1", n1_id, {"n1": n1_id, "dataset": "digits", "variant": variant, "model": model,
                           "batch_size": 64, "seeds": seeds, "num_classes": num_classes,
                           "params": 100, "param_tensors": 4, "snapshot_epochs": [],
                           **({"class_names": class_names} if class_names else {}),
                           **summary(seeds)}, arrays)


# The config file of each experiment (the report finds its analyses from the stored config).
CONFIGS = {"T1": "t1_deep_variants.py", "T2": "t2_shallow_width_grid.py",
           "T3": "t3_cross_architecture.py", "T4": "t4_shallow_variants.py",
           "T5": "t5_mlp_variants.py", "T7": "t7_class_distribution.py",
           "T10": "t8_t11_correct_vs_agree.py:t10", "T12": "t12_mnist_mlp.py",
           "T14": "t14_batch_size.py", "F1": "f1_learnability_vs_epochs.py",
           "D5": "d5_seed_agreement.py"}


def workdir_for(tmp_path, experiment, **config):
  """A workdir whose config.json is the experiment's config as main stores it (small numbers)."""
  from learnjax.api import load_config
  workdir = str(tmp_path / "w")
  store = Store(workdir)
  stored = (load_config(os.path.join(ROOT, "configs", CONFIGS[experiment])).to_dict()
            if experiment in CONFIGS else {"experiment": experiment})
  stored.update({"seeds": 2, "data": {**stored.get("data", {}), "name": "digits"},
                 "train": {"stop_error": 0.01, "max_epochs": 10, "learning_rate": 0.01,
                           "momentum": 0.0, "plateau_factor": 0.75, "plateau_patience": 10}},
                **config)
  store.write_config(json.dumps(stored))
  return workdir, store


def test_t8_two_by_two_table_from_hand_made_predictions(tmp_path):
  workdir, store = workdir_for(tmp_path, "T10")
  y = [0, 1, 2, 3]
  # seed 0: N1 right on 0,1,2; N2 agrees on 0,1,3. seed 1: N1 right on 0 only; N2 agrees everywhere.
  save_cell(store, n1="vgg11", n1_preds=[[0, 1, 2, 0], [0, 0, 0, 0]],
            n2_preds=[[0, 1, 0, 0], [0, 0, 0, 0]], y=y)
  per_seed = report.correct_agree_table([[0, 1, 2, 0], [0, 0, 0, 0]], [[0, 1, 0, 0], [0, 0, 0, 0]], y)
  np.testing.assert_allclose(per_seed, [[[50, 25], [25, 0]], [[25, 0], [75, 0]]])
  markdown, figures = report.build_report(workdir)
  assert "# Learnability report: T10: N1 correct x N2 agrees (VGG11)" in markdown
  assert "## N1 correct × N2 agrees" in markdown   # found from the record: one N1, one N2
  assert "| N1 correct | 37.5 ± 12.5 | 12.5 ± 12.5 | 50.0 ± 25.0 |" in markdown
  assert "| N1 wrong | 50.0 ± 25.0 | 0.0 ± 0.0 | 50.0 ± 25.0 |" in markdown
  assert "| total | 87.5 ± 12.5 | 12.5 ± 12.5 | 100 |" in markdown
  # agree | correct: seed 0 2/3, seed 1 1/1; agree | wrong: seed 0 1/1, seed 1 3/3.
  assert "on 83.3% of the examples N1 gets right and on 100.0% of those it gets wrong" in markdown


def test_d5_agreement_matrix_and_distinct_predictions(tmp_path):
  workdir, store = workdir_for(tmp_path, "D5", n2={"model": "none"})
  preds = [[0, 1, 2, 3], [0, 1, 2, 0], [0, 1, 1, 1]]
  save_n1(store, "shallow_cnn_16", preds, preds_d2=np.zeros((3, 5), int))
  np.testing.assert_array_equal(report.distinct_counts(preds), [1, 1, 2, 3])
  markdown, figures = report.build_report(workdir)
  assert "| seed 0 | 100.0 | 75.0 | 50.0 |" in markdown
  assert "| seed 1 | 75.0 | 100.0 | 50.0 |" in markdown
  assert "| seed 2 | 50.0 | 50.0 | 100.0 |" in markdown
  assert "mean over seed pairs 58.3 ± 11.8%" in markdown
  # Seed disagreement's prediction of the test accuracy (true labels all 0: accuracy 25, 50, 25).
  assert "| shallow_cnn_16 (true, batch 64) | 33.3 ± 11.8 | 58.3 ± 5.9 | 25.0 ± 10.2 |" in markdown
  assert "| shallow_cnn_16 (true, batch 64) | 50.0 | 25.0 | 25.0 |" in markdown
  # N1 only: every N1 analysis (the class distribution of its D2 labels, too).
  assert set(figures) == {"seed_agreement.png", "distinct_predictions.png", "class_distribution.png"}
  assert "|D2| = 5, |D3| = 4" in markdown
  assert "No finished cells (only N1s are stored)" in markdown
  assert "none of its cells is finished" not in markdown   # n2.model = none: no cells expected


def test_t7_class_distribution(tmp_path):
  workdir, store = workdir_for(tmp_path, "T7")
  save_n1(store, "mlp_1", [[0, 0]], preds_d2=[[0, 0, 0, 1], [0, 1, 1, 1]], y_d2=[0, 1, 2, 2],
          num_classes=3)
  save_n1(store, "mlp_1", [[0, 0]], preds_d2=[[2, 2, 2, 2], [2, 2, 2, 2]], y_d2=[0, 1, 2, 2],
          num_classes=3, variant="random_labels")
  save_cell(store, variant="true", learn=[70.0, 80.0], acc=[80.0, 90.0], num_classes=3)
  markdown, figures = report.build_report(workdir)
  assert "| mlp_1 | true | 50.0 | 50.0 | 0.0 | 75.0 ± 5.0 |" in markdown
  assert "| mlp_1 | random_labels | 0.0 | 0.0 | 100.0 | – |" in markdown
  assert "| (true labels of D2) | – | 25.0 | 25.0 | 50.0 | – |" in markdown
  # random labels come before true data, as in the paper's tables
  assert markdown.index("| mlp_1 | random_labels") < markdown.index("| mlp_1 | true")
  assert "class_distribution.png" in figures
  assert "is trained but none of its cells is finished" not in markdown   # n2.model = none


def test_t14_batch_grid_with_out_of_memory(tmp_path):
  workdir, store = workdir_for(tmp_path, "T14")
  save_cell(store, n1="vgg11", n2="vgg11", n1_batch=32, learn=[80.0, 82.0])
  save_cell(store, n1="vgg11", n2="vgg11", n1_batch=64, learn=[70.0, 72.0])
  save_oom_cell(store, "densenet121", 64)
  save_cell(store, n1="densenet121", n2="vgg11", n1_batch=32, learn=[60.0, 60.0])
  markdown, figures = report.build_report(workdir)
  assert "| N1 | batch 32 | batch 64 |" in markdown
  assert "| vgg11 | 81.0 ± 1.0 | 71.0 ± 1.0 |" in markdown
  assert "| densenet121 | 60.0 ± 0.0 | OOM |" in markdown
  assert "- out of memory: densenet121 → vgg11 (true, N1 batch 64): RESOURCE_EXHAUSTED" in markdown
  from learnjax import metrics
  oom = " | ".join(["OOM"] * len(metrics.names()))
  assert f"| true | densenet121 | 64 | vgg11 | 64 | {oom} | – | – | out of memory |" in markdown
  assert "learnability_vs_batch_size.png" in figures


def test_grid_with_params_and_missing_entry(tmp_path):
  workdir, store = workdir_for(tmp_path, "T2", n1={"model": "shallow_cnn_16,shallow_cnn_1024"})
  save_cell(store, n1="shallow_cnn_16", n2="shallow_cnn_16", learn=[70.0, 70.0], params=2986)
  save_cell(store, n1="shallow_cnn_16", n2="shallow_cnn_1024", learn=[75.0, 75.0], params=2986)
  save_cell(store, n1="shallow_cnn_1024", n2="shallow_cnn_1024", learn=[90.0, 92.0],
            acc=[60.0, 62.0], params=200000)
  markdown, figures = report.build_report(workdir)
  assert "| N1 \\ N2 | shallow_cnn_16 | shallow_cnn_1024 | N1 params | N1 test acc % |" in markdown
  assert "| shallow_cnn_16 | 70.0 ± 0.0 | 75.0 ± 0.0 | 2,986 | 45.0 ± 5.0 |" in markdown
  assert "| shallow_cnn_1024 | – | 91.0 ± 1.0 | 200,000 | 61.0 ± 1.0 |" in markdown
  assert "grid entry without a finished cell: N1 shallow_cnn_1024, N2 shallow_cnn_16" in markdown
  assert list(figures) == ["learnability_grid_true.png", "learnability_vs_generalisation.png"]


def test_t3_grid_has_layers(tmp_path):
  workdir, store = workdir_for(tmp_path, "T3")
  save_cell(store, n1="resnet18", n2="vgg11", params=11_000_000)
  save_cell(store, n1="vgg11", n2="vgg11", params=9_000_000, tensors=22)
  markdown, _ = report.build_report(workdir)
  assert "## Learnability grid (rows N1, columns N2)" in markdown
  assert "| N1 params | N1 layers | N1 test acc % |" in markdown   # N1s differ in layer count
  assert "| resnet18 | 55.0 ± 5.0 | 11,000,000 | 4 | 45.0 ± 5.0 |" in markdown


def test_variants_table_t5(tmp_path):
  workdir, store = workdir_for(tmp_path, "T5")
  for variant, learn in (("true", [80.0, 90.0]), ("random_labels", [20.0, 30.0]),
                         ("random_images", [40.0, 40.0])):
    save_cell(store, variant=variant, n1="mlp_2", learn=learn, acc=[10.0, 12.0] if variant != "true"
              else [50.0, 52.0])
  markdown, figures = report.build_report(workdir)
  assert ("| N1 | learnability % (random labels) | learnability % (random images) | "
          "learnability % (true data) | N1 test acc % (true data) |") in markdown
  assert "| mlp_2 | 25.0 ± 5.0 | 40.0 ± 0.0 | 85.0 ± 5.0 | 51.0 ± 1.0 |" in markdown
  assert "learnability_per_variant.png" in figures


def test_t12_table(tmp_path):
  workdir, store = workdir_for(tmp_path, "T12")
  save_cell(store, n1="mnist_mlp_2", n2="mnist_mlp_4", params=1600, learn=[90.0, 92.0])
  save_cell(store, n1="mnist_mlp_10", n2="mnist_mlp_4", params=8000, learn=[95.0, 95.0])
  markdown, _ = report.build_report(workdir)
  assert "| mnist_mlp_2 | 1,600 | 91.0 ± 1.0 | 45.0 ± 5.0 |" in markdown
  assert markdown.index("| mnist_mlp_2 |") < markdown.index("| mnist_mlp_10 |")  # natural order


def test_f1_points_table_and_figure(tmp_path):
  workdir, store = workdir_for(tmp_path, "F1")
  save_cell(store, n1="shallow_cnn_16", n1_epoch=1, learn=[90.0, 90.0], acc=[20.0, 30.0])
  save_cell(store, n1="shallow_cnn_16", n1_epoch=5, learn=[80.0, 80.0], acc=[50.0, 50.0])
  save_cell(store, n1="shallow_cnn_16", learn=[70.0, 74.0], acc=[60.0, 60.0])
  save_n1(store, "shallow_cnn_16", [[0, 0], [0, 0]],
          history=[[0.9, 0.5, 0.3, np.nan], [0.8, 0.4, 0.2, 0.1]])
  markdown, figures = report.build_report(workdir)
  assert "| shallow_cnn_16 | 1 | 90.0 ± 0.0 | 75.0 ± 5.0 |" in markdown
  assert "| shallow_cnn_16 | 5 | 80.0 ± 0.0 | 50.0 ± 0.0 |" in markdown
  assert "| shallow_cnn_16 | final (≈10) | 72.0 ± 2.0 | 40.0 ± 0.0 |" in markdown
  assert list(figures) == ["learnability_vs_epochs.png", "learnability_vs_generalisation.png"]
  points = report.f1_points(store.finished("cells"))
  assert [(e, final) for e, final, _ in points] == [(1.0, False), (5.0, False), (10.0, True)]


def test_diverged_and_unknown_experiment(tmp_path):
  workdir = str(tmp_path / "w")
  store = Store(workdir)  # no config.json at all
  result = save_cell(store, n1="mlp_1", learn=[50.0, 50.0])
  result["status"] = "diverged"
  result["n2"]["diverged"] = [False, True]
  result["n2"]["diverged_epoch"] = [-1, 3]
  store.save("cells", result["cell"], result, store.load("cells", result["cell"])[1])
  os.makedirs(os.path.join(workdir, "checkpoints", "n1", "true__mlp_2__b64"))
  markdown, figures = report.build_report(workdir)
  assert figures == {}
  assert "N1 training in progress or interrupted (checkpoint, no result yet): true__mlp_2__b64" in markdown
  assert "## All cells" in markdown and "## Notes" in markdown
  assert "- diverged (N2 seed 1 epoch 3): mlp_1 → mlp_1 (true, N1 batch 64)" in markdown
  assert "- seeds: 2 per cell" in markdown and "- data: digits; |D1| = 8" in markdown


def test_reference_numbers_side_by_side(tmp_path):
  workdir, store = workdir_for(tmp_path, "T4")
  save_cell(store, n1="shallow_cnn_16", learn=[70.0, 74.0])
  ref = tmp_path / "ref.json"
  ref.write_text(json.dumps({"source": "paper, Table 4", "cells": [
      {"variant": "true", "n1_model": "shallow_cnn_16", "n2_model": "shallow_cnn_16",
       "learnability": 78.0, "n1_test_accuracy": {"mean": 50.0, "std": 1.0}},
      {"variant": "true", "n1_model": "shallow_cnn_1024", "learnability": 90.0}]}))
  markdown, _ = report.build_report(workdir, str(ref))
  assert "| shallow_cnn_16 | 72.0 ± 2.0 (ref 78.0) | 45.0 ± 5.0 (ref 50.0) |" in markdown
  assert "## Comparison with the reference" in markdown and "paper, Table 4" in markdown
  assert "| learnability | 72.0 ± 2.0 | 78.0 | -6.0 |" in markdown
  assert "| n1_test_accuracy | 45.0 ± 5.0 | 50.0 ± 1.0 | -5.0 |" in markdown
  assert "variant true, n1_model shallow_cnn_1024 | – | no finished cell |" in markdown
  ref.write_text(json.dumps({"cells": [{"n1_model": "x", "learnabilty": 3}]}))
  with pytest.raises(LearnjaxError, match="unknown key"):
    report.build_report(workdir, str(ref))
  ref.write_text("[1, 2")
  with pytest.raises(LearnjaxError, match="cannot read"):
    report.build_report(workdir, str(ref))


def test_report_does_not_import_jax(tmp_path):
  workdir, store = workdir_for(tmp_path, "T4")
  save_cell(store, n1="shallow_cnn_16")
  code = ("import sys; from learnjax import report; report.build_report(sys.argv[1]); "
          "assert 'jax' not in sys.modules, 'jax imported'")
  proc = subprocess.run([sys.executable, "-c", code, workdir], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)
  assert proc.returncode == 0, proc.stderr


def run_report(args):
  return subprocess.run([sys.executable, "-m", "learnjax.report", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)


def test_cli_on_a_real_tiny_f1_run(tmp_path):
  from learnjax import sweep
  spec = importlib.util.spec_from_file_location(
      "f1_config", os.path.join(ROOT, "configs", "f1_learnability_vs_epochs.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config("smoke")
  config.n1.model = "mlp_1"
  config.n1.snapshot_epochs = "1"
  config.seeds = 2
  config.train.max_epochs = 2
  config.data.n1_size, config.data.n2_size, config.data.test_size = 64, 64, 50
  workdir = str(tmp_path / "run")
  sweep.train_and_evaluate(config, workdir, out=lambda *a: None)
  # Every metric is in the stored record and agrees with the stored arrays it is computed from;
  # the final N1's cell has both networks' probabilities, the snapshot's has none.
  from learnjax import metrics
  store = Store(workdir)
  for cell in store.finished("cells"):
    arrays = store.load("cells", cell["cell"])[1]
    assert metrics.complete(cell, arrays) == (cell, [])
    assert ("kl_n1_n2" in cell) == (cell["n1_epoch"] is None)
  out = tmp_path / "out"
  proc = run_report([f"--workdir={workdir}", f"--out={out}"])
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == str(out / "report.md")
  markdown = (out / "report.md").read_text()
  for section in ("# Learnability report: F1", "## Learnability and test error along N1's training",
                  "## Notes", "## All cells",
                  "| mlp_1 | 1 |", "| mlp_1 | final (≈2) |", "- seeds: 2 per cell"):
    assert section in markdown
  png = out / "learnability_vs_epochs.png"
  assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  # The default out folder is WORKDIR/report.
  proc = run_report([f"--workdir={workdir}"])
  assert proc.returncode == 0 and os.path.exists(os.path.join(workdir, "report", "report.md"))


@pytest.mark.parametrize("setup, message", [
    ("empty", "no finished results"),
    ("missing", "does not exist"),
    ("corrupt", "cannot read"),
    ("no_flag", "--workdir is required"),
])
def test_cli_bad_input_gets_one_error_line(tmp_path, setup, message):
  workdir = tmp_path / "w"
  args = [f"--workdir={workdir}"]
  if setup == "empty":
    workdir.mkdir()
  elif setup == "corrupt":
    folder = workdir / "cells" / "c1"
    folder.mkdir(parents=True)
    (folder / "result.json").write_text("{not json")
  elif setup == "no_flag":
    args = []
  proc = run_report(args)
  assert proc.returncode != 0
  assert "Traceback" not in proc.stderr
  errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
  assert len(errors) == 1 and message in errors[0], proc.stderr
  assert setup != "missing" or not workdir.exists()   # the report creates no workdir


# --------------------------------------------------------------------------------------------
# Learnability against generalisation


def test_kendall_tau_hand_computed_and_in_the_report(tmp_path):
  # learnability 50 < 60 < 70; accuracy 30, 50, 40: pairs (1,2) and (1,3) concordant, (2,3)
  # discordant, no ties: tau = (2 - 1) / 3.
  assert report.kendall_tau([50, 60, 70], [30, 50, 40]) == pytest.approx(1 / 3)
  assert report.kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
  workdir, store = workdir_for(tmp_path, "T5")
  for n1, learn, acc in (("mlp_1", 50.0, 30.0), ("mlp_2", 60.0, 50.0), ("mlp_3", 70.0, 40.0)):
    save_cell(store, n1=n1, learn=[learn] * 5, acc=[acc] * 5)   # 5 seeds: enough for a verdict
  markdown, figures = report.build_report(workdir)
  # Seeds agree exactly, so every bootstrap resample gives the same tau: the interval is a point.
  # Over 3 cells, |tau| = 1/3 or more in all 6 orderings: p = 1. Kappa and GDE accuracy come from
  # the stored predictions (identical for every cell here): constant, so their tau is undefined.
  assert ("| N1 test accuracy (all cells) | 3 | +0.33 [+0.33, +0.33], p = 1.000 | – | – |"
          in markdown)
  # N1's training error is 0: gap = 100 - accuracy = 70, 50, 60 -> tau = (1 - 2) / 3.
  assert ("| N1 generalisation gap (all cells) | 3 | -0.33 [-0.33, -0.33], p = 1.000 | – | – |"
          in markdown)
  # A point interval away from 0 is no verdict: 3 cells cannot rule out chance.
  assert "**Verdicts on all 3 cells**" in markdown
  assert ("- **learnability** against N1 test accuracy: no verdict, too few cells: with 3 cells no "
          "ordering reaches p < 0.05 (the smallest p is 0.333). τ = +0.33 [+0.33, +0.33], "
          "p = 1.000 (3 cells).") in markdown
  assert ("- **kappa** against N1 test accuracy: no verdict, τ is undefined: the measure or the "
          "target takes one value across the cells.") in markdown
  assert "learnability_vs_generalisation.png" in figures


def test_too_few_seeds_for_a_verdict(tmp_path):
  workdir, store = workdir_for(tmp_path, "T5")
  for i in range(6):
    save_cell(store, n1=f"mlp_{i + 1}", learn=[50.0 + i] * 2, acc=[30.0 + i] * 2)
  markdown, _ = report.build_report(workdir)
  # Six cells in order: p = 2 / 720; but two seeds give only four resamples.
  assert ("- **learnability** against N1 test accuracy: no verdict, too few seeds (2; the seed "
          "bootstrap needs 5 to bound τ). τ = +1.00 [+1.00, +1.00], p = 0.003 (6 cells).") in markdown
  assert "ranks the cells as" not in markdown


def test_a_verdict_needs_p_below_005_and_an_interval_without_0(tmp_path):
  workdir, store = workdir_for(tmp_path, "T5")
  rng = np.random.default_rng(0)
  for i in range(6):
    save_cell(store, n1=f"mlp_{i + 1}", learn=list(50 + 5 * i + rng.normal(size=5)),
              acc=list(30 + 4 * i + rng.normal(size=5)))
  markdown, _ = report.build_report(workdir)
  assert ("- **learnability** ranks the cells as N1's test accuracy does: τ = +1.00 [+1.00, +1.00], "
          "p = 0.003 (6 cells).") in markdown
  assert "- **learnability** is higher where the generalisation gap is smaller: τ = -1.00" in markdown
  # Seed noise as large as the cells' spread: the interval crosses 0.
  workdir, store = workdir_for(tmp_path / "noisy", "T5")
  for i in range(6):
    save_cell(store, n1=f"mlp_{i + 1}", learn=list(50 + 0.2 * i + 3 * rng.normal(size=5)),
              acc=list(30 + 4 * i + rng.normal(size=5)))
  markdown, _ = report.build_report(workdir)
  line = [l for l in markdown.splitlines()
          if l.startswith("- **learnability** against N1 test accuracy")][0]
  assert "no verdict" in line and "includes 0" in line


def test_bootstrap_interval_is_deterministic_and_resamples_seeds():
  xs = [[50, 60, 55], [60, 58, 70], [70, 75, 65], [40, 80, 45]]
  ys = [[30, 35, 31], [50, 48, 52], [40, 60, 41], [20, 30, 25]]
  lo, hi = report.bootstrap_tau(xs, ys)
  assert (lo, hi) == report.bootstrap_tau(xs, ys)   # a fixed generator: the report is reproducible
  tau = report.kendall_tau([np.mean(x) for x in xs], [np.mean(y) for y in ys])
  assert -1 <= lo <= tau <= hi <= 1 and lo < hi     # seeds differ: the interval has a width


def test_correlation_skipped_with_fewer_than_three_cells(tmp_path):
  workdir, store = workdir_for(tmp_path, "T5")
  save_cell(store, n1="mlp_1")
  save_cell(store, n1="mlp_2")
  markdown, figures = report.build_report(workdir)
  assert ("## Learnability against generalisation\n\nNot computed: a rank correlation needs at "
          "least 3 cells with a learnability and N1's test accuracy, and this report has 2.") in markdown
  assert "learnability_vs_generalisation.png" not in figures


# --------------------------------------------------------------------------------------------
# Degenerate N1s, D5 for many seeds, class names, figure sizes


def test_degenerate_cells_are_flagged(tmp_path):
  workdir, store = workdir_for(tmp_path, "T1")
  y = np.arange(20) % 10
  # One class everywhere: N1 and N2 agree on everything, a 100% learnability that means nothing.
  save_cell(store, n1="vgg11", n1_preds=np.zeros((2, 20), int), n2_preds=np.zeros((2, 20), int), y=y)
  # True data, spread predictions, but at chance: 2 of 20 right (10%).
  wrong = np.stack([(y + 1) % 10, (y + 2) % 10])
  wrong[:, :2] = y[:2]
  save_cell(store, n1="resnet18", n1_preds=wrong, n2_preds=wrong, y=y)
  markdown, _ = report.build_report(workdir)
  assert "**Warning: every cell's N1 is degenerate**" in markdown
  assert "| vgg11 | 100.0 ± 0.0 ⚠ |" in markdown
  assert ("degenerate N1 (⚠) in vgg11 → vgg11 (true, N1 batch 64): it predicts a single class "
          "for all of D3 (every seed)") in markdown
  assert "resnet18 → resnet18 (true, N1 batch 64): it has test accuracy 10.0%, at chance" in markdown
  assert "this learnability measures nothing" in markdown
  assert "Not computed" in markdown   # degenerate cells are left out of the correlation


def test_random_label_n1_at_chance_is_not_degenerate(tmp_path):
  workdir, store = workdir_for(tmp_path, "T1")
  y = np.arange(20) % 10
  preds = np.stack([(y + 1) % 10, (y + 3) % 10])    # spread over classes, 0% right
  save_cell(store, variant="random_labels", n1="vgg11", n1_preds=preds, n2_preds=preds, y=y)
  markdown, _ = report.build_report(workdir)
  assert "degenerate" not in markdown and "⚠" not in markdown


def png_size(path) -> tuple[int, int]:
  data = open(path, "rb").read(24)
  return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_d5_many_seeds_stays_readable(tmp_path):
  workdir, store = workdir_for(tmp_path, "D5", n2={"model": "none"})
  rng = np.random.default_rng(0)
  preds = rng.integers(0, 10, (40, 200))
  save_n1(store, "shallow_cnn_16", preds)
  markdown, figures = report.build_report(workdir)
  # At most min(seeds, classes) = 10 distinct predictions: 10 columns, not 40.
  assert "| N1 | 1 | 2 | 3 | 4 | 5 | 6 | 7 | 8 | 9 | 10 |" in markdown
  assert "| 11 |" not in markdown
  assert "| seed 0 | seed 1 |" not in markdown   # no 40 x 40 table ...
  assert "|  | mean | min | max |" in markdown   # ... but each seed against the others
  assert "% of D3 on which a seed agrees with each of the other 39 seeds" in markdown
  out = tmp_path / "out"
  report.write_report(markdown, figures, str(out))
  for name in ("seed_agreement.png", "distinct_predictions.png"):
    width, height = png_size(out / name)
    assert width <= 2400 and height <= 1800, (name, width, height)
  axis = figures["distinct_predictions.png"].axes[0]
  assert axis.get_xlim()[1] < 11
  assert not figures["seed_agreement.png"].axes[0].texts   # no per-cell annotations at 40 seeds
  assert len(markdown) < 20_000


def test_t7_uses_class_names_when_stored(tmp_path):
  workdir, store = workdir_for(tmp_path, "T7", n2={"model": "none"})
  save_n1(store, "mlp_1", [[0, 0]], preds_d2=[[0, 0, 0, 1], [0, 1, 1, 1]], y_d2=[0, 1, 2, 2],
          num_classes=3, class_names=["cat", "dog", "ship"])
  markdown, figures = report.build_report(workdir)
  assert "| N1 | variant | cat | dog | ship | learnability % |" in markdown
  labels = [t.get_text() for t in figures["class_distribution.png"].axes[0].get_xticklabels()]
  assert labels == ["cat", "dog", "ship"]


def test_small_grid_heatmap_title_fits(tmp_path):
  workdir, store = workdir_for(tmp_path, "T2")
  save_cell(store, n1="shallow_cnn_16", n2="shallow_cnn_16")
  _, figures = report.build_report(workdir)
  fig = figures["learnability_grid_true.png"]
  fig.canvas.draw()
  title = fig._suptitle.get_window_extent()
  assert 0 <= title.x0 and title.x1 <= fig.bbox.width


# --------------------------------------------------------------------------------------------
# The console table and progress lines


def test_console_table_shows_status_and_says_epochs_are_means(tmp_path):
  from learnjax.report import console
  workdir, store = workdir_for(tmp_path, "T14")
  ok = save_cell(store, n1="vgg11", n1_batch=32)
  diverged = save_cell(store, n1="vgg11", n1_batch=64)
  diverged["status"] = "diverged"
  diverged["n1"]["diverged"], diverged["n1"]["diverged_epoch"] = [False, True], [-1, 4]
  unconverged = save_cell(store, n1="vgg11", n1_batch=128)
  unconverged["n1"]["train_error"] = [0.2, 0.005]
  save_oom_cell(store, "densenet121", 64)
  oom = store.load("cells", "true__densenet121__b64__vgg11__b64", with_arrays=False)[0]
  table = console.format_table([ok, diverged, unconverged, oom], stop_error=0.01, workdir=workdir)
  lines = table.splitlines()
  assert lines[0].split() [-1] == "status"
  assert lines[2].endswith("  ok")
  assert lines[3].endswith("diverged (N1 seed 1 epoch 4)")
  assert lines[4].endswith("not converged (N1 seed 0 ≥ 1% training error)")
  assert "out of memory" in lines[5] and "50.0" not in lines[5]
  assert lines[-1] == "Epochs: mean over seeds."
  degenerate = save_cell(store, n1="mlp_1", n1_preds=np.zeros((2, 20), int),
                         n2_preds=np.zeros((2, 20), int), y=np.arange(20) % 10)
  table = console.format_table([degenerate], workdir=workdir)
  assert "degenerate N1 (predicts a single class" in table and "measures nothing" in table


def test_status_under_stop_error_zero_says_every_epoch_was_trained(tmp_path):
  """train.stop_error=0 never stops early: no seed is "not converged", each trained max_epochs."""
  from learnjax.report import console, context, sections, status
  train = {"stop_error": 0.0, "max_epochs": 10, "learning_rate": 0.01}
  workdir, store = workdir_for(tmp_path, "T14", train=train)
  ok = save_cell(store, n1="vgg11", n1_batch=32)
  ok["n1"]["train_error"], ok["n2"]["train_error"] = [0.2, 0.3], [0.0, 0.1]
  store.save("cells", ok["cell"], ok, store.load("cells", ok["cell"])[1])
  diverged = save_cell(store, n1="vgg11", n1_batch=64, status="diverged")
  diverged["n1"]["diverged"], diverged["n1"]["diverged_epoch"] = [False, True], [-1, 4]
  snapshot = save_cell(store, n1="vgg11", n1_batch=128, n1_epoch=3)
  snapshot["n2"]["epochs"] = [7, 7]
  text = "trained all 10 epochs (train.stop_error=0: no early stop)"
  assert status.status_text(ok, 0.0) == text
  assert status.status_text(diverged, 0.0) == "diverged (N1 seed 1 epoch 4)"
  assert status.status_text(snapshot, 0.0) == (   # a snapshot N1 stops on purpose: N2's epochs
      "trained all 7 epochs (train.stop_error=0: no early stop)")
  ok["n2"]["epochs"] = [8, 8]
  assert status.status_text(ok, 0.0) == (
      "trained all epochs (N1 10, N2 8) (train.stop_error=0: no early stop)")
  # The same seeds under a 1% stop error did not converge.
  assert status.status_text(ok, 0.01) == "not converged (N1 all seeds; N2 seed 1 ≥ 1% training error)"
  # The console table and the report read the stop error the run stored: 0, not the default.
  lines = console.format_table([store.load("cells", ok["cell"])[0]], stop_error=0.0,
                               workdir=workdir).splitlines()
  assert lines[2].endswith(text)
  ctx = context.load(workdir)
  assert ctx.stop_error == 0.0
  table = sections.section_cells(ctx)
  assert text in table and "not converged" not in table.split("\n\n")[0]


def test_console_summary_of_an_n1_only_experiment(tmp_path):
  import ml_collections
  from learnjax.report import console
  workdir, store = workdir_for(tmp_path, "D5", n2={"model": "none"})
  y = np.arange(20) % 10
  save_n1(store, "shallow_cnn_16", np.stack([y, (y + 1) % 10]))
  store.save("n1", "true__shallow_cnn_16__b64", {**store.load("n1", "true__shallow_cnn_16__b64")[0]},
             {"n1_preds_d3": np.stack([y, y]), "y_d3": y})
  config = ml_collections.ConfigDict({"n2": {"model": "none"}, "train": {"stop_error": 0.01}})
  text = console.summary(config, workdir, [])
  assert "(no finished cells)" not in text
  header, _, row = text.splitlines()[:3]
  import re
  assert re.split(r"\s{2,}", header)[:5] == ["variant", "N1", "N1 batch", "seeds", "N1 test acc %"]
  # Two identical seeds, both right everywhere: GDE accuracy 100, its error 0, CACE and the
  # class-wise ECE 0.
  assert row.split() == ["true", "shallow_cnn_16", "64", "2", "100.0", "±", "0.0", "100.0", "±",
                         "0.0", "0.0", "±", "0.0", "0.0", "0.0", "10", "ok"]
  assert "N1 only (n2.model = none)" in text and "Epochs: mean over seeds." in text


def test_progress_lines_number_seeds_from_zero():
  import io
  import types
  from learnjax.progress import EpochPrinter
  stream = io.StringIO()
  printer = EpochPrinter("N1 mlp_1 true", 100, 4, 10, interval=0.0, stream=stream)
  log = types.SimpleNamespace(trained=np.ones(2, bool), done=np.zeros(2, bool), epoch=1,
                              train_error=np.array([0.5, 0.4]), learning_rate=np.array([0.01, 0.01]))
  printer(log, None, np.array([2, 3]))
  assert "| seeds 2-3 of 4 |" in stream.getvalue()


def test_correlation_within_each_n2_never_pooled_across_n2s(tmp_path):
  """Three N1s, two N2s: with N2 mlp_4 learnability rises with N1's accuracy (tau +1), with
  N2 mlp_5 it falls (tau -1); pooling them would mix two yardsticks."""
  workdir, store = workdir_for(tmp_path, "T5")
  for n1, acc in (("mlp_1", 30.0), ("mlp_2", 40.0), ("mlp_3", 50.0)):
    save_cell(store, n1=n1, n2="mlp_4", learn=[acc + 10] * 2, acc=[acc] * 2)
    save_cell(store, n1=n1, n2="mlp_5", learn=[100 - acc] * 2, acc=[acc] * 2)
  markdown, figures = report.build_report(workdir)
  assert "| N1 test accuracy (N2 mlp_4) | 3 | +1.00 [+1.00, +1.00], p = 0.333 |" in markdown
  assert "| N1 test accuracy (N2 mlp_5) | 3 | -1.00 [-1.00, -1.00], p = 0.333 |" in markdown
  # Each list of verdicts says which cells it covers.
  assert "**Verdicts on the 3 cells with N2 mlp_4**" in markdown
  assert "**Verdicts on the 3 cells with N2 mlp_5**" in markdown
  assert "(all cells)" not in markdown
  assert "2 different N2 setups" in markdown and "N2 mlp_4: 3 cells; N2 mlp_5: 3 cells" in markdown
  fig = figures["learnability_vs_generalisation.png"]
  titles = [legend.get_title().get_text() for legend in fig.legends]
  assert titles == ["N1 (colour)", "N2 (marker)"]
  assert [t.get_text() for t in fig.legends[1].get_texts()] == ["N2 mlp_4", "N2 mlp_5"]
  assert len(fig.legends[0].get_texts()) == 3


def test_gap_row_missing_says_why(tmp_path):
  workdir, store = workdir_for(tmp_path, "T5")
  for n1, acc in (("mlp_1", 30.0), ("mlp_2", 40.0), ("mlp_3", 50.0)):
    cell = save_cell(store, n1=n1, learn=[acc + 10] * 2, acc=[acc] * 2)
    cell["n1_source"] = "predictions"
    cell["n1"]["train_error"] = [None, None]
    store.save("cells", cell["cell"], cell, store.load("cells", cell["cell"])[1])
  markdown, _ = report.build_report(workdir)
  assert "N1 generalisation gap (" not in markdown
  assert ("The row against N1's generalisation gap is missing: no cell has N1's training error "
          "(3 cell(s) have an N1 given as predictions without its labels of D1") in markdown
