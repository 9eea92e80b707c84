"""The result schema: each metric defined once in learnjax.metrics, and what follows from it."""

import json

import numpy as np
import pytest

from learnjax import metrics
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
  learnability = 100.0 * (n1 == n2).mean(axis=1)    # the definitions, in numpy
  np.testing.assert_allclose(out["learnability"]["per_seed"], learnability)
  np.testing.assert_allclose(out["n1_test_accuracy"]["per_seed"], 100.0 * (n1 == y).mean(axis=1))
  np.testing.assert_allclose(out["n2_test_accuracy"]["per_seed"], 100.0 * (n2 == y).mean(axis=1))
  assert out["learnability"]["mean"] == pytest.approx(np.mean(learnability))
  assert out["learnability"]["std"] == pytest.approx(np.std(learnability))


def test_undefined_values_are_none_in_the_record_and_shown_as_undefined():
  stats = metrics.seed_stats([np.nan, 50.0, 70.0])
  assert stats == {"mean": 60.0, "std": 10.0, "per_seed": [None, 50.0, 70.0], "undefined_seeds": 1}
  json.dumps(stats, allow_nan=False)   # valid JSON: no NaN
  assert metrics.fmt(stats) == "60.0 ± 10.0 (1 undefined)"
  none = metrics.seed_stats([np.nan, np.nan])
  assert none["mean"] is None and metrics.fmt(none) == "undefined"
  assert metrics.fmt(None) == "–"


def test_a_metric_is_absent_where_its_arrays_are_missing(registry):
  @metrics.register("needs_probs", title="needs probabilities", needs=("n1_log_probs_d3",))
  def needs_probs(a):
    raise AssertionError("not called without its arrays")

  out = metrics.compute(arrays([[0, 1]], [[0, 1]], [0, 1]))
  assert "needs_probs" not in out and "learnability" in out
  # An array no cell stores (learnjax.stored_arrays) is refused when the metric registers.
  with pytest.raises(ValueError, match="needs n1_probs_d3, which no cell stores"):
    metrics.register("needs_nothing_stored", title="x", needs=("n1_probs_d3",))(lambda a: a)


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


# --------------------------------------------------------------------------------------------
# What agreement means: the properties of each measure


def random_cell(rng, seeds=6, n=400, k=5, copy=0.7):
  """N1 right on about half of D3; N2 copies N1 with probability ``copy``, else guesses."""
  y = rng.integers(0, k, n)
  n1 = np.where(rng.random((seeds, n)) < 0.5, y, rng.integers(0, k, (seeds, n)))
  n2 = np.where(rng.random((seeds, n)) < copy, n1, rng.integers(0, k, (seeds, n)))
  return arrays(n1, n2, y)


def test_learnability_decomposes_into_agreement_on_right_and_wrong_examples():
  a = random_cell(np.random.default_rng(1))
  out = {k: metrics.per_seed_values(v) for k, v in metrics.compute(a).items()}
  acc = out["n1_test_accuracy"] / 100
  np.testing.assert_allclose(out["learnability"], acc * out["agreement_n1_correct"]
                             + (1 - acc) * out["agreement_n1_wrong"], rtol=0, atol=1e-9)
  # Independently: the conditional agreements from the 2x2 table's counts.
  n1, n2, y = a["n1_preds_d3"][0], a["n2_preds_d3"][0], a["y_d3"]
  right = n1 == y
  assert out["agreement_n1_correct"][0] == pytest.approx(100 * np.sum(right & (n1 == n2)) / right.sum())
  # N1 never wrong: only the agreement on its right answers is defined.
  perfect = metrics.compute(arrays([a["y_d3"]], [a["y_d3"]], a["y_d3"]))
  assert perfect["agreement_n1_wrong"]["mean"] is None
  assert perfect["agreement_n1_correct"]["mean"] == 100.0


