"""A tiny population end to end: trained, measured, reported; measures recomputed by hand from
the stored parameters, the scores from the tidy table, a measure added later filled without
training; bad input refused before anything trains."""

import os
import subprocess
import sys

import numpy as np
import pytest

from configs import generalisation_measures
from learnjax.errors import LearnjaxError
from learnjax.population import measures, params as params_lib, report, run, scoring, spec, table


def _tiny(axes="n1.width=4,8;train.learning_rate=0.05,0.1", store_params=True, curve=""):
  config = generalisation_measures.get_config("smoke")
  config.data.n1_size, config.data.n2_size, config.data.test_size = 100, 100, 100
  config.train.max_epochs = 4
  config.train.stop_error = 0.9
  config.population.axes = axes
  config.population.store_params = store_params
  config.population.examples = 100
  config.population.search_steps = 6
  config.population.ascent_steps = 2
  config.population.curve = curve
  config.progress_seconds = 1000.0
  return config


def _columns(workdir):
  """The tidy table as {column: array}, from the rows (pandas is optional)."""
  rows = table.load(workdir).rows
  return {k: np.asarray([r[k] for r in rows]) for k in rows[0]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("population"))
  config = _tiny(curve="50,100")   # a learnability curve per N1: the code length of its labels
  run.train(config, workdir, out=lambda line: None)
  report.write(workdir, draws=5, permutations=20)
  return config, workdir


@pytest.mark.slow
def test_the_report_and_the_tidy_table(tiny):
  _, workdir = tiny
  text = open(os.path.join(workdir, "report", "report.md")).read()
  for title in ("learnability", "GDE disagreement", "distance from init", "path norm",
                "log product of spectral norms", "PAC-Bayes flatness", "10th-percentile margin"):
    assert f"| {title} |" in text
  assert os.path.getsize(os.path.join(workdir, "report", "measures_vs_gap.png")) > 0
  scores = open(os.path.join(workdir, "report", "scores.csv")).read().splitlines()
  assert scores[0].startswith("rank,measure,sign,networks,seeds,tau,tau_lo,tau_hi,tau_p")
  assert len(scores) >= 1 + 10
  frame = _columns(workdir)
  assert len(frame["network"]) == 4 * 2
  for column in ("network", "width", "lr", "seed", "gap", "train_accuracy", "test_accuracy",
                 *measures.REGISTRY):
    assert column in frame
  assert np.all(np.isfinite(frame["code_length"]) & (frame["code_length"] > 0))
  assert np.allclose(frame["gap"], frame["train_accuracy"] - frame["test_accuracy"])
  csv = open(os.path.join(workdir, "report", "population.csv")).read().splitlines()
  assert csv[0].split(",") == list(frame) and len(csv) == 9


@pytest.mark.slow
def test_to_pandas(tiny):
  pytest.importorskip("pandas")
  _, workdir = tiny
  frame = table.load(workdir).to_pandas()
  assert len(frame) == 8 and list(frame.columns) == list(_columns(workdir))


@pytest.mark.slow
def test_measures_recomputed_by_hand_from_the_stored_parameters(tiny):
  _, workdir = tiny
  frame = _columns(workdir)
  for name in np.unique(frame["network"]):
    store, record = run._n1_unit(workdir, name)
    _, arrays = store.load("n1", record["n1"])
    init = params_lib.read(arrays, params_lib.INIT)
    final = params_lib.read(arrays, params_lib.FINAL)
    kernels = sorted(k for k in final if k.endswith("kernel"))
    rows = [r for r in table.load(workdir).rows if r["network"] == name]
    for s, row in enumerate(sorted(rows, key=lambda r: r["seed"])):
      w = [final[k][s].astype(np.float64) for k in kernels]
      w0 = [init[k][s].astype(np.float64) for k in kernels]
      assert row["dist_init"] == pytest.approx(sum(np.sum((a - b) ** 2) for a, b in zip(w, w0)))
      spec_norms = [np.linalg.svd(m, compute_uv=False)[0] for m in w]
      assert row["log_prod_of_spec"] == pytest.approx(np.log(np.prod(spec_norms) ** 2), rel=1e-6)
      assert row["params"] == sum(v[s].size for v in final.values())


@pytest.mark.slow
def test_the_initial_parameters_are_the_training_init(tiny):
  """The stored init is what training started from: an N1 trained 0 epochs has final == init."""
  _, workdir = tiny
  store, record = run._n1_unit(workdir, table.load(workdir).rows[0]["network"])
  _, arrays = store.load("n1", record["n1"])
  init = params_lib.read(arrays, params_lib.INIT)
  final = params_lib.read(arrays, params_lib.FINAL)
  assert set(init) == set(final)
  assert all(init[k].shape == final[k].shape for k in init)
  assert any(not np.allclose(init[k], final[k]) for k in init)   # trained
  # seeds differ at init (each seed's own key)
  assert not np.allclose(init["Dense_0/dense/kernel"][0], init["Dense_0/dense/kernel"][1])


