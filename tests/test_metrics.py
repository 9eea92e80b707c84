"""The result schema: each metric defined once in learnjax.metrics, and what follows from it."""

import json

import numpy as np
import pytest

from learnjax import metrics, protocol
from learnjax.store import Store


def arrays(n1, n2, y):
  return {"n1_preds_d3": np.asarray(n1), "n2_preds_d3": np.asarray(n2), "y_d3": np.asarray(y)}


@pytest.fixture
def registry(monkeypatch):
  """A copy of the registry that a test may add to without changing it for the others."""
  monkeypatch.setattr(metrics, "REGISTRY", dict(metrics.REGISTRY))
  return metrics.REGISTRY


def test_the_base_metrics_match_the_protocol():
  rng = np.random.default_rng(0)
  n1, n2, y = rng.integers(0, 3, (4, 50)), rng.integers(0, 3, (4, 50)), rng.integers(0, 3, 50)
  out = metrics.compute(arrays(n1, n2, y))
  np.testing.assert_allclose(out["learnability"]["per_seed"], protocol.learnability(n1, n2))
  np.testing.assert_allclose(out["n1_test_accuracy"]["per_seed"], protocol.test_accuracy(n1, y))
  np.testing.assert_allclose(out["n2_test_accuracy"]["per_seed"], protocol.test_accuracy(n2, y))
  mean, std = protocol.mean_std(protocol.learnability(n1, n2))
  assert out["learnability"]["mean"] == pytest.approx(mean)
  assert out["learnability"]["std"] == pytest.approx(std)


def test_undefined_values_are_none_in_the_record_and_shown_as_undefined():
  stats = metrics.seed_stats([np.nan, 50.0, 70.0])
  assert stats == {"mean": 60.0, "std": 10.0, "per_seed": [None, 50.0, 70.0], "undefined_seeds": 1}
  json.dumps(stats, allow_nan=False)   # valid JSON: no NaN
  assert metrics.fmt(stats) == "60.0 ± 10.0 (1 undefined)"
  none = metrics.seed_stats([np.nan, np.nan])
  assert none["mean"] is None and metrics.fmt(none) == "undefined"
  assert metrics.fmt(None) == "–"


def test_a_metric_is_absent_where_its_arrays_are_missing(registry):
  @metrics.register("needs_probs", title="needs probabilities", needs=("n1_probs_d3",))
  def needs_probs(a):
    raise AssertionError("not called without its arrays")

  out = metrics.compute(arrays([[0, 1]], [[0, 1]], [0, 1]))
  assert "needs_probs" not in out and "learnability" in out


def test_an_old_record_gains_a_new_metric_and_a_contradicted_number_is_flagged(registry):
  a = arrays([[0, 1, 1, 1]], [[0, 1, 0, 0]], [0, 0, 1, 1])
  old = {"cell": "c", "learnability": metrics.seed_stats([50.0])}

  @metrics.register("n2_says_zero", title="N2 says 0")
  def n2_says_zero(a):
    return 100.0 * np.mean(a["n2_preds_d3"] == 0, axis=-1)

  completed, disagree = metrics.complete(old, a)
  assert completed["n2_says_zero"]["per_seed"] == [75.0] and disagree == []
  assert completed["learnability"] is old["learnability"]           # the stored numbers stay
  _, disagree = metrics.complete({"cell": "c", "learnability": metrics.seed_stats([60.0])}, a)
  assert disagree == ["learnability"]


def test_a_registered_metric_reaches_every_table_and_the_reference(registry, tmp_path):
  from learnjax.report import console, context, sections

  @metrics.register("n1_says_one", title="N1 says 1", console=True)
  def n1_says_one(a):
    return 100.0 * np.mean(a["n1_preds_d3"] == 1, axis=-1)

  workdir = str(tmp_path / "w")
  store = Store(workdir)
  store.write_config(json.dumps({"experiment": "x", "train": {"stop_error": 0.01}}))
  y = np.arange(20) % 4
  cell = {"cell": "c1", "variant": "true", "n1_model": "mlp_1", "n1_batch_size": 64,
          "n2_model": "mlp_1", "n2_batch_size": 64, "n1_epoch": None, "seeds": 1,
          "status": "ok", "n1": {"epochs": [3]}, "n2": {"epochs": [3]}}
  store.save("cells", "c1", cell, arrays([y], [y], y))      # a record without the new metric
  ctx = context.load(workdir)
  assert ctx.cells[0]["n1_says_one"]["mean"] == 25.0
  table = sections.section_cells(ctx)
  assert "| N1 says 1 % |" in table.splitlines()[0] and "| 25.0 ± 0.0 |" in table
  text = console.format_table([cell], workdir=workdir)
  assert "N1 says 1 %" in text.splitlines()[0] and "25.0 ± 0.0" in text.splitlines()[2]
  assert "n1_says_one" in context.reference_keys()


def test_agreement_on_the_examples_n1_gets_wrong():
  # seed 0: N1 wrong on x2, x3; N2 copies the mistake on x2 only. seed 1: N1 never wrong.
  y = [0, 1, 2, 3]
  out = metrics.compute(arrays([[0, 1, 0, 0], y], [[0, 0, 0, 1], y], y))
  assert out["agreement_n1_wrong"]["per_seed"] == [50.0, None]
  assert metrics.fmt(out["agreement_n1_wrong"]) == "50.0 ± 0.0 (1 undefined)"