def test_kappa_is_zero_for_independent_one_for_identical_and_undefined_for_constant():
  from sklearn.metrics import cohen_kappa_score
  rng = np.random.default_rng(2)
  # Independent N1 and N2 with skewed class frequencies: chance agreement is high, kappa ~ 0.
  p = [0.6, 0.3, 0.1]
  n1, n2 = rng.choice(3, (200, 2000), p=p), rng.choice(3, (200, 2000), p=p)
  kappa = metrics.REGISTRY["kappa"].per_seed(arrays(n1, n2, n1[0]))
  assert abs(kappa.mean()) < 0.005 and kappa.std() < 0.05
  np.testing.assert_allclose(kappa[:5], [cohen_kappa_score(a, b) for a, b in zip(n1[:5], n2[:5])])
  identical = metrics.REGISTRY["kappa"].per_seed(arrays(n1[:3], n1[:3], n1[0]))
  np.testing.assert_allclose(identical, 1.0)
  constant = metrics.compute(arrays(np.full((2, 10), 4), np.full((2, 10), 4), np.zeros(10, int)))
  assert constant["kappa"]["per_seed"] == [None, None] and metrics.fmt(constant["kappa"]) == "undefined"
  json.dumps(constant, allow_nan=False)


def test_gde_accuracy_from_hand_made_seed_predictions():
  y = [0, 1, 2, 3]
  seeds = [[0, 1, 2, 3], [0, 1, 2, 0], [0, 1, 1, 1]]
  # Pairs: (0,1) agree 3/4, (0,2) 2/4, (1,2) 2/4: mean pair disagreement 5/12.
  a = {"n1_preds_d3": np.asarray(seeds), "y_d3": np.asarray(y)}
  out = metrics.compute(a, {})
  np.testing.assert_allclose(out["gde_accuracy"]["per_seed"], [62.5, 62.5, 50.0])
  assert out["gde_accuracy"]["mean"] == pytest.approx(100 * (1 - 5 / 12))
  # N1 accuracy per seed 100, 75, 50: the error is GDE minus the measured accuracy.
  assert out["gde_error"]["mean"] == pytest.approx(100 * (1 - 5 / 12) - 75.0)
  one = metrics.compute({"n1_preds_d3": np.asarray(seeds[:1]), "y_d3": np.asarray(y)}, {})
  assert "gde_accuracy" not in one and "gde_error" not in one and "n1_cace" not in one
  given = metrics.compute(a, {"n1_source": "predictions"})
  assert "gde_accuracy" not in given


def _cace_by_definition(preds, y, k):
  """Jiang et al. (2022), eq. 6, written as the paper does: for each q, |(sum_k P(y = k, p̃_k = q))
  / (sum_k P(p̃_k = q)) - q| weighted by sum_k P(p̃_k = q); a loop over examples and classes."""
  seeds, n = preds.shape
  total = 0.0
  for v in range(seeds + 1):
    q = v / seeds
    joint = mass = 0.0
    for x in range(n):
      for c in range(k):
        if np.sum(preds[:, x] == c) == v:
          mass += 1 / n
          joint += (y[x] == c) / n
    if mass:
      total += abs(joint / mass - q) * mass
  return 100 * total


def test_cace_is_zero_for_a_class_aggregated_calibrated_ensemble():
  # Two seeds, two classes. Both vote 0: truth 0. They split: truth half 0, half 1. Both vote 1:
  # truth 1. For each vote share q, sum_k P(y = k, share q) = q sum_k P(share q).
  s0 = np.array([0] * 4 + [0] * 6 + [1] * 5)
  s1 = np.array([0] * 4 + [1] * 6 + [1] * 5)
  y = np.array([0] * 4 + [0, 1] * 3 + [1] * 5)
  a = {"n1_preds_d3": np.stack([s0, s1]), "y_d3": y}
  assert metrics.compute(a, {})["n1_cace"]["mean"] == pytest.approx(0.0, abs=1e-12)
  # Truth flipped where both vote 0: q = 0 is off by 4/15 (the truth has no vote) and q = 1 by
  # 4/15 (9/15 of (x, k) with both votes, 5/15 of them the truth).
  a["y_d3"] = np.where(np.arange(15) < 4, 1, y)
  assert metrics.compute(a, {})["n1_cace"]["mean"] == pytest.approx(100 * 8 / 15)