@pytest.mark.slow
def test_scores_recomputed_from_the_tidy_table(tiny):
  _, workdir = tiny
  pop = table.load(workdir)
  frame = _columns(workdir)
  names, _, _ = pop.networks()
  mean = lambda col, n: frame[col][frame["network"] == n].astype(float).mean()
  hp = [{"width": int(mean("width", n)), "lr": float(mean("lr", n))} for n in names]
  measure = np.asarray([mean("dist_init", n) for n in names])
  gap = np.asarray([mean("gap", n) for n in names])
  k = scoring.k_score(hp, measure, gap, ["width", "lr"])
  scores = pop.scores(draws=3, permutations=10)
  assert scores["dist_init"].k == pytest.approx(k, nan_ok=True)
  from scipy import stats
  for axis, other in (("width", "lr"), ("lr", "width")):   # psi: scipy's tau within each group
    taus = []
    for value in sorted({h[other] for h in hp}):
      group = [i for i, h in enumerate(hp) if h[other] == value]
      t = stats.kendalltau(measure[group], gap[group]).statistic if len(group) > 1 else np.nan
      taus += [t] if np.isfinite(t) else []
    expected = np.mean(taus) if taus else np.nan
    assert scores["dist_init"].psi[axis] == pytest.approx(expected, nan_ok=True)


@pytest.mark.slow
def test_a_measure_registered_later_fills_the_stored_population(tiny):
  config, workdir = tiny
  name = next(iter(table.load(workdir).rows))["network"]
  store, record = run._n1_unit(workdir, name)
  stamp = os.path.getmtime(os.path.join(store.workdir, "n1", record["n1"], "result.json"))

  @measures.register("test_sum_abs", title="sum |w|", source="test")
  def _sum_abs(net):
    return sum(np.abs(v).reshape(v.shape[0], -1).sum(1) for v in net.final.values())

  try:
    run.compute_measures(config, workdir, out=lambda line: None)
    assert np.all(np.isfinite(_columns(workdir)["test_sum_abs"]))
  finally:
    del measures.REGISTRY["test_sum_abs"]
  assert os.path.getmtime(os.path.join(store.workdir, "n1", record["n1"], "result.json")) == stamp


@pytest.mark.slow
def test_a_value_made_by_other_code_is_computed_again(tiny):
  """A stored measure whose definition digest is not today's code's is neither read nor kept."""
  from learnjax.storage import atomic_write_json, read_json
  config, workdir = tiny
  name = next(iter(table.load(workdir).rows))["network"]
  path = os.path.join(workdir, "measures", f"{name}.json")
  stored = read_json(path)
  original = list(stored["values"]["dist_init"])
  stored["values"]["dist_init"] = [-1.0] * len(original)
  stored["definitions"]["dist_init"] = "0" * 64              # made by an earlier dist_init
  atomic_write_json(path, stored)
  rows = [r for r in table.load(workdir).rows if r["network"] == name]
  assert all(np.isnan(r["dist_init"]) for r in rows)          # not read
  assert all(np.isfinite(r["path_norm"]) for r in rows)       # the current ones are
  run.compute_measures(config, workdir, out=lambda line: None)
  again = read_json(path)
  assert again["values"]["dist_init"] == pytest.approx(original)
  assert again["definitions"]["dist_init"] == measures.definition("dist_init")


@pytest.mark.slow
def test_without_stored_parameters_the_measures_come_from_training(tmp_path):
  config = _tiny(axes="n1.width=4;train.learning_rate=0.05,0.1", store_params=False)
  run.train(config, str(tmp_path), out=lambda line: None)
  frame = _columns(str(tmp_path))
  assert len(frame["network"]) == 4 and np.all(np.isfinite(frame["dist_init"]))
  assert np.all(np.isnan(frame["code_length"]))           # no curve: absent, not invented
  store, record = run._n1_unit(str(tmp_path), frame["network"][0])
  assert not params_lib.has_params(store.load("n1", record["n1"])[1])


@pytest.mark.parametrize("axes, message", [
    ("n1.depth=1,2", "at least two axes"),
    ("n1.depth=1,2;n2.model=mlp_1,mlp_2", "cannot be an axis"),
    ("n1.depth=1,2;n1.nothing=3,4", "not a config field"),
    ("n1.depth=1,1;n1.width=4,8", "twice"),
    ("n1.depth=1,2;n1.width", "FIELD=V1,V2"),
])
def test_bad_axes_are_refused(axes, message):
  config = _tiny(axes)
  with pytest.raises(LearnjaxError, match=message):
    spec.check(config)


def test_one_seed_is_refused():
  config = _tiny()
  config.seeds = 1
  with pytest.raises(LearnjaxError, match="at least 2 seeds"):
    spec.check(config)


def test_the_command_line_refuses_bad_input_before_training(tmp_path):
  env = {**os.environ, "PYTHONPATH": os.getcwd()}
  result = subprocess.run(
      [sys.executable, "-m", "learnjax.population",
       "--config=configs/generalisation_measures.py:smoke", f"--workdir={tmp_path}/w",
       "--config.population.axes=n1.depth=1,2"], capture_output=True, text=True, env=env,
      timeout=120)
  assert result.returncode == 2
  assert result.stderr.strip().splitlines()[-1].startswith("error: config.population.axes needs")
  assert not os.path.exists(f"{tmp_path}/w")


def test_learnjax_main_points_a_population_config_to_its_command(tmp_path):
  env = {**os.environ, "PYTHONPATH": os.getcwd()}
  result = subprocess.run(
      [sys.executable, "-m", "learnjax.main", "--config=configs/generalisation_measures.py:smoke",
       f"--workdir={tmp_path}/w"], capture_output=True, text=True, env=env, timeout=120)
  assert result.returncode == 2 and "python -m learnjax.population" in result.stderr