def test_cace_takes_the_absolute_value_after_the_class_sum():
  # One example, y = 0, the seeds predict 0 and 1: each class has share 1/2 and the truth is one
  # of the two, so the ensemble is class-aggregated calibrated (CACE 0) while each class alone is
  # off by 1/2 (class-wise ECE 50 %).
  a = {"n1_preds_d3": np.array([[0], [1]]), "y_d3": np.array([0])}
  out = metrics.compute(a, {"num_classes": 2})
  assert out["n1_cace"]["mean"] == pytest.approx(0.0, abs=1e-12)
  assert out["n1_classwise_ece"]["mean"] == pytest.approx(50.0)
  # Every seed wrong in the same way: the largest CACE, 200 (both sums over q are 1).
  wrong = {"n1_preds_d3": np.ones((3, 5), int), "y_d3": np.zeros(5, int)}
  assert metrics.compute(wrong, {})["n1_cace"]["mean"] == pytest.approx(200.0)
  assert metrics.compute(wrong, {})["n1_classwise_ece"]["mean"] == pytest.approx(100.0)


def test_cace_bounds_the_gde_gap_on_random_ensembles():
  """Property (Jiang et al. 2022, theorem 4.2): |E[test error] - E[disagreement]| <= CACE, with
  both expectations over seeds drawn from the S-seed ensemble (the pair with replacement)."""
  rng = np.random.default_rng(7)
  for trial in range(300):
    seeds, n, k = int(rng.integers(2, 6)), int(rng.integers(1, 40)), int(rng.integers(2, 6))
    y = rng.integers(0, k, n)
    skill = rng.uniform()   # from random seeds to seeds that copy the truth
    preds = np.where(rng.uniform(size=(seeds, n)) < skill, y, rng.integers(0, k, (seeds, n)))
    if trial % 5 == 0:      # seeds that agree with each other
      preds = np.broadcast_to(preds[:1], preds.shape).copy()
    a = {"n1_preds_d3": preds, "y_d3": y}
    out = metrics.compute(a, {"num_classes": k})
    cace = out["n1_cace"]["mean"]
    assert cace == pytest.approx(_cace_by_definition(preds, y, k), abs=1e-9)
    assert -1e-9 <= cace <= 200 + 1e-9
    assert -1e-9 <= out["n1_classwise_ece"]["mean"] <= 100 + 1e-9
    error = 100 * np.mean(preds != y[None])
    disagreement = 100 * np.mean(preds[:, None] != preds[None, :])   # pairs with replacement
    assert abs(error - disagreement) <= cace + 1e-9
    # The same bound from the stored fields: GDE accuracy averages the pairs s != t.
    pairs = (100 - out["gde_accuracy"]["mean"]) * (seeds - 1) / seeds
    assert abs((100 - out["n1_test_accuracy"]["mean"]) - pairs) <= cace + 1e-9


def test_kl_divergence_from_stored_log_probabilities():
  from scipy.special import rel_entr
  rng = np.random.default_rng(3)
  p1, p2 = rng.dirichlet(np.ones(4), (2, 30)), rng.dirichlet(np.ones(4), (2, 30))
  a = {**arrays(p1.argmax(-1), p2.argmax(-1), np.zeros(30, int)),
       "n1_log_probs_d3": np.log(p1).astype(np.float16), "n2_log_probs_d3": np.log(p2).astype(np.float16)}
  kl = metrics.REGISTRY["kl_n1_n2"].per_seed(a)
  np.testing.assert_allclose(kl, rel_entr(p1, p2).sum(-1).mean(-1), rtol=1e-2)
  a["n2_log_probs_d3"] = a["n1_log_probs_d3"]
  np.testing.assert_allclose(metrics.REGISTRY["kl_n1_n2"].per_seed(a), 0.0, atol=1e-12)
  assert "kl_n1_n2" not in metrics.compute(arrays(p1.argmax(-1), p2.argmax(-1), np.zeros(30, int)))
